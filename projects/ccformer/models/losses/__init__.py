from .bcl_loss import BiModalContrastiveLoss, bimodal_info_nce

__all__ = ['BiModalContrastiveLoss', 'bimodal_info_nce']
