"""AVSBench metrics as plain functions on tensors / arrays, one module per family (see ``docs/metrics.md``):

* :mod:`.binary`: S4 / MS3 per frame: each frame reduced to counts (:func:`binary_frame_stats`), per-frame IoU and
  F from the counts, false positives on empty frames, and the batch-independent scores :class:`AVSBenchMetric`
  reports;
* :mod:`.legacy`: the official AVSBench test-loop numbers (``mask_iou`` / ``Eval_Fmeasure``), computed per test
  batch from the same counts, so they depend on the batch size;
* :mod:`.semantic`: AVSS, the official ``calc_color_miou_fscore`` from per-frame, per-class counts.

Every name is importable from here (``from projects.ccformer.evaluation import functional as F``).
"""

from .binary import (
    IOU_EPS,
    PR_EPS,
    PR_NUM,
    BinaryStats,
    batch_independent_scores,
    binary_frame_stats,
    concat_binary_stats,
    empty_gt_false_positives,
    frame_fscore,
    frame_fscore_curves_from_stats,
    frame_fscore_from_stats,
    frame_iou,
    frame_iou_from_stats,
    frame_max_fscore,
    frame_max_fscore_from_stats,
    legacy_thresholds,
    mean_fscore_curve,
    select_frames,
    threshold_counts,
)
from .common import BETA2, ArrayLike, fscore_from_counts
from .legacy import (
    fscore_curve_legacy,
    fscore_legacy,
    legacy_batch_fscore,
    legacy_batch_fscore_curve,
    legacy_batch_iou,
    legacy_scores,
    mask_iou_legacy,
)
from .semantic import (
    AVSS_NUM_CLASSES,
    SEMANTIC_EPS,
    accumulate_semantic,
    semantic_final_scores,
    semantic_frame_counts,
    semantic_frame_scores,
    semantic_miou_fscore,
)

__all__ = [
    'ArrayLike',
    'BinaryStats',
    'BETA2',
    'IOU_EPS',
    'PR_EPS',
    'PR_NUM',
    'SEMANTIC_EPS',
    'AVSS_NUM_CLASSES',
    'fscore_from_counts',
    'legacy_thresholds',
    'threshold_counts',
    'binary_frame_stats',
    'concat_binary_stats',
    'select_frames',
    'frame_iou_from_stats',
    'frame_fscore_curves_from_stats',
    'mean_fscore_curve',
    'frame_fscore_from_stats',
    'frame_max_fscore_from_stats',
    'frame_iou',
    'frame_fscore',
    'frame_max_fscore',
    'empty_gt_false_positives',
    'batch_independent_scores',
    'legacy_batch_iou',
    'legacy_batch_fscore_curve',
    'legacy_batch_fscore',
    'legacy_scores',
    'mask_iou_legacy',
    'fscore_curve_legacy',
    'fscore_legacy',
    'semantic_frame_counts',
    'semantic_frame_scores',
    'accumulate_semantic',
    'semantic_final_scores',
    'semantic_miou_fscore',
]
