"""Binary (S4 / MS3) metrics per frame: every frame reduced to counts, and IoU / F from the counts.

Inputs are ``logits [N, H, W]`` (any float dtype, any device) and ``gt [N, H, W]`` with values in {0, 1}; ``N`` is
a number of frames. :func:`binary_frame_stats` reduces every frame to a handful of integers plus two
``pr_num``-long count curves; every binary score (per frame here, per batch in :mod:`.legacy`) is computed from those
counts, which is what the metric classes store per sample instead of the logits. Scores are fractions in [0, 1].
The per-frame definitions are the official AVSBench ones (``avs_scripts/avs_s4/utils/utility.py``), computed in
float32 as there.
"""

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from .common import BETA2, ArrayLike, as_tensor, fscore_from_counts

#: Epsilon of the official ``mask_iou``.
IOU_EPS = 1e-7
#: Epsilon of the official ``_eval_pr`` (precision and recall denominators).
PR_EPS = 1e-20
#: Number of thresholds of the official ``Eval_Fmeasure``.
PR_NUM = 255

BinaryStats = Dict[str, np.ndarray]


def _check_binary_inputs(logits: ArrayLike, gt: ArrayLike) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert binary inputs: float32 logits ``[N, H, W]`` and bool gt ``[N, H, W]``."""
    logits = as_tensor(logits, 'logits')
    gt = as_tensor(gt, 'gt')
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


def mean_fscore_curve(stats: BinaryStats) -> np.ndarray:
    """The per-frame F-measure curves averaged over the frames whose ground truth has foreground.

    Empty-GT frames (``mean(g) == 0``) are skipped, as the official ``Eval_Fmeasure`` does; without any non-empty
    frame the curve is all zeros. The curves are added one after the other in float32 (the official
    ``avg_f += f_score``), so one batch's curve equals the official one to float32 rounding.

    Returns:
        ``[pr_num]`` float32.
    """
    curves = frame_fscore_curves_from_stats(stats)
    keep = stats['gt_fg'] > 0
    if not keep.any():
        return np.zeros(curves.shape[1], dtype=np.float32)
    total = np.zeros(curves.shape[1], dtype=np.float32)
    for curve in curves[keep]:
        total += curve
    return total / np.float32(keep.sum())


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
    max_fscore = float(mean_fscore_curve(stats).max()) if num_frames else 0.0
    return dict(
        miou=miou, fscore=fscore, max_fscore=max_fscore, num_frames=num_frames, num_nonempty=int(nonempty.sum())
    )
