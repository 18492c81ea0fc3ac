"""projects/ccformer/evaluation/empty_frames.py: frames with a mask split by what sounds in them."""

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.ccformer.evaluation.empty_frames import (
    GROUPS,
    clip_frames,
    format_causes,
    frame_causes,
    frame_group,
)

KINDS = (frozenset({'dog', 'cat'}), (frozenset({'dog'}), frozenset(), frozenset({'lion'}), frozenset({'cat', 'owl'})))


@pytest.mark.parametrize(
    'has_fg, kinds, t, group',
    [
        (True, KINDS, 1, 'sounding'),  # foreground wins whatever the kinds say
        (True, None, 0, 'sounding'),
        (False, None, 0, 'unknown'),
        (False, KINDS, 9, 'unknown'),  # a second the kinds do not cover
        (False, KINDS, 1, 'quiet'),
        (False, KINDS, 2, 'offscreen'),  # only a kind not visible
        (False, KINDS, 0, 'visible_silent'),  # a visible kind sounds, yet the mask is empty
        (False, KINDS, 3, 'visible_silent'),  # a visible kind among others
    ],
)
def test_frame_group(has_fg, kinds, t, group):
    assert frame_group(has_fg, kinds, t) == group


def test_frame_causes_counts_each_group_and_the_empty_total():
    f, t = False, True
    clips = [
        # video a: frames 0-3 as KINDS; frame 0 has foreground and a mask, frame 2 (off-screen) a mask
        ('a', np.array([t, t, t, t]), np.array([t, f, f, f]), np.array([t, f, t, f])),
        # video b: kinds unknown; frame 1 not scored (gt_valid 0) though masked
        ('b', np.array([t, f]), np.array([f, f]), np.array([t, t])),
    ]
    causes = frame_causes(clips, {'a': KINDS})
    assert list(causes) == list(GROUPS) + ['empty']
    assert causes['sounding'] == dict(frames=1, masked=1, masked_percent=100.0)
    assert causes['quiet'] == dict(frames=1, masked=0, masked_percent=0.0)
    assert causes['offscreen'] == dict(frames=1, masked=1, masked_percent=100.0)
    assert causes['visible_silent'] == dict(frames=1, masked=0, masked_percent=0.0)
    assert causes['unknown'] == dict(frames=1, masked=1, masked_percent=100.0)
    assert causes['empty'] == dict(frames=4, masked=2, masked_percent=50.0)


def test_frame_causes_of_nothing_has_no_share():
    causes = frame_causes([], {})
    assert all(c == dict(frames=0, masked=0, masked_percent=None) for c in causes.values())


def _sample(logits, gt, video_id='v', gt_valid=None):
    s = SegDataSample(
        metainfo=dict(video_id=video_id) if gt_valid is None else dict(video_id=video_id, gt_valid=gt_valid)
    )
    s.seg_logits = PixelData(data=torch.as_tensor(logits, dtype=torch.float32))
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt))
    return s


def test_clip_frames_uses_the_metric_rule():
    """A frame has a mask when any pixel's sigmoid is strictly above 0.5 (logit > 0)."""
    logits = np.full((3, 4, 4), -5.0)
    logits[1, 2, 2] = 0.0  # sigmoid 0.5 exactly: no mask
    logits[2, 0, 3] = 0.01
    gt = np.zeros((3, 4, 4), np.int64)
    gt[0, 1, 1] = 1
    video_id, scored, has_fg, has_mask = clip_frames(_sample(logits, gt, 'clip'))
    assert video_id == 'clip' and scored.tolist() == [True] * 3
    assert has_fg.tolist() == [True, False, False]
    assert has_mask.tolist() == [False, False, True]


def test_clip_frames_leaves_out_frames_not_scored():
    """gt_valid 0: a masked frame with an unreadable ground truth (255) is neither masked nor sounding."""
    logits = np.full((2, 4, 4), 5.0)
    gt = np.zeros((2, 4, 4), np.int64)
    gt[1] = 255  # not a binary label: the metric never reads it
    _, scored, has_fg, has_mask = clip_frames(_sample(logits, gt, gt_valid=[1, 0]))
    assert scored.tolist() == [True, False] and has_fg.tolist() == [False, False]
    assert has_mask.tolist() == [True, False]


def test_empty_groups_add_up_to_the_metric():
    """The empty groups of frame_causes give AVSBenchMetric's empty_fp_rate and num_empty_frames, frames not scored
    included in neither."""
    from projects.ccformer.evaluation import AVSBenchMetric

    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        logits = rng.normal(-3, 2, (4, 8, 8))
        gt = (rng.random((4, 8, 8)) > 0.9).astype(np.int64)
        gt[i % 4] = 0  # two empty frames in every clip, the first without a mask
        gt[(i + 1) % 4] = 0
        logits[i % 4] = -10.0
        samples.append(_sample(logits, gt, f'v{i}', gt_valid=[1, 1, 1, 0] if i == 0 else None))
    metric = AVSBenchMetric()
    metric.process({}, samples)
    m = metric.compute_metrics(metric.results)
    kinds = {'v0': KINDS, 'v1': KINDS}  # v2, v3 unknown
    causes = frame_causes([clip_frames(s) for s in samples], kinds)
    assert causes['empty']['frames'] == m['num_empty_frames']
    assert causes['empty']['masked_percent'] == pytest.approx(m['empty_fp_rate'])
    assert 0 < causes['empty']['masked'] < causes['empty']['frames']


def test_clip_frames_names_the_video_when_a_field_is_missing():
    s = SegDataSample(metainfo=dict(video_id='broken'))
    s.gt_sem_seg = PixelData(data=torch.zeros(2, 4, 4, dtype=torch.int64))
    with pytest.raises(KeyError, match='broken.*seg_logits'):  # str(KeyError) escapes the quotes
        clip_frames(s)
    with pytest.raises(ValueError, match="'broken'"):
        clip_frames(_sample(np.zeros((3, 4, 4)), np.zeros((2, 4, 4), np.int64), 'broken'))


def test_format_causes_leaves_out_groups_without_frames():
    f, t = False, True
    causes = frame_causes([('a', np.array([t, t]), np.array([f, f]), np.array([t, f]))], {'a': KINDS})
    table = format_causes(causes)
    assert '| empty: a visible kind sounds | 1 | 1 | 100.0% |' in table
    assert '| empty: nothing sounds | 1 | 0 | 0.0% |' in table
    assert table.splitlines()[-1] == '| empty, all (the report\'s "empty (true)") | 2 | 1 | 50.0% |'
    assert 'sounding' not in table and 'unknown' not in table
