# Copyright (c) OpenMMLab. All rights reserved.
"""CCFormer decode head: Multi-query Transformer Module + segmentation head."""
from .ccformer_head import CCFormerHead
from .layers import (CCFormerEncoder, ICILayer, ITILayer, MSDeformAttn,
                     SDPAttention)
from .presence import AudioVisualPresence
from .mtm_decoder import MultiQueryTransformerDecoder
from .query_generator import AttentionQueryGenerator
from .seg_head import CrossModalFPNHead

__all__ = [
    'CCFormerHead', 'AudioVisualPresence', 'AttentionQueryGenerator', 'MultiQueryTransformerDecoder',
    'CrossModalFPNHead', 'CCFormerEncoder', 'ICILayer', 'ITILayer',
    'MSDeformAttn', 'SDPAttention'
]
