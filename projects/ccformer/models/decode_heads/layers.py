# Copyright (c) OpenMMLab. All rights reserved.
"""Attention layers shared by the CCFormer decode head.

* :class:`MSDeformAttn`: mmcv's ``MultiScaleDeformableAttention`` with a forward
  that never synchronises host and device (mmcv's asserts on a device tensor)
  and that feeds the compiled kernel a dtype it supports under autocast.
* :class:`CCFormerEncoderLayer` / :class:`CCFormerEncoder`: mmdet's
  Deformable-DETR encoder built on :class:`MSDeformAttn`, taking precomputed
  reference points (no per-level Python loop over device shapes).
* :class:`ICILayer`: mmdet's ``DeformableDetrTransformerDecoderLayer`` with
  the dense attention of ``self_attn_cfg['type']`` and :class:`MSDeformAttn`.
* :class:`SelfAttentionLayer` / :class:`CrossSelfAttentionLayer`: mmdet's
  DETR encoder layer (SA, FFN) and Mask2Former decoder layer (CA, SA, FFN),
  post-norm, with the dense attention of their configs' ``type``.
* :class:`ITILayer`: the inter-frame temporal interaction layer (Eqs. 7-9):
  a :class:`SelfAttentionLayer` and a :class:`CrossSelfAttentionLayer`.
* :class:`ConstCache`, :func:`sine_embed_1d`, :func:`padding_mask`: helpers.
"""

import math
from typing import Callable, Dict, Hashable, Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction,
    ext_module,
    multi_scale_deformable_attn_pytorch,
)
from mmdet.models.layers.transformer import (
    DeformableDetrTransformerDecoderLayer,
    DeformableDetrTransformerEncoder,
    DeformableDetrTransformerEncoderLayer,
    DetrTransformerEncoderLayer,
    Mask2FormerTransformerDecoderLayer,
)
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.attention import attn_cfg, build_attention, ffn_cfg

# dtypes the compiled mmcv 2.1.0 ``ms_deform_attn`` CUDA kernel dispatches on
# (float32, float64, float16; checked on an H100: bf16 raises NotImplementedError);
# other dtypes run in float32.
MSDA_KERNEL_DTYPES = (torch.float32, torch.float64, torch.float16)


def _msda_kernel_forward(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    im2col_step: int,
) -> Tensor:
    """mmcv's compiled forward: (B, Lv, h, c) ... -> (B, Lq, h * c)."""
    return ext_module.ms_deform_attn_forward(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step=im2col_step
    )


def _msda_kernel_backward(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    grad_output: Tensor,
    im2col_step: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """mmcv's compiled backward -> grads of value, locations, weights."""
    grad_value = torch.zeros_like(value)
    grad_loc = torch.zeros_like(sampling_locations)
    grad_weight = torch.zeros_like(attention_weights)
    ext_module.ms_deform_attn_backward(
        value,
        spatial_shapes,
        level_start_index,
        sampling_locations,
        attention_weights,
        grad_output.contiguous(),
        grad_value,
        grad_loc,
        grad_weight,
        im2col_step=im2col_step,
    )
    return grad_value, grad_loc, grad_weight


if hasattr(torch.library, 'custom_op'):
    # The compiled kernel as a PyTorch custom op: torch.compile traces through
    # it (no graph break, so CUDA graphs cover the whole head).
    ms_deform_attn_op = torch.library.custom_op('ccformer::ms_deform_attn', mutates_args=())(_msda_kernel_forward)
    _msda_backward_op = torch.library.custom_op('ccformer::ms_deform_attn_backward', mutates_args=())(
        _msda_kernel_backward
    )

    @ms_deform_attn_op.register_fake
    def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
        bs, _, heads, channels = value.shape
        return value.new_empty(bs, sampling_locations.shape[1], heads * channels)

    @_msda_backward_op.register_fake
    def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output, im2col_step):
        return (torch.empty_like(value), torch.empty_like(sampling_locations), torch.empty_like(attention_weights))

    def _msda_setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs[:5])
        ctx.im2col_step = inputs[5]

    def _msda_backward(ctx, grad_output):
        grads = _msda_backward_op(*ctx.saved_tensors, grad_output, ctx.im2col_step)
        return grads[0], None, None, grads[1], grads[2], None

    ms_deform_attn_op.register_autograd(_msda_backward, setup_context=_msda_setup_context)
else:  # torch < 2.4: mmcv's autograd Function
    ms_deform_attn_op = MultiScaleDeformableAttnFunction.apply


