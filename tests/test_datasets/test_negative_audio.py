"""NegativeAudioDataset (negative-audio training)."""

import json
import os.path as osp

import numpy as np
import pytest
import torch

from projects.ccformer.datasets import NegativeAudioDataset, SeededIndex
from projects.ccformer.datasets.audio import load_logmel_pkl
from projects.ccformer.datasets.audio_conditions import KINDS_FILE, silence_logmel
from projects.ccformer.datasets.samplers import derive_seed

PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]


def _ms3(root, split='train'):
    return dict(type='AVSBenchMS3Dataset', data_root=root, split=split, pipeline=PIPELINE)


def _all_replaced(root, **kw):
    return NegativeAudioDataset(_ms3(root), prob=1.0, whole_clip_prob=1.0, **kw)


def test_silence_replaces_audio_and_empties_supervised_targets(toy_ms3_root):
    ds = _all_replaced(toy_ms3_root, conditions=dict(silence=1.0))
    out = ds[0]
    sample = out['data_samples']
    assert torch.equal(out['audio'], torch.from_numpy(silence_logmel(5)))
    assert sample.gt_sem_seg.data.sum() == 0
    assert sample.metainfo['audio_replaced'] == [1] * 5
    assert sample.metainfo['audio_condition'] == ['silence'] * 5
    assert sample.metainfo['gt_valid'] == [1] * 5  # MS3: every frame is labelled


def test_some_seconds_replaced_keep_the_others(toy_ms3_root):
    ds = NegativeAudioDataset(_ms3(toy_ms3_root), prob=1.0, whole_clip_prob=0.0, conditions=dict(silence=1.0))
    plain = ds.dataset[1]
    out = ds[1]
    replaced = out['data_samples'].metainfo['audio_replaced']
    assert 1 <= sum(replaced) <= 4
    assert out['data_samples'].metainfo['sounding'] == [0 if r else -1 for r in replaced]
    for t, r in enumerate(replaced):
        gt, gt_plain = out['data_samples'].gt_sem_seg.data[t], plain['data_samples'].gt_sem_seg.data[t]
        if r:
            assert gt.sum() == 0 and torch.equal(out['audio'][t], torch.from_numpy(silence_logmel(1)[0]))
        else:
            assert torch.equal(gt, gt_plain) and torch.equal(out['audio'][t], plain['audio'][t])


@pytest.mark.parametrize('supervise_unlabelled', [False, True])
def test_s4_train_unlabelled_replaced_frames(toy_s4_root, supervise_unlabelled):
    ds = NegativeAudioDataset(
        dict(type='AVSBenchS4Dataset', data_root=toy_s4_root, split='train', pipeline=PIPELINE),
        prob=1.0,
        whole_clip_prob=1.0,
        conditions=dict(noise=1.0),
        supervise_unlabelled=supervise_unlabelled,
        spare_labelled=False,
    )
    out = ds[0]
    meta = out['data_samples'].metainfo
    assert ds.dataset.get_data_info(0)['gt_valid'] == [1, 0, 0, 0, 0]
    assert meta['gt_valid'] == ([1] * 5 if supervise_unlabelled else [1, 0, 0, 0, 0])
    assert meta['audio_condition'] == ['noise'] * 5 and out['data_samples'].gt_sem_seg.data.sum() == 0
    assert meta['sounding'] == [0] * 5  # presence target known on every replaced frame, labelled or not


def test_s4_train_spare_labelled_keeps_the_labelled_frame(toy_s4_root):
    cfg = dict(type='AVSBenchS4Dataset', data_root=toy_s4_root, split='train', pipeline=PIPELINE)
    ds = NegativeAudioDataset(cfg, prob=1.0, whole_clip_prob=1.0, conditions=dict(silence=1.0))
    plain = ds.dataset[0]
    out = ds[0]
    meta = out['data_samples'].metainfo
    assert meta['audio_condition'] == ['original'] + ['silence'] * 4 and meta['audio_replaced'] == [0, 1, 1, 1, 1]
    assert meta['sounding'] == [-1, 0, 0, 0, 0] and meta['gt_valid'] == [1, 0, 0, 0, 0]
    assert torch.equal(out['audio'][0], plain['audio'][0])  # the labelled frame keeps its sound
    assert torch.equal(out['data_samples'].gt_sem_seg.data[0], plain['data_samples'].gt_sem_seg.data[0])
    assert plain['data_samples'].gt_sem_seg.data[0].any()


def test_s4_sounding_unlabelled_gives_presence_targets(toy_s4_root):
    cfg = dict(type='AVSBenchS4Dataset', data_root=toy_s4_root, split='train', pipeline=PIPELINE)
    assert 'sounding' not in NegativeAudioDataset(cfg, prob=0.0)[0]['data_samples'].metainfo
    cfg = dict(cfg, sounding_unlabelled=True)
    kinds = json.load(open(osp.join(toy_s4_root, KINDS_FILE)))
    unchanged = NegativeAudioDataset(cfg, prob=0.0)
    for idx in range(len(unchanged)):  # unchanged clips: 1 where something is audible, 0 in silent seconds
        plain = unchanged[idx]['data_samples'].metainfo
        assert plain['sounding'] == [int(bool(a)) for a in kinds[plain['video_id']]['audible']]
    ds = NegativeAudioDataset(cfg, prob=1.0, whole_clip_prob=0.0, conditions=dict(silence=1.0))
    meta = ds[0]['data_samples'].metainfo
    assert meta['gt_valid'] == [1, 0, 0, 0, 0] and 1 <= sum(meta['audio_replaced']) <= 3
    plain = NegativeAudioDataset(cfg, prob=0.0)[0]['data_samples'].metainfo['sounding']
    assert meta['sounding'] == [0 if r else p for r, p in zip(meta['audio_replaced'], plain)]


