"""Clip transforms: loading, masks, audio, AVSS geometry, clip-consistent augmentation, packing."""

import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from mmcv.transforms import Compose
from PIL import Image

import projects.ccformer  # noqa: F401
from projects.ccformer.datasets import voc_palette
from projects.ccformer.datasets.audio import load_wav, waveform_to_logmel
from projects.ccformer.datasets.transforms import (
    AVSSResize,
    ClipConsistentTransform,
    LoadAVSAudio,
    LoadAVSFrames,
    LoadAVSMasks,
    PackAVSInputs,
)


def _write(path, img):
    assert cv2.imwrite(str(path), img)
    return str(path)


# ------------------------------------------------------------------------------------------
# frames


def test_load_frames_bgr_and_padding(tmp_path):
    img = np.zeros((6, 8, 3), np.uint8)
    img[..., 2] = 200  # red in BGR
    p = _write(tmp_path / 'f.png', img)
    out = LoadAVSFrames()(dict(frame_paths=[p, p, None], video_id='v'))
    assert len(out['imgs']) == 3 and out['imgs'][0][0, 0].tolist() == [0, 0, 200]
    assert (out['imgs'][2] == 0).all() and out['imgs'][2].shape == (6, 8, 3)
    assert out['img_shape'] == (6, 8) == out['ori_shape'] and out['img_path'] == p


def test_load_frames_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.png'):
        LoadAVSFrames()(dict(frame_paths=[str(tmp_path / 'nope.png')]))
    bad = tmp_path / 'corrupt.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    with pytest.raises(ValueError, match='corrupt.png'):
        LoadAVSFrames()(dict(frame_paths=[str(bad)]))
    a = _write(tmp_path / 'a.png', np.zeros((6, 8, 3), np.uint8))
    b = _write(tmp_path / 'b.png', np.zeros((7, 8, 3), np.uint8))
    with pytest.raises(ValueError, match='b.png'):
        LoadAVSFrames()(dict(frame_paths=[a, b]))


# ------------------------------------------------------------------------------------------
# masks


