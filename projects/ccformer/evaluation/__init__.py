"""Evaluation: AVSBench metrics as plain functions (:mod:`.functional`) and as mmseg ``METRICS``."""
from . import functional  # noqa: F401
from .metrics import AVSBenchMetric, AVSSMetric

__all__ = ['functional', 'AVSBenchMetric', 'AVSSMetric']
