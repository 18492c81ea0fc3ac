from .timm_backbone import TimmPyramidBackbone
from .vggish import VGGish

__all__ = ['VGGish', 'TimmPyramidBackbone']
