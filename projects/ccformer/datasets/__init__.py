"""AVSBench datasets, clip transforms, the VGGish audio front end and the toy data generator."""
from . import transforms  # noqa: F401  (registers the transforms)
from .audio import load_logmel_pkl, load_wav, waveform_to_logmel
from .audio_conditions import (AUDIO_CONDITIONS, NEGATIVE_CONDITIONS, AudioConditionDataset, AudioSwapDataset,
                               NegativeAudioDataset, derangement)
from .avsbench import AVSBenchMS3Dataset, AVSBenchS4Dataset, AVSSDataset
from .palette import BINARY_CLASSES, BINARY_PALETTE, voc_palette
from .samplers import SeededIndex, SeededSampler
from .toy import generate_toy_avsbench

__all__ = [
    'AVSBenchS4Dataset', 'AVSBenchMS3Dataset', 'AVSSDataset', 'waveform_to_logmel', 'load_wav',
    'load_logmel_pkl', 'voc_palette', 'AUDIO_CONDITIONS', 'NEGATIVE_CONDITIONS', 'AudioConditionDataset',
    'AudioSwapDataset', 'NegativeAudioDataset', 'derangement', 'BINARY_CLASSES', 'BINARY_PALETTE',
    'generate_toy_avsbench', 'SeededIndex', 'SeededSampler'
]
