from .attention import PostNormAttentionLayer, SDPAMultiheadAttention

__all__ = ['SDPAMultiheadAttention', 'PostNormAttentionLayer']
