"""NegativeAudioDataset with a bank of real recordings (``sound_bank``, ``offscreen_recorded``) and
``audio_augment`` (:class:`LogmelAugment`)."""

import json
import os
import os.path as osp

import numpy as np
import pytest
import soundfile as sf
import torch

from projects.ccformer.datasets import NegativeAudioDataset, SeededIndex
from projects.ccformer.datasets.audio import SAMPLE_RATE, waveform_to_logmel
from projects.ccformer.datasets.audio_conditions import silence_logmel
from projects.ccformer.datasets.audio_conditions.augment import LogmelAugment, logmel_to_magnitude
from projects.ccformer.datasets.samplers import derive_seed

PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]
RECORDED = 'offscreen_recorded'


def _ms3(root):
    return dict(type='AVSBenchMS3Dataset', data_root=root, split='train', pipeline=PIPELINE)


def _bank(root, kinds, freq=300.0):
    """A bank with one noisy tone recording per kind (sub-folder): ``freq``, ``freq + 400`` Hz, ..."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    for i, kind in enumerate(kinds):
        os.makedirs(osp.join(root, kind), exist_ok=True)
        wave = 0.3 * np.sin(2 * np.pi * (freq + 400 * i) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(osp.join(root, kind, 'take.wav'), wave, SAMPLE_RATE)
    return str(root)


def _peak_bin(logmel) -> int:
    """The loudest mel bin of the first example, averaged over its 96 frames."""
    return int(np.asarray(logmel).reshape(-1, 96, 64)[0].mean(0).argmax())


def _visible(root, idx, ds):
    kinds = json.load(open(osp.join(root, 'clip_kinds.json')))
    return kinds[ds.dataset.get_data_info(idx)['video_id']]['visible']


def test_recorded_seconds_replace_the_audio_and_empty_the_targets(toy_ms3_root, tmp_path):
    bank = _bank(tmp_path / 'bank', ['thunder'], freq=7000.0)  # above every toy sound (5 kHz at most)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone_bin = _peak_bin(waveform_to_logmel(0.3 * np.sin(2 * np.pi * 7000.0 * t), SAMPLE_RATE))
    ds = NegativeAudioDataset(
        _ms3(toy_ms3_root), prob=1.0, whole_clip_prob=1.0, conditions={RECORDED: 1.0}, sound_bank=bank
    )
    plain = ds.dataset[0]
    out = ds[0]
    meta = out['data_samples'].metainfo
    assert meta['audio_condition'] == [RECORDED] * 5 and meta['audio_replaced'] == [1] * 5
    assert meta['sounding'] == [0] * 5 and out['data_samples'].gt_sem_seg.data.sum() == 0
    silence = torch.from_numpy(silence_logmel(1)[0])
    for t in range(5):
        assert not torch.equal(out['audio'][t], silence) and not torch.equal(out['audio'][t], plain['audio'][t])
        assert int(out['audio'][t, 0].mean(0).argmax()) == tone_bin  # a window of the bank's recording


def test_recordings_of_a_kind_on_screen_are_left_out(toy_ms3_root, tmp_path):
    """A bank holding only recordings of what clip 0 shows cannot give clip 0 off-screen sound: it falls back to
    silence there, while a clip that does not show that kind hears the recordings."""
    probe = NegativeAudioDataset(_ms3(toy_ms3_root), prob=0.0)
    visible = _visible(toy_ms3_root, 0, probe)
    others = [i for i in range(len(probe)) if visible[0] not in _visible(toy_ms3_root, i, probe)]
    assert others, 'the toy split needs a clip without the kind of clip 0'
    bank = _bank(tmp_path / 'bank', [visible[0]])
    ds = NegativeAudioDataset(
        _ms3(toy_ms3_root), prob=1.0, whole_clip_prob=1.0, conditions={RECORDED: 1.0}, sound_bank=bank
    )
    for e in range(5):
        assert ds[SeededIndex(0, e)]['data_samples'].metainfo['audio_condition'] == ['silence'] * 5
        assert ds[SeededIndex(others[0], e)]['data_samples'].metainfo['audio_condition'] == [RECORDED] * 5


def test_shipped_bank_and_default_conditions(toy_ms3_root):
    ds = NegativeAudioDataset(_ms3(toy_ms3_root), sound_bank='assets:recorded/bank')
    assert {'music', 'household'} <= set(ds.sound_bank.kinds)
    assert ds.conditions[RECORDED] > 0 and ds.conditions['silence'] > 0
    assert RECORDED not in NegativeAudioDataset(_ms3(toy_ms3_root)).conditions


def test_recorded_condition_needs_a_bank(toy_ms3_root, tmp_path):
    with pytest.raises(ValueError, match='sound_bank'):
        NegativeAudioDataset(_ms3(toy_ms3_root), conditions={RECORDED: 1.0})
    with pytest.raises(FileNotFoundError, match='missing_bank'):
        NegativeAudioDataset(_ms3(toy_ms3_root), sound_bank=str(tmp_path / 'missing_bank'))


def test_audio_augment_changes_the_level_of_every_real_second(toy_ms3_root):
    gain_db = 6.0
    ds = NegativeAudioDataset(
        _ms3(toy_ms3_root), prob=0.0, audio_augment=dict(gain_db=(gain_db, gain_db), mix_prob=0.0, mask_prob=0.0)
    )
    plain, out = ds.dataset[1], ds[1]
    assert torch.equal(out['data_samples'].gt_sem_seg.data, plain['data_samples'].gt_sem_seg.data)
    before = logmel_to_magnitude(plain['audio'].numpy().astype(np.float64))
    after = logmel_to_magnitude(out['audio'].numpy().astype(np.float64))
    loud = before > 1.0  # where the float32 log rounding is negligible
    assert loud.any()
    np.testing.assert_allclose(after[loud] / before[loud], 10 ** (gain_db / 20), rtol=1e-3)


def test_audio_augment_is_seeded_per_sample_and_mixes_the_bank(toy_ms3_root, tmp_path):
    bank = _bank(tmp_path / 'bank', ['thunder'], freq=7000.0)
    kw = dict(prob=0.0, sound_bank=bank, audio_augment=dict(mix_prob=1.0, mask_prob=1.0))
    ds, again = NegativeAudioDataset(_ms3(toy_ms3_root), **kw), NegativeAudioDataset(_ms3(toy_ms3_root), **kw)
    idx = SeededIndex(0, derive_seed(0, 3, 0))
    assert torch.equal(ds[idx]['audio'], again[idx]['audio'])
    assert not torch.equal(ds[idx]['audio'], ds[SeededIndex(0, derive_seed(0, 4, 0))]['audio'])
    # level and masks alone (no mixing) leave the 7 kHz bins where they were relative to the rest; the mixed
    # background raises them
    only_mix = dict(gain_db=(0, 0), mix_prob=1.0, mask_prob=0.0)
    mixed = NegativeAudioDataset(_ms3(toy_ms3_root), prob=0.0, sound_bank=bank, audio_augment=only_mix)[idx]
    plain = ds.dataset[0]['audio']
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone_bin = _peak_bin(waveform_to_logmel(0.3 * np.sin(2 * np.pi * 7000.0 * t), SAMPLE_RATE))
    real = [s for s in range(5) if logmel_to_magnitude(plain[s].numpy()).max() > 1e-3]
    assert real
    for s in real:
        assert mixed['audio'][s, 0, :, tone_bin].mean() > plain[s, 0, :, tone_bin].mean() + 0.1


def test_logmel_augment_keeps_silence_and_shape():
    aug = LogmelAugment(mix_prob=1.0, mask_prob=1.0)
    rng = np.random.default_rng(0)
    silence = silence_logmel(1)[0]
    np.testing.assert_array_equal(aug(rng, silence, silence_logmel(1)[0] + 3), silence)
    example = np.log(rng.random((1, 96, 64)) + 0.5).astype(np.float32)
    out = aug(rng, example, example[:, ::-1].copy())
    assert out.shape == example.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_logmel_augment_mixes_at_the_drawn_ratio():
    rng = np.random.default_rng(1)
    sound = np.log(rng.random((1, 96, 64)) * 4 + 1.0 + 0.01)
    background = np.log(rng.random((1, 96, 64)) * 2 + 0.5 + 0.01)
    aug = LogmelAugment(gain_db=(0, 0), mix_prob=1.0, mix_snr_db=(20, 20), mask_prob=0.0)
    added = logmel_to_magnitude(aug(rng, sound, background).astype(np.float64)) - logmel_to_magnitude(sound)
    bg = logmel_to_magnitude(background)
    rms = lambda x: np.sqrt(np.mean(x**2))  # noqa: E731
    np.testing.assert_allclose(added, bg * rms(logmel_to_magnitude(sound)) / rms(bg) * 0.1, rtol=1e-4, atol=1e-5)


def _after_level_draws(seed):
    """An rng in the state LogmelAugment's colouring starts from: after the three uniforms, the gain and the ratio."""
    rng = np.random.default_rng(seed)
    rng.random(3), rng.uniform(), rng.uniform()
    return rng


