"""Attention layers of the EIM neck and the CCFormer decode head, and their defaults (one place).

* :func:`attn_cfg` / :func:`ffn_cfg`: the default configs of every dense attention and FFN of the model (mmcv
  ``MultiheadAttention`` with ``batch_first=True``; mmcv ``FFN`` with ReLU).
* :func:`build_attention`: the attention of a config; ``type='SDPAttention'`` opts in to :class:`SDPAttention`.
* :class:`SDPAttention`: mmcv ``MultiheadAttention`` (same parameters, so checkpoints load either way) whose
  forward runs ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
* :class:`PostNormCrossAttentionLayer`: mmdet's DETR decoder layer without its self-attention,
  ``x' = LN(x + MHA(x + pos_q, y + pos_k, y)); out = LN(x' + FFN(x'))`` (the AVE / VAE blocks of the EIM).
* :func:`frame_distance_mask`, :func:`audio_window_mask`, :func:`per_head_mask`: attention masks.
"""

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers.transformer import DetrTransformerDecoderLayer
from mmengine.model import ModuleList
from mmseg.registry import MODELS
from torch import Tensor, nn

#: attention types :func:`build_attention` accepts
ATTENTION_TYPES = ('MultiheadAttention', 'SDPAttention')


def attn_cfg(
    embed_dims: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0, type: str = 'MultiheadAttention'
) -> dict:
    """Config of a dense attention (default: mmcv ``MultiheadAttention``), batch first."""
    return dict(
        type=type,
        embed_dims=embed_dims,
        num_heads=num_heads,
        attn_drop=attn_drop,
        proj_drop=proj_drop,
        batch_first=True,
    )


def ffn_cfg(embed_dims: int, feedforward_channels: int, ffn_drop: float = 0.0) -> dict:
    """Config of an mmcv ``FFN``: Linear - ReLU - Linear, residual added."""
    return dict(
        embed_dims=embed_dims,
        feedforward_channels=feedforward_channels,
        ffn_drop=ffn_drop,
        act_cfg=dict(type='ReLU', inplace=True),
    )


def build_attention(cfg: dict) -> MultiheadAttention:
    """mmcv ``MultiheadAttention`` (default) or :class:`SDPAttention` (``type='SDPAttention'``) from ``cfg``."""
    cfg = dict(cfg)
    kind = cfg.pop('type', 'MultiheadAttention')
    if kind not in ATTENTION_TYPES:
        raise ValueError(f'attention type {kind!r} is not one of {ATTENTION_TYPES}; fix the attention config')
    cfg.setdefault('batch_first', True)
    if cfg['batch_first'] is not True:
        raise ValueError('CCFormer attention layers are batch first; drop batch_first=False from the config')
    return (SDPAttention if kind == 'SDPAttention' else MultiheadAttention)(**cfg)


