from .attention import (
    PostNormCrossAttentionLayer,
    SDPAttention,
    attn_cfg,
    audio_window_mask,
    build_attention,
    ffn_cfg,
    frame_distance_mask,
    per_head_mask,
)
from .eim_output import EIMOutput
from .frames import frame_flags
from .head_output import HeadOutput
from .key_conversion import convert_ccformer_keys, to_current_name, to_reference_name

__all__ = [
    'SDPAttention',
    'PostNormCrossAttentionLayer',
    'attn_cfg',
    'ffn_cfg',
    'build_attention',
    'audio_window_mask',
    'frame_distance_mask',
    'per_head_mask',
    'EIMOutput',
    'HeadOutput',
    'frame_flags',
    'convert_ccformer_keys',
    'to_current_name',
    'to_reference_name',
]
