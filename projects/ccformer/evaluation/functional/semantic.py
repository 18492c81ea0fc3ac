"""AVSBench-semantic (AVSS) metrics: the official ``calc_color_miou_fscore`` from per-frame, per-class counts.

mmseg's ``IoUMetric.intersect_and_union`` counts each frame; IoU and F per (frame, class) are summed over frames
and averaged over all C classes at the end, as the official loop does (see ``docs/metrics.md``).
"""

from typing import Dict, Optional, Union

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric

from .common import ArrayLike, as_tensor, fscore_from_counts

#: Epsilon of the official AVSS IoU (``np.spacing(1)``).
SEMANTIC_EPS = 2.220446049250313e-16
#: Number of AVSBench-semantic classes (70 categories + background).
AVSS_NUM_CLASSES = 71


def _check_labels(x: ArrayLike, name: str, num_classes: int) -> torch.Tensor:
    x = as_tensor(x, name)
    if x.is_floating_point():
        if not torch.equal(x, x.round()):
            raise TypeError(f'{name} must hold integer class indices, got non-integer floats.')
    x = x.long()
    if x.numel() and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(
            f'{name} values must be class indices in 0..{num_classes - 1} (AVSS has no ignore label), '
            f'found range [{int(x.min())}, {int(x.max())}]. Padded labels (255) must not be scored.'
        )
    return x


def semantic_frame_counts(pred: ArrayLike, gt: ArrayLike, num_classes: int = AVSS_NUM_CLASSES) -> Dict[str, np.ndarray]:
    """Per-frame, per-class pixel counts of the official AVSS metric: mmseg's ``IoUMetric.intersect_and_union``
    on each frame, without an ignore label (every pixel is counted, as officially).

    The official code histograms both maps shifted by +1 (``torch.histc``, ``bins=C, min=1, max=C``), which maps
    class ``c`` to bin ``c`` one-to-one: the same counts as mmseg's ``histc`` over ``0..C-1``.

    Args:
        pred: ``[N, H, W]`` predicted class indices (argmax of the logits).
        gt: ``[N, H, W]`` class indices in ``0..num_classes-1``.
        num_classes: C (71 for AVSS).

    Returns:
        dict of int64 ``[N, C]`` arrays: ``inter`` (pred == gt == c), ``pred_area`` (Pp), ``gt_area`` (Pg) and
        ``union`` (Pp + Pg - I).
    """
    pred = _check_labels(pred, 'pred', num_classes)
    gt = _check_labels(gt, 'gt', num_classes).to(pred.device)
    if pred.dim() != 3 or pred.shape != gt.shape:
        raise ValueError(
            f'pred and gt must both be [N, H, W] with the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}.'
        )
    if not pred.shape[0]:
        empty = np.zeros((0, num_classes), dtype=np.int64)
        return dict(inter=empty, pred_area=empty.copy(), gt_area=empty.copy(), union=empty.copy())
    # float32 histograms: exact up to 2**24 pixels a frame
    frames = [IoUMetric.intersect_and_union(p, g, num_classes, ignore_index=-1) for p, g in zip(pred, gt)]
    inter, union, pred_area, gt_area = (torch.stack(c).round().numpy().astype(np.int64) for c in zip(*frames))
    return dict(inter=inter, pred_area=pred_area, gt_area=gt_area, union=union)


def semantic_frame_scores(counts: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Per-frame, per-class IoU and F of the official AVSS metric.

    ``IoU = I / (U + 2.22e-16)``; ``prec = I / Pp`` and ``rec = I / Pg`` without eps;
    ``F = 1.3 prec rec / (0.3 prec + rec)`` with NaN -> 0 (a class missing from the prediction or the GT scores
    F = 0). ``present`` marks ``U > 0``, the only (frame, class) pairs the official code counts.

    Returns:
        dict with ``iou`` and ``fscore`` (float64 ``[N, C]``) and ``present`` (bool ``[N, C]``).
    """
    inter = counts['inter'].astype(np.float64)
    union = counts['union'].astype(np.float64)
    iou = inter / (union + SEMANTIC_EPS)
    fscore = fscore_from_counts(inter, counts['pred_area'], counts['gt_area'])
    return dict(iou=iou, fscore=fscore, present=counts['union'] > 0)


def accumulate_semantic(counts: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Sum the per-frame scores over frames, as the official loop does.

    ``iou_sum[c] += IoU_fc`` and ``f_sum[c] += F_fc`` over all frames (pairs with ``U = 0`` add 0 anyway), and
    ``count[c] += 1`` only where ``U_fc > 0``.

    Returns:
        dict of ``[C]`` arrays: ``iou_sum``, ``f_sum`` (float64), ``count`` (int64). Sums of several calls can be
        added element-wise.
    """
    scores = semantic_frame_scores(counts)
    return dict(
        iou_sum=scores['iou'].sum(0), f_sum=scores['fscore'].sum(0), count=scores['present'].sum(0).astype(np.int64)
    )


def semantic_final_scores(
    iou_sum: np.ndarray, f_sum: np.ndarray, count: np.ndarray
) -> Dict[str, Union[float, np.ndarray]]:
    """Official final AVSS numbers from accumulated sums.

    Per class ``IoU_c = iou_sum[c] / count[c]`` and ``F_c = f_sum[c] / count[c]``, NaN (never-seen class) -> 0;
    ``mIoU`` and ``F`` are means over **all** C classes (never-seen classes count as 0).

    Returns:
        dict with ``class_iou``, ``class_fscore`` (``[C]`` float64) and ``miou``, ``fscore`` (fractions).
    """
    count = np.asarray(count, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        class_iou = np.nan_to_num(np.asarray(iou_sum, dtype=np.float64) / count, nan=0.0)
        class_f = np.nan_to_num(np.asarray(f_sum, dtype=np.float64) / count, nan=0.0)
    return dict(class_iou=class_iou, class_fscore=class_f, miou=float(class_iou.mean()), fscore=float(class_f.mean()))


def semantic_miou_fscore(
    pred_or_logits: ArrayLike, gt: ArrayLike, num_classes: Optional[int] = None
) -> Dict[str, Union[float, np.ndarray]]:
    """Official AVSS ``calc_color_miou_fscore`` + final averaging over one set of frames.

    Args:
        pred_or_logits: ``[N, C, H, W]`` logits (argmax over C is taken) or ``[N, H, W]`` class indices.
        gt: ``[N, H, W]`` class indices. Padded frames (all background) are included, as officially.
        num_classes: C; defaults to the logits' channel count, else 71.

    Returns:
        see :func:`semantic_final_scores`.
    """
    x = as_tensor(pred_or_logits, 'pred_or_logits')
    if x.dim() == 4:
        num_classes = num_classes or x.shape[1]
        x = x.argmax(dim=1)
    num_classes = num_classes or AVSS_NUM_CLASSES
    sums = accumulate_semantic(semantic_frame_counts(x, gt, num_classes))
    return semantic_final_scores(**sums)
