"""Tests of the inference API (projects/ccformer/apis) and demo/video_demo.py on the tiny config (random weights)."""

import glob
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from _tools import load_tool
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')

from projects.ccformer.apis import (  # noqa: E402
    frame_audio_examples,
    inference_avs_model,
    init_avs_model,
    read_video_audio,
    read_video_frames,
    sample_frame_indices,
    segment_video,
    window_starts,
    write_video,
)
from projects.ccformer.datasets.audio import load_logmel_pkl, load_wav, waveform_to_logmel  # noqa: E402


@pytest.fixture(scope='module')
def model_and_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    # a ReLU-aware init keeps different sounds apart in the random audio encoder (PyTorch's default init makes its
    # embedding almost constant, see docs/demo_results.md), so the audio visibly changes the random model's output
    model = init_avs_model(CONFIG, None, device='cpu')
    for m in model.audio_encoder.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=dict(classes=('background', 'sounding object'), palette=[[0, 0, 0], [255, 255, 255]])
            ),
        ),
        path,
    )
    return model, path


@pytest.fixture(scope='module')
def model(model_and_ckpt):
    return model_and_ckpt[0]


@pytest.fixture(scope='module')
def clips(toy_s4_root):
    from projects.ccformer.datasets import AVSBenchS4Dataset

    ds = AVSBenchS4Dataset(data_root=toy_s4_root, split='test', pipeline=[], test_mode=True)
    return [ds.get_data_info(i) for i in range(len(ds))]


def _logits(model, frames, audio, **kw):
    return inference_avs_model(model, frames, audio, return_datasample=True, **kw).seg_logits.data


def test_checkpoint_roundtrip(model_and_ckpt, clips):
    model, path = model_and_ckpt
    loaded = init_avs_model(CONFIG, path, device='cpu')
    assert loaded.dataset_meta['classes'] == ('background', 'sounding object')
    c = clips[0]
    assert torch.equal(
        _logits(model, c['frame_paths'], c['audio_path']), _logits(loaded, c['frame_paths'], c['audio_path'])
    )


def test_bf16_weights(model_and_ckpt, clips):
    """dtype='bfloat16' casts the weights; float32 inputs from the pipeline are cast by the model, logits come
    back float32 and within bf16 rounding of the float32 model's; a bad dtype is refused."""
    model, path = model_and_ckpt
    bf16 = init_avs_model(CONFIG, path, device='cpu', dtype='bfloat16')
    assert all(p.dtype == torch.bfloat16 for n, p in bf16.named_parameters())
    assert all(b.dtype == torch.float32 for b in bf16.data_preprocessor.buffers())  # exact mean / std
    for c in clips[:2]:
        ref = _logits(model, c['frame_paths'], c['audio_path'])
        out = _logits(bf16, c['frame_paths'], c['audio_path'])
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert not torch.equal(out, ref)  # really ran in bf16
        assert ((out - ref).norm() / ref.norm()).item() < 5e-2
        assert ((out > 0) == (ref > 0)).float().mean().item() > 0.95
    with pytest.raises(ValueError, match='floating dtype'):
        init_avs_model(CONFIG, path, device='cpu', dtype='int8')


def test_same_result_as_test_pipeline(model, clips):
    """In-memory inference builds exactly the input the config's test pipeline (with file loaders) builds."""
    c = clips[0]
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    with torch.no_grad():
        ref = model.test_step(pseudo_collate([pipeline(dict(c))]))[0]
    frames_rgb = [cv2.imread(p)[..., ::-1].copy() for p in c['frame_paths']]
    out = inference_avs_model(model, frames_rgb, c['audio_path'], return_datasample=True)
    assert torch.allclose(out.seg_logits.data, ref.seg_logits.data, atol=1e-5)
    masks = inference_avs_model(model, frames_rgb, c['audio_path'])
    assert masks.shape == (5, 64, 64) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks, ref.pred_sem_seg.data.numpy())


