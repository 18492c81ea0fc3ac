"""The official AVSBench binary test-loop numbers (S4 / MS3), computed *per test batch*.

``mask_iou`` and ``Eval_Fmeasure`` of ``avs_scripts/avs_s4/utils/utility.py`` score all frames of ``B`` videos
together, so they depend on the batch size; here they are computed from the per-frame counts of :mod:`.binary`, in
float32 and in the same order as the official code, so they agree with it to float32 rounding (~1e-7). Scores are
fractions in [0, 1].
"""

from typing import Tuple

import numpy as np

from .binary import (
    PR_NUM,
    BinaryStats,
    binary_frame_stats,
    frame_iou_from_stats,
    mean_fscore_curve,
    select_frames,
)
from .common import ArrayLike


def legacy_batch_iou(stats: BinaryStats) -> float:
    """Official ``mask_iou`` of one batch from counts: mean of the float32 per-frame IoU over all its frames."""
    ious = frame_iou_from_stats(stats)
    if ious.size == 0:
        raise ValueError('legacy_batch_iou got a batch without frames.')
    return float(np.float32(ious.sum(dtype=np.float32)) / np.float32(ious.size))


def legacy_batch_fscore_curve(stats: BinaryStats) -> np.ndarray:
    """Official ``Eval_Fmeasure`` curve of one batch: the per-frame curves averaged over non-empty-GT frames
    (:func:`~.binary.mean_fscore_curve`; a batch without any non-empty frame gives all zeros).

    Returns:
        ``[pr_num]`` float32.
    """
    return mean_fscore_curve(stats)


def legacy_batch_fscore(stats: BinaryStats) -> float:
    """Official ``Eval_Fmeasure`` of one batch: max over thresholds of :func:`legacy_batch_fscore_curve`."""
    return float(legacy_batch_fscore_curve(stats).max())


def legacy_scores(stats: BinaryStats, batch_ids: np.ndarray) -> Tuple[float, float, int]:
    """Official test-loop numbers: per-batch ``mask_iou`` and ``Eval_Fmeasure``, unweighted mean over batches.

    Args:
        stats: per-frame counts of the whole split, in dataset order.
        batch_ids: ``[N]`` int, the test batch each frame belongs to.

    Returns:
        ``(miou, fscore, num_batches)``; miou and fscore are fractions. A partial last batch counts as a full one
        (its frames are over-weighted), as in the official ``AverageMeter``.
    """
    batch_ids = np.asarray(batch_ids)
    if batch_ids.shape[0] != stats['gt_fg'].shape[0]:
        raise ValueError(f'batch_ids has {batch_ids.shape[0]} entries for {stats["gt_fg"].shape[0]} frames.')
    ious, fscores = [], []
    for b in np.unique(batch_ids):
        batch = select_frames(stats, batch_ids == b)
        ious.append(legacy_batch_iou(batch))
        fscores.append(legacy_batch_fscore(batch))
    if not ious:
        return 0.0, 0.0, 0
    return float(np.mean(ious)), float(np.mean(fscores)), len(ious)


def mask_iou_legacy(logits: ArrayLike, gt: ArrayLike) -> float:
    """Official AVSBench ``mask_iou`` for one test batch.

    ``b = sigmoid(logits) > 0.5`` (strict); per frame ``|b & g| / (|b | g| + 1e-7)``, or for an all-empty ground
    truth the background accuracy ``|~b & ~g| / (H*W + 1e-7)``; mean over the ``N`` frames.

    Args:
        logits: ``[N, H, W]`` raw scores of all frames of the batch (``N = B * T``).
        gt: ``[N, H, W]`` in {0, 1}.

    Returns:
        float in [0, 1].
    """
    return legacy_batch_iou(binary_frame_stats(logits, gt, pr_num=1))


def fscore_curve_legacy(logits: ArrayLike, gt: ArrayLike, pr_num: int = PR_NUM) -> np.ndarray:
    """Official ``Eval_Fmeasure`` curve for one batch (before the max).

    ``p = sigmoid(logits)``; thresholds ``linspace(0, 1 - 1e-10, pr_num)`` (float32); per frame with non-empty GT
    and per threshold ``y = p >= t`` (non-strict), precision/recall with eps 1e-20, ``F = 1.3 P R / (0.3 P + R)``
    with NaN -> 0; the curve is averaged over the non-empty-GT frames (all zeros if there is none).

    Args:
        logits: ``[N, H, W]`` raw scores.
        gt: ``[N, H, W]`` in {0, 1}.
        pr_num: number of thresholds.

    Returns:
        ``[pr_num]`` float32.
    """
    return legacy_batch_fscore_curve(binary_frame_stats(logits, gt, pr_num=pr_num))


def fscore_legacy(logits: ArrayLike, gt: ArrayLike, pr_num: int = PR_NUM) -> float:
    """Official ``Eval_Fmeasure`` for one batch: max over thresholds of :func:`fscore_curve_legacy`.

    A batch whose frames all have empty ground truth scores 0.0.
    """
    return float(fscore_curve_legacy(logits, gt, pr_num).max())
