from .avc_loss import AudioVisualCorrespondenceLoss
from .bcl_loss import BiModalContrastiveLoss, bimodal_info_nce

__all__ = ['AudioVisualCorrespondenceLoss', 'BiModalContrastiveLoss', 'bimodal_info_nce']
