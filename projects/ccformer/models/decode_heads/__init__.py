"""CCFormer decode head: Multi-query Transformer Module + segmentation head."""

from ..utils.attention import SDPAttention
from .category_bridge import CategoryBridge
from .ccformer_head import CCFormerHead
from .layers import CCFormerEncoder, CrossSelfAttentionLayer, ICILayer, ITILayer, MSDeformAttn, SelfAttentionLayer
from .mtm_decoder import MultiQueryTransformerDecoder
from .presence import AudioVisualPresence
from .query_generator import AttentionQueryGenerator
from .seg_head import CrossModalFPNHead

__all__ = [
    'CCFormerHead',
    'AudioVisualPresence',
    'CategoryBridge',
    'AttentionQueryGenerator',
    'MultiQueryTransformerDecoder',
    'CrossModalFPNHead',
    'CCFormerEncoder',
    'ICILayer',
    'ITILayer',
    'MSDeformAttn',
    'SDPAttention',
    'SelfAttentionLayer',
    'CrossSelfAttentionLayer',
]
