"""Audio conditions for evaluation (``AudioConditionDataset``): what each condition feeds the model and what it
does to the ground truth, on toy data of every layout (S4, MS3, AVSS)."""

import json
import os
import os.path as osp

import numpy as np
import pytest
import soundfile as sf
import torch

from projects.ccformer.datasets import AudioConditionDataset, AudioSwapDataset
from projects.ccformer.datasets.audio import (
    SAMPLE_RATE,
    WINDOW_LENGTH,
    mel_filterbank,
    periodic_hann,
    waveform_to_logmel,
)
from projects.ccformer.datasets.audio_conditions import (
    EVAL_NOISE_DBFS,
    KINDS_FILE,
    ambient_wave,
    dataset_clip_kinds,
    noise_logmel,
    silence_logmel,
)

BINARY_PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='PackAVSInputs'),
]
AVSS_PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='PackAVSInputs'),
]
DATASET_TYPES = dict(s4='AVSBenchS4Dataset', ms3='AVSBenchMS3Dataset', avss='AVSSDataset')


def _cfg(layout: str, root: str, split: str = 'test') -> dict:
    pipeline = AVSS_PIPELINE if layout == 'avss' else BINARY_PIPELINE
    return dict(type=DATASET_TYPES[layout], data_root=root, split=split, pipeline=pipeline, test_mode=True)


def _base(layout: str, root: str, split: str = 'test'):
    from mmseg.registry import DATASETS

    return DATASETS.build(_cfg(layout, root, split))


def _examples(sample: dict) -> np.ndarray:
    return sample['audio'].numpy()


# ------------------------------------------------------------------------------------------------ silence, noise
def test_silence_is_the_front_end_log_mel_of_a_silent_wav(toy_s4_root, tmp_path):
    """Every frame hears what a digitally silent wav gives through the VGGish front end."""
    ds = AudioConditionDataset(_cfg('s4', toy_s4_root), condition='silence')
    audio = _examples(ds[0])
    assert audio.shape == (5, 1, 96, 64)
    silent = waveform_to_logmel(np.zeros(5 * SAMPLE_RATE), SAMPLE_RATE)  # 5 s of zeros -> 5 examples
    np.testing.assert_array_equal(audio[:, 0], silent)
    # the same through the loader, from a silent wav file on disk
    from projects.ccformer.datasets.transforms import LoadAVSAudio

    path = str(tmp_path / 'silent.wav')
    sf.write(path, np.zeros(5 * SAMPLE_RATE, np.int16), SAMPLE_RATE, subtype='PCM_16')
    loaded = LoadAVSAudio().transform(dict(audio_path=path, num_frames=5))['audio']
    np.testing.assert_array_equal(audio, loaded)
    np.testing.assert_allclose(audio, np.log(0.01), rtol=1e-6)
    np.testing.assert_array_equal(silence_logmel(3), audio[:3])


def _expected_noise_mel(rms: float) -> np.ndarray:
    """Expected mel energy of white Gaussian noise with the given RMS, per band.

    Each FFT bin of a Hann-windowed frame of white noise is complex Gaussian with variance
    ``rms^2 * sum(w^2)``, so its magnitude is Rayleigh with mean ``sqrt(pi) / 2 * rms * sqrt(sum(w^2))``
    (the DC and Nyquist bins, which are real, have weight 0 in the mel bands used). A mel band sums the
    magnitudes with the filterbank weights.
    """
    window = periodic_hann(WINDOW_LENGTH)
    bin_mean = np.sqrt(np.pi) / 2 * rms * np.sqrt(np.sum(window**2))
    return bin_mean * mel_filterbank().sum(axis=0)


@pytest.mark.parametrize('dbfs', [None, -40.0])
def test_noise_level(toy_s4_root, dbfs):
    """The noise condition's mel energy is that of white noise at ``noise_dbfs`` RMS (default -20 dBFS)."""
    kwargs = {} if dbfs is None else dict(noise_dbfs=dbfs)
    dbfs = -20.0 if dbfs is None else dbfs  # the documented evaluation level
    ds = AudioConditionDataset(_cfg('s4', toy_s4_root), condition='noise', **kwargs)
    audio = np.concatenate([_examples(ds[i])[:, 0] for i in range(len(ds))])  # (10, 96, 64)
    mel = np.exp(audio.astype(np.float64)) - 0.01  # undo log(mel + 0.01)
    measured = mel.mean(axis=(0, 1))  # (64,) per band
    expected = _expected_noise_mel(10 ** (dbfs / 20))
    np.testing.assert_allclose(measured, expected, rtol=0.05)
    # 20 dB more noise is 10x the magnitude: a level 6 dB off would fail the check above
    assert not np.allclose(measured, _expected_noise_mel(10 ** ((dbfs + 6) / 20)), rtol=0.3)