def test_load_binary_masks(tmp_path):
    m = np.array([[0, 255, 128], [127, 255, 0]], np.uint8)
    p = _write(tmp_path / 'm.png', m)
    out = LoadAVSMasks()(dict(mask_paths=[p, None], img_shape=(2, 3)))
    np.testing.assert_array_equal(out['gt_masks'][0], [[0, 1, 1], [0, 1, 0]])
    assert (out['gt_masks'][1] == 0).all() and out['gt_masks'].dtype == np.uint8
    assert out['seg_fields'] == ['gt_masks']
    # a colour (3-channel) white-on-black mask is converted to grey first
    rgb = _write(tmp_path / 'rgb.png', np.stack([m] * 3, -1))
    np.testing.assert_array_equal(LoadAVSMasks()(dict(mask_paths=[rgb]))['gt_masks'][0], [[0, 1, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match='m.png'):
        LoadAVSMasks()(dict(mask_paths=[p], img_shape=(4, 4)))
    with pytest.raises(FileNotFoundError, match='gone.png'):
        LoadAVSMasks()(dict(mask_paths=[str(tmp_path / 'gone.png')]))


def test_load_palette_masks(tmp_path):
    pal = voc_palette(71)
    idx = np.array([[0, 1, 2], [70, 15, 0]], np.uint8)
    rgb = np.array(pal, np.uint8)[idx]
    p = _write(tmp_path / 'l.png', rgb[..., ::-1])
    out = LoadAVSMasks(label_type='palette')(dict(mask_paths=[p]))
    np.testing.assert_array_equal(out['gt_masks'][0], [[0, 1, 2], [70, 15, 0]])
    # an indexed (mode 'P') PNG with the VOC palette decodes to the same classes
    pimg = Image.fromarray(idx, mode='P')
    pimg.putpalette([c for rgb_ in pal for c in rgb_])
    pimg.save(tmp_path / 'p.png')
    out = LoadAVSMasks(label_type='palette')(dict(mask_paths=[str(tmp_path / 'p.png')]))
    np.testing.assert_array_equal(out['gt_masks'][0], idx)


def test_labels_outside_the_palette_are_an_error(tmp_path):
    """A colour outside the AVSS palette names the file and the colours (before: scored as background); class-index
    PNGs get the hint and are read with label_type='index'."""
    pal = voc_palette(71)
    rgb = np.array(pal, np.uint8)[np.array([[0, 1, 2], [70, 15, 0]])]
    rgb[1, 2] = (1, 2, 3)
    p = _write(tmp_path / 'odd.png', rgb[..., ::-1])
    with pytest.raises(
        ValueError,
        match=r'odd.png: 1 pixels have colours outside the 71-class AVSS palette: '
        r'\(1, 2, 3\) \(1 px\).*Re-export',
    ):
        LoadAVSMasks(label_type='palette')(dict(mask_paths=[p]))
    idx = np.array([[0, 3, 3], [70, 15, 0]], np.uint8)  # class indices stored as grey levels
    q = _write(tmp_path / 'index.png', idx)
    with pytest.raises(
        ValueError,
        match=r"index.png: 4 pixels .*\(3, 3, 3\) \(2 px\).*class-index PNG.*"
        r"label_type='index'",
    ):
        LoadAVSMasks(label_type='palette')(dict(mask_paths=[q]))
    out = LoadAVSMasks(label_type='index')(dict(mask_paths=[q, None]))
    np.testing.assert_array_equal(out['gt_masks'][0], idx)
    assert not out['gt_masks'][1].any()
    bad = _write(tmp_path / 'big.png', np.full((2, 3), 71, np.uint8))
    with pytest.raises(ValueError, match=r'big.png holds class indices \[71\] outside 0..70'):
        LoadAVSMasks(label_type='index')(dict(mask_paths=[bad]))
    with pytest.raises(ValueError, match=r"big.png has 3 channels; label_type='index'"):
        LoadAVSMasks(label_type='index')(dict(mask_paths=[_write(tmp_path / 'big.png', rgb)]))


# ------------------------------------------------------------------------------------------
# audio


def _wav(path, x, rate=16000, subtype='PCM_16'):
    sf.write(str(path), x, rate, subtype=subtype)
    return str(path)


def _tone(seconds, rate=16000, f=700.0):
    return 0.5 * np.sin(2 * np.pi * f * np.arange(int(seconds * rate)) / rate)


def test_audio_wav_repeat_and_zero_padding(tmp_path):
    p = _wav(tmp_path / 'short.wav', _tone(2.5))
    out = LoadAVSAudio(pad_mode='repeat')(dict(audio_path=p, num_frames=5))
    a = out['audio']
    assert a.shape == (5, 1, 96, 64) and a.dtype == np.float32
    for t in (2, 3, 4):
        np.testing.assert_array_equal(a[t], a[1])  # 2 examples, last one repeated
    out = LoadAVSAudio(pad_mode='zeros')(dict(audio_path=p, num_frames=10))
    assert out['audio_valid'] == [1, 1] + [0] * 8 and (out['audio'][2:] == 0).all()
    np.testing.assert_array_equal(out['audio'][:2], a[:2])


def test_audio_too_short(tmp_path):
    p = _wav(tmp_path / 'tiny.wav', _tone(0.5))
    with pytest.raises(ValueError, match='tiny.wav'):
        LoadAVSAudio(pad_mode='repeat')(dict(audio_path=p, num_frames=5))
    out = LoadAVSAudio(pad_mode='zeros')(dict(audio_path=p, num_frames=10))
    assert (out['audio'] == 0).all() and out['audio_valid'] == [0] * 10


def test_audio_silence(tmp_path):
    p = _wav(tmp_path / 'silent.wav', np.zeros(5 * 16000))
    out = LoadAVSAudio()(dict(audio_path=p, num_frames=5))
    np.testing.assert_allclose(out['audio'], np.log(0.01), rtol=1e-6)


@pytest.mark.parametrize('rate', [8000, 44100, 48000])
def test_audio_other_rates(tmp_path, rate):
    ref = LoadAVSAudio()(dict(audio_path=_wav(tmp_path / 'r16.wav', _tone(5)), num_frames=5))
    out = LoadAVSAudio()(dict(audio_path=_wav(tmp_path / f'r{rate}.wav', _tone(5, rate), rate), num_frames=5))
    assert out['audio'].shape == (5, 1, 96, 64)
    loud = ref['audio'].mean((0, 1, 2)) > 0
    np.testing.assert_allclose(out['audio'][..., loud], ref['audio'][..., loud], atol=0.05)


def test_audio_stereo_is_mean(tmp_path):
    x, y = _tone(5, f=700.0), _tone(5, f=2500.0)
    out = LoadAVSAudio()(dict(audio_path=_wav(tmp_path / 'st.wav', np.stack([x, y], 1)), num_frames=5))
    stereo, rate = load_wav(str(tmp_path / 'st.wav'))
    assert stereo.shape == (5 * 16000, 2)
    mono = stereo.mean(1)
    np.testing.assert_allclose(out['audio'][:, 0], waveform_to_logmel(mono, rate), atol=1e-5)
    # and it differs from either channel alone
    assert np.abs(out['audio'][:, 0] - waveform_to_logmel(stereo[:, 0], rate)).max() > 1.0


def test_audio_pkl_errors(tmp_path):
    p = tmp_path / 'shape.pkl'
    with open(p, 'wb') as f:
        pickle.dump(torch.zeros(5, 96, 64), f, protocol=4)
    with pytest.raises(ValueError, match='shape.pkl'):
        LoadAVSAudio()(dict(audio_path=str(p), num_frames=5))
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        LoadAVSAudio()(dict(audio_path=str(tmp_path / 'missing.pkl'), num_frames=5))
    with pytest.raises(FileNotFoundError, match='a.mp3'):
        LoadAVSAudio()(dict(audio_path=str(tmp_path / 'a.mp3'), num_frames=5))
    (tmp_path / 'b.mp3').write_text('not a sound file')  # other extensions are decoded with PyAV
    with pytest.raises(ValueError, match='b.mp3'):
        LoadAVSAudio()(dict(audio_path=str(tmp_path / 'b.mp3'), num_frames=5))
    # a 3-example pkl is padded by repeating the last example
    q = tmp_path / 'three.pkl'
    t = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 96, 64).contiguous()
    with open(q, 'wb') as f:
        pickle.dump(t, f, protocol=4)
    out = LoadAVSAudio()(dict(audio_path=str(q), num_frames=5))
    assert out['audio'][:, 0, 0, 0].tolist() == [0, 1, 2, 2, 2]


# ------------------------------------------------------------------------------------------
# AVSS geometry


def test_avss_resize_geometry():
    img = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    mask = np.zeros((2, 60, 80), np.uint8)
    mask[:, :, 40:] = 3
    res = AVSSResize(224, 'short_side_crop')(dict(imgs=[img, img], gt_masks=mask))
    # 80x60 -> short side 224: 298x224, centre crop at x0 = round(74 / 2) = 37
    full = np.asarray(Image.fromarray(img).resize((298, 224), Image.BILINEAR))
    np.testing.assert_array_equal(res['imgs'][0], full[:, 37:261])
    full_m = np.asarray(Image.fromarray(mask[0]).resize((298, 224), Image.NEAREST))
    np.testing.assert_array_equal(res['gt_masks'][1], full_m[:, 37:261])
    assert set(np.unique(res['gt_masks'])) == {0, 3}  # nearest: no new labels
    assert res['img_shape'] == (224, 224) == res['ori_shape']  # metrics are at 224x224
    assert res['frame_shape'] == (60, 80)
    res = AVSSResize(224, 'resize')(dict(imgs=[img], gt_masks=mask[:1]))
    np.testing.assert_array_equal(res['imgs'][0], np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR)))
    tall = AVSSResize(224, 'short_side_crop')._geometry(h=100, w=50)
    assert tall == ((224, 448), (0, 112))


