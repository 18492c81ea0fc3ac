"""AVSBench datasets, clip transforms, the VGGish audio front end and the toy data generator.

The datasets and transforms need the OpenMMLab stack; without it (``projects.ccformer.OPENMMLAB_MISSING``) only the
audio front end, the sound bank, the palettes and the toy generator are imported.
"""

from .. import OPENMMLAB_MISSING
from .audio import load_logmel_pkl, load_wav, waveform_to_logmel
from .palette import BINARY_CLASSES, BINARY_PALETTE, voc_palette
from .sound_bank import SoundBank
from .toy import generate_toy_avsbench

if OPENMMLAB_MISSING is None:
    from . import transforms  # noqa: F401  (registers the transforms)
    from .audio_conditions import (
        AUDIO_CONDITIONS,
        NEGATIVE_CONDITIONS,
        AudioConditionDataset,
        AudioSwapDataset,
        NegativeAudioDataset,
        derangement,
    )
    from .avsbench import AVSBenchMS3Dataset, AVSBenchS4Dataset, AVSSDataset
    from .samplers import SeededIndex, SeededSampler

__all__ = [
    'AVSBenchS4Dataset',
    'AVSBenchMS3Dataset',
    'AVSSDataset',
    'waveform_to_logmel',
    'load_wav',
    'load_logmel_pkl',
    'voc_palette',
    'AUDIO_CONDITIONS',
    'NEGATIVE_CONDITIONS',
    'AudioConditionDataset',
    'AudioSwapDataset',
    'NegativeAudioDataset',
    'derangement',
    'BINARY_CLASSES',
    'BINARY_PALETTE',
    'generate_toy_avsbench',
    'SoundBank',
    'SeededIndex',
    'SeededSampler',
]
