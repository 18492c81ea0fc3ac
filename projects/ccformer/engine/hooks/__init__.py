from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .checkpoint_fit_hook import StrictCheckpointHook
from .iter_seed_hook import IterSeedHook
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
    'NonFiniteCheckHook',
    'IterSeedHook',
    'StrictCheckpointHook',
]