def test_frame_and_audio_input_forms(model, clips):
    c = clips[0]
    ref = _logits(model, c['frame_paths'], c['audio_path'])
    bgr = [cv2.imread(p) for p in c['frame_paths']]
    assert torch.equal(ref, _logits(model, bgr, c['audio_path'], channel_order='bgr'))
    assert torch.equal(ref, _logits(model, [f[..., ::-1].copy() for f in bgr], c['audio_path']))
    wav = c['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav')
    wave, rate = load_wav(wav)
    logmel = load_logmel_pkl(c['audio_path'])
    for audio in (wav, (wave, rate), logmel, logmel[:, 0]):
        assert torch.allclose(ref, _logits(model, c['frame_paths'], audio), atol=1e-5)
    # the audio matters: another clip's sound changes the logits
    other = _logits(model, c['frame_paths'], clips[1]['audio_path'])
    assert (ref - other).abs().max() > 1e-3 * ref.abs().max()


def test_batch_equals_single(model, clips):
    frames = [c['frame_paths'] for c in clips]
    audio = [c['audio_path'] for c in clips]
    batch = inference_avs_model(model, frames, audio)
    assert len(batch) == len(clips)
    for c, masks in zip(clips, batch):
        np.testing.assert_array_equal(masks, inference_avs_model(model, c['frame_paths'], c['audio_path']))


def test_img_size_returns_masks_at_frame_size(model, clips):
    c = clips[0]
    frames = [cv2.resize(cv2.imread(p)[..., ::-1], (100, 80)) for p in c['frame_paths']]
    masks = inference_avs_model(model, frames, c['audio_path'], img_size=(64, 64))
    assert masks.shape == (5, 80, 100)


def test_masks_use_the_head_threshold(model, clips, monkeypatch):
    """Binary masks are ``sigmoid(logit) > decode_head.threshold``, also when resized back to the frame size."""
    c = clips[0]
    frames = [cv2.resize(cv2.imread(p)[..., ::-1], (100, 80)) for p in c['frame_paths']]
    logits = _logits(model, frames, c['audio_path'], img_size=(64, 64))
    up = torch.nn.functional.interpolate(logits[:, None].float(), size=(80, 100), mode='bilinear', align_corners=False)[
        :, 0
    ]
    default = inference_avs_model(model, frames, c['audio_path'], img_size=(64, 64))
    np.testing.assert_array_equal(default, (up > 0).numpy())
    p = float(up.median().sigmoid())  # a threshold between the logits: about half the pixels change side
    monkeypatch.setattr(model.decode_head, 'threshold', p)
    masks = inference_avs_model(model, frames, c['audio_path'], img_size=(64, 64))
    np.testing.assert_array_equal(masks, (up > np.log(p / (1 - p))).numpy())
    assert (masks != default).any()
    sample = inference_avs_model(model, clips[0]['frame_paths'], c['audio_path'], return_datasample=True)
    np.testing.assert_array_equal(sample.pred_sem_seg.data.numpy(), (sample.seg_logits.data > np.log(p / (1 - p))))


def test_bad_inputs(model, clips):
    c = clips[0]
    with pytest.raises(ValueError, match='T=5'):
        inference_avs_model(model, c['frame_paths'][:3], c['audio_path'])
    wave, _ = load_wav(c['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav'))
    with pytest.raises(ValueError, match='waveform'):
        inference_avs_model(model, c['frame_paths'], wave)
    with pytest.raises(FileNotFoundError):
        inference_avs_model(model, c['frame_paths'], '/nonexistent/audio.wav')


# ------------------------------------------------------------------------------------------------ video
@pytest.mark.parametrize('fps', [25, 29.97, 30, 12])
def test_sample_frame_indices_official(fps):
    n = int(5 * fps)
    step = int(round(fps))
    official = [min(int(k * step + (15 / 16) * step), n - 1) for k in range(5)]
    assert sample_frame_indices(n, fps, 5) == official
    assert sample_frame_indices(3, fps, 5) == [min(i, 2) for i in official]


def test_window_starts():
    assert window_starts(4, 5) == []
    assert window_starts(5, 5) == [0]
    assert window_starts(7, 5) == [0, 2]
    assert window_starts(14, 5) == [0, 5, 9]


