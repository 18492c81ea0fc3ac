from .prediction_save_hook import AVSPredictionSaveHook
from .visualization_hook import AVSVisualizationHook, draw_clip, overlay_mask

__all__ = ['AVSVisualizationHook', 'AVSPredictionSaveHook', 'draw_clip', 'overlay_mask']
