from .dataset_epoch_hook import DatasetEpochHook
from .prediction_save_hook import AVSPredictionSaveHook
from .visualization_hook import AVSVisualizationHook, draw_clip, overlay_mask

__all__ = ['DatasetEpochHook', 'AVSVisualizationHook', 'AVSPredictionSaveHook', 'draw_clip', 'overlay_mask']