def _clip_video(path, clips, seconds, audio=True, fps=10):
    """A video of ``seconds`` s from toy test clips (one frame per second held for 1 s) with their wav audio."""
    frames, waves = [], []
    for c in clips:
        frames += [cv2.imread(p)[..., ::-1].copy() for p in c['frame_paths']]
        wav = c['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav')
        waves.append(load_wav(wav)[0][: 5 * 16000])
    frames = frames[:seconds]
    wave = np.concatenate(waves)[: seconds * 16000]
    write_video(path, frames, fps, wave if audio else None, 16000, repeat=fps, crf=0)
    return frames, wave


def test_read_video_and_audio_alignment(clips, tmp_path):
    path = str(tmp_path / 'v.mp4')
    src_frames, wave = _clip_video(path, clips, 7)
    frames, ts, info = read_video_frames(path, 1)
    assert len(frames) == 7 and info['has_audio']
    np.testing.assert_allclose(ts, [0.9 + k for k in range(7)])  # frame int(k * 10 + 9.375) of a 10-fps video
    for j, a in enumerate(frames):  # yuv420p is lossy: the decoded frame is nearest to its own source frame
        diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for b in src_frames]
        assert int(np.argmin(diffs)) == j and diffs[j] < 10
    decoded = read_video_audio(path)
    assert abs(len(decoded) - len(wave)) < 2048  # AAC priming / padding
    ex = frame_audio_examples(decoded, ts, 1)
    np.testing.assert_array_equal(ex[:, 0], waveform_to_logmel(decoded, 16000)[:7])  # official 0.96 s blocks
    dense = frame_audio_examples(decoded, [2.5], 2)
    np.testing.assert_array_equal(dense[0, 0], waveform_to_logmel(decoded[40000 - 15600 : 40000], 16000)[0])


def test_segment_video(model, clips, tmp_path):
    path = str(tmp_path / 'v.mkv')
    _clip_video(path, clips, 7)
    res = segment_video(model, path, fps=1, img_size=(64, 64))
    assert res['windows'] == [0, 2]
    assert len(res['masks']) == 7 and all(m.shape == (64, 64) for m in res['masks'])
    # the first window is exactly inference_avs_model on the decoded frames and the matching audio examples
    ex = frame_audio_examples(read_video_audio(path), res['timestamps'], 1)
    first = inference_avs_model(model, res['frames'][:5], ex[:5], img_size=(64, 64))
    np.testing.assert_array_equal(np.stack(res['masks'][:5]), first)
    dense = segment_video(model, path, fps=2, img_size=(64, 64))
    assert len(dense['masks']) == 14 and dense['windows'] == [0, 5, 9]


def test_segment_video_errors(model, clips, tmp_path):
    mute = str(tmp_path / 'mute.mp4')
    _clip_video(mute, clips, 6, audio=False)
    with pytest.raises(ValueError, match='no audio track'):
        segment_video(model, mute)
    short = str(tmp_path / 'short.mp4')
    _clip_video(short, clips, 3)
    with pytest.raises(ValueError, match='shorter than one window'):
        segment_video(model, short)


def _demo():
    return load_tool('demo/video_demo.py')


def test_video_demo(model_and_ckpt, clips, tmp_path):
    import av

    _, ckpt = model_and_ckpt
    path = str(tmp_path / 'in.webm')
    _clip_video(path, clips, 6)
    out = str(tmp_path / 'out')
    res = _demo().main([path, CONFIG, ckpt, '--out', out, '--device', 'cpu', '--img-size', '64', '64'])
    masks = sorted(glob.glob(osp.join(out, 'masks', 'in_*.png')))
    assert len(masks) == 6 == len(res['masks'])
    for m in masks:
        img = cv2.imread(m, cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64) and set(np.unique(img)) <= {0, 255}
    with av.open(res['video']) as container:
        assert container.streams.audio
        n = sum(1 for _ in container.decode(video=0))
    assert n == 6


