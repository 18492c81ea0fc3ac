from .attention import FlatFFN, PostNormAttentionLayer, SDPAttention

__all__ = ['SDPAttention', 'FlatFFN', 'PostNormAttentionLayer']
