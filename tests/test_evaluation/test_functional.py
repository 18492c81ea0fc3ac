"""Functional AVSBench metrics against values worked out by hand from the official definitions.

Logit conventions used below (float32): ``+200 -> p = 1.0`` and ``-200 -> p = 0.0`` exactly, ``+-10`` give
``p`` strictly inside (0, 1) near the ends, ``0 -> p = 0.5`` and ``+-ln 3 -> p = 0.75 / 0.25``. The official
thresholds are ``t_i = i / 254`` (``t_0 = 0``, ``t_254 = 1``), so 0.75 lies between ``t_190`` and ``t_191`` and
0.25 between ``t_63`` and ``t_64``.
"""

import math

import numpy as np
import pytest
import torch

from projects.ccformer.evaluation import functional as F

LN3 = math.log(3.0)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------ mask_iou (legacy)
def test_mask_iou_nonempty_strict_threshold_and_empty_branch():
    gt = t([[[1, 1, 1, 0], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
    # frame 0: logit 0 -> sigmoid 0.5 is NOT foreground (strict > 0.5): pred fg = {0,1,3,4}; inter 2, union 5
    # frame 1: empty GT -> background accuracy: one false-positive pixel out of 8 -> 7/8
    logits = t([[[10, 10, -10, 10], [10, 0, -10, -10]], [[10, -10, -10, -10], [-10, -10, -10, 0]]])
    assert F.frame_iou(logits, gt) == pytest.approx([2 / 5, 7 / 8], rel=1e-6)
    assert F.mask_iou_legacy(logits, gt) == pytest.approx((2 / 5 + 7 / 8) / 2, rel=1e-6)


def test_mask_iou_empty_gt_all_foreground_scores_zero():
    gt = torch.zeros(1, 2, 2)
    assert F.mask_iou_legacy(torch.full((1, 2, 2), 5.0), gt) == 0.0
    assert F.mask_iou_legacy(torch.full((1, 2, 2), -5.0), gt) == pytest.approx(1.0, rel=1e-6)


# ------------------------------------------------------------------------------------------------ Eval_Fmeasure
def test_fscore_curve_three_regimes():
    # gt [1,1,0,0]; p = [1, .75, .25, 0]
    gt = t([[[1, 1, 0, 0]]])
    logits = t([[[200, LN3, -LN3, -200]]])
    curve = F.fscore_curve_legacy(logits, gt)
    expected = np.array([13 / 23] + [13 / 18] * 63 + [1.0] * 127 + [13 / 16] * 64)
    assert curve.shape == (255,)
    np.testing.assert_allclose(curve, expected, rtol=1e-6)
    assert F.fscore_legacy(logits, gt) == pytest.approx(1.0, rel=1e-6)


def test_fscore_uses_greater_equal():
    # p = 0 counts as positive at t_0 = 0 only with >=: all four pixels positive, all GT -> F = 1.
    # (With > the best would be 13/16: two of four GT pixels found at precision 1.)
    gt = t([[[1, 1, 1, 1]]])
    logits = t([[[200, 200, -200, -200]]])
    curve = F.fscore_curve_legacy(logits, gt)
    assert curve[0] == pytest.approx(1.0, rel=1e-6)
    assert curve[254] == pytest.approx(13 / 16, rel=1e-6)  # p = 1.0 >= t_254 = 1.0
    assert F.fscore_legacy(logits, gt) == pytest.approx(1.0, rel=1e-6)


def test_fscore_batch_skips_empty_frames_and_takes_max_of_mean_curve():
    # frame A: gt [1,1,0,0], p [1,0,0,0]: curve [13/23, 13/16 x 254]
    # frame B: gt [0,0,1,1], p [1,1,0,0]: curve [13/23, 0 x 254]
    # frame C: empty GT -> skipped (does not dilute the mean)
    gt = t([[[1, 1, 0, 0]], [[0, 0, 1, 1]], [[0, 0, 0, 0]]])
    logits = t([[[200, -200, -200, -200]], [[200, 200, -200, -200]], [[200, 200, 200, 200]]])
    curve = F.fscore_curve_legacy(logits, gt)
    assert curve[0] == pytest.approx(13 / 23, rel=1e-6)
    np.testing.assert_allclose(curve[1:], 13 / 32, rtol=1e-6)
    assert F.fscore_legacy(logits, gt) == pytest.approx(13 / 23, rel=1e-6)
    # per-frame numbers (batch independent): max-F and F of the hard mask; NaN for the empty frame
    np.testing.assert_allclose(F.frame_max_fscore(logits, gt), [13 / 16, 13 / 23, np.nan], rtol=1e-6)
    np.testing.assert_allclose(F.frame_fscore(logits, gt), [13 / 16, 0.0, np.nan], rtol=1e-12)


def test_fscore_batch_with_only_empty_frames_is_zero():
    gt = torch.zeros(2, 2, 2)
    assert F.fscore_legacy(torch.full((2, 2, 2), -10.0), gt) == 0.0
    assert not F.fscore_curve_legacy(torch.full((2, 2, 2), -10.0), gt).any()


def test_legacy_scores_partial_last_batch_is_overweighted():
    # three one-frame videos: IoU 1, 0, 1; F 1, 0, 1. With one GT pixel in four, F at t_0 (everything positive)
    # is 1.3 * 1/4 / (0.3/4 + 1) = 0.30 < 1/2, so the first batch's best mean F is (1 + 0) / 2 at t_1..t_253.
    gt = t([[[1, 0, 0, 0]], [[1, 0, 0, 0]], [[1, 0, 0, 0]]])
    logits = t([[[10, -10, -10, -10]], [[-10, 10, -10, -10]], [[10, -10, -10, -10]]])
    stats = F.binary_frame_stats(logits, gt)
    miou, fscore, num_batches = F.legacy_scores(stats, np.array([0, 0, 1]))  # 2 videos per batch
    assert num_batches == 2
    assert miou == pytest.approx((1 / 2 + 1) / 2, rel=1e-6)
    assert fscore == pytest.approx((1 / 2 + 1) / 2, rel=1e-6)
    scores = F.batch_independent_scores(stats)
    assert scores['miou'] == pytest.approx(2 / 3, rel=1e-6)
    assert scores['fscore'] == pytest.approx(2 / 3, rel=1e-12)


def test_empty_gt_false_positive_rates():
    gt = torch.zeros(4, 2, 4)
    gt[3, 0, 0] = 1  # a non-empty frame is not counted
    logits = torch.full((4, 2, 4), -10.0)
    logits[1, 0, 0] = 10  # 1 of 8 pixels
    logits[2, 0] = 10  # 4 of 8 pixels
    logits[3] = 10
    fp = F.empty_gt_false_positives(F.binary_frame_stats(logits, gt, pr_num=1))
    assert fp['num_empty'] == 3
    assert fp['fp_frame_rate'] == pytest.approx(2 / 3, rel=1e-12)
    assert fp['fp_pixel_rate'] == pytest.approx((0 + 1 / 8 + 4 / 8) / 3, rel=1e-12)


def _reference_eval_fmeasure(logits, gt, pr_num=255):
    """Loop form of the official Eval_Fmeasure, written from the spec (avsbench.md 4.1)."""
    probs = torch.sigmoid(logits)
    thresholds = torch.linspace(0, 1 - 1e-10, pr_num)
    total, num = torch.zeros(pr_num), 0
    for p, g in zip(probs, gt):
        if torch.mean(g) == 0:
            continue
        prec, rec = torch.zeros(pr_num), torch.zeros(pr_num)
        for i in range(pr_num):
            y = (p >= thresholds[i]).float()
            tp = (y * g).sum()
            prec[i], rec[i] = tp / (y.sum() + 1e-20), tp / (g.sum() + 1e-20)
        f = 1.3 * prec * rec / (0.3 * prec + rec)
        f[f != f] = 0
        total += f
        num += 1
    return (total / max(num, 1)).max().item()


def test_counts_match_threshold_loop_on_random_data():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 12, 12, generator=gen) * 4
    gt = (torch.rand(6, 12, 12, generator=gen) > 0.6).float()
    gt[1] = 0
    assert F.fscore_legacy(logits, gt) == pytest.approx(_reference_eval_fmeasure(logits, gt), abs=1e-6)


def test_bad_binary_input_is_rejected():
    with pytest.raises(ValueError, match='only 0 and 1'):
        F.binary_frame_stats(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 255))
    with pytest.raises(ValueError, match='same shape'):
        F.binary_frame_stats(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match='NaN'):
        F.binary_frame_stats(torch.full((1, 2, 2), float('nan')), torch.zeros(1, 2, 2))


# ------------------------------------------------------------------------------------------------ AVSS
def _avss_frames():
    """Three 1x4 frames, C = 4 (class 3 never appears); see the hand computation in the test."""
    gt = torch.tensor([[[0, 1, 1, 2]], [[0, 0, 0, 0]], [[1, 1, 1, 1]]])
    pred = torch.tensor([[[0, 1, 2, 2]], [[0, 0, 0, 0]], [[0, 0, 0, 0]]])
    return pred, gt


def test_semantic_counts_and_scores():
    pred, gt = _avss_frames()
    counts = F.semantic_frame_counts(pred, gt, num_classes=4)
    np.testing.assert_array_equal(counts['inter'][0], [1, 1, 1, 0])
    np.testing.assert_array_equal(counts['pred_area'][0], [1, 1, 2, 0])
    np.testing.assert_array_equal(counts['gt_area'][0], [1, 2, 1, 0])
    np.testing.assert_array_equal(counts['union'][0], [1, 2, 2, 0])
    scores = F.semantic_frame_scores(counts)
    np.testing.assert_allclose(scores['iou'][0], [1, 1 / 2, 1 / 2, 0], rtol=1e-12)
    np.testing.assert_allclose(scores['fscore'][0], [1, 13 / 16, 13 / 23, 0], rtol=1e-12)
    # frame 2: background predicted, nothing labelled background -> present with IoU 0, F 0 (prec 0, rec 0/0)
    np.testing.assert_array_equal(scores['present'][2], [True, True, False, False])
    np.testing.assert_allclose(scores['fscore'][2], [0, 0, 0, 0])


def test_semantic_accumulation_over_all_classes():
    pred, gt = _avss_frames()
    result = F.semantic_miou_fscore(pred, gt, num_classes=4)
    # class 0: frames 0,1,2 -> IoU (1+1+0)/3, F (1+1+0)/3; class 1: frames 0,2 -> (1/2+0)/2, (13/16+0)/2;
    # class 2: frame 0 -> 1/2, 13/23; class 3: never seen -> 0; means over all 4 classes
    np.testing.assert_allclose(result['class_iou'], [2 / 3, 1 / 4, 1 / 2, 0], rtol=1e-12)
    np.testing.assert_allclose(result['class_fscore'], [2 / 3, 13 / 32, 13 / 23, 0], rtol=1e-12)
    assert result['miou'] == pytest.approx(17 / 48, rel=1e-12)
    assert result['fscore'] == pytest.approx((2 / 3 + 13 / 32 + 13 / 23) / 4, rel=1e-12)


def test_semantic_from_logits_takes_argmax():
    pred, gt = _avss_frames()
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    assert F.semantic_miou_fscore(logits, gt)['miou'] == pytest.approx(17 / 48, rel=1e-12)


def test_semantic_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match='no ignore label'):
        F.semantic_frame_counts(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255), 71)