def test_video_demo_errors(model_and_ckpt, clips, tmp_path):
    _, ckpt = model_and_ckpt
    mute = str(tmp_path / 'mute.mp4')
    _clip_video(mute, clips, 6, audio=False)
    with pytest.raises(SystemExit, match='no audio track'):
        _demo().main([mute, CONFIG, ckpt, '--out', str(tmp_path / 'o'), '--device', 'cpu'])
    short = str(tmp_path / 'short.mp4')
    _clip_video(short, clips, 2)
    with pytest.raises(SystemExit, match='shorter than one window'):
        _demo().main([short, CONFIG, ckpt, '--out', str(tmp_path / 'o'), '--device', 'cpu'])


def test_video_demo_compile(model_and_ckpt, clips, tmp_path, monkeypatch):
    """--compile sets model.compile_cfg: the demo runs the compiled core (dynamo, 'eager' backend here instead of
    inductor, which takes minutes on a CPU) and writes the same masks as the eager demo."""
    import torch

    from projects.ccformer.models.utils import compile as compile_utils

    _, ckpt = model_and_ckpt
    path = str(tmp_path / 'in.mp4')
    _clip_video(path, clips, 10)  # 2 windows: the first runs eagerly (shape constants), the second compiled
    seen = []
    real_compile = torch.compile

    def fake_compile(fn, **kwargs):
        seen.append(kwargs)
        return real_compile(fn, backend='eager')

    eager = _demo().main(
        [
            path,
            CONFIG,
            ckpt,
            '--out',
            str(tmp_path / 'eager'),
            '--device',
            'cpu',
            '--img-size',
            '64',
            '64',
            '--no-audio',
        ]
    )
    monkeypatch.setattr(compile_utils, '_COMPILED', {})
    monkeypatch.setattr(torch, 'compile', fake_compile)
    torch._dynamo.reset()
    try:
        compiled = _demo().main(
            [
                path,
                CONFIG,
                ckpt,
                '--out',
                str(tmp_path / 'compiled'),
                '--device',
                'cpu',
                '--img-size',
                '64',
                '64',
                '--no-audio',
                '--compile',
                'reduce-overhead',
            ]
        )
    finally:
        torch._dynamo.reset()
    assert seen == [dict(mode='reduce-overhead', dynamic=False)]
    assert len(compiled['masks']) == len(eager['masks']) == 10
    for a, b in zip(eager['masks'], compiled['masks']):
        assert np.array_equal(cv2.imread(a, cv2.IMREAD_UNCHANGED), cv2.imread(b, cv2.IMREAD_UNCHANGED))


# ------------------------------------------------------------------------------------------------ bad inputs
def test_init_refuses_foreign_and_unsafe_checkpoints(model_and_ckpt, tmp_path):
    """init_avs_model is strict by default (naming keys and the config), strict=False loads the matching part; a
    checkpoint with a pickled payload is refused without running it."""
    import os

    from projects.ccformer.engine.safe_checkpoint import CheckpointMismatchError, UnsafeCheckpointError

    model, path = model_and_ckpt
    state = model.state_dict()
    foreign = str(tmp_path / 'foreign.pth')
    partial = {k: v for k, v in state.items() if not k.startswith('decode_head.')}
    torch.save(dict(state_dict=dict(partial, **{'classifier.weight': torch.zeros(2)})), foreign)
    with pytest.raises(CheckpointMismatchError) as exc:
        init_avs_model(CONFIG, foreign)
    msg = str(exc.value)
    assert foreign in msg and CONFIG in msg and 'decode_head.' in msg and 'classifier.weight' in msg
    loaded = init_avs_model(CONFIG, foreign, strict=False)
    assert torch.equal(loaded.backbone.conv1.weight, model.backbone.conv1.weight)
    marker = str(tmp_path / 'PWNED')

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=Payload())), evil)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        init_avs_model(CONFIG, evil)
    with pytest.raises(SystemExit, match=f'refused to load checkpoint {evil}'):
        _demo().main([evil, CONFIG, evil, '--out', str(tmp_path / 'o'), '--device', 'cpu'])
    assert not osp.exists(marker)