def test_noise_is_seeded_per_clip(toy_s4_root):
    """Noise is drawn from (seed, clip index): the same seed repeats it, another seed or clip changes it."""
    cfg = _cfg('s4', toy_s4_root)
    a = AudioConditionDataset(cfg, condition='noise', seed=0)
    b = AudioConditionDataset(cfg, condition='noise', seed=0)
    c = AudioConditionDataset(cfg, condition='noise', seed=1)
    np.testing.assert_array_equal(_examples(a[0]), _examples(b[0]))
    np.testing.assert_array_equal(_examples(a[1]), _examples(a[1]))
    assert not np.array_equal(_examples(a[0]), _examples(c[0]))
    assert not np.array_equal(_examples(a[0]), _examples(a[1]))
    expected = noise_logmel(np.random.default_rng([0, 1]), 5, EVAL_NOISE_DBFS)
    np.testing.assert_array_equal(_examples(a[1]), expected)


def test_ambient_noise_is_seeded_varied_and_at_its_level():
    """``ambient`` noise: the same seed repeats it; draws differ in spectral shape; the RMS follows ``dbfs``."""
    a = noise_logmel(np.random.default_rng(3), 2, -30.0, 'ambient')
    assert a.shape == (2, 1, 96, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, noise_logmel(np.random.default_rng(3), 2, -30.0, 'ambient'))
    wave = ambient_wave(np.random.default_rng(0), 16000)
    assert wave.shape == (16000,) and np.sqrt(np.mean(wave**2)) == pytest.approx(1.0)
    # the spectral tilt (mean of the top 16 mel bins minus the bottom 16) of white noise is one value; ambience
    # spreads over tens of dB
    tilts = [
        float(x[0, 0, :, 48:].mean() - x[0, 0, :, :16].mean())
        for x in (noise_logmel(np.random.default_rng(s), 1, -20.0, 'ambient') for s in range(24))
    ]
    assert np.std(tilts) > 1.0 and max(tilts) - min(tilts) > 4.0
    loud, quiet = (noise_logmel(np.random.default_rng(5), 1, d, 'ambient') for d in (-20.0, -40.0))
    ratio = (np.exp(loud.astype(np.float64)) - 0.01).mean() / (np.exp(quiet.astype(np.float64)) - 0.01).mean()
    assert 7.0 < ratio < 13.0  # 20 dB is 10x the magnitude


# ------------------------------------------------------------------------------------------------ ground truth
@pytest.mark.parametrize('condition', ['silence', 'noise', 'offscreen'])
def test_negative_conditions_empty_the_ground_truth(toy_s4_root, condition):
    base = _base('s4', toy_s4_root)
    ds = AudioConditionDataset(_cfg('s4', toy_s4_root), condition=condition)
    assert len(ds) == len(base) == 2 and ds.metainfo == base.metainfo
    for i in range(len(ds)):
        ref, out = base[i], ds[i]
        assert ref['data_samples'].gt_sem_seg.data.sum() > 0  # the toy test clips have sounding objects
        assert out['data_samples'].gt_sem_seg.data.shape == ref['data_samples'].gt_sem_seg.data.shape
        assert int(out['data_samples'].gt_sem_seg.data.abs().sum()) == 0
        torch.testing.assert_close(out['inputs'], ref['inputs'])  # the frames are unchanged
        meta = out['data_samples'].metainfo
        assert meta['audio_condition'] == [condition] * 5
        assert meta['audio_replaced'] == [1] * 5
        assert meta['gt_valid'] == ref['data_samples'].metainfo['gt_valid']
        assert meta['sample_idx'] == i and meta['video_id'] == ref['data_samples'].metainfo['video_id']
        assert not np.array_equal(_examples(out), _examples(ref))


@pytest.mark.parametrize('condition', ['original', 'shuffled'])
def test_positive_conditions_keep_the_ground_truth(toy_s4_root, condition):
    base = _base('s4', toy_s4_root)
    ds = AudioConditionDataset(_cfg('s4', toy_s4_root), condition=condition, seed=0)
    for i in range(len(ds)):
        ref, out = base[i], ds[i]
        torch.testing.assert_close(out['data_samples'].gt_sem_seg.data, ref['data_samples'].gt_sem_seg.data)
        torch.testing.assert_close(out['inputs'], ref['inputs'])
        assert 'audio_replaced' not in out['data_samples'].metainfo
        if condition == 'original':
            np.testing.assert_array_equal(_examples(out), _examples(ref))
        else:  # two test clips: each hears the other one
            np.testing.assert_array_equal(_examples(out), _examples(base[1 - i]))
            assert ds.get_data_info(i)['audio_video_id'] == base.get_data_info(1 - i)['video_id']


