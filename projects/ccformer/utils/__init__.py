"""Helpers shared by the package and the tools: :func:`strip_pretrained`, :func:`config_input_size`,
:func:`config_num_frames` (:mod:`.config`) and the benchmark
building blocks (:mod:`.benchmark`, imported on use: it needs torch and, to build a model, mmseg)."""

from .config import config_input_size, config_num_frames, strip_pretrained

__all__ = ['strip_pretrained', 'config_input_size', 'config_num_frames']
