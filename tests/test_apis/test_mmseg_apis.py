"""mmseg's own Python API on our configs: ``mmseg.apis.init_model`` and ``inference_model`` on a video file, a clip
folder and a list of them, through the configs' ``test_pipeline`` (``LoadAVSFrames`` loading from ``img_path``)."""

import glob
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from projects.ccformer.apis import (
    inference_avs_model,
    init_avs_model,
    read_video_audio,
    read_video_frames,
    segment_video,
    write_video,
)
from projects.ccformer.datasets.toy_video import make_toy_video, toy_test_clips

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
S4 = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
AVSS = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avss-64x64.py')
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
CONFIGS = [c for c in CONFIGS if '_base_' not in c]


def _save(model, path: str) -> str:
    meta = dict(dataset_meta=dict(classes=('background', 'sounding object'), palette=[[0, 0, 0], [255, 255, 255]]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return path


@pytest.fixture(scope='module')
def s4_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = init_avs_model(S4, None, device='cpu')
    for m in model.audio_encoder.modules():  # sounds kept apart by the random audio encoder
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    return _save(model, str(tmp_path_factory.mktemp('ckpt') / 'tiny_s4.pth'))


@pytest.fixture(scope='module')
def video(toy_s4_root, tmp_path_factory):
    """10 s (two toy clips, 64 x 64, each frame held 1 s) with their sound."""
    path = str(tmp_path_factory.mktemp('video') / 'toy.mp4')
    make_toy_video(toy_s4_root, path)
    return path


@pytest.fixture(scope='module')
def big_video(tmp_path_factory):
    """10 s of 96 x 128 frames (not the model's 64 x 64) with a tone, at 4 frames a second."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(40)]
    t = np.arange(10 * 16000) / 16000
    path = str(tmp_path_factory.mktemp('big') / 'big.mp4')
    write_video(path, frames, 4, 0.3 * np.sin(2 * np.pi * 440 * t), crf=12)
    return path


@pytest.fixture(scope='module')
def clip_folder(toy_s4_root, tmp_path_factory):
    """A toy test clip as a clip folder: its 5 frames and its wav, named as AVSBench names them."""
    clip = toy_test_clips(toy_s4_root, 1)[0]
    folder = tmp_path_factory.mktemp('clips') / clip['video_id']
    folder.mkdir()
    for path in clip['frame_paths']:
        shutil.copy(path, folder)
    shutil.copy(clip['audio_path'], folder)
    return str(folder), clip


def test_init_model_builds_every_config_kind():
    """mmseg's init_model sets ``model.pretrained = None`` and ``model.train_cfg = None``: every config's segmentor
    takes both, and every config's test_pipeline loads a clip from img_path (LoadAVSFrames with num_frames)."""
    import inspect

    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    for path in CONFIGS:
        cfg = Config.fromfile(path)
        params = inspect.signature(MODELS.get(cfg.model.type).__init__).parameters
        assert 'pretrained' in params and 'train_cfg' in params, path
        first = cfg.test_pipeline[0]
        assert first['type'] == 'LoadAVSFrames' and first['num_frames'] in (5, 10), path


@pytest.mark.parametrize('config', [S4, AVSS, osp.join(ROOT, 'configs', 'ccformer_r50_s4.py')])
def test_init_model_without_checkpoint(config):
    from mmseg.apis import init_model

    model = init_model(config, device='cpu')
    assert type(model).__name__ == 'CCFormer' and not model.training and model.cfg.model.pretrained is None


def test_pretrained_argument_sets_the_backbone_init(tmp_path):
    from mmseg.registry import MODELS

    cfg = Config.fromfile(S4)
    cfg.model.pretrained = str(tmp_path / 'backbone.pth')
    model = MODELS.build(cfg.model)
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(tmp_path / 'backbone.pth'))


def test_inference_model_on_a_video_equals_the_project_api(s4_ckpt, video):
    """The first T seconds of a video through mmseg's inference_model give the masks segment_video gives for its
    first window (same sampling, sound, resize and threshold), at the video's size."""
    from mmseg.apis import inference_model, init_model

    model = init_model(S4, s4_ckpt, device='cpu')
    assert model.dataset_meta['classes'] == ('background', 'sounding object')
    sample = inference_model(model, video)
    assert sample.pred_sem_seg.data.shape == (5, 64, 64) and sample.seg_logits.data.shape == (5, 64, 64)
    assert sample.metainfo['img_path'] == video and sample.metainfo['num_frames'] == 5
    ours = segment_video(init_avs_model(S4, s4_ckpt), video, img_size=(64, 64))
    np.testing.assert_array_equal(sample.pred_sem_seg.data.numpy(), np.stack(ours['masks'][:5]))
    assert 'audio' not in sample  # the data preprocessor took it from the data sample
    # the sound matters: the same frames with silence give other logits
    frames, _, _ = read_video_frames(video, 1, num_seconds=5)
    silent = inference_avs_model(model, frames, (np.zeros(16000 * 5), 16000), return_datasample=True)
    assert not torch.allclose(silent.seg_logits.data, sample.seg_logits.data)


def test_inference_model_resizes_and_returns_the_video_size(s4_ckpt, big_video):
    from mmseg.apis import inference_model, init_model

    model = init_model(S4, s4_ckpt, device='cpu')
    sample = inference_model(model, big_video)
    assert sample.pred_sem_seg.data.shape == (5, 96, 128)  # ori_shape: the video's
    assert tuple(sample.metainfo['img_shape']) == (64, 64)  # what the model saw: the config's input size
    frames, _, _ = read_video_frames(big_video, 1, num_seconds=5)
    wave = read_video_audio(big_video)
    ours = inference_avs_model(model, frames, (wave, 16000), img_size=(64, 64))
    np.testing.assert_array_equal(sample.pred_sem_seg.data.numpy(), ours)


def test_inference_model_on_a_clip_folder_and_a_list(s4_ckpt, clip_folder, video):
    from mmseg.apis import inference_model, init_model

    folder, clip = clip_folder
    model = init_model(S4, s4_ckpt, device='cpu')
    sample = inference_model(model, folder)
    ours = inference_avs_model(model, clip['frame_paths'], clip['audio_path'], return_datasample=True)
    torch.testing.assert_close(sample.seg_logits.data, ours.seg_logits.data)
    assert sample.metainfo['video_id'] == clip['video_id']
    assert [osp.basename(p) for p in sample.metainfo['frame_paths']] == [osp.basename(p) for p in clip['frame_paths']]
    both = inference_model(model, [folder, video])
    assert isinstance(both, list) and len(both) == 2
    torch.testing.assert_close(both[0].seg_logits.data, sample.seg_logits.data)


def test_inference_model_semantic_config(big_video, toy_avss_root):
    """AVSS (T = 10): a 10-s video gives 10 masks; AVSSResize brings them to the config's 64 x 64 as the AVSS data
    sets do (the video's size is kept in frame_shape); the AVSS clip folder layout (frames/ + audio.wav) loads."""
    from mmseg.apis import inference_model, init_model

    from projects.ccformer.datasets import AVSSDataset

    model = init_model(AVSS, device='cpu')
    sample = inference_model(model, big_video)
    assert sample.pred_sem_seg.data.shape == (10, 64, 64) and tuple(sample.metainfo['frame_shape']) == (96, 128)
    ds = AVSSDataset(data_root=toy_avss_root, split='test', pipeline=[], test_mode=True)
    uid = next(c for c in (ds.get_data_info(i) for i in range(len(ds))) if all(c['frame_paths']))
    folder = osp.dirname(osp.dirname(uid['frame_paths'][0]))
    sample = inference_model(model, folder)
    ours = inference_avs_model(model, uid['frame_paths'], uid['audio_path'], return_datasample=True)
    assert torch.equal(sample.pred_sem_seg.data, ours.pred_sem_seg.data)


@pytest.mark.parametrize('config', CONFIGS, ids=[osp.relpath(c, ROOT) for c in CONFIGS])
def test_every_test_pipeline_loads_a_video(config, video, clip_folder):
    """mmseg's _preprare_data feeds dict(img_path=...) to cfg.test_pipeline (without LoadAnnotations)."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    pipeline = Compose([t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    num = cfg.test_pipeline[0]['num_frames']
    for path in (video, clip_folder[0]) if num == 5 else (video,):
        out = pipeline(dict(img_path=path))
        assert out['inputs'].shape[:2] == (num, 3) and out['data_samples'].audio.shape == (num, 1, 96, 64)
        size = (64, 64) if 'tiny' in osp.basename(config) else (224, 224)
        assert tuple(out['inputs'].shape[-2:]) == size, config


def test_errors_name_the_path(s4_ckpt, tmp_path, clip_folder, video):
    from mmseg.apis import inference_model, init_model

    model = init_model(S4, s4_ckpt, device='cpu')
    with pytest.raises(FileNotFoundError, match='missing.mp4 does not exist'):
        inference_model(model, str(tmp_path / 'missing.mp4'))
    text = tmp_path / 'notes.txt'
    text.write_text('not a video')
    with pytest.raises(ValueError, match='notes.txt is neither a video file nor a clip folder'):
        inference_model(model, str(text))
    with pytest.raises(ValueError, match='is a single image'):
        inference_model(model, clip_folder[1]['frame_paths'][0])
    short = str(tmp_path / 'short.mp4')
    frames, _, _ = read_video_frames(video, 1, num_seconds=3)
    write_video(short, frames, 1, read_video_audio(video)[: 3 * 16000])
    with pytest.raises(ValueError, match=r'lasts 3.00 s; .* T=5 .* at least 5 s'):
        inference_model(model, short)
    folder = tmp_path / 'few'
    folder.mkdir()
    for p in clip_folder[1]['frame_paths'][:3]:
        shutil.copy(p, folder)
    with pytest.raises(ValueError, match='holds 3 frame images'):
        inference_model(model, str(folder))
    for p in clip_folder[1]['frame_paths'][3:]:
        shutil.copy(p, folder)
    with pytest.raises(ValueError, match='found none'):
        inference_model(model, str(folder))
    for name in ('a.wav', 'b.wav'):
        shutil.copy(clip_folder[1]['audio_path'], folder / name)
    with pytest.raises(ValueError, match=r'several \(a.wav, b.wav\)'):
        inference_model(model, str(folder))
    os.remove(folder / 'b.wav')
    assert inference_model(model, str(folder)).pred_sem_seg.data.shape == (5, 64, 64)


def test_init_model_reads_checkpoints_weights_only(tmp_path):
    """mmseg's init_model loads through mmengine's CheckpointLoader, which projects.ccformer makes weights-only: a
    checkpoint that would run code is refused before anything runs."""
    from mmseg.apis import init_model

    from projects.ccformer.engine.safe_checkpoint import UnsafeCheckpointError

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path / "pwned"}',))

    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=dict(x=Payload())), path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        init_model(S4, path, device='cpu')
    assert not (tmp_path / 'pwned').exists()


def test_wav_next_to_frames_is_read_like_the_dataset(clip_folder):
    """The folder's wav goes through the official front end, as the dataset's wav (same examples)."""
    folder, clip = clip_folder
    cfg = Config.fromfile(S4)
    init_default_scope(cfg.default_scope)
    out = Compose(cfg.test_pipeline)(dict(img_path=folder))
    ref = Compose(cfg.test_dataloader.dataset.pipeline)(dict(clip, audio_path=clip['audio_path']))
    torch.testing.assert_close(out['audio'], ref['audio'])
    assert torch.equal(out['inputs'], ref['inputs'])
    assert sf.info(osp.join(folder, osp.basename(clip['audio_path']))).samplerate > 0
