"""AVSBench metrics as plain functions on tensors / arrays.

Two families live here (see ``docs/metrics.md``):

* **Legacy** numbers that reproduce the official AVSBench code (``mask_iou`` and ``Eval_Fmeasure`` of
  ``avs_scripts/avs_s4/utils/utility.py``; ``calc_color_miou_fscore`` for AVSS). The binary ones are computed *per
  test batch* (all frames of ``B`` videos together), so they depend on the batch size; they are computed in float32
  in the same order as the official code, so they agree with it to float32 rounding (~1e-7).
* **Batch-independent** per-frame statistics, from which :class:`AVSBenchMetric` forms means over frames.

Binary inputs are ``logits [N, H, W]`` (any float dtype, any device) and ``gt [N, H, W]`` with values in {0, 1};
``N`` is a number of frames. All binary scores here are fractions in [0, 1] (the metric classes print percent).

The core is count based: :func:`binary_frame_stats` reduces every frame to a handful of integers plus two
``pr_num``-long count curves; every binary score (legacy or not) is computed from those counts, which is what the
metric classes store per sample instead of the logits.
"""

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric

ArrayLike = Union[torch.Tensor, np.ndarray]

#: Epsilon of the official ``mask_iou``.
IOU_EPS = 1e-7
#: Epsilon of the official ``_eval_pr`` (precision and recall denominators).
PR_EPS = 1e-20
#: beta^2 of the official F-measure.
BETA2 = 0.3
#: Number of thresholds of the official ``Eval_Fmeasure``.
PR_NUM = 255
#: Epsilon of the official AVSS IoU (``np.spacing(1)``).
SEMANTIC_EPS = 2.220446049250313e-16
#: Number of AVSBench-semantic classes (70 categories + background).
AVSS_NUM_CLASSES = 71

BinaryStats = Dict[str, np.ndarray]


# ----------------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------------
def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        return x
    raise TypeError(f'{name} must be a torch.Tensor or np.ndarray, got {type(x).__name__}.')


def _check_binary_inputs(logits: ArrayLike, gt: ArrayLike) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert binary inputs: float32 logits ``[N, H, W]`` and bool gt ``[N, H, W]``."""
    logits = _as_tensor(logits, 'logits')
    gt = _as_tensor(gt, 'gt')
    if logits.dim() != 3 or tuple(logits.shape) != tuple(gt.shape):
        raise ValueError(
            f'logits and gt must both be [N, H, W] with the same shape, got logits '
            f'{tuple(logits.shape)} and gt {tuple(gt.shape)}. Predictions must be resized to the '
            'ground-truth size before scoring.'
        )
    if not logits.is_floating_point():
        raise TypeError(f'logits must be a float tensor (raw scores before sigmoid), got {logits.dtype}.')
    logits = logits.float()
    if torch.isnan(logits).any():
        raise ValueError('logits contain NaN; the model output is broken (check for a diverged checkpoint).')
    if gt.numel() and not ((gt == 0) | (gt == 1)).all():
        bad = torch.unique(gt[(gt != 0) & (gt != 1)])[:5].tolist()
        raise ValueError(
            f'binary gt must contain only 0 and 1, found {bad}. Masks stored as 0/255 must be '
            'binarised when loaded, and padded ground truth (value 255) must not be scored.'
        )
    return logits, gt.to(device=logits.device, dtype=torch.bool)


def legacy_thresholds(pr_num: int = PR_NUM) -> torch.Tensor:
    """Thresholds of the official ``_eval_pr``: ``linspace(0, 1 - 1e-10, pr_num)`` in float32.

    In float32 ``1 - 1e-10`` rounds to 1.0, so the last threshold is exactly 1.0.

    Returns:
        Tensor: ``[pr_num]`` float32, on the CPU (the official code builds it there and then moves it).
    """
    return torch.linspace(0, 1 - 1e-10, pr_num, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------------------------
# binary (S4 / MS3): per-frame counts
# ----------------------------------------------------------------------------------------------------------------
def threshold_counts(
    probs: torch.Tensor, gt: torch.Tensor, thresholds: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-frame, per-threshold counts of ``probs >= t`` (official ``y_temp``), in one pass per frame.

    Args:
        probs: ``[N, H, W]`` float32 probabilities.
        gt: ``[N, H, W]`` bool ground truth.
        thresholds: ``[K]`` increasing float32 thresholds.

    Returns:
        ``(tp, pp)``, both ``[N, K]`` int64: ``tp[n, i] = sum((p_n >= t_i) * g_n)`` and
        ``pp[n, i] = sum(p_n >= t_i)``.
    """
    num, k = probs.shape[0], thresholds.numel()
    flat = probs.flatten(1).contiguous()
    # number of thresholds t with t <= p, i.e. the pixel is positive for thresholds 0..idx-1
    idx = torch.searchsorted(thresholds.to(flat.device), flat, right=True)
    hist_all = torch.zeros(num, k + 1, dtype=torch.int64, device=flat.device)
    hist_all.scatter_add_(1, idx, torch.ones_like(idx))
    hist_pos = torch.zeros_like(hist_all)
    hist_pos.scatter_add_(1, idx, gt.flatten(1).long())
    # pp[i] = #pixels with idx >= i + 1: reversed cumulative sum, dropping bin 0
    pp = hist_all.flip(1).cumsum(1).flip(1)[:, 1:]
    tp = hist_pos.flip(1).cumsum(1).flip(1)[:, 1:]
    return tp, pp