def test_audio_swap_dataset_is_the_shuffled_condition(toy_ms3_root):
    cfg = _cfg('ms3', toy_ms3_root)
    swap = AudioSwapDataset(cfg, seed=3)
    cond = AudioConditionDataset(cfg, condition='shuffled', seed=3)
    assert swap.condition == 'shuffled'
    for i in range(len(cond)):
        assert (
            swap.get_data_info(i)['audio_path']
            == cond.get_data_info(i)['audio_path']
            != _base('ms3', toy_ms3_root).get_data_info(i)['audio_path']
        )


def test_avss_padded_frames_are_left_alone(toy_avss_root):
    """AVSS v1s/v1m clips have 5 real frames padded to 10: only the real ones hear the condition."""
    base = _base('avss', toy_avss_root)
    ds = AudioConditionDataset(_cfg('avss', toy_avss_root), condition='silence')
    short = [i for i in range(len(base)) if base.get_data_info(i)['frame_valid'] == [1] * 5 + [0] * 5]
    assert short, 'the toy AVSS test split has v1s/v1m clips'
    for i in short:
        ref, out = base[i], ds[i]
        meta = out['data_samples'].metainfo
        assert meta['audio_replaced'] == [1] * 5 + [0] * 5
        np.testing.assert_allclose(_examples(out)[:5], np.log(0.01), rtol=1e-6)
        np.testing.assert_array_equal(_examples(out)[5:], _examples(ref)[5:])
        assert int(out['data_samples'].gt_sem_seg.data.abs().sum()) == 0


def test_unknown_condition():
    with pytest.raises(ValueError, match='unknown; use one of'):
        AudioConditionDataset(dict(type='AVSBenchS4Dataset'), condition='loud')


# ------------------------------------------------------------------------------------------------ off-screen
def _all_examples(base) -> list:
    """(clip, second, example) of every real second of every clip of ``base``."""
    out = []
    for j in range(len(base)):
        sample = base[j]
        valid = sample['data_samples'].metainfo.get('frame_valid', [1] * sample['audio'].shape[0])
        out += [(j, s, _examples(sample)[s]) for s in range(len(valid)) if valid[s]]
    return out


def _donors(example: np.ndarray, pool: list) -> list:
    return [(j, s) for j, s, ex in pool if np.array_equal(ex, example)]


def _check_offscreen(ds, base, visible_of, audible_of) -> int:
    """Every off-screen second of every clip comes from a second of another clip whose audible kinds are
    non-empty and none of them is visible in the clip. Returns the number of seconds checked."""
    pool = _all_examples(base)
    checked = 0
    for i in range(len(ds)):
        sample = ds[i]
        valid = sample['data_samples'].metainfo.get('frame_valid', [1] * sample['audio'].shape[0])
        for t in range(len(valid)):
            if not valid[t]:
                continue
            donors = _donors(_examples(sample)[t], pool)
            assert donors, f'clip {i} second {t}: the off-screen sound is no second of the dataset'
            for j, s in donors:
                heard = audible_of(j, s)
                assert j != i and heard, (i, t, j, s)
                assert not (heard & visible_of(i)), f'clip {i} sees {visible_of(i)}, hears {heard} (clip {j}, {s})'
            checked += 1
    return checked


def _json_kinds(root: str, base):
    with open(osp.join(root, KINDS_FILE)) as f:
        table = json.load(f)
    vid = [base.get_data_info(i)['video_id'] for i in range(len(base))]
    return (
        lambda i: set(table[vid[i]]['visible']),
        lambda j, s: set(table[vid[j]]['audible'][s]) if s < len(table[vid[j]]['audible']) else set(),
    )


@pytest.mark.parametrize('layout', ['s4', 'ms3', 'avss'])
def test_offscreen_never_plays_a_visible_kind(make_toy_root, layout):
    """With the generator's clip_kinds.json (toy data of every layout)."""
    num = {'train': 1, 'val': 1, 'test': 6} if layout != 'avss' else {'train': 1, 'val': 1, 'test': 3}
    root = make_toy_root(layout, num, seed=1)
    base = _base(layout, root)
    ds = AudioConditionDataset(_cfg(layout, root), condition='offscreen', seed=0)
    visible_of, audible_of = _json_kinds(root, base)
    assert _check_offscreen(ds, base, visible_of, audible_of) >= 5 * len(ds)


def test_offscreen_s4_without_kinds_file_uses_the_csv_category(make_toy_root):
    root = make_toy_root('s4', {'train': 1, 'val': 1, 'test': 6}, seed=1)
    os.remove(osp.join(root, KINDS_FILE))
    base = _base('s4', root)
    categories = [base.get_data_info(i)['category'] for i in range(len(base))]
    assert len(set(categories)) > 1
    kinds = dataset_clip_kinds(base)
    assert [k[0] for k in kinds] == [frozenset([c]) for c in categories]
    ds = AudioConditionDataset(_cfg('s4', root), condition='offscreen', seed=2)
    _check_offscreen(ds, base, lambda i: {categories[i]}, lambda j, s: {categories[j]})


