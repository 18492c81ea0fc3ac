"""Dense attention blocks built on ``torch.nn.functional.scaled_dot_product_attention``.

``SDPAMultiheadAttention`` has the parameters of ``nn.MultiheadAttention`` (q/k/v/out projections, 4 d^2 + 4 d)
but always dispatches to SDPA (flash / memory-efficient kernels on GPU, bf16-safe), takes batch-first inputs and a
*boolean key-valid mask* instead of a float mask, and never synchronises with the host.
``PostNormAttentionLayer`` is the post-norm residual block used by the EIM (ccformer.md section 2):
``x' = LN(x + MHA(x + pos_q, y + pos_k, y)); out = LN(x' + FFN(x'))``.
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SDPAMultiheadAttention(nn.Module):
    """Multi-head attention via SDPA.

    Args:
        embed_dims (int): d. num_heads (int): heads (d % heads == 0). dropout (float): attention dropout.

    Shapes:
        query ``(B, Lq, d)``, key/value ``(B, Lk, d)``, key_valid ``(B, Lk)`` bool (True = attend) or None
        -> ``(B, Lq, d)``. Every query row must have at least one valid key.
    """

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} must be divisible by num_heads {num_heads}')
        self.embed_dims, self.num_heads, self.dropout = embed_dims, num_heads, dropout
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)       # (B, h, L, d/h)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_valid: Optional[Tensor] = None) -> Tensor:
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        mask = None if key_valid is None else key_valid[:, None, None, :]   # (B, 1, 1, Lk) bool
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class PostNormAttentionLayer(nn.Module):
    """Post-norm residual (cross-)attention + FFN layer (the AVE / VAE blocks of the EIM).

    Args:
        embed_dims (int): d. num_heads (int): heads. ffn_dims (int): FFN hidden width.
        dropout (float): dropout in attention and FFN.

    Shapes:
        query ``(B, Lq, d)``, key_value ``(B, Lk, d)``, query_pos ``(B or 1, Lq, d)``, key_pos ``(B or 1, Lk, d)``,
        key_valid ``(B, Lk)`` -> ``(B, Lq, d)``.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, ffn_dims: int = 2048,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = SDPAMultiheadAttention(embed_dims, num_heads, dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, ffn_dims), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_dims, embed_dims))
        self.norm2 = nn.LayerNorm(embed_dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, key_value: Tensor, query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None, key_valid: Optional[Tensor] = None) -> Tensor:
        q = query if query_pos is None else query + query_pos
        k = key_value if key_pos is None else key_value + key_pos
        x = self.norm1(query + self.drop(self.attn(q, k, key_value, key_valid)))
        return self.norm2(x + self.drop(self.ffn(x)))
