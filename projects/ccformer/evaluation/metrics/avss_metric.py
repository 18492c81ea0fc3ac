"""AVSBench-semantic (AVSS) metric: the official per-class accumulated mIoU and F-score."""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from .. import functional as F
from ..mask_io import save_clip_masks
from .avs_metric import (
    as_clip,
    check_same_frames,
    empty_frame_metrics,
    frame_flags,
    order_results,
    sample_get,
    sample_pixel_data,
)


@METRICS.register_module()
class AVSSMetric(BaseMetric):
    """Official AVSS mIoU and F-score (``calc_color_miou_fscore`` + the final averaging of the test script).

    Per data sample it reads ``pred_sem_seg.data`` ``(T, H, W)`` class indices, ``gt_sem_seg.data`` ``(T, H, W)``
    in ``0..C-1`` and the metainfo ``frame_valid`` and ``video_id``. **Every** frame is scored, padded frames
    included (``gt_valid`` is not used: the official evaluation scores all 10 frames, e.g. all five real frames of a
    v1s val/test clip and its five padded ones). For each frame and class the IoU and F are summed and a counter is
    incremented where the class is in the prediction or the ground truth; the per-class mean (0 for a class never
    seen) is averaged over **all** C classes. See :mod:`..functional` (semantic part).

    Reported keys (percent, except the count): ``mIoU``, ``Fscore``; and, as :class:`AVSBenchMetric` does, on the
    real frames (``frame_valid`` 1) whose ground truth is all background: ``empty_fp_rate`` (share of them with any
    pixel predicted non-background), ``empty_fp_pixel_rate`` (mean share of their pixels predicted
    non-background) and ``num_empty_frames`` (their number). A per-class table (IoU, F, number of frames counted)
    is logged.

    Args:
        num_classes: C when ``dataset_meta`` has no ``classes`` (default 71); ``dataset_meta['classes']`` wins.
        force_padded_background: set the prediction of frames with ``frame_valid`` 0 to background before scoring.
            The official models zero the logits of padded frames, so their argmax is class 0; this makes the
            metric follow that rule whatever the model did.
        output_dir: if set, also write each clip's predicted masks to ``output_dir/<video_id>/<video_id>_<k>.png``
            (what mmseg's ``tools/test.py --out DIR`` asks of a metric).
        keep_results: set by mmseg's ``tools/test.py --out``; the masks written to ``output_dir`` are always kept
            (only ``True`` is accepted).
        collect_device, prefix: see :class:`mmengine.evaluator.BaseMetric`.
    """

    def __init__(
        self,
        num_classes: int = F.AVSS_NUM_CLASSES,
        force_padded_background: bool = True,
        output_dir: Optional[str] = None,
        keep_results: bool = True,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
        **kwargs,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self._num_classes = int(num_classes)
        self.force_padded_background = force_padded_background
        if not keep_results:
            raise ValueError('keep_results=False is not supported: masks written to output_dir are kept.')
        self.output_dir = output_dir  # also write the predicted masks there (mmseg test.py --out)

    @property
    def class_names(self) -> List[str]:
        """Class names from ``dataset_meta['classes']``, else ``'0'..'C-1'``."""
        classes = (self.dataset_meta or {}).get('classes')
        if classes:
            return [str(c) for c in classes]
        return [str(i) for i in range(self._num_classes)]

    @property
    def num_classes(self) -> int:
        """C: ``len(dataset_meta['classes'])`` when present, else the constructor's ``num_classes``."""
        return len(self.class_names)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store, per clip, the per-class sums of frame IoU / F and the per-class frame counts."""
        for sample in data_samples:
            if self.output_dir:
                save_clip_masks(sample, self.output_dir)
            video_id = str(sample_get(sample, 'video_id', '<unknown>'))
            pred = sample_pixel_data(sample, 'pred_sem_seg')
            gt = sample_pixel_data(sample, 'gt_sem_seg')
            if pred is None or gt is None:
                missing = 'pred_sem_seg' if pred is None else 'gt_sem_seg'
                raise KeyError(f'AVSSMetric needs {missing!r} in the data sample of video {video_id!r}.')
            pred = as_clip(pred, 'pred_sem_seg', video_id).clone()
            gt = as_clip(gt, 'gt_sem_seg', video_id)
            check_same_frames(pred, gt, 'pred_sem_seg', video_id)
            valid = frame_flags(sample, 'frame_valid', pred.shape[0], video_id)
            if self.force_padded_background:
                pred[~torch.from_numpy(valid).to(pred.device)] = 0
            try:
                counts = F.semantic_frame_counts(pred, gt, self.num_classes)
            except (ValueError, TypeError) as err:
                raise type(err)(f'video {video_id!r}: {err}') from err
            sums = F.accumulate_semantic(counts)
            # non-background pixels per real frame, for the empty-ground-truth false positives
            foreground = dict(
                gt_fg=counts['gt_area'][valid, 1:].sum(1),
                pred_fg=counts['pred_area'][valid, 1:].sum(1),
                num_pixels=counts['pred_area'][valid].sum(1),
            )
            self.results.append(
                dict(
                    video_id=video_id,
                    sample_idx=sample_get(sample, 'sample_idx'),
                    num_frames=pred.shape[0],
                    foreground=foreground,
                    **sums,
                )
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the per-clip statistics over the split and average over all classes."""
        results = order_results(results)
        if not results:
            raise ValueError('AVSSMetric got no results; was the evaluator run on an empty dataset?')
        iou_sum = np.sum([r['iou_sum'] for r in results], axis=0)
        f_sum = np.sum([r['f_sum'] for r in results], axis=0)
        count = np.sum([r['count'] for r in results], axis=0)
        final = F.semantic_final_scores(iou_sum, f_sum, count)
        self._log_table(final['class_iou'], final['class_fscore'], count)
        num_frames = sum(int(r['num_frames']) for r in results)
        print_log(
            f'AVSSMetric: {len(results)} videos, {num_frames} frames (padded frames included); mIoU and F are '
            f'means over all {self.num_classes} classes ({int((count > 0).sum())} seen).',
            logger='current',
        )
        foreground = {key: np.concatenate([r['foreground'][key] for r in results]) for key in results[0]['foreground']}
        return dict(mIoU=100 * final['miou'], Fscore=100 * final['fscore'], **empty_frame_metrics(foreground))

    def _log_table(self, class_iou: np.ndarray, class_f: np.ndarray, count: np.ndarray) -> None:
        table = PrettyTable()
        table.add_column('Class', self.class_names)
        table.add_column('IoU', np.round(100 * class_iou, 2).tolist())
        table.add_column('Fscore', np.round(100 * class_f, 2).tolist())
        table.add_column('Frames', [int(c) for c in count])
        print_log('per class results:\n' + table.get_string(), logger='current')