def _is_compiling() -> bool:
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and hasattr(compiler, 'is_compiling') and compiler.is_compiling())


class ConstCache:
    """Cache of shape-dependent constant tensors (positions, reference points,
    level indices), keyed by shape and device.

    Built once per key, outside inference mode (so a tensor first built under
    ``torch.inference_mode`` can still be used in training) and without grad.
    Later calls do no host-to-device copy, hence no synchronisation. Under
    ``torch.compile`` a warm cache is read; a cold one is bypassed (the
    tensors are built inside the graph, not stored). Run one eager forward
    before compiling so the graph gets the cached constants.
    """

    def __init__(self) -> None:
        self._store: Dict[Hashable, Tensor] = {}

    def __call__(self, key: Hashable, build: Callable[[], Tensor]) -> Tensor:
        value = self._store.get(key)
        if value is None and _is_compiling():
            # cold cache in traced code: build in the graph and do not store
            # (a stored graph output could live in a CUDA-graph memory pool
            # that later replays overwrite)
            return build()
        if value is None:
            with torch.inference_mode(False), torch.no_grad():
                value = build()
            self._store[key] = value
        return value


def sine_embed_1d(length: int, dims: int, device: torch.device) -> Tensor:
    """Sinusoidal embedding of positions ``0..length-1``.

    Used as the temporal (frame-index) position of audio tokens and queries.

    Returns:
        Tensor: (length, dims), float32.
    """
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    idx = torch.arange(dims // 2, dtype=torch.float32, device=device)
    freq = torch.exp(-math.log(10000.0) * 2 * idx / dims)
    emb = torch.zeros(length, dims, device=device)
    emb[:, 0 : 2 * (dims // 2) : 2] = torch.sin(pos * freq)
    emb[:, 1 : 2 * (dims // 2) : 2] = torch.cos(pos * freq)
    return emb


def padding_mask(frame_valid: Optional[Tensor], repeat: int = 1) -> Optional[Tensor]:
    """Key padding mask (True = ignore) from per-frame validity.

    Args:
        frame_valid (Tensor | None): (B, T), nonzero for real frames.
        repeat (int): tokens per frame; the mask is repeated frame-major.

    Returns:
        Tensor | None: (B, T * repeat) bool. A clip with no valid frame keeps
        all its keys (attention over nothing would give NaN); its outputs are
        discarded downstream anyway.
    """
    if frame_valid is None:
        return None
    mask = ~frame_valid.bool()
    if repeat > 1:
        mask = mask.repeat_interleave(repeat, dim=1)
    return mask & ~mask.all(dim=1, keepdim=True)


class MSDeformAttn(MultiScaleDeformableAttention):
    """mmcv ``MultiScaleDeformableAttention`` without host synchronisation.

    Differences from mmcv's forward (same parameters and init, so mmcv/mmdet
    checkpoints load): ``batch_first`` only; no ``assert`` on a device tensor
    (a host sync per call); ``im2col_step`` adapted so it always divides the
    batch (mmcv's kernel rejects e.g. 80 frames with step 64); on CUDA the
    compiled kernel gets float32 when the input dtype (e.g. bf16 under
    autocast) is one it does not dispatch on, and the result is cast back;
    on CPU the PyTorch path runs in float32. On CUDA the kernel is called
    through the custom op ``ccformer::ms_deform_attn`` (same forward and
    backward kernels as mmcv's ``MultiScaleDeformableAttnFunction``) so that
    ``torch.compile`` does not break the graph there.

    Shapes: query (B, Lq, d), value (B, Lv, d), reference_points
    (B or 1, Lq, levels, 2) normalised (x, y), spatial_shapes (levels, 2)
    long (h, w) on the value's device, level_start_index (levels,).

    ``offset_normalizer`` (keyword, optional): the (w, h) of the levels as
    float (1, 1, 1, levels, 1, 2), precomputed once per input size by the
    caller (:meth:`CCFormerHead._level_meta`) to save the per-call flip and
    cast; computed from ``spatial_shapes`` when not given.
    ``spatial_shapes_list`` (keyword, optional): the same (h, w) as Python
    ints; mmcv's PyTorch path (CPU) then splits and loops over the levels
    without reading the device tensor (``.item()`` per level), so it costs
    fewer operations and ``torch.compile`` traces it without graph breaks.

    ``use_cuda_kernel`` (class attribute, default True) can be set False to
    run mmcv's PyTorch path on CUDA too (for equivalence checks).
    """

    use_cuda_kernel = True

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        identity: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        reference_points: Optional[Tensor] = None,
        spatial_shapes: Optional[Tensor] = None,
        level_start_index: Optional[Tensor] = None,
        **kwargs,
    ) -> Tensor:
        if not self.batch_first:
            raise ValueError('MSDeformAttn needs batch_first=True.')
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        bs, num_query, _ = query.shape
        num_value = value.shape[1]
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(bs, num_query, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(query).view(bs, num_query, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(bs, num_query, self.num_heads, self.num_levels, self.num_points)
        normalizer = kwargs.get('offset_normalizer')
        if normalizer is None:
            normalizer = spatial_shapes.flip(-1).to(offsets.dtype)[None, None, None, :, None, :]
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer
        if value.is_cuda and self.use_cuda_kernel:
            dtype = value.dtype if value.dtype in MSDA_KERNEL_DTYPES else torch.float32
            step = bs if bs <= self.im2col_step else math.gcd(bs, self.im2col_step)
            locations = locations.expand(bs, *locations.shape[1:])
            output = ms_deform_attn_op(
                value.to(dtype).contiguous(),
                spatial_shapes,
                level_start_index,
                locations.to(dtype).contiguous(),
                weights.to(dtype).contiguous(),
                step,
            )
        else:
            shapes = kwargs.get('spatial_shapes_list')
            output = multi_scale_deformable_attn_pytorch(
                value.float(), spatial_shapes if shapes is None else shapes, locations.float(), weights.float()
            )
        output = self.output_proj(output.to(value.dtype))
        return self.dropout(output) + identity


class CCFormerEncoderLayer(DeformableDetrTransformerEncoderLayer):
    """mmdet Deformable-DETR encoder layer on :class:`MSDeformAttn`."""

    def _init_layers(self) -> None:
        self.self_attn = MSDeformAttn(**self.self_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = ModuleList([build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(2)])


class CCFormerEncoder(DeformableDetrTransformerEncoder):
    """mmdet Deformable-DETR encoder with precomputed reference points.

    The MTM's Transformer encoder: ``num_layers`` (3) deformable
    self-attention layers over the flattened strides 8/16/32 of each frame.
    """

    def _init_layers(self) -> None:
        self.layers = ModuleList([CCFormerEncoderLayer(**self.layer_cfg) for _ in range(self.num_layers)])
        self.embed_dims = self.layers[0].embed_dims

    def forward(self, query: Tensor, query_pos: Tensor, reference_points: Tensor, **levels) -> Tensor:
        """query (B*T, L, d), query_pos (1, L, d), reference_points
        (1, L, levels, 2), ``**levels``: ``spatial_shapes``,
        ``level_start_index`` and optionally ``offset_normalizer`` and
        ``spatial_shapes_list`` (see :class:`MSDeformAttn`) -> memory
        (B*T, L, d)."""
        for layer in self.layers:
            query = layer(
                query=query, query_pos=query_pos, key_padding_mask=None, reference_points=reference_points, **levels
            )
        return query


class ICILayer(DeformableDetrTransformerDecoderLayer):
    """Intra-frame cross-modal interaction (ICI) layer.

    mmdet's Deformable-DETR decoder layer (post-norm): self-attention among
    a frame's N queries, deformable cross-attention into that frame's
    multi-scale encoder memory, FFN. Frames are in the batch dimension, so one
    call serves all B*T frames. Dense attention by ``build_attention`` (mmcv
    ``MultiheadAttention`` unless ``self_attn_cfg['type']`` says otherwise),
    deformable attention :class:`MSDeformAttn`.
    """

    def _init_layers(self) -> None:
        self.self_attn = build_attention(self.self_attn_cfg)
        self.cross_attn = MSDeformAttn(**self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = ModuleList([build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(3)])


class SelfAttentionLayer(DetrTransformerEncoderLayer):
    """mmdet's DETR encoder layer (post-norm self-attention, FFN) with the
    dense attention of ``self_attn_cfg['type']``; ``ffn_cfg=None`` drops the
    FFN and its norm (mmdet's layer always has one)."""

    def _init_layers(self) -> None:
        self.self_attn = build_attention(self.self_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = None if self.ffn_cfg is None else FFN(**self.ffn_cfg)
        self.norms = ModuleList(
            [build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(1 if self.ffn is None else 2)]
        )

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        if self.ffn is not None:
            return super().forward(query, query_pos, key_padding_mask, **kwargs)
        return self.norms[0](
            self.self_attn(
                query=query,
                key=query,
                value=query,
                query_pos=query_pos,
                key_pos=query_pos,
                key_padding_mask=key_padding_mask,
            )
        )


class CrossSelfAttentionLayer(Mask2FormerTransformerDecoderLayer):
    """mmdet's Mask2Former decoder layer (post-norm cross-attention,
    self-attention, FFN) with the dense attentions of its configs' ``type``.
    """

    def _init_layers(self) -> None:
        self.self_attn = build_attention(self.self_attn_cfg)
        self.cross_attn = build_attention(self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = ModuleList([build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(3)])


@MODELS.register_module()
class ITILayer(BaseModule):
    """Inter-frame temporal interaction (ITI) layer, post-norm.

    With Q the clip's intra-frame queries (B, T*N, d), P the clip's N
    inter-frame queries (B, N, d) and pos_* their positions::

        Q' = LN(Q + SA(Q + pos_Q)),   Q'' = LN(Q' + FFN(Q'))          (Eq. 7)
        P' = LN(P + CA(P + pos_P, Q'' + pos_Q, Q''))                  (Eq. 8)
        P'' = LN(P' + SA(P' + pos_P)), P''' = LN(P'' + FFN(P''))      (Eq. 9)

    Eq. 7 is ``intra``, a :class:`SelfAttentionLayer` (mmdet's DETR encoder
    layer); Eqs. 8-9 are ``inter``, a :class:`CrossSelfAttentionLayer`
    (mmdet's Mask2Former decoder layer: cross-attention first).

    pos_Q = the query's position embedding + the sine embedding of its frame
    index, so the clip-wide self-attention knows which frame a query is from.
    Keys of padded frames are masked. **[choice]** The paper names the
    attentions of Eqs. 7-9 only; the FFN after Eq. 7 and the 2048-wide FFNs
    are ours, chosen because they reproduce the paper's ITI parameter count.
    Sizes (d=256, 8 heads, FFN 2048): three attentions (0.79 M) + two FFNs
    (2.10 M) = 2.89 M per layer; nine layers give the paper's ~26 M
    (143.4 - 117.3 M in Table IV).

    Args:
        embed_dims (int): d.
        num_heads (int): heads of every attention.
        feedforward_channels (int): hidden size of both FFNs.
        attn_drop (float): dropout on attention weights.
        proj_drop (float): dropout after each attention.
        ffn_drop (float): dropout in the FFNs.
        intra_ffn (bool): add the FFN after Eq. 7 (default True; False drops
            1.05 M per layer).
        attn_type (str): ``'MultiheadAttention'`` (mmcv, default) or
            ``'SDPAttention'``.
    """

    def __init__(
        self,
        embed_dims: int = 256,
        num_heads: int = 8,
        feedforward_channels: int = 2048,
        attn_drop: float = 0.0,
        proj_drop: float = 0.1,
        ffn_drop: float = 0.1,
        intra_ffn: bool = True,
        attn_type: str = 'MultiheadAttention',
        norm_cfg: dict = dict(type='LN'),
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        attn = attn_cfg(embed_dims, num_heads, attn_drop, proj_drop, type=attn_type)
        ffn = ffn_cfg(embed_dims, feedforward_channels, ffn_drop)
        self.embed_dims = embed_dims
        self.intra = SelfAttentionLayer(self_attn_cfg=dict(attn), ffn_cfg=ffn if intra_ffn else None, norm_cfg=norm_cfg)
        self.inter = CrossSelfAttentionLayer(
            self_attn_cfg=dict(attn), cross_attn_cfg=dict(attn), ffn_cfg=dict(ffn), norm_cfg=norm_cfg
        )

    def forward(
        self,
        intra: Tensor,
        inter: Tensor,
        intra_pos: Tensor,
        inter_pos: Tensor,
        key_padding_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """intra (B, T*N, d), inter (B, N, d), intra_pos (B or 1, T*N, d),
        inter_pos (B or 1, N, d), key_padding_mask (B, T*N) or None ->
        updated (intra, inter) with the same shapes."""
        intra = self.intra(intra, query_pos=intra_pos, key_padding_mask=key_padding_mask)
        inter = self.inter(
            inter, key=intra, value=intra, query_pos=inter_pos, key_pos=intra_pos, key_padding_mask=key_padding_mask
        )
        return intra, inter