# ------------------------------------------------------------------------------------------
# clip-consistent augmentation

AUG = [
    dict(type='RandomResize', scale=(96, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(48, 48), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=(48, 48), pad_val=dict(img=0, seg=255)),
]


def _clip(num=5, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:40, 5:30] = 1
    return dict(
        imgs=[img.copy() for _ in range(num)],
        gt_masks=np.stack([mask] * num),
        img_shape=(64, 80),
        ori_shape=(64, 80),
        video_id='v',
    )


def test_clip_consistent_augmentation_identical_across_frames():
    wrapper = ClipConsistentTransform(AUG)
    outputs = []
    for seed in range(6):
        np.random.seed(seed)
        out = wrapper(_clip())
        for t in range(1, 5):
            np.testing.assert_array_equal(out['imgs'][t], out['imgs'][0])
            np.testing.assert_array_equal(out['gt_masks'][t], out['gt_masks'][0])
        assert out['img_shape'] == (48, 48) and out['gt_masks'].shape == (5, 48, 48)
        outputs.append((out['imgs'][0], out['flip']))
    # the augmentation is really random across clips (so the check above can fail)
    assert len({o[0].tobytes() for o in outputs}) == 6
    assert {o[1] for o in outputs} == {True, False}


def test_independent_per_frame_augmentation_differs():
    """Control: the same transforms applied frame by frame without the wrapper disagree."""
    pipeline = Compose(AUG)
    np.random.seed(0)
    clip = _clip()
    outs = [
        pipeline(dict(img=im, gt_seg_map=clip['gt_masks'][0], seg_fields=['gt_seg_map'], img_shape=(64, 80)))
        for im in clip['imgs']
    ]
    assert any(not np.array_equal(o['img'], outs[0]['img']) for o in outs[1:])


def test_clip_consistent_flip_matches_manual_flip():
    clip = _clip()
    clip['imgs'] = [np.roll(im, t, axis=1) for t, im in enumerate(clip['imgs'])]  # frames differ
    originals = [im.copy() for im in clip['imgs']]
    out = ClipConsistentTransform([dict(type='RandomFlip', prob=1.0)])(clip)
    for t in range(5):
        np.testing.assert_array_equal(out['imgs'][t], originals[t][:, ::-1])
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'


# ------------------------------------------------------------------------------------------
# packing


def test_pack_avs_inputs():
    clip = _clip(num=3)
    clip.update(
        audio=np.ones((3, 1, 96, 64), np.float32),
        frame_paths=['a', 'b', 'c'],
        frame_valid=[1, 1, 0],
        gt_valid=[1, 0, 0],
        num_frames=3,
        video_id='vid',
    )
    out = PackAVSInputs()(clip)
    assert out['inputs'].shape == (3, 3, 64, 80) and out['inputs'].dtype == torch.uint8
    np.testing.assert_array_equal(out['inputs'][1].permute(1, 2, 0).numpy(), clip['imgs'][1])
    assert out['audio'].shape == (3, 1, 96, 64)
    s = out['data_samples']
    assert s.gt_sem_seg.data.dtype == torch.int64 and s.gt_sem_seg.data.shape == (3, 64, 80)
    assert s.img_path == 'a' and s.frame_valid == [1, 1, 0] and s.flip is False
    assert s.pad_shape == (64, 80) and s.video_id == 'vid'
    del clip['gt_masks']
    assert 'gt_sem_seg' not in PackAVSInputs()(clip)['data_samples']


def test_full_pipeline_with_augmentation(toy_ms3_root):
    from projects.ccformer.datasets import AVSBenchMS3Dataset

    pipeline = [
        dict(type='LoadAVSFrames'),
        dict(type='LoadAVSMasks'),
        dict(type='ClipConsistentTransform', transforms=AUG),
        dict(type='LoadAVSAudio'),
        dict(type='PackAVSInputs'),
    ]
    ds = AVSBenchMS3Dataset(data_root=toy_ms3_root, split='train', pipeline=pipeline, serialize_data=False)
    np.random.seed(0)
    item = ds[0]
    assert item['inputs'].shape == (5, 3, 48, 48)
    assert item['data_samples'].gt_sem_seg.data.shape == (5, 48, 48)
    assert set(item['data_samples'].gt_sem_seg.data.unique().tolist()) <= {0, 1, 255}  # 255: Pad
    assert osp.basename(item['data_samples'].img_path).endswith('.mp4_1.png')


class _DataDependentNoise:
    """Draws one random number per bright pixel row: different draws for different frames."""

    def __call__(self, results):
        rows = int((results['img'].mean((1, 2)) > 128).sum())
        results['img'] = results['img'] + np.uint8(np.random.randint(0, 2, size=rows).sum() % 2)
        return results


def test_clip_consistent_refuses_data_dependent_randomness():
    clip = _clip(num=2)
    clip['imgs'][1] = np.full_like(clip['imgs'][1], 255)  # more bright rows -> more draws
    clip['imgs'][0] = np.zeros_like(clip['imgs'][0])
    with pytest.raises(RuntimeError, match='frame 1'):
        ClipConsistentTransform([_DataDependentNoise()])(clip)


def test_load_audio_marks_silent_seconds_as_not_sounding(tmp_path):
    """Where presence targets are given, a second that is mostly digital silence gets ``sounding`` 0."""
    from projects.ccformer.datasets.transforms import LoadAVSAudio

    rate = 16000
    rng = np.random.default_rng(0)
    wav = (0.3 * rng.standard_normal(5 * rate)).astype(np.float32)
    wav[2 * rate : 3 * rate] = 0  # second 3 silent
    wav[4 * rate + rate // 4 :] = 0  # second 5: 3/4 silent
    path = str(tmp_path / 'clip.wav')
    sf.write(path, wav, rate, subtype='FLOAT')
    out = LoadAVSAudio().transform(dict(audio_path=path, num_frames=5, sounding=[1, 1, 1, -1, 1]))
    assert out['sounding'] == [1, 1, 0, -1, 0]
    assert 'sounding' not in LoadAVSAudio().transform(dict(audio_path=path, num_frames=5))
    padded = LoadAVSAudio(pad_mode='zeros').transform(dict(audio_path=path, num_frames=7, sounding=[1] * 7))
    assert padded['sounding'] == [1, 1, 0, 1, 0, -1, -1]  # padded examples: unknown
    with pytest.raises(ValueError, match='clip.wav: the clip lists 4 sounding flags for 5 frames'):
        LoadAVSAudio().transform(dict(audio_path=path, num_frames=5, sounding=[1] * 4))
