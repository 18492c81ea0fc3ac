from .ccformer import CCFormer
from .tta import AVSTTAModel

__all__ = ['CCFormer', 'AVSTTAModel']
