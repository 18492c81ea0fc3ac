"""Dense attention blocks shared by the EIM neck and the CCFormer decode head.

* :class:`SDPAttention`: multi-head attention on ``torch.nn.functional.scaled_dot_product_attention`` (flash /
  memory-efficient kernels on GPU, bf16-safe, no host synchronisation) with the calling convention of mmcv's
  ``MultiheadAttention`` (``query_pos``/``key_pos`` added to query/key, residual ``identity`` added to the output),
  so it drops into mmdet's DETR layers; parameters in the layout of ``nn.MultiheadAttention``.
* :class:`FlatFFN`: mmcv's ``FFN`` on 2-D token rows (fewer dispatched ops, same keys and result).
* :class:`PostNormAttentionLayer`: the post-norm residual block of the EIM (ccformer.md section 2):
  ``x' = LN(x + MHA(x + pos_q, y + pos_k, y)); out = LN(x' + FFN(x'))``.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmseg.registry import MODELS


class FlatFFN(FFN):
    """mmcv ``FFN`` applied to the tokens as rows of a 2-D (N, d) matrix.

    Same parameters, state-dict keys and result as mmcv's ``FFN``; a 2-D
    ``nn.Linear`` dispatches ``addmm`` directly, so one call issues 8 ATen
    operations instead of 10 (no flatten/unflatten views around each
    Linear). x (..., d) -> (..., d).
    """

    def forward(self, x: Tensor, identity: Optional[Tensor] = None) -> Tensor:
        out = self.gamma2(self.layers(x.reshape(-1, x.shape[-1])).view(
            x.shape))
        if not self.add_identity:
            return self.dropout_layer(out)
        return (x if identity is None else identity) + self.dropout_layer(out)


@MODELS.register_module()
class SDPAttention(BaseModule):
    """Multi-head attention on ``F.scaled_dot_product_attention``.

    Call convention of mmcv's ``MultiheadAttention`` with
    ``batch_first=True`` (except that ``key_pos`` is not inferred): ``out = identity + proj_drop(MHA(q + q_pos,
    k + k_pos, v))``. Boolean masks follow ``nn.MultiheadAttention``: True in
    ``attn_mask`` (Lq, Lk) or (B, Lq, Lk) and ``key_padding_mask`` (B, Lk)
    marks a pair / key that is NOT attended.

    Args:
        embed_dims (int): channels d.
        num_heads (int): heads; d must be divisible by it.
        attn_drop (float): dropout on attention weights (training only).
        proj_drop (float): dropout on the output projection.
        batch_first (bool): must be True (kept for mmdet config compatibility).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0,
                 batch_first: bool = True,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if not batch_first:
            raise ValueError('SDPAttention only supports batch_first=True; '
                             'fix the attention config.')
        if embed_dims % num_heads:
            raise ValueError(f'SDPAttention: embed_dims {embed_dims} is not '
                             f'divisible by num_heads {num_heads}.')
        if 'dropout' in kwargs:  # mmcv's deprecated name for attn_drop
            attn_drop = kwargs.pop('dropout')
        if kwargs:
            raise TypeError(f'SDPAttention got unknown args {sorted(kwargs)}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.batch_first = True
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims,
                                                       embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Attend ``query`` (B, Lq, d) to ``key``/``value`` (B, Lk, d).

        Positional tensors may be broadcastable (e.g. (1, L, d)). Unlike
        mmcv, ``key_pos`` is never inferred from ``query_pos``: pass it (for
        self-attention ``key_pos=query_pos``, as mmdet's layers do; then q and
        k share one input and one GEMM). Extra keyword arguments (reference
        points etc. passed by mmdet layers) are ignored. Returns (B, Lq, d).
        """
        if key is None:
            key = query
        if value is None:
            value = key
        if identity is None:
            identity = query
        q_in = query if query_pos is None else query + query_pos
        fused_qk = key is query and key_pos is query_pos
        k_in = q_in if fused_qk else (key if key_pos is None else key +
                                      key_pos)
        d, heads = self.embed_dims, self.num_heads
        bsz, lq, lk = q_in.shape[0], q_in.shape[1], value.shape[1]
        if fused_qk:  # self-attention: one GEMM for q and k
            qk = self._proj(q_in, 0, 2 * d).view(bsz, lq, 2, heads, -1)
            q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q = self._proj(q_in, 0, d).view(bsz, lq, heads, -1).transpose(
                1, 2)
            k = self._proj(k_in, d, 2 * d).view(bsz, lk, heads,
                                                -1).transpose(1, 2)
        v = self._proj(value, 2 * d, 3 * d).view(bsz, lk, heads,
                                                 -1).transpose(1, 2)
        mask = None
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError('SDPAttention expects a boolean attn_mask '
                                '(True = not attended).')
            am = attn_mask if attn_mask.dim() == 2 else attn_mask[:, None]
            mask = am if mask is None else (mask | am)
        if mask is not None:
            mask = ~mask
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0)
        out = torch.addmm(self.out_proj.bias,
                          out.transpose(1, 2).reshape(bsz * lq, d),
                          self.out_proj.weight.t()).view(bsz, lq, d)
        return identity + self.proj_drop(out)

    def _proj(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of the input projection on the tokens of
        ``x`` (B, L, d) -> (B*L, stop - start). A 2-D ``addmm`` (bias
        fused), which dispatches fewer operations than ``F.linear`` on a
        3-D input (no flatten/unflatten views)."""
        w, b = self.in_proj_weight, self.in_proj_bias
        return torch.addmm(b[start:stop], x.reshape(-1, x.shape[-1]),
                           w[start:stop].t())


class PostNormAttentionLayer(nn.Module):
    """Post-norm residual (cross-)attention + FFN layer (the AVE / VAE blocks of the EIM).

    Args:
        embed_dims (int): d. num_heads (int): heads. ffn_dims (int): FFN hidden width.
        dropout (float): dropout in attention and FFN.

    Shapes:
        query ``(B, Lq, d)``, key_value ``(B, Lk, d)``, query_pos ``(B or 1, Lq, d)``, key_pos ``(B or 1, Lk, d)``,
        key_valid ``(B, Lk)`` bool (True = attend; every query needs one valid key) -> ``(B, Lq, d)``.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, ffn_dims: int = 2048,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = SDPAttention(embed_dims, num_heads, attn_drop=dropout, proj_drop=dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.ffn = FlatFFN(embed_dims, ffn_dims, ffn_drop=dropout)
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, key_value: Tensor, query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None, key_valid: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """``attn_mask`` (Lq, Lk) or (B, Lq, Lk) bool, True = not attended (see :func:`audio_window_mask`)."""
        padding = None if key_valid is None else ~key_valid
        if attn_mask is not None:
            attn_mask, padding = audio_window_mask(attn_mask, padding), None
        x = self.norm1(self.attn(query, key_value, key_value, query_pos=query_pos, key_pos=key_pos,
                                 attn_mask=attn_mask, key_padding_mask=padding))
        return self.norm2(self.ffn(x))


def frame_distance_mask(num_frames: int, window: Optional[int], query_per_frame: Sequence[int],
                        key_per_frame: int, device: torch.device) -> Optional[Tensor]:
    """Bool ``(Lq, Lk)``, True where a query token's frame and a key token's frame are more than ``window`` frames
    apart (not attended); None when ``window`` is None or spans the clip.

    Tokens are frame-major; the query tokens may be several groups concatenated (e.g. the AVE scales), each with
    ``query_per_frame[g]`` tokens per frame; keys have ``key_per_frame`` tokens per frame.
    """
    if window is None or window >= num_frames - 1:
        return None
    t = torch.arange(num_frames, device=device)
    far = (t[:, None] - t[None, :]).abs() > window                      # (T, T)
    far = far.repeat_interleave(key_per_frame, dim=1)
    return torch.cat([far.repeat_interleave(q, dim=0) for q in query_per_frame], dim=0)


def audio_window_mask(attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> Optional[Tensor]:
    """Merge a ``(Lq, Lk)`` window mask with a ``(B, Lk)`` key padding mask into ``(B, Lq, Lk)``; a query left
    with no key (its frames' keys all padded) attends to every key instead, so no softmax runs over nothing."""
    if attn_mask is None or key_padding_mask is None:
        return attn_mask
    mask = attn_mask[None] | key_padding_mask[:, None, :]
    return mask & ~mask.all(dim=-1, keepdim=True)
