from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .checkpoint_fit_hook import StrictCheckpointHook
from .iter_seed_hook import IterSeedHook
from .noise_gate_check_hook import NoiseGateCheckHook, noise_masked_frames
from .non_finite_hook import NonFiniteCheckHook
from .prediction_save_hook import AVSPredictionSaveHook
from .visualization_hook import AVSVisualizationHook, draw_clip, overlay_mask

__all__ = [
    'AtomicCheckpointHook',
    'AtomicLocalBackend',
    'AVSVisualizationHook',
    'AVSPredictionSaveHook',
    'draw_clip',
    'overlay_mask',
    'NoiseGateCheckHook',
    'noise_masked_frames',
    'NonFiniteCheckHook',
    'IterSeedHook',
    'StrictCheckpointHook',
]