def _float_audio_video(path, seconds, wave):
    """An mkv with a grey picture and a float32 PCM soundtrack (which can carry NaN)."""
    import av

    with av.open(path, 'w') as container:
        vstream = container.add_stream('mpeg4', rate=1)
        vstream.width, vstream.height, vstream.pix_fmt = 32, 32, 'yuv420p'
        astream = container.add_stream('pcm_f32le', rate=16000)
        astream.layout = 'mono'
        for i in range(seconds):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format='rgb24')
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        wave = np.asarray(wave, np.float32)
        for start in range(0, len(wave), 1024):
            aframe = av.AudioFrame.from_ndarray(wave[None, start : start + 1024].copy(), format='flt', layout='mono')
            aframe.sample_rate = 16000
            for packet in astream.encode(aframe):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)


def test_non_finite_video_audio_names_file_and_time_span(model_and_ckpt, tmp_path):
    from projects.ccformer.apis import audio_to_examples

    _, ckpt = model_and_ckpt
    wave = 0.1 * np.sin(np.arange(6 * 16000) / 10)
    wave[int(2.5 * 16000) : int(3.1 * 16000)] = np.nan
    path = str(tmp_path / 'nan.mkv')
    _float_audio_video(path, 6, wave)
    span = r'non-finite \(NaN / inf\) audio values between 2.50 s and 3.10 s'
    with pytest.raises(ValueError, match=span):
        read_video_audio(path)
    with pytest.raises(ValueError, match='nan.mkv'):
        audio_to_examples(path, 5)
    with pytest.raises(SystemExit, match=r'nan.mkv \(audio track\): .*' + span):
        _demo().main([path, CONFIG, ckpt, '--out', str(tmp_path / 'o'), '--device', 'cpu', '--img-size', '32', '32'])
    with pytest.raises(ValueError, match=r'audio waveform: 1 non-finite .* between 0.50 s and 0.50 s'):
        wave = np.zeros(16000 * 5)
        wave[8000] = np.inf
        audio_to_examples((wave, 16000), 5)


def test_short_video_audio_is_silence(model, model_and_ckpt, clips, tmp_path):
    """Audio that ends before the picture: the missing seconds are silence (log(0.01) log-mels), not a repeat of the
    last second, and the padding is reported."""
    from projects.ccformer.apis import audio_to_examples
    from projects.ccformer.datasets.audio import LOG_OFFSET

    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(3.5 * 16000)) / 16000)
    path = str(tmp_path / 'short_audio.mkv')
    _float_audio_video(path, 7, wave)
    ex = audio_to_examples(path, 5)
    np.testing.assert_allclose(ex[4], np.log(LOG_OFFSET), rtol=1e-6)  # 3.84-4.8 s: nothing left of the tone
    assert np.abs(ex[2] - np.log(LOG_OFFSET)).max() > 1  # 1.92-2.88 s: the tone
    res = segment_video(model, path, fps=1, img_size=(32, 32))
    need = 6 * 15360 + 15600
    assert res['audio_padded_seconds'] == pytest.approx((need - len(wave)) / 16000)
    padded = np.concatenate([read_video_audio(path), np.zeros(need - len(wave))])
    silent = frame_audio_examples(padded, res['timestamps'], 1)
    np.testing.assert_allclose(silent[5:, 0], np.log(LOG_OFFSET), rtol=1e-6)
    second = inference_avs_model(model, res['frames'][2:7], silent[2:7], img_size=(32, 32))
    np.testing.assert_array_equal(np.stack(res['masks'][5:7]), second[3:5])
    _, ckpt = model_and_ckpt
    out = _demo().main([path, CONFIG, ckpt, '--out', str(tmp_path / 'o'), '--device', 'cpu', '--img-size', '32', '32'])
    assert out['audio_padded_seconds'] == pytest.approx(res['audio_padded_seconds'])