def test_logmel_augment_colouring_scales_each_bin_by_its_curve():
    sound = np.log(np.random.default_rng(2).random((1, 96, 64)) * 4 + 1.0 + 0.01).astype(np.float32)
    aug = LogmelAugment(gain_db=(0, 0), mix_prob=0.0, mask_prob=0.0, eq_db=12.0, tilt_db=6.0)
    spans = []
    for seed in range(20):
        out = aug(np.random.default_rng(seed), sound)
        gain_db = 20 * np.log10(logmel_to_magnitude(out.astype(np.float64)) / logmel_to_magnitude(sound))
        # every frame's bin b is scaled by the drawn curve's value at b, in dB
        curve = aug.colouring(_after_level_draws(seed), 64)
        np.testing.assert_allclose(gain_db, np.broadcast_to(curve, gain_db.shape), atol=1e-3)
        spans.append(np.ptp(curve))
        np.testing.assert_array_equal(out, aug(np.random.default_rng(seed), sound))  # seeded
    assert max(spans) > 6.0  # the curves do colour the spectrum


def test_logmel_augment_colouring_curve_and_tilt_stay_in_range():
    eq_only, tilt_only = LogmelAugment(eq_db=12.0), LogmelAugment(tilt_db=6.0)
    peaks, ends = [], []
    for seed in range(200):
        curve = eq_only.colouring(np.random.default_rng(seed), 64)
        assert np.abs(curve).max() <= 12.0 + 1e-9
        # smooth: the slope changes by < 0.5 dB from bin to bin (at most 0.36 over 20,000 draws; a jagged curve of
        # the same range changes it by several dB)
        assert np.abs(np.diff(curve, 2)).max() < 0.5
        peaks.append(np.abs(curve).max())
        tilt = tilt_only.colouring(np.random.default_rng(seed), 64)
        np.testing.assert_allclose(np.diff(tilt, 2), 0.0, atol=1e-9)  # a straight line
        assert tilt[0] == pytest.approx(-tilt[-1]) and abs(tilt[-1]) <= 6.0
        ends.append(tilt[-1])
    assert max(peaks) > 11.0 and min(ends) < -5.0 and max(ends) > 5.0  # the ranges are used, both tilt signs
    np.testing.assert_array_equal(LogmelAugment().colouring(np.random.default_rng(0), 64), np.zeros(64))


