"""Evaluation: AVSBench metrics as plain functions (:mod:`.functional`) and as mmseg ``METRICS``; predicted
masks written as PNG files (:mod:`.mask_io`)."""

from . import functional  # noqa: F401
from .mask_io import save_clip_masks
from .metrics import AVSBenchMetric, AVSSMetric

__all__ = ['functional', 'save_clip_masks', 'AVSBenchMetric', 'AVSSMetric']
