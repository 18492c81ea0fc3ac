"""Helpers shared by the package and the tools: config helpers (:mod:`.config`: :func:`strip_pretrained`, the
model's input size and clip length from a config), atomic file writes (:mod:`.atomic`) and the benchmark building
blocks (:mod:`.benchmark`, imported on use: it needs torch and, to build a model, mmseg)."""

from .config import (
    check_input_files,
    config_input_size,
    config_num_frames,
    config_test_pipeline,
    model_input_size,
    pipeline_input_size,
    saved_config_path,
    strip_pretrained,
)

__all__ = [
    'check_input_files',
    'strip_pretrained',
    'config_input_size',
    'config_num_frames',
    'config_test_pipeline',
    'model_input_size',
    'pipeline_input_size',
    'saved_config_path',
]
