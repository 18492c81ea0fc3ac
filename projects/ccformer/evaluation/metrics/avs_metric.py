"""AVSBench binary metric (S4 / MS3): legacy (official, batch-dependent) and batch-independent numbers.

See ``docs/metrics.md`` for what every reported key means and why both families exist.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .. import functional as F
from ..mask_io import save_clip_masks


def sample_get(sample: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a data sample given as a ``SegDataSample`` or as its ``to_dict()`` form."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    return sample.get(key, default) if hasattr(sample, 'get') else getattr(sample, key, default)


def sample_pixel_data(sample: Any, key: str) -> Optional[torch.Tensor]:
    """``sample.<key>.data`` (a ``PixelData`` field) or None when the field is missing."""
    field = sample_get(sample, key)
    if field is None:
        return None
    data = field.get('data') if hasattr(field, 'get') else getattr(field, 'data', None)
    if data is None:
        return None
    return torch.as_tensor(data)


def as_clip(data: torch.Tensor, name: str, video_id: str) -> torch.Tensor:
    """Return ``data`` as ``(T, H, W)``; a single frame ``(H, W)`` becomes ``(1, H, W)``."""
    if data.dim() == 2:
        data = data[None]
    if data.dim() != 3:
        raise ValueError(
            f'{name} of video {video_id!r} must be (T, H, W) (docs/design.md "Metrics input"), got '
            f'shape {tuple(data.shape)}.'
        )
    return data


def check_same_frames(pred: torch.Tensor, gt: torch.Tensor, pred_name: str, video_id: str) -> None:
    """Raise ``ValueError`` naming the video when prediction and ground truth have different frame counts."""
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(
            f'video {video_id!r}: {pred_name} has {pred.shape[0]} frames but gt_sem_seg has '
            f'{gt.shape[0]}; a clip must be predicted and labelled frame by frame (check num_frames of '
            f'the model / dataset and that the ground truth of every frame was loaded).'
        )


def frame_flags(sample: Any, key: str, num_frames: int, video_id: str) -> np.ndarray:
    """A per-frame 0/1 metainfo list (``gt_valid`` / ``frame_valid``) as a bool array; all True when absent."""
    flags = sample_get(sample, key)
    if flags is None:
        return np.ones(num_frames, dtype=bool)
    flags = np.asarray(torch.as_tensor(flags).cpu()).reshape(-1)
    if flags.shape[0] != num_frames:
        raise ValueError(
            f'metainfo {key!r} of video {video_id!r} has {flags.shape[0]} entries for '
            f'{num_frames} frames; it must have one 0/1 entry per frame.'
        )
    return flags.astype(bool)


def scored_frame_stats(sample: Any, pr_num: int = F.PR_NUM):
    """``(video_id, scored, stats)`` of one predicted clip: ``scored`` the ``(T,)`` bool ``gt_valid`` flags (all
    True when absent), ``stats`` :func:`functional.binary_frame_stats` of the scored frames of ``seg_logits``
    ``(T, H, W)`` against ``gt_sem_seg``. Errors name the video."""
    video_id = str(sample_get(sample, 'video_id', '<unknown>'))
    logits = sample_pixel_data(sample, 'seg_logits')
    gt = sample_pixel_data(sample, 'gt_sem_seg')
    if logits is None or gt is None:
        missing = 'seg_logits' if logits is None else 'gt_sem_seg'
        raise KeyError(
            f'scoring a clip needs {missing!r} in the data sample of video {video_id!r}: the '
            'model must store the (T, H, W) logits as seg_logits (docs/design.md, "The model" '
            'step 5) and the test pipeline must load the masks.'
        )
    logits = as_clip(logits, 'seg_logits', video_id)
    gt = as_clip(gt, 'gt_sem_seg', video_id)
    check_same_frames(logits, gt, 'seg_logits', video_id)
    scored = frame_flags(sample, 'gt_valid', gt.shape[0], video_id)
    keep = torch.from_numpy(scored)
    try:
        stats = F.binary_frame_stats(logits[keep.to(logits.device)], gt[keep.to(gt.device)], pr_num=pr_num)
    except (ValueError, TypeError) as err:
        raise type(err)(f'video {video_id!r}: {err}') from err
    return video_id, scored, stats


def empty_frame_metrics(stats: F.BinaryStats) -> Dict[str, float]:
    """The reported empty-ground-truth keys (percent) from per-frame ``gt_fg`` / ``pred_fg`` / ``num_pixels``.

    ``empty_fp_rate``: share of empty-ground-truth frames with any predicted foreground pixel;
    ``empty_fp_pixel_rate``: mean share of pixels predicted foreground on them; ``num_empty_frames``: their number,
    as a float (mmengine's JSON log of the metrics drops integers, which its log buffers turn into numpy integers).
    See :func:`functional.empty_gt_false_positives`.
    """
    empty = F.empty_gt_false_positives(stats)
    return dict(
        empty_fp_rate=100 * empty['fp_frame_rate'],
        empty_fp_pixel_rate=100 * empty['fp_pixel_rate'],
        num_empty_frames=float(empty['num_empty']),
    )


def order_results(results: List[dict]) -> List[dict]:
    """Results in dataset order: sorted by ``sample_idx`` when every result has one, else as collected.

    mmengine's ``collect_results`` already restores dataset order for the default sampler; the sort only makes
    this independent of the sampler when the pipeline keeps ``sample_idx`` in the metainfo.
    """
    if results and all(r.get('sample_idx') is not None for r in results):
        return sorted(results, key=lambda r: r['sample_idx'])
    return list(results)


@METRICS.register_module()
class AVSBenchMetric(BaseMetric):
    """mIoU and F-score of AVSBench S4 / MS3, in the official (legacy) and in a batch-independent form.

    Per data sample (one clip, docs/design.md "Metrics input") it reads ``seg_logits.data`` ``(T, H, W)`` logits,
    ``gt_sem_seg.data`` ``(T, H, W)`` in {0, 1} and the metainfo ``gt_valid`` (only frames with 1 are scored) and
    ``video_id``. It stores small per-frame counts (see :func:`functional.binary_frame_stats`), not the logits.

    Reported keys, all in percent (x100) except the count:

    * ``mIoU``: mean per-frame IoU over all scored frames (official per-frame rule: empty ground truth scores the
      background accuracy). Equals ``legacy_mIoU`` when every legacy batch is full.
    * ``Fscore``: mean over frames with non-empty ground truth of the F-measure (beta^2 = 0.3) of the predicted
      mask ``sigmoid > 0.5``.
    * ``maxFscore``: max over the official 255 thresholds of the F curve averaged over all non-empty frames (one
      threshold for the whole split; the legacy F with a single batch).
    * ``legacy_mIoU``, ``legacy_Fscore``: the official test loop (``mask_iou`` / ``Eval_Fmeasure`` per batch of
      ``legacy_videos_per_batch`` videos in dataset order, partial last batch included, unweighted mean over
      batches). Papers print these (mIoU x100; F as 0.xxx or x100: ``legacy_Fscore / 100`` is the 0.xxx form).
    * ``empty_fp_rate``: share of empty-ground-truth frames whose predicted mask has any foreground pixel;
      ``empty_fp_pixel_rate``: mean share of pixels predicted foreground on those frames;
      ``num_empty_frames``: how many scored frames have empty ground truth.

    Args:
        legacy_videos_per_batch: videos per official test batch (4 = official ``test.sh``; AVSegFormer used 2).
        pr_num: number of F-measure thresholds (official 255).
        output_dir: if set, also write each clip's predicted masks to ``output_dir/<video_id>/<video_id>_<k>.png``
            (what mmseg's ``tools/test.py --out DIR`` asks of a metric).
        keep_results: set by mmseg's ``tools/test.py --out``; the masks written to ``output_dir`` are always kept
            (only ``True`` is accepted).
        collect_device, prefix: see :class:`mmengine.evaluator.BaseMetric`. When used beside mmseg's
            ``IoUMetric`` in one evaluator, give one of them a ``prefix`` (both report ``mIoU``).
    """

    def __init__(
        self,
        legacy_videos_per_batch: int = 4,
        pr_num: int = F.PR_NUM,
        output_dir: Optional[str] = None,
        keep_results: bool = True,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
        **kwargs,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if int(legacy_videos_per_batch) < 1:
            raise ValueError(f'legacy_videos_per_batch must be >= 1, got {legacy_videos_per_batch}.')
        if int(pr_num) < 1:
            raise ValueError(f'pr_num must be >= 1, got {pr_num}.')
        self.legacy_videos_per_batch = int(legacy_videos_per_batch)
        self.pr_num = int(pr_num)
        if not keep_results:
            raise ValueError('keep_results=False is not supported: masks written to output_dir are kept.')
        self.output_dir = output_dir  # also write the predicted masks there (mmseg test.py --out)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store per-frame counts of every clip (one entry per sample in ``self.results``)."""
        for sample in data_samples:
            if self.output_dir:
                save_clip_masks(sample, self.output_dir)
            video_id, _, stats = scored_frame_stats(sample, self.pr_num)
            self.results.append(dict(video_id=video_id, sample_idx=sample_get(sample, 'sample_idx'), stats=stats))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute all numbers from the per-clip counts, in dataset order."""
        results = order_results(results)
        if not results:
            raise ValueError('AVSBenchMetric got no results; was the evaluator run on an empty dataset?')
        stats = F.concat_binary_stats([r['stats'] for r in results])
        video_index = np.concatenate(
            [np.full(r['stats']['gt_fg'].shape[0], i, dtype=np.int64) for i, r in enumerate(results)]
        )
        batch_ids = video_index // self.legacy_videos_per_batch
        legacy_miou, legacy_f, num_batches = F.legacy_scores(stats, batch_ids)
        scores = F.batch_independent_scores(stats)
        empty = empty_frame_metrics(stats)
        print_log(
            f'AVSBenchMetric: {len(results)} videos, {scores["num_frames"]} scored frames '
            f'({int(empty["num_empty_frames"])} with empty ground truth); legacy numbers use '
            f'{self.legacy_videos_per_batch} videos per batch ({num_batches} batches).',
            logger='current',
        )
        return dict(
            mIoU=100 * scores['miou'],
            Fscore=100 * scores['fscore'],
            maxFscore=100 * scores['max_fscore'],
            legacy_mIoU=100 * legacy_miou,
            legacy_Fscore=100 * legacy_f,
            **empty,
        )
