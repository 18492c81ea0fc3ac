"""Helpers shared by the package and the tools: :func:`strip_pretrained` (:mod:`.config`) and the benchmark
building blocks (:mod:`.benchmark`, imported on use: it needs torch and, to build a model, mmseg)."""

from .config import strip_pretrained

__all__ = ['strip_pretrained']
