"""``AudioConditionDataset(condition='offscreen_recorded')``: every frame heard through a window of a real recording
from a user's folder (``SoundBank``), every frame's ground truth empty, recordings of visible kinds left out."""

import json
import os
import os.path as osp

import numpy as np
import pytest
import soundfile as sf
from test_audio_conditions import AVSS_PIPELINE, BINARY_PIPELINE

from projects.ccformer.datasets import AudioConditionDataset, SoundBank
from projects.ccformer.datasets.audio import SAMPLE_RATE


def _bank(root, kinds) -> str:
    """One 1.5 s recording per kind (a distinct tone each), in ``root/<kind>/take.wav``."""
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    for i, kind in enumerate(kinds):
        os.makedirs(osp.join(root, kind), exist_ok=True)
        sf.write(osp.join(root, kind, 'take.wav'), 0.3 * np.sin(2 * np.pi * (300 + 250 * i) * t), SAMPLE_RATE)
    return str(root)


def _s4(root: str, **kw) -> AudioConditionDataset:
    ds = dict(type='AVSBenchS4Dataset', data_root=root, split='test', pipeline=BINARY_PIPELINE, test_mode=True)
    return AudioConditionDataset(ds, condition='offscreen_recorded', **kw)


@pytest.fixture
def s4_root(make_toy_root):
    return make_toy_root('s4', {'train': 1, 'val': 1, 'test': 3})


def _visible(root: str):
    with open(osp.join(root, 'clip_kinds.json')) as f:
        return {vid: set(e['visible']) for vid, e in json.load(f).items()}


def test_empty_ground_truth_and_no_visible_kind_heard(s4_root, tmp_path):
    kinds = ['blue_triangle', 'green_square', 'red_circle', 'thunder', 'yellow_cross']
    bank = SoundBank(_bank(tmp_path / 'bank', kinds))
    ds = _s4(s4_root, sound_bank=bank, seed=3)
    visible = _visible(s4_root)
    assert len(ds) == 3
    heard = set()
    for i in range(len(ds)):
        sample = ds[i]
        meta = sample['data_samples'].metainfo
        assert meta['audio_condition'] == ['offscreen_recorded'] * 5 and meta['audio_replaced'] == [1] * 5
        assert meta['sounding'] == [0] * 5
        assert int(sample['data_samples'].gt_sem_seg.data.sum()) == 0  # nothing on screen sounds
        sources = {p.split(os.sep)[0] for p in meta['audio_sources']}
        assert sources and not sources & visible[meta['video_id']], (meta['video_id'], sources)
        heard |= sources
        # the audio is the bank's log-mel of windows drawn with the clip's seed, visible kinds left out
        expected = bank.draw_logmel(np.random.default_rng([3, i]), 5, exclude=visible[meta['video_id']])
        np.testing.assert_array_equal(sample['audio'].numpy(), expected)
    assert 'thunder' in heard


def test_seeded(s4_root, tmp_path):
    root = _bank(tmp_path / 'bank', ['thunder', 'waves', 'wind'])
    a = _s4(s4_root, sound_bank=root, seed=1)
    b = _s4(s4_root, sound_bank=dict(root=root), seed=1)
    c = _s4(s4_root, sound_bank=root, seed=2)
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]['audio'].numpy(), b[i]['audio'].numpy())
    assert any(not np.array_equal(a[i]['audio'].numpy(), c[i]['audio'].numpy()) for i in range(len(a)))


def test_clip_showing_every_bank_kind_is_skipped(s4_root, tmp_path):
    visible = _visible(s4_root)
    ds = _s4(s4_root, sound_bank=_bank(tmp_path / 'bank', ['red_circle', 'green_square']))
    kept = [ds.get_data_info(i)['video_id'] for i in range(len(ds))]
    from mmseg.registry import DATASETS

    base = DATASETS.build(ds.dataset) if isinstance(ds.dataset, dict) else ds.dataset
    tested = {base.get_data_info(i)['video_id'] for i in range(len(base))}
    assert set(kept) == {v for v in tested if not {'red_circle', 'green_square'} <= visible[v]}
    for i in range(len(ds)):
        meta = ds[i]['data_samples'].metainfo
        assert not {p.split(os.sep)[0] for p in meta['audio_sources']} & visible[meta['video_id']]


def test_avss_class_indices_are_matched_by_name(toy_avss_root, tmp_path):
    """AVSS kinds are class indices; the bank's sub-folders are matched with the class names."""
    with open(osp.join(toy_avss_root, 'label2idx.json')) as f:
        names = {i - 1: n for n, i in json.load(f).items()}  # 1-based, background first
    ds = dict(type='AVSSDataset', data_root=toy_avss_root, split='test', pipeline=AVSS_PIPELINE, test_mode=True)
    kinds = ['blue_triangle', 'green_square', 'red_circle', 'yellow_cross', 'thunder']
    wrapped = AudioConditionDataset(
        ds, condition='offscreen_recorded', sound_bank=_bank(tmp_path / 'bank', kinds), seed=0
    )
    for i in range(len(wrapped)):
        sample = wrapped[i]
        meta = sample['data_samples'].metainfo
        gt = sample['data_samples'].gt_sem_seg.data
        assert int(gt.max()) == 0
        # what the base clip shows: the classes of its label maps, by name
        base = wrapped.dataset.pipeline(wrapped.dataset.get_data_info(wrapped._clip(i)))
        shown = {names[int(c)] for c in np.unique(base['data_samples'].gt_sem_seg.data.numpy()) if 0 < c < 255}
        assert shown
        heard = {p.split(os.sep)[0] for p in meta['audio_sources'] if p}
        assert heard and not heard & shown
        assert [bool(p) for p in meta['audio_sources']] == [bool(v) for v in meta['frame_valid']]  # padding kept


def test_unknown_kinds_keep_every_clip(make_toy_root, tmp_path):
    """MS3 without clip_kinds.json: what clips show is unknown, nothing is left out (a warning says so)."""
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 2})
    os.remove(osp.join(root, 'clip_kinds.json'))
    ds = dict(type='AVSBenchMS3Dataset', data_root=root, split='test', pipeline=BINARY_PIPELINE, test_mode=True)
    wrapped = AudioConditionDataset(ds, condition='offscreen_recorded', sound_bank=_bank(tmp_path / 'b', ['dog']))
    assert len(wrapped) == 2
    assert int(wrapped[0]['data_samples'].gt_sem_seg.data.sum()) == 0


def test_bank_and_condition_go_together(s4_root, tmp_path):
    ds = dict(type='AVSBenchS4Dataset', data_root=s4_root, split='test', pipeline=BINARY_PIPELINE, test_mode=True)
    with pytest.raises(ValueError, match='needs sound_bank'):
        AudioConditionDataset(ds, condition='offscreen_recorded')
    with pytest.raises(ValueError, match='needs sound_bank'):
        AudioConditionDataset(ds, condition='noise', sound_bank=str(tmp_path))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no audio file'):
        AudioConditionDataset(ds, condition='offscreen_recorded', sound_bank=str(tmp_path / 'empty'))