def test_demo_out_naming_a_file_fails_before_any_work(model_and_ckpt, clips, tmp_path, monkeypatch):
    import projects.ccformer.apis as apis

    _, ckpt = model_and_ckpt
    video = str(tmp_path / 'v.mp4')
    _clip_video(video, clips, 6)
    out = tmp_path / 'out.png'
    out.write_bytes(b'keep')

    def fail(*args, **kwargs):
        raise AssertionError('the model was built')

    monkeypatch.setattr(apis, 'init_avs_model', fail)
    with pytest.raises(SystemExit, match='--out .*out.png: this is an existing file'):
        _demo().main([video, CONFIG, ckpt, '--out', str(out), '--device', 'cpu'])
    assert out.read_bytes() == b'keep'


# ------------------------------------------------------------------------------------------------ faults and limits
def test_integer_pcm_and_channel_layouts(clips):
    """Integer PCM is scaled by its dtype; (samples, channels) and (channels, samples) give the same examples;
    shapes that could be either are refused with the shape (before: int16 taken as float, off by ~10 in log-mel;
    (2, N) read as 2 samples: "shorter than 0.975 s")."""
    from projects.ccformer.apis import audio_to_examples

    wav = clips[0]['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav')
    wave, rate = load_wav(wav)  # int16 / 32768
    ref = audio_to_examples((wave, rate), 5)
    pcm16 = np.round(wave * 32768).astype(np.int16)
    np.testing.assert_array_equal(audio_to_examples((pcm16, rate), 5), ref)
    np.testing.assert_array_equal(audio_to_examples((pcm16.astype(np.int32) << 16, rate), 5), ref)
    u8 = (pcm16 // 256 + 128).astype(np.uint8)  # 8-bit unsigned wav: 128 is silence
    np.testing.assert_array_equal(audio_to_examples((u8, rate), 5), audio_to_examples(((u8 - 128.0) / 128, rate), 5))
    stereo = np.stack([wave, wave], axis=1)
    np.testing.assert_allclose(audio_to_examples((stereo, rate), 5), ref, atol=1e-6)
    np.testing.assert_allclose(audio_to_examples((np.ascontiguousarray(stereo.T), rate), 5), ref, atol=1e-6)
    np.testing.assert_allclose(audio_to_examples((pcm16[None].repeat(2, 0), rate), 5), ref, atol=1e-6)
    for shape in ((4, 4), (20, 30), (2, 3, 16000)):
        with pytest.raises(ValueError, match=rf'shape {re.escape(str(shape))} is ambiguous'):
            audio_to_examples((np.zeros(shape, np.int16), rate), 5)
    with pytest.raises(ValueError, match='dtype bool'):
        audio_to_examples((np.zeros(16000, bool), rate), 5)


def _nan_checkpoint(model, path, name='decode_head.seg_head.fc.bias'):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[name].fill_(float('nan'))
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path


def test_non_finite_outputs_are_an_error(model, clips, tmp_path):
    """Weights that give NaN (a corrupted checkpoint): the API, segment_video and the demo stop naming the file
    (before: empty masks, exit 0)."""
    from projects.ccformer.utils.outputs import NonFiniteOutputError

    ckpt = _nan_checkpoint(model, str(tmp_path / 'nan.pth'))
    broken = init_avs_model(CONFIG, ckpt, device='cpu')
    c = clips[0]
    with pytest.raises(NonFiniteOutputError, match=r'nan.pth: the model produced \d+ NaN / infinite logits .* clip_0'):
        inference_avs_model(broken, c['frame_paths'], c['audio_path'])
    path = str(tmp_path / 'v.mp4')
    _clip_video(path, clips, 6)
    with pytest.raises(NonFiniteOutputError, match=r'v.mp4 frames 1..5'):
        next(iter(segment_video(broken, path)))
    out = tmp_path / 'out'
    with pytest.raises(SystemExit, match='NaN / infinite logits'):
        _demo().main([path, CONFIG, ckpt, '--out', str(out), '--device', 'cpu'])
    assert not out.exists() and [p for p in os.listdir(tmp_path) if p.startswith('.')] == []  # nothing half-written


def test_non_finite_outputs_of_a_semantic_model(toy_avss_root):
    """AVSS (K = 71): the masks are an argmax without seg_logits; NaN logits still stop with the error."""
    from projects.ccformer.utils.outputs import NonFiniteOutputError

    cfg = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avss-64x64.py')
    avss = init_avs_model(cfg, None, device='cpu')
    assert avss.num_frames == 10
    frames = [np.full((60, 80, 3), 40 * (i % 5), np.uint8) for i in range(10)]
    audio = np.zeros((10, 96, 64), np.float32)
    assert inference_avs_model(avss, frames, audio).shape == (10, 60, 80)
    with torch.no_grad():
        avss.decode_head.seg_head.fc.bias.fill_(float('nan'))
    with pytest.raises(NonFiniteOutputError, match='ccformer_tiny-robust_1xb2-toy_avss-64x64.py'):
        inference_avs_model(avss, frames, audio)


def test_input_size_and_clip_length_come_from_the_config(model, clips, tmp_path):
    """The tiny model runs at 64 x 64 and T = 5 (config), not at a fixed 224 x 224; the API asks the model."""
    from projects.ccformer.apis import as_clip_segmentor, get_num_frames
    from projects.ccformer.utils import config_input_size, config_num_frames, model_input_size

    cfgs = osp.join(ROOT, 'configs', 'ccformer')
    sizes = {
        'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py': (64, 64),
        'ccformer_tiny-robust_1xb2-toy_avsbench-ms3-64x64.py': (64, 64),
        'ccformer_tiny-robust_1xb2-toy_avss-64x64.py': (64, 64),
        'ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py': (224, 224),
        'ccformer_r50_1xb6-40e_avss-224x224.py': (224, 224),
    }
    for name, size in sizes.items():
        cfg = Config.fromfile(osp.join(cfgs, name))
        assert config_input_size(cfg) == size, name
        assert config_num_frames(cfg) == (10 if 'avss' in name else 5), name
    bare = Config(dict(test_dataloader=dict(dataset=dict(type='MyDataset', pipeline=[]))))
    assert config_input_size(bare) is None
    with pytest.raises(ValueError, match=r'MyDataset.*Set num_frames = T at the top level'):
        config_num_frames(bare)
    # the tools' helper: their flag wins, else the config, else an error naming the flag
    assert model_input_size(bare, (32, 48)) == (32, 48)
    with pytest.raises(ValueError, match=r'my.py gives no input size.*pass --shape H W'):
        model_input_size(bare, None, '--shape', 'my.py')
    with pytest.raises(ValueError, match=r'--img-size 0 64: give two positive integers'):
        model_input_size(bare, (0, 64), '--img-size')
    assert model.num_frames == 5 and get_num_frames(model) == 5
    segmentor = as_clip_segmentor(model)
    assert segmentor.input_size == (64, 64) and segmentor.resolve_img_size(None) == (64, 64)
    path = str(tmp_path / 'v.mp4')
    big = [cv2.resize(f, (128, 96)) for f in _clip_video(path, clips, 5)[0]]
    write_video(
        path,
        big,
        10,
        load_wav(clips[0]['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav'))[0],
        16000,
        repeat=10,
    )
    res = segment_video(model, path)
    assert res.img_size == (64, 64)
    explicit = segment_video(model, path, img_size=(64, 64)).collect()['masks']
    assert all(np.array_equal(a, b) for a, b in zip(res['masks'], explicit)) and res['masks'][0].shape == (96, 128)


def test_segment_video_streams_window_by_window(model, clips, tmp_path, monkeypatch):
    """The first frame's mask comes out after one window was decoded (not the whole video), and the streamed
    frames equal the collected result."""
    import projects.ccformer.apis.inference as api

    path = str(tmp_path / 'v.mp4')
    _clip_video(path, clips, 10)
    decoded = []
    real = api.iter_video_frames

    def counting(*args, **kwargs):
        for item in real(*args, **kwargs):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(api, 'iter_video_frames', counting)
    result = segment_video(model, path, fps=2, img_size=(64, 64), batch_size=1)
    assert len(result) == 20 and result.windows == [0, 5, 10, 15]
    stream = iter(result)
    first = next(stream)
    assert first.index == 0 and len(decoded) == 5  # one window of T = 5 frames so far
    rest = list(stream)
    assert [f.index for f in [first] + rest] == list(range(20)) and len(decoded) == 20
    monkeypatch.undo()
    collected = segment_video(model, path, fps=2, img_size=(64, 64), batch_size=3).collect()
    for item in [first] + rest:
        np.testing.assert_array_equal(item.mask, collected['masks'][item.index])
        np.testing.assert_array_equal(item.frame, collected['frames'][item.index])


def test_demo_options_name_the_bad_value(model_and_ckpt, clips, tmp_path, capsys):
    _, ckpt = model_and_ckpt
    base = ['v.mp4', CONFIG, ckpt, '--out', str(tmp_path / 'o')]
    for extra, message in (
        (['--batch-size', '0'], 'argument --batch-size: 0 is not a positive integer'),
        (['--img-size', '0', '0'], 'argument --img-size: 0 is not a positive integer'),
        (['--img-size', '64', '-1'], 'argument --img-size: -1 is not a positive integer'),
        (['--fps', '0'], 'argument --fps: 0 is not a positive integer'),
        (['--opacity', '2'], 'argument --opacity: 2.0 is not between 0'),
    ):
        with pytest.raises(SystemExit):
            _demo().parse_args(base + extra)
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match='batch_size must be a positive integer'):
        segment_video(init_avs_model(CONFIG, None), 'missing.mp4', batch_size=0)


