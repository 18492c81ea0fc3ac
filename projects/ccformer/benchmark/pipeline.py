"""Throughput of a config's data pipeline in one process, as one data-loader worker runs it (clips/s).

The model needs ``clips/s per worker x num_workers`` >= its training clips/s for data loading to keep up
(``tools/analysis_tools/benchmark_data.py``).
"""

import statistics
import time
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from .. import datasets  # noqa: F401  (registers the datasets and transforms the pipeline names)


def pipeline_throughput(
    cfg: Config, split: str = 'train', data_root: Optional[str] = None, clips: int = 50, warmup: int = 3
) -> Dict[str, Any]:
    """Build ``<split>_dataloader.dataset`` of ``cfg`` and time its pipeline (loading frames, masks and audio,
    augmentation, packing) on ``clips`` samples after ``warmup`` untimed ones, cycling over the dataset.

    Returns:
        dict: ``split``, ``data_root``, ``clips``, ``frames_per_clip``, ``frame_shape``, ``median_s_per_clip``,
        ``mean_s_per_clip``, ``clips_per_s_per_worker``, ``frames_per_s_per_worker``.

    Raises:
        ValueError: ``clips`` < 1. An empty split or a missing file fails when the dataset is built, naming it.
    """
    if clips < 1 or warmup < 0:
        raise ValueError(f'benchmark_data: --clips must be >= 1 and --warmup >= 0, got {clips} and {warmup}')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    ds_cfg = cfg[f'{split}_dataloader'].dataset
    if data_root:
        ds_cfg.data_root = data_root
    dataset = DATASETS.build(ds_cfg)
    for i in range(warmup):
        dataset[i % len(dataset)]
    times = []
    for i in range(clips):
        start = time.perf_counter()
        sample = dataset[(warmup + i) % len(dataset)]
        times.append(time.perf_counter() - start)
    frames = int(sample['inputs'].shape[0])
    median = statistics.median(times)
    return dict(
        split=split,
        data_root=ds_cfg.get('data_root'),
        clips=clips,
        frames_per_clip=frames,
        frame_shape=list(sample['inputs'].shape[-2:]),
        median_s_per_clip=median,
        mean_s_per_clip=statistics.fmean(times),
        clips_per_s_per_worker=1.0 / median,
        frames_per_s_per_worker=frames / median,
    )