@MODELS.register_module()
class SDPAttention(MultiheadAttention):
    """mmcv ``MultiheadAttention`` computed by ``F.scaled_dot_product_attention``.

    Same parameters (``attn.in_proj_weight``, ``attn.in_proj_bias``, ``attn.out_proj``) and calling convention as
    mmcv's (``query_pos`` / ``key_pos`` added to query / key, ``key_pos`` taken from ``query_pos`` when missing and of
    the key's shape, the residual ``identity`` added to the output), so the two load each other's weights. Boolean
    masks follow ``nn.MultiheadAttention``: True in ``attn_mask`` (Lq, Lk) or (B * heads, Lq, Lk) and in
    ``key_padding_mask`` (B, Lk) marks a pair / key that is NOT attended. Opt in with ``type='SDPAttention'`` in an
    attention config; no host synchronisation, bf16-safe, flash / memory-efficient kernels on GPU.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        batch_first: bool = True,
        **kwargs,
    ) -> None:
        if not batch_first:
            raise ValueError('SDPAttention only supports batch_first=True; fix the attention config.')
        super().__init__(embed_dims, num_heads, attn_drop, proj_drop, batch_first=True, **kwargs)
        self.attn_drop = float(self.attn.dropout)

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        identity: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        key_pos: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        **kwargs,
    ) -> Tensor:
        """query (B, Lq, d), key / value (B, Lk, d) -> (B, Lq, d). Extra keyword arguments (reference points
        etc. passed by mmdet layers) are ignored."""
        key = query if key is None else key
        value = key if value is None else value
        identity = query if identity is None else identity
        if key_pos is None and query_pos is not None and query_pos.shape == key.shape:
            key_pos = query_pos
        q_in = query if query_pos is None else query + query_pos
        k_in = key if key_pos is None else key + key_pos
        d, heads = self.embed_dims, self.num_heads
        bsz, lq, lk = q_in.shape[0], q_in.shape[1], value.shape[1]
        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias
        q = F.linear(q_in, w[:d], b[:d]).view(bsz, lq, heads, -1).transpose(1, 2)
        k = F.linear(k_in, w[d : 2 * d], b[d : 2 * d]).view(bsz, lk, heads, -1).transpose(1, 2)
        v = F.linear(value, w[2 * d :], b[2 * d :]).view(bsz, lk, heads, -1).transpose(1, 2)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError('SDPAttention expects a boolean attn_mask (True = not attended).')
            am = attn_mask if attn_mask.dim() == 2 else attn_mask.view(bsz, heads, lq, lk)
            mask = am if mask is None else (mask | am)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if mask is None else ~mask, dropout_p=self.attn_drop if self.training else 0.0
        )
        out = self.attn.out_proj(out.transpose(1, 2).reshape(bsz, lq, d))
        return identity + self.dropout_layer(self.proj_drop(out))


class PostNormCrossAttentionLayer(DetrTransformerDecoderLayer):
    """Post-norm cross-attention + FFN: mmdet's DETR decoder layer without its self-attention (mmdet has no
    cross-attention-only layer)::

        x' = LN(x + MHA(x + pos_q, y + pos_k, y));  out = LN(x' + FFN(x'))

    ``ffn_cfg=None`` drops the FFN and its norm. Attention by :func:`build_attention`.

    Shapes: query ``(B, Lq, d)``, key / value ``(B, Lk, d)``, query_pos ``(B or 1, Lq, d)``, key_pos ``(B or 1, Lk,
    d)``, ``cross_attn_mask`` (Lq, Lk) or (B * heads, Lq, Lk) and ``key_padding_mask`` (B, Lk) bool, True = not
    attended -> ``(B, Lq, d)``.
    """

    def __init__(
        self,
        cross_attn_cfg: dict,
        ffn_cfg: Optional[dict] = None,
        norm_cfg: dict = dict(type='LN'),
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(
            self_attn_cfg=dict(batch_first=True),
            cross_attn_cfg=dict(cross_attn_cfg),
            ffn_cfg=None if ffn_cfg is None else dict(ffn_cfg),
            norm_cfg=norm_cfg,
            init_cfg=init_cfg,
        )

    def _init_layers(self) -> None:
        self.cross_attn = build_attention(self.cross_attn_cfg)
        self.embed_dims = self.cross_attn.embed_dims
        self.ffn = None if self.ffn_cfg is None else FFN(**self.ffn_cfg)
        self.norms = ModuleList(
            [build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(1 if self.ffn is None else 2)]
        )

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        key_pos: Optional[Tensor] = None,
        cross_attn_mask: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        **kwargs,
    ) -> Tensor:
        query = self.norms[0](
            self.cross_attn(
                query,
                key,
                key if value is None else value,
                query_pos=query_pos,
                key_pos=key_pos,
                attn_mask=cross_attn_mask,
                key_padding_mask=key_padding_mask,
            )
        )
        if self.ffn is None:
            return query
        return self.norms[1](self.ffn(query))


def frame_distance_mask(
    num_frames: int, window: Optional[int], query_per_frame: Sequence[int], key_per_frame: int, device: torch.device
) -> Optional[Tensor]:
    """Bool ``(Lq, Lk)``, True where a query token's frame and a key token's frame are more than ``window`` frames
    apart (not attended); None when ``window`` is None or spans the clip.

    Tokens are frame-major; the query tokens may be several groups concatenated (e.g. the AVE scales), each with
    ``query_per_frame[g]`` tokens per frame; keys have ``key_per_frame`` tokens per frame.
    """
    if window is None or window >= num_frames - 1:
        return None
    t = torch.arange(num_frames, device=device)
    far = (t[:, None] - t[None, :]).abs() > window  # (T, T)
    far = far.repeat_interleave(key_per_frame, dim=1)
    return torch.cat([far.repeat_interleave(q, dim=0) for q in query_per_frame], dim=0)


def audio_window_mask(attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> Optional[Tensor]:
    """Merge a ``(Lq, Lk)`` window mask with a ``(B, Lk)`` key padding mask into ``(B, Lq, Lk)``; a query left
    with no key (its frames' keys all padded) attends to every key instead, so no softmax runs over nothing."""
    if attn_mask is None or key_padding_mask is None:
        return attn_mask
    mask = attn_mask[None] | key_padding_mask[:, None, :]
    return mask & ~mask.all(dim=-1, keepdim=True)


def per_head_mask(mask: Optional[Tensor], num_heads: int) -> Optional[Tensor]:
    """A per-clip ``(B, Lq, Lk)`` mask as ``nn.MultiheadAttention`` takes it, ``(B * heads, Lq, Lk)``; a 2-D
    ``(Lq, Lk)`` mask or None unchanged."""
    if mask is None or mask.dim() == 2:
        return mask
    return mask.repeat_interleave(num_heads, dim=0)


def attend_clip(
    layer: nn.Module,
    query: Tensor,
    key: Tensor,
    query_pos: Optional[Tensor],
    key_pos: Optional[Tensor],
    key_valid: Optional[Tensor],
    window: Optional[Tensor],
) -> Tensor:
    """``layer`` (a :class:`PostNormCrossAttentionLayer`) with a clip's masks: ``key_valid`` (B, Lk) bool (True =
    attend) and a frame-window mask ``window`` (Lq, Lk) (True = not attended) merged by
    :func:`audio_window_mask`."""
    padding = None if key_valid is None else ~key_valid
    mask = None
    if window is not None:
        mask, padding = per_head_mask(audio_window_mask(window, padding), layer.cross_attn.num_heads), None
    return layer(query, key, key, query_pos=query_pos, key_pos=key_pos, cross_attn_mask=mask, key_padding_mask=padding)