def test_demo_never_mixes_two_runs(model_and_ckpt, model, clips, tmp_path):
    """A used --out is refused; --overwrite replaces it only after the new run has finished (no stale masks of the
    earlier run); a failed run leaves the earlier one as it was."""
    _, ckpt = model_and_ckpt
    long, short = str(tmp_path / 'long.mp4'), str(tmp_path / 'long2.mp4')
    _clip_video(long, clips, 8)
    _clip_video(short, clips, 6)
    out = str(tmp_path / 'out')
    args = [CONFIG, ckpt, '--out', out, '--device', 'cpu', '--no-audio']
    first = _demo().main([long] + args)
    assert len(first['masks']) == 8
    with pytest.raises(SystemExit, match=r'--out .*out already holds files \(long_overlay.mp4, masks\).*--overwrite'):
        _demo().main([short] + args)
    before = sorted(os.listdir(out))
    nan = _nan_checkpoint(model, str(tmp_path / 'nan.pth'))
    with pytest.raises(SystemExit, match='NaN'):
        _demo().main([short, CONFIG, nan, '--out', out, '--device', 'cpu', '--no-audio', '--overwrite'])
    assert sorted(os.listdir(out)) == before and len(os.listdir(osp.join(out, 'masks'))) == 8
    second = _demo().main([short] + args + ['--overwrite'])
    assert sorted(os.listdir(out)) == ['long2_overlay.mp4', 'masks']
    assert sorted(os.listdir(osp.join(out, 'masks'))) == sorted(osp.basename(p) for p in second['masks'])
    assert len(second['masks']) == 6
    assert [p for p in os.listdir(tmp_path) if p.startswith('.')] == []


def _fill(folder: str, leave: int) -> None:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(osp.join(folder, 'filler'), 'wb') as f:
        f.write(b'\0' * max(0, free - leave))


def test_demo_on_a_full_disk(model_and_ckpt, clips, tmp_path, tiny_fs):
    _, ckpt = model_and_ckpt
    path = str(tmp_path / 'v.mp4')
    _clip_video(path, clips, 10)
    _fill(tiny_fs, 4096)
    out = osp.join(tiny_fs, 'out')
    with pytest.raises(SystemExit, match=r'cannot write .*/out/\S+ \(No space left on device\): the disk .*is full'):
        _demo().main([path, CONFIG, ckpt, '--out', out, '--device', 'cpu'])
    assert sorted(os.listdir(tiny_fs)) == ['filler']  # nothing half-written left
