"""Cross-modal FPN segmentation head of CCFormer (Sec. III-D)."""

from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.layers.transformer import DetrTransformerDecoderLayer
from mmdet.models.layers.transformer.utils import MLP
from mmengine.model import BaseModule, ModuleList
from mmseg.models.backbones.mit import EfficientMultiheadAttention
from mmseg.models.utils import nchw_to_nlc, nlc_to_nchw
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..utils.attention import (
    PostNormCrossAttentionLayer,
    attn_cfg,
    audio_window_mask,
    build_attention,
    ffn_cfg,
    frame_distance_mask,
    per_head_mask,
)
from .layers import ConstCache, padding_mask, sine_embed_1d


class SpatialReductionAttention(EfficientMultiheadAttention):
    """PVT's spatial-reduction attention (mmseg ``EfficientMultiheadAttention``:
    the keys / values are the tokens reduced by a conv with kernel = stride =
    ``sr_ratio``, then LN) over the tokens of a whole clip, with positions.

    mmseg's forward takes one image without positions; this one reduces each
    frame's map (zero-padded to a multiple of ``sr_ratio``) and attends from
    all T*H*W tokens of a clip to all its reduced tokens, positions added as
    mmcv's ``MultiheadAttention`` does.
    """

    def __init__(
        self, embed_dims: int, num_heads: int, sr_ratio: int, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__(
            embed_dims, num_heads, attn_drop, proj_drop, batch_first=True, qkv_bias=True, sr_ratio=sr_ratio
        )

    def reduce(self, x: Tensor) -> Tensor:
        """(B*T, d, H, W) -> (B*T, d, ceil(H/r), ceil(W/r)) (zero-padded)."""
        if self.sr_ratio == 1:
            return x
        r = self.sr_ratio
        h, w = x.shape[-2:]
        x = self.sr(F.pad(x, (0, (-w) % r, 0, (-h) % r)))
        return nlc_to_nchw(self.norm(nchw_to_nlc(x)), x.shape[-2:])

    def forward(
        self,
        query: Tensor,
        x: Tensor,
        num_frames: int,
        query_pos: Tensor,
        key_pos: Tensor,
        key_padding_mask: Optional[Tensor],
    ) -> Tensor:
        """query (B, T*H*W, d) the clip's tokens of x (B*T, d, H, W); query_pos
        (1, T*H*W, d); key_pos (1, T*h*w, d) of the reduced grid;
        key_padding_mask (B, T*h*w) or None -> (B, T*H*W, d)."""
        kv = nchw_to_nlc(self.reduce(x))
        kv = kv.reshape(query.shape[0], -1, kv.shape[-1])
        return MultiheadAttention.forward(
            self, query, key=kv, value=kv, query_pos=query_pos, key_pos=key_pos, key_padding_mask=key_padding_mask
        )


class AudioSRAFusionBlock(DetrTransformerDecoderLayer):
    """One FPN level's audio-visual fusion block (after ReferFormer's
    vision-language block, with PVT's spatial-reduction attention), post-norm::

        V'   = LN(V + SRA(V + pos, R(V) + pos_R, R(V)))
        V''  = LN(V' + MHA(V' + pos, A + pos_A, A))
        V''' = LN(V'' + FFN(V''))

    mmdet's DETR decoder layer (self-attention, cross-attention, FFN); its
    forward is replaced because the self-attention's keys are the reduced
    tokens (:class:`SpatialReductionAttention`).

    V: the clip's visual tokens (B, T*H*W, d); R: PVT's reduction (conv with
    kernel = stride = sr_ratio, then LN) that shrinks only the keys/values of
    the visual self-attention, as in PVT; A: the clip's T ORIGINAL audio
    features (B, T, d). pos = 2-D sine position + sine of the frame index.

    **[choice] SRA when audio is the key.** Spatial reduction shortens a key
    sequence of H*W visual tokens; with audio as the key there are only T
    tokens per clip, nothing to reduce, and the cost is already O(T*H*W*T).
    So SRA is applied where visual tokens are the keys (the clip-wide visual
    self-attention, as ReferFormer does with its sr_ratios 8/4/2/1 for
    strides 4..32), and the audio cross-attention runs at full resolution
    against the T audio tokens (frame-indexed, padded frames masked).

    ``feedforward_channels=0`` drops the FFN and its norm (the last step).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        sr_ratio: int,
        feedforward_channels: int,
        attn_drop: float,
        proj_drop: float,
        ffn_drop: float,
        attn_type: str = 'MultiheadAttention',
    ) -> None:
        self.sr_ratio = sr_ratio
        super().__init__(
            self_attn_cfg=attn_cfg(embed_dims, num_heads, attn_drop, proj_drop),
            cross_attn_cfg=attn_cfg(embed_dims, num_heads, attn_drop, proj_drop, type=attn_type),
            ffn_cfg=ffn_cfg(embed_dims, feedforward_channels, ffn_drop) if feedforward_channels > 0 else None,
        )

    def _init_layers(self) -> None:
        cfg = dict(self.self_attn_cfg)
        cfg.pop('type'), cfg.pop('batch_first')
        self.self_attn = SpatialReductionAttention(sr_ratio=self.sr_ratio, **cfg)
        self.cross_attn = build_attention(self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = None if self.ffn_cfg is None else FFN(**self.ffn_cfg)
        self.norms = ModuleList(
            [build_norm_layer(self.norm_cfg, self.embed_dims)[1] for _ in range(3 if self.ffn is not None else 2)]
        )

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        pos_r: Tensor,
        audio: Tensor,
        audio_pos: Tensor,
        frame_mask_r: Optional[Tensor],
        audio_mask: Optional[Tensor],
        num_frames: int,
        audio_attn_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """x (B*T, d, H, W); pos (1, T*H*W, d); pos_r (1, T*h*w, d) of the
        reduced grid; audio (B, T, d); audio_pos (1, T, d); masks (B, T*h*w)
        and (B, T) or None; audio_attn_mask (T*H*W, T) or (B, T*H*W, T)
        (True = not attended; replaces audio_mask) or None. Returns
        (B*T, d, H, W)."""
        bt, d, h, w = x.shape
        b = bt // num_frames
        v = nchw_to_nlc(x).reshape(b, -1, d)
        v = self.norms[0](self.self_attn(v, x, num_frames, pos, pos_r, frame_mask_r))
        v = self.norms[1](
            self.cross_attn(
                v,
                key=audio,
                value=audio,
                query_pos=pos,
                key_pos=audio_pos,
                attn_mask=per_head_mask(audio_attn_mask, self.cross_attn.num_heads),
                key_padding_mask=None if audio_attn_mask is not None else audio_mask,
            )
        )
        if self.ffn is not None:
            v = self.norms[2](self.ffn(v))
        return nlc_to_nchw(v.reshape(bt, h * w, d), (h, w))


class AudioCrossAttnBlock(PostNormCrossAttentionLayer):
    """Light audio injection for the stride-4 FPN level, post-norm::

        V' = LN(V + MHA(V + pos, P(A) + pos_A, P(A)))

    V: the clip's stride-4 tokens (B, T*H*W, c) at the narrow width c of the
    light level; A: the clip's T ORIGINAL audio features (B, T, d), projected
    to c by P (a Linear on T tokens, negligible cost). No visual
    self-attention and no FFN: at stride 4 those cost O(T*H*W*d^2) with
    H*W = (H_in/4)^2 (the dominant FLOPs of the previous design), while this
    block is two c x c projections per pixel (c = d/4: 1/16 of one d x d
    projection) and T keys. A :class:`PostNormCrossAttentionLayer` without
    FFN, plus P.
    """

    def __init__(
        self,
        dims: int,
        audio_dims: int,
        num_heads: int,
        attn_drop: float,
        proj_drop: float,
        attn_type: str = 'MultiheadAttention',
    ) -> None:
        super().__init__(attn_cfg(dims, num_heads, attn_drop, proj_drop, type=attn_type))
        self.audio_proj = nn.Linear(audio_dims, dims)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        audio: Tensor,
        audio_pos: Tensor,
        audio_mask: Optional[Tensor],
        num_frames: int,
        audio_attn_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """x (B*T, c, H, W); pos (1, T*H*W, c); audio (B, T, d); audio_pos
        (1, T, c); audio_mask (B, T) or None; audio_attn_mask as in
        :class:`AudioSRAFusionBlock`. Returns (B*T, c, H, W)."""
        bt, c, h, w = x.shape
        v = nchw_to_nlc(x).reshape(bt // num_frames, -1, c)
        a = self.audio_proj(audio)
        v = super().forward(
            v,
            a,
            a,
            query_pos=pos,
            key_pos=audio_pos,
            cross_attn_mask=per_head_mask(audio_attn_mask, self.cross_attn.num_heads),
            key_padding_mask=None if audio_attn_mask is not None else audio_mask,
        )
        return nlc_to_nchw(v.reshape(bt, h * w, c), (h, w))


@MODELS.register_module()
class CrossModalFPNHead(BaseModule):
    """Cross-modal FPN with dynamic-convolution mask prediction.

    Pixel path (once per forward): top-down FPN (ReferFormer's
    CrossModalFPNDecoder layout) over [stride-4 EIM map, encoder outputs at
    strides 8/16/32]. Strides 32, 16, 8 (width d): ``lateral`` 1x1 conv + GN,
    :class:`AudioSRAFusionBlock` injecting the ORIGINAL audio (visual SRA,
    audio cross-attention, FFN), add the upsampled coarser output,
    ``output`` 3x3 conv + GN + ReLU.

    Stride 4 (``fine_level``; **[choice]**, the paper gives no widths):

    * ``'light'`` (default): the level runs at the narrow width
      c = ``fine_dims`` (d/4 = 64 by default). ``lateral`` 1x1 conv d -> c +
      GN; audio injection by :class:`AudioCrossAttnBlock` (cross-attention to
      the T original audio tokens only: no visual self-attention, no FFN;
      ``fine_audio=False`` drops it); the stride-8 output is projected
      d -> c by ``fine_reduce`` (1x1 conv, applied before the nearest
      upsampling, which commutes with it) and added; ``output`` 3x3 conv
      c -> c + GN + ReLU. Cost at 224 x 224, 5 frames: ~1 G multiply-adds
      against ~33 G for the ``'full'`` level (its FFN(2048) alone is 16 G).
    * ``'full'``: the stride-4 level as the others (ReferFormer's layout,
      width d, SRA with ``sr_ratios[0]``, FFN ``feedforward_channels[0]``).

    A final 3x3 conv gives the stride-4 mask feature F (B*T, mask_dim, H/4,
    W/4).

    Query path (batched over decoder stages S, frames and queries): a 3-layer
    MLP maps each of the N combined queries to the weights of a dynamic 1x1
    conv stack ``mask_dim -> dyn_channels x (dyn_layers-1) -> dyn_out``
    (CondInst / ReferFormer; no relative coordinates), applied to F: N*dyn_out
    maps per frame. An MLP of 1x1 convs over those maps (``mlp_channels``,
    ReLU) and a final fully connected 1x1 conv give K logits per pixel.

    Args:
        embed_dims (int): d.
        num_queries (int): N.
        num_classes (int): K (1 binary, 71 AVSS).
        sr_ratios (Sequence[int]): PVT reduction per level, strides 4..32
            (the stride-4 entry is used only by ``fine_level='full'``).
        num_heads, attn_drop, proj_drop, ffn_drop: fusion block settings.
        feedforward_channels (int | Sequence[int]): FFN width of the fusion
            blocks, one value for all levels or one per level (strides
            4..32; 0 = no FFN; the stride-4 entry is used only by
            ``fine_level='full'``).
        fine_level (str): 'light' | 'full' (see above).
        fine_dims (int | None): c of the light level (None: d // 4).
        fine_num_heads (int | None): heads of its audio attention (None:
            ``num_heads // 2``, at least 1).
        fine_audio (bool): audio cross-attention at the light level.
        audio_window (int | None): a visual token attends only to the audio
            of frames at most this many frames from its own (0: its own
            frame's audio). None (default): all T audio tokens of the clip.
        mask_dim (int): channels of the mask feature (8 as ReferFormer).
        dyn_channels (int): hidden channels of the dynamic convs.
        dyn_layers (int): dynamic conv layers (3).
        dyn_out_channels (int): maps per query (1 as the paper).
        controller_layers (int): layers of the kernel-predicting MLP.
        mlp_channels (Sequence[int]): hidden sizes of the MLP over the maps.
        norm_cfg (dict): norm of the FPN convs.
        attn_type (str): ``'MultiheadAttention'`` (mmcv, default) or
            ``'SDPAttention'`` for the audio cross-attentions (the visual
            spatial-reduction attention is mmseg's).
    """

    FINE_LEVELS = ('light', 'full')

    def __init__(
        self,
        embed_dims: int = 256,
        num_queries: int = 5,
        num_classes: int = 1,
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        num_heads: int = 8,
        feedforward_channels: Union[int, Sequence[int]] = 2048,
        attn_drop: float = 0.0,
        proj_drop: float = 0.1,
        ffn_drop: float = 0.1,
        fine_level: str = 'light',
        fine_dims: Optional[int] = None,
        fine_num_heads: Optional[int] = None,
        fine_audio: bool = True,
        audio_window: Optional[int] = None,
        mask_dim: int = 8,
        dyn_channels: int = 8,
        dyn_layers: int = 3,
        dyn_out_channels: int = 1,
        controller_layers: int = 3,
        mlp_channels: Sequence[int] = (64, 64),
        norm_cfg: dict = dict(type='GN', num_groups=32),
        attn_type: str = 'MultiheadAttention',
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(sr_ratios) != 4:
            raise ValueError('CrossModalFPNHead: sr_ratios needs one value per level (strides 4, 8, 16, 32).')
        if isinstance(feedforward_channels, int):
            feedforward_channels = [feedforward_channels] * 4
        if len(feedforward_channels) != 4:
            raise ValueError(
                'CrossModalFPNHead: feedforward_channels must be '
                'an int or one value per level (strides 4, 8, '
                f'16, 32), got {feedforward_channels}.'
            )
        if fine_level not in self.FINE_LEVELS:
            raise ValueError(f'CrossModalFPNHead: fine_level={fine_level!r}; use one of {self.FINE_LEVELS}.')
        if dyn_layers < 1:
            raise ValueError('CrossModalFPNHead: dyn_layers must be >= 1.')
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.audio_window = audio_window
        self.fine_level = fine_level
        light = fine_level == 'light'
        if not light and fine_dims not in (None, embed_dims):
            raise ValueError(
                f'CrossModalFPNHead: fine_dims={fine_dims} is '
                "used only by fine_level='light' (the 'full' "
                'level runs at embed_dims); drop it.'
            )
        fine = (fine_dims or embed_dims // 4) if light else embed_dims
        self.fine_dims = fine
        if norm_cfg.get('type') == 'GN' and fine % norm_cfg['num_groups']:
            raise ValueError(
                f'CrossModalFPNHead: fine_dims={fine} is not '
                'divisible by norm_cfg.num_groups='
                f'{norm_cfg["num_groups"]}; set fine_dims to a '
                'multiple of it in the seg_head config.'
            )
        widths = [fine, embed_dims, embed_dims, embed_dims]
        self.lateral_convs = ModuleList(
            [ConvModule(embed_dims, c, 1, bias=False, norm_cfg=norm_cfg, act_cfg=None) for c in widths]
        )
        self.output_convs = ModuleList(
            [ConvModule(c, c, 3, padding=1, bias=False, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU')) for c in widths]
        )
        blocks = [
            AudioSRAFusionBlock(embed_dims, num_heads, r, ffn, attn_drop, proj_drop, ffn_drop, attn_type)
            for r, ffn in zip(sr_ratios, feedforward_channels)
        ]
        if light:
            heads = fine_num_heads or max(num_heads // 2, 1)
            blocks[0] = (
                AudioCrossAttnBlock(fine, embed_dims, heads, attn_drop, proj_drop, attn_type)
                if fine_audio
                else nn.Identity()
            )
            self.fine_reduce = nn.Conv2d(embed_dims, fine, 1)
        self.fusions = ModuleList(blocks)
        self.mask_conv = nn.Conv2d(fine, mask_dim, 3, padding=1)
        chans = [mask_dim] + [dyn_channels] * (dyn_layers - 1) + [dyn_out_channels]
        self.dyn_shapes = list(zip(chans[1:], chans[:-1]))  # (out, in)
        num_params = sum(o * i + o for o, i in self.dyn_shapes)
        self.controller = MLP(embed_dims, embed_dims, num_params, controller_layers)
        mlp, c_in = [], num_queries * dyn_out_channels
        for c in mlp_channels:
            mlp += [nn.Conv2d(c_in, c, 1), nn.ReLU(inplace=True)]
            c_in = c
        self.map_mlp = nn.Sequential(*mlp)
        self.fc = nn.Conv2d(c_in, num_classes, 1)
        self._const = ConstCache()

    # ------------------------------------------------------------------ pixel
    def _pos(self, h: int, w: int, num_frames: int, dims: int, device: torch.device) -> Tensor:
        """Cached (1, T*h*w, dims): 2-D sine position + frame-index sine."""

        def build() -> Tensor:
            enc = SinePositionalEncoding(num_feats=dims // 2, normalize=True)
            p2d = enc(None, torch.empty(1, 1, h, w, device=device))
            p2d = p2d.flatten(2).transpose(1, 2)  # (1, h*w, dims)
            pt = sine_embed_1d(num_frames, dims, device)
            return (p2d + pt[:, None]).reshape(1, num_frames * h * w, -1)

        return self._const(('pos', h, w, num_frames, dims, device), build)

    def _audio_pos(self, num_frames: int, dims: int, audio: Tensor) -> Tensor:
        """Cached (1, T, dims) frame-index sine of the audio tokens."""
        pos = self._const(
            ('t', num_frames, dims, audio.device), lambda: sine_embed_1d(num_frames, dims, audio.device)[None]
        )
        return pos.to(audio.dtype)

    def forward_pixel(
        self, feats: List[Tensor], audio: Tensor, num_frames: int, frame_valid: Optional[Tensor] = None
    ) -> Tensor:
        """Mask feature from the FPN.

        Args:
            feats (list[Tensor]): 4 maps (B*T, d, H_i, W_i), strides 4..32
                (stride 4 from the EIM, the rest from the encoder).
            audio (Tensor): original projected audio (B, T, d).
            num_frames (int): T.
            frame_valid (Tensor | None): (B, T).

        Returns:
            Tensor: (B*T, mask_dim, H/4, W/4).
        """
        t = num_frames
        dtype = feats[0].dtype
        a_mask = padding_mask(frame_valid)
        y = None
        for lvl in (3, 2, 1, 0):  # top-down: stride 32 -> 4
            fusion = self.fusions[lvl]
            x = self.lateral_convs[lvl](feats[lvl])
            c, h, w = x.shape[-3:]
            window = audio_window_mask(frame_distance_mask(t, self.audio_window, [h * w], 1, x.device), a_mask)
            if isinstance(fusion, AudioSRAFusionBlock):
                r = fusion.sr_ratio
                hr, wr = -(-h // r), -(-w // r)
                x = fusion(
                    x,
                    self._pos(h, w, t, c, x.device).to(dtype),
                    self._pos(hr, wr, t, c, x.device).to(dtype),
                    audio,
                    self._audio_pos(t, c, audio),
                    padding_mask(frame_valid, hr * wr),
                    a_mask,
                    t,
                    window,
                )
            elif isinstance(fusion, AudioCrossAttnBlock):
                x = fusion(
                    x, self._pos(h, w, t, c, x.device).to(dtype), audio, self._audio_pos(t, c, audio), a_mask, t, window
                )
            if y is not None:
                if lvl == 0 and self.fine_level == 'light':
                    y = self.fine_reduce(y)
                x = x + F.interpolate(y, size=(h, w), mode='nearest')
            y = self.output_convs[lvl](x)
        return self.mask_conv(y)

    # ----------------------------------------------------------------- masks
    def forward_masks(self, mask_feat: Tensor, queries: Tensor) -> Tensor:
        """Dynamic convolutions, map MLP and final FC.

        Args:
            mask_feat (Tensor): (B*T, mask_dim, h, w).
            queries (Tensor): (S, B*T, N, d), S decoder stages.

        Returns:
            Tensor: logits (S, B*T, K, h, w).
        """
        s, bt, n, _ = queries.shape
        _, c, h, w = mask_feat.shape
        params = self.controller(queries)  # (S, B*T, N, P)
        x = mask_feat.flatten(2)  # (B*T, C, h*w)
        start = 0
        for i, (o, c_in) in enumerate(self.dyn_shapes):
            weight = params[..., start : start + o * c_in].reshape(s, bt, n, o, c_in)
            start += o * c_in
            bias = params[..., start : start + o].unsqueeze(-1)
            start += o
            if i == 0:
                x = torch.einsum('sbnoc,bcp->sbnop', weight, x.to(weight.dtype)) + bias
            else:
                x = torch.einsum('sbnoc,sbncp->sbnop', weight, x) + bias
            if i < len(self.dyn_shapes) - 1:
                x = F.relu(x)
        maps = x.reshape(s * bt, -1, h, w)  # (S*B*T, N*dyn_out, h, w)
        logits = self.fc(self.map_mlp(maps))
        return logits.reshape(s, bt, self.num_classes, h, w)