def test_offscreen_seconds_come_from_kinds_not_on_screen(toy_ms3_root):
    ds = _all_replaced(toy_ms3_root, conditions=dict(offscreen=1.0))
    kinds = json.load(open(osp.join(toy_ms3_root, 'clip_kinds.json')))
    infos = [ds.dataset.get_data_info(i) for i in range(len(ds))]
    # every log-mel example of the split, to find where each replaced second came from
    bank = {(j, s): load_logmel_pkl(info['audio_path'])[s] for j, info in enumerate(infos) for s in range(5)}
    for i in range(len(ds)):
        out = ds[i]
        visible = set(kinds[infos[i]['video_id']]['visible'])
        assert out['data_samples'].metainfo['audio_condition'] == ['offscreen'] * 5
        for t in range(5):
            source = [k for k, v in bank.items() if np.array_equal(v, out['audio'][t].numpy())]
            assert source, 'the off-screen second is not a second of the dataset'
            for j, s in source:
                heard = set(kinds[infos[j]['video_id']]['audible'][s])
                assert j != i and heard and not heard & visible


def test_draws_follow_the_samplers_per_sample_seed(toy_ms3_root):
    ds = NegativeAudioDataset(_ms3(toy_ms3_root), prob=0.5, whole_clip_prob=0.5, seed=3)
    n = len(ds)

    def plans(epoch):
        return [ds.plan(SeededIndex(i, derive_seed(0, epoch, i)), 5) for i in range(n)]

    again = NegativeAudioDataset(_ms3(toy_ms3_root), prob=0.5, whole_clip_prob=0.5, seed=3)
    assert plans(2) == [again.plan(SeededIndex(i, derive_seed(0, 2, i)), 5) for i in range(n)]
    assert any(plans(0) != plans(e) for e in range(1, 6))  # new draws every epoch
    assert [ds.plan(i, 5) for i in range(n)] == [ds.plan(i, 5) for i in range(n)]  # plain ints: fixed draws
    idx = SeededIndex(0, derive_seed(0, 4, 0))
    first, second = ds[idx], ds[idx]
    assert torch.equal(first['audio'], second['audio'])
    assert first['data_samples'].metainfo.get('audio_condition') == second['data_samples'].metainfo.get(
        'audio_condition'
    )


def test_share_of_changed_clips_follows_prob(toy_ms3_root):
    ds = NegativeAudioDataset(_ms3(toy_ms3_root), prob=0.3, whole_clip_prob=0.5)
    changed = [any(ds.plan(SeededIndex(i, derive_seed(0, e, i)), 5)) for e in range(400) for i in range(len(ds))]
    assert abs(np.mean(changed) - 0.3) < 0.05


def test_offscreen_dropped_without_kinds(make_toy_root):
    import os

    root = make_toy_root('ms3', num_videos={'train': 2, 'val': 1, 'test': 1})
    os.remove(osp.join(root, 'clip_kinds.json'))
    ds = NegativeAudioDataset(_ms3(root), prob=1.0, whole_clip_prob=1.0)
    for e in range(10):
        assert 'offscreen' not in ds.plan(SeededIndex(0, e), 5)


@pytest.mark.parametrize('kw', [dict(prob=1.5), dict(conditions=dict(music=1.0)), dict(conditions=dict(silence=0.0))])
def test_bad_arguments(toy_ms3_root, kw):
    with pytest.raises(ValueError, match='NegativeAudioDataset'):
        NegativeAudioDataset(_ms3(toy_ms3_root), **kw)


def test_noise_colors_choose_the_noise(toy_ms3_root):
    ambient = _all_replaced(toy_ms3_root, conditions=dict(noise=1.0), noise_colors=('ambient',))
    plain = _all_replaced(toy_ms3_root, conditions=dict(noise=1.0))
    out, ref = ambient[0], plain[0]
    assert out['data_samples'].metainfo['audio_condition'] == ['noise'] * 5
    assert out['data_samples'].gt_sem_seg.data.sum() == 0
    assert not torch.equal(out['audio'], ref['audio'])
    # white noise has the same spectral tilt in every second; ambience does not
    tilt = lambda a: (a[:, 0, :, 48:].mean((1, 2)) - a[:, 0, :, :16].mean((1, 2))).std()  # noqa: E731
    assert tilt(out['audio']) > 0.5


def test_default_noise_draws_white_or_pink_as_before(toy_ms3_root):
    """The default noise is drawn as it always was: per noise second one uniform number picks white (< 0.5) or pink,
    then the level in ``noise_dbfs``, then the noise; so runs of earlier versions repeat exactly."""
    from projects.ccformer.datasets.audio_conditions.synthesis import noise_logmel

    ds = _all_replaced(toy_ms3_root, conditions=dict(noise=1.0))
    for idx in (0, 1):
        rng = np.random.default_rng(ds._entropy(idx) + [1])
        expected = []
        for _ in range(5):
            color = 'white' if rng.random() < 0.5 else 'pink'
            expected.append(noise_logmel(rng, 1, rng.uniform(-45.0, -10.0), color)[0])
        np.testing.assert_array_equal(ds[idx]['audio'].numpy(), np.stack(expected))


@pytest.mark.parametrize('colors', [(), ('white', 'brown'), 'ambient', None])
def test_bad_noise_colors(toy_ms3_root, colors):
    with pytest.raises(ValueError, match='noise_colors'):
        NegativeAudioDataset(_ms3(toy_ms3_root), noise_colors=colors)