def test_logmel_augment_colouring_off_draws_as_before():
    # off (the default): three uniforms, the gain and the ratio, nothing more (masks and mixing off here), so the
    # draws of configs without the option do not change; on: the colouring's draws follow them
    sound = np.log(np.random.default_rng(3).random((1, 96, 64)) * 4 + 1.0 + 0.01).astype(np.float32)
    off, on = LogmelAugment(mix_prob=0.0, mask_prob=0.0), LogmelAugment(mask_prob=0.0, eq_db=6.0)
    rng = np.random.default_rng(4)
    off(rng, sound)
    assert rng.random() == _after_level_draws(4).random()
    rng, ref = np.random.default_rng(4), _after_level_draws(4)
    on(rng, sound)
    on.colouring(ref, 64)
    assert rng.random() == ref.random()
    # silence is returned as it is, after the same draws (the stream does not depend on the example)
    silence, rng, ref = silence_logmel(1)[0], np.random.default_rng(4), _after_level_draws(4)
    np.testing.assert_array_equal(on(rng, silence), silence)
    on.colouring(ref, 64)
    assert rng.random() == ref.random()


@pytest.mark.parametrize(
    'kw',
    [
        dict(mix_prob=1.5),
        dict(mask_prob=-0.1),
        dict(gain_db=(6, -6)),
        dict(mix_snr_db=(1,)),
        dict(time_mask=-1),
        dict(eq_db=-1.0),
        dict(tilt_db=-3.0),
    ],
)
def test_logmel_augment_bad_arguments(kw):
    with pytest.raises(ValueError, match='LogmelAugment'):
        LogmelAugment(**kw)