def binary_frame_stats(logits: ArrayLike, gt: ArrayLike, pr_num: int = PR_NUM) -> BinaryStats:
    """Reduce every frame to the counts all binary metrics need.

    The hard prediction is the official one: ``b = sigmoid(logits) > 0.5`` (strict), computed in float32.

    Args:
        logits: ``[N, H, W]`` raw scores.
        gt: ``[N, H, W]`` in {0, 1}.
        pr_num: number of F-measure thresholds (official 255).

    Returns:
        dict of numpy arrays (first axis = frame, ``N``):
        ``inter`` |b & g|, ``union`` |b | g|, ``bg_inter`` |~b & ~g|, ``pred_fg`` |b|, ``gt_fg`` |g|,
        ``num_pixels`` H*W (all int64 ``[N]``), and ``tp`` / ``pp`` (int64 ``[N, pr_num]``, see
        :func:`threshold_counts`).
    """
    logits, gt = _check_binary_inputs(logits, gt)
    probs = torch.sigmoid(logits)
    pred = probs > 0.5
    num = logits.shape[0]
    tp, pp = threshold_counts(probs, gt, legacy_thresholds(pr_num))
    stats = dict(
        inter=(pred & gt).flatten(1).sum(1),
        union=(pred | gt).flatten(1).sum(1),
        bg_inter=(~pred & ~gt).flatten(1).sum(1),
        pred_fg=pred.flatten(1).sum(1),
        gt_fg=gt.flatten(1).sum(1),
        num_pixels=torch.full((num,), logits.shape[1] * logits.shape[2], dtype=torch.int64),
        tp=tp,
        pp=pp,
    )
    return {key: value.cpu().numpy().astype(np.int64) for key, value in stats.items()}


def concat_binary_stats(stats: Sequence[BinaryStats]) -> BinaryStats:
    """Concatenate several :func:`binary_frame_stats` results along the frame axis."""
    if not stats:
        raise ValueError('concat_binary_stats got no statistics to concatenate.')
    return {key: np.concatenate([s[key] for s in stats], axis=0) for key in stats[0]}


def select_frames(stats: BinaryStats, keep: np.ndarray) -> BinaryStats:
    """Keep the frames where the boolean (or index) array ``keep`` selects them."""
    return {key: value[keep] for key, value in stats.items()}


# ----------------------------------------------------------------------------------------------------------------
# binary: per-frame scores from counts
# ----------------------------------------------------------------------------------------------------------------
def frame_iou_from_stats(stats: BinaryStats) -> np.ndarray:
    """Per-frame IoU with the official definition, in float32 (as the official code).

    ``IoU_n = |b & g| / (|b | g| + 1e-7)`` if ``g_n`` has foreground, else the background accuracy
    ``|~b & ~g| / (H*W + 1e-7)`` (an all-background prediction of an empty frame scores ~1).

    Returns:
        ``[N]`` float32.
    """
    empty = stats['gt_fg'] == 0
    inter = np.where(empty, stats['bg_inter'], stats['inter']).astype(np.float32)
    union = np.where(empty, stats['num_pixels'], stats['union']).astype(np.float32)
    return inter / (union + np.float32(IOU_EPS))


