from .attention import (FlatFFN, PostNormAttentionLayer, SDPAttention, audio_window_mask,
                        frame_distance_mask)

__all__ = ['SDPAttention', 'FlatFFN', 'PostNormAttentionLayer', 'audio_window_mask', 'frame_distance_mask']