def test_offscreen_avss_without_kinds_file_uses_the_label_maps(make_toy_root):
    root = make_toy_root('avss', {'train': 1, 'val': 1, 'test': 3}, seed=1)
    os.remove(osp.join(root, KINDS_FILE))
    base = _base('avss', root)
    labels = []  # classes in each real frame's label map
    for i in range(len(base)):
        sample = base[i]
        gt = sample['data_samples'].gt_sem_seg.data
        valid = sample['data_samples'].metainfo['frame_valid']
        labels.append(
            [set(int(c) for c in torch.unique(gt[t]) if c != 0) if valid[t] else set() for t in range(len(valid))]
        )
    visible_of = lambda i: set().union(*labels[i])  # noqa: E731
    audible_of = lambda j, s: {str(c) for c in labels[j][s]}  # noqa: E731
    ds = AudioConditionDataset(_cfg('avss', root), condition='offscreen', seed=0)
    _check_offscreen(ds, base, lambda i: {str(c) for c in visible_of(i)}, audible_of)


def test_offscreen_ms3_without_kinds_file_is_an_error(make_toy_root):
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 3})
    os.remove(osp.join(root, KINDS_FILE))
    with pytest.raises(ValueError, match=KINDS_FILE):
        AudioConditionDataset(_cfg('ms3', root), condition='offscreen')


def test_offscreen_without_any_donor_is_an_error(make_toy_root):
    """Every clip shows every kind that is ever heard: there is no off-screen sound to play."""
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 2})
    base = _base('ms3', root)
    with open(osp.join(root, KINDS_FILE)) as f:
        table = json.load(f)
    for i in range(len(base)):
        table[base.get_data_info(i)['video_id']] = dict(visible=['a', 'b'], audible=[['a'], ['b'], [], ['a'], []])
    with open(osp.join(root, KINDS_FILE), 'w') as f:
        json.dump(table, f)
    with pytest.raises(ValueError, match='no second of any other clip sounds only off screen'):
        AudioConditionDataset(_cfg('ms3', root), condition='offscreen')


def test_offscreen_leaves_out_clips_without_donors(make_toy_root):
    """A clip that shows every kind heard elsewhere is left out; the others are tested."""
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 3})
    base = _base('ms3', root)
    with open(osp.join(root, KINDS_FILE)) as f:
        table = json.load(f)
    ids = [base.get_data_info(i)['video_id'] for i in range(len(base))]
    table[ids[0]] = dict(visible=['a', 'b'], audible=[['a']] * 5)
    table[ids[1]] = dict(visible=['c'], audible=[['b']] * 5)
    table[ids[2]] = dict(visible=['a', 'b', 'c'], audible=[['c']] * 5)  # sees every kind heard elsewhere
    with open(osp.join(root, KINDS_FILE), 'w') as f:
        json.dump(table, f)
    ds = AudioConditionDataset(_cfg('ms3', root), condition='offscreen')
    pool = ds._pool
    assert [pool.has_donor(i) for i in range(3)] == [any(pool.candidates(i)) for i in range(3)] == [True, True, False]
    assert len(ds) == 2
    assert [ds.get_data_info(i)['video_id'] for i in range(2)] == ids[:2]
    assert ds[1]['data_samples'].metainfo['video_id'] == ids[1]


def test_bad_kinds_file_is_an_error(make_toy_root):
    root = make_toy_root('ms3')
    with open(osp.join(root, KINDS_FILE), 'w') as f:
        f.write('{"x": [1, 2]}')
    with pytest.raises(ValueError, match=f'{KINDS_FILE}: entry'):
        AudioConditionDataset(_cfg('ms3', root), condition='offscreen')
    with open(osp.join(root, KINDS_FILE), 'w') as f:
        f.write('{not json')
    with pytest.raises(ValueError, match='not valid JSON'):
        AudioConditionDataset(_cfg('ms3', root), condition='offscreen')


def test_offscreen_is_deterministic_per_seed(make_toy_root):
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 6}, seed=1)
    cfg = _cfg('ms3', root)
    a, b, c = (AudioConditionDataset(cfg, condition='offscreen', seed=s) for s in (0, 0, 5))
    same = [np.array_equal(_examples(a[i]), _examples(b[i])) for i in range(len(a))]
    other = [np.array_equal(_examples(a[i]), _examples(c[i])) for i in range(len(a))]
    assert all(same) and not all(other)
