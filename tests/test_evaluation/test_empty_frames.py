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


def _sample(logits, gt, video_id='v'):
    s = SegDataSample(metainfo=dict(video_id=video_id))
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
    video_id, has_fg, has_mask = clip_frames(_sample(logits, gt, 'clip'))
    assert video_id == 'clip'
    assert has_fg.tolist() == [True, False, False]
    assert has_mask.tolist() == [False, False, True]


def test_clip_frames_names_the_video_when_a_field_is_missing():
    s = SegDataSample(metainfo=dict(video_id='broken'))
    s.gt_sem_seg = PixelData(data=torch.zeros(2, 4, 4, dtype=torch.int64))
    with pytest.raises(KeyError, match="'broken'.*seg_logits"):
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