def frame_fscore_curves_from_stats(stats: BinaryStats) -> np.ndarray:
    """Per-frame F-measure curve over the thresholds, float32, computed as the official ``Eval_Fmeasure``.

    ``prec_i = tp_i / (pp_i + 1e-20)``, ``rec_i = tp_i / (|g| + 1e-20)``,
    ``F_i = (1 + 0.3) prec_i rec_i / (0.3 prec_i + rec_i)``, NaN -> 0. Rows of empty-GT frames are returned as
    computed (all zeros); callers skip them, as the official code does.

    Returns:
        ``[N, pr_num]`` float32.
    """
    tp = stats['tp'].astype(np.float32)
    pp = stats['pp'].astype(np.float32)
    gt_fg = stats['gt_fg'].astype(np.float32)[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        prec = tp / (pp + np.float32(PR_EPS))
        rec = tp / (gt_fg + np.float32(PR_EPS))
        f = np.float32(1 + BETA2) * prec * rec / (np.float32(BETA2) * prec + rec)
    f[np.isnan(f)] = 0
    return f.astype(np.float32)


def fscore_from_counts(tp: np.ndarray, pred_pos: np.ndarray, gt_pos: np.ndarray, beta2: float = BETA2) -> np.ndarray:
    """F-measure ``(1 + b2) P R / (b2 P + R)`` from counts, float64, with 0/0 (no prediction) -> 0.

    Undefined when ``gt_pos`` is 0; callers must drop those frames.
    """
    tp = np.asarray(tp, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        prec = tp / np.asarray(pred_pos, dtype=np.float64)
        rec = tp / np.asarray(gt_pos, dtype=np.float64)
        f = (1 + beta2) * prec * rec / (beta2 * prec + rec)
    return np.nan_to_num(f, nan=0.0)


def frame_fscore_from_stats(stats: BinaryStats) -> np.ndarray:
    """Per-frame F-measure of the hard prediction ``sigmoid > 0.5`` (the mask that IoU scores), float64.

    Frames whose ground truth is empty have no defined F (recall 0/0) and get NaN; a frame with foreground GT and an
    empty prediction scores 0.

    Returns:
        ``[N]`` float64.
    """
    f = fscore_from_counts(stats['inter'], stats['pred_fg'], stats['gt_fg'])
    return np.where(stats['gt_fg'] > 0, f, np.nan)


def frame_max_fscore_from_stats(stats: BinaryStats) -> np.ndarray:
    """Per-frame best F over the official thresholds (an oracle threshold chosen per frame); NaN for empty GT.

    Returns:
        ``[N]`` float64.
    """
    best = frame_fscore_curves_from_stats(stats).max(axis=1).astype(np.float64)
    return np.where(stats['gt_fg'] > 0, best, np.nan)


# ----------------------------------------------------------------------------------------------------------------
# binary: legacy (official, per batch)
# ----------------------------------------------------------------------------------------------------------------
def legacy_batch_iou(stats: BinaryStats) -> float:
    """Official ``mask_iou`` of one batch from counts: mean of the float32 per-frame IoU over all its frames."""
    ious = frame_iou_from_stats(stats)
    if ious.size == 0:
        raise ValueError('legacy_batch_iou got a batch without frames.')
    return float(np.float32(ious.sum(dtype=np.float32)) / np.float32(ious.size))


def legacy_batch_fscore_curve(stats: BinaryStats) -> np.ndarray:
    """Official ``Eval_Fmeasure`` curve of one batch: the per-frame curves averaged over non-empty-GT frames.

    Empty-GT frames (``mean(g) == 0``) are skipped; a batch without any non-empty frame gives all zeros.

    Returns:
        ``[pr_num]`` float32.
    """
    curves = frame_fscore_curves_from_stats(stats)
    keep = stats['gt_fg'] > 0
    if not keep.any():
        return np.zeros(curves.shape[1], dtype=np.float32)
    total = np.zeros(curves.shape[1], dtype=np.float32)
    for curve in curves[keep]:  # sequential float32 accumulation, as ``avg_f += f_score``
        total += curve
    return total / np.float32(keep.sum())


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


# ----------------------------------------------------------------------------------------------------------------
# binary: batch-independent per-frame wrappers and empty-GT false positives
# ----------------------------------------------------------------------------------------------------------------
def frame_iou(logits: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Per-frame IoU ``[N]`` (official per-frame definition, empty-GT frames score background accuracy)."""
    return frame_iou_from_stats(binary_frame_stats(logits, gt, pr_num=1))


def frame_fscore(logits: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Per-frame F (beta^2 = 0.3) of the hard mask ``sigmoid > 0.5``; ``[N]``, NaN where the GT is empty."""
    return frame_fscore_from_stats(binary_frame_stats(logits, gt, pr_num=1))


def frame_max_fscore(logits: ArrayLike, gt: ArrayLike, pr_num: int = PR_NUM) -> np.ndarray:
    """Per-frame best F over the official thresholds; ``[N]``, NaN where the GT is empty."""
    return frame_max_fscore_from_stats(binary_frame_stats(logits, gt, pr_num=pr_num))


def empty_gt_false_positives(stats: BinaryStats) -> Dict[str, float]:
    """False positives on frames whose ground truth is empty (silent or off-screen sound source).

    Returns:
        dict with ``num_empty`` (number of empty-GT frames), ``fp_frame_rate`` (fraction of them where the hard
        prediction ``sigmoid > 0.5`` has at least one foreground pixel) and ``fp_pixel_rate`` (mean over them of
        the fraction of pixels predicted foreground). Both rates are 0.0 when there is no empty frame.
    """
    empty = stats['gt_fg'] == 0
    num_empty = int(empty.sum())
    if num_empty == 0:
        return dict(num_empty=0, fp_frame_rate=0.0, fp_pixel_rate=0.0)
    pred_fg = stats['pred_fg'][empty].astype(np.float64)
    return dict(
        num_empty=num_empty,
        fp_frame_rate=float((pred_fg > 0).mean()),
        fp_pixel_rate=float((pred_fg / stats['num_pixels'][empty]).mean()),
    )


def batch_independent_scores(stats: BinaryStats) -> Dict[str, float]:
    """Batch-independent binary scores over a set of frames (fractions).

    Returns:
        dict with ``miou`` (mean per-frame IoU over all frames, empty-GT frames by the official background-accuracy
        rule; equals the legacy mIoU when every legacy batch is full), ``fscore`` (mean per-frame F of the hard
        mask over non-empty-GT frames), ``max_fscore`` (max over the official thresholds of the F curve averaged
        over all non-empty-GT frames: the legacy F with one batch holding the whole split, i.e. one threshold for
        the split) and ``num_frames`` / ``num_nonempty``. Scores over no frame are 0.0.
    """
    num_frames = int(stats['gt_fg'].shape[0])
    nonempty = stats['gt_fg'] > 0
    miou = float(frame_iou_from_stats(stats).astype(np.float64).mean()) if num_frames else 0.0
    fscore = float(np.nanmean(frame_fscore_from_stats(stats))) if nonempty.any() else 0.0
    max_fscore = float(legacy_batch_fscore_curve(stats).max()) if num_frames else 0.0
    return dict(
        miou=miou, fscore=fscore, max_fscore=max_fscore, num_frames=num_frames, num_nonempty=int(nonempty.sum())
    )


# ----------------------------------------------------------------------------------------------------------------
# semantic (AVSS)
# ----------------------------------------------------------------------------------------------------------------
def _check_labels(x: ArrayLike, name: str, num_classes: int) -> torch.Tensor:
    x = _as_tensor(x, name)
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
    x = _as_tensor(pred_or_logits, 'pred_or_logits')
    if x.dim() == 4:
        num_classes = num_classes or x.shape[1]
        x = x.argmax(dim=1)
    num_classes = num_classes or AVSS_NUM_CLASSES
    sums = accumulate_semantic(semantic_frame_counts(x, gt, num_classes))
    return semantic_final_scores(**sums)
