# Copyright (c) OpenMMLab. All rights reserved.
"""Cross-modal FPN segmentation head of CCFormer (Sec. III-D)."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.layers.transformer.utils import MLP
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from mmseg.registry import MODELS
from .layers import ConstCache, SDPAttention, padding_mask, sine_embed_1d


class AudioSRAFusionBlock(BaseModule):
    """One FPN level's audio-visual fusion block (after ReferFormer's
    vision-language block, with PVT's spatial-reduction attention), post-norm::

        V'   = LN(V + SRA(V + pos, R(V) + pos_R, R(V)))
        V''  = LN(V' + MHA(V' + pos, A + pos_A, A))
        V''' = LN(V'' + FFN(V''))

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
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int,
                 feedforward_channels: int, attn_drop: float,
                 proj_drop: float, ffn_drop: float) -> None:
        super().__init__()
        attn = dict(embed_dims=embed_dims, num_heads=num_heads,
                    attn_drop=attn_drop, proj_drop=proj_drop)
        self.sr_ratio = sr_ratio
        self.self_attn = SDPAttention(**attn)
        self.cross_attn = SDPAttention(**attn)
        self.ffn = FFN(embed_dims=embed_dims,
                       feedforward_channels=feedforward_channels,
                       ffn_drop=ffn_drop,
                       act_cfg=dict(type='ReLU', inplace=True))
        self.norms = ModuleList([
            build_norm_layer(dict(type='LN'), embed_dims)[1]
            for _ in range(3)
        ])
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, sr_ratio)
            self.sr_norm = build_norm_layer(dict(type='LN'), embed_dims)[1]

    def reduce(self, x: Tensor) -> Tensor:
        """(B*T, d, H, W) -> (B*T, d, ceil(H/r), ceil(W/r)) (zero-padded)."""
        if self.sr_ratio == 1:
            return x
        r = self.sr_ratio
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % r, 0, (-h) % r))
        x = self.sr(x)
        return self.sr_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: Tensor, pos: Tensor, pos_r: Tensor, audio: Tensor,
                audio_pos: Tensor, frame_mask_r: Optional[Tensor],
                audio_mask: Optional[Tensor], num_frames: int) -> Tensor:
        """x (B*T, d, H, W); pos (1, T*H*W, d); pos_r (1, T*h*w, d) of the
        reduced grid; audio (B, T, d); audio_pos (1, T, d); masks (B, T*h*w)
        and (B, T) or None. Returns (B*T, d, H, W)."""
        bt, d, h, w = x.shape
        b = bt // num_frames
        kv = self.reduce(x).flatten(2).transpose(1, 2).reshape(b, -1, d)
        v = x.flatten(2).transpose(1, 2).reshape(b, -1, d)
        v = self.norms[0](self.self_attn(
            v, key=kv, value=kv, query_pos=pos, key_pos=pos_r,
            key_padding_mask=frame_mask_r))
        v = self.norms[1](self.cross_attn(
            v, key=audio, value=audio, query_pos=pos, key_pos=audio_pos,
            key_padding_mask=audio_mask))
        v = self.norms[2](self.ffn(v))
        return v.reshape(bt, h * w, d).transpose(1, 2).reshape(bt, d, h, w)


@MODELS.register_module()
class CrossModalFPNHead(BaseModule):
    """Cross-modal FPN with dynamic-convolution mask prediction.

    Pixel path (once per forward): top-down FPN (ReferFormer's
    CrossModalFPNDecoder layout) over [stride-4 EIM map, encoder outputs at
    strides 8/16/32]. Per level, coarse to fine: ``lateral`` 1x1 conv + GN,
    :class:`AudioSRAFusionBlock` injecting the ORIGINAL audio, add the
    upsampled coarser output, ``output`` 3x3 conv + GN + ReLU. A final 3x3
    conv gives the stride-4 mask feature F (B*T, mask_dim, H/4, W/4).

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
        sr_ratios (Sequence[int]): PVT reduction per level, strides 4..32.
        num_heads, feedforward_channels, attn_drop, proj_drop, ffn_drop:
            fusion block sizes.
        mask_dim (int): channels of the mask feature (8 as ReferFormer).
        dyn_channels (int): hidden channels of the dynamic convs.
        dyn_layers (int): dynamic conv layers (3).
        dyn_out_channels (int): maps per query (1 as the paper).
        controller_layers (int): layers of the kernel-predicting MLP.
        mlp_channels (Sequence[int]): hidden sizes of the MLP over the maps.
        norm_cfg (dict): norm of the FPN convs.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_queries: int = 5,
                 num_classes: int = 1,
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.1,
                 ffn_drop: float = 0.1,
                 mask_dim: int = 8,
                 dyn_channels: int = 8,
                 dyn_layers: int = 3,
                 dyn_out_channels: int = 1,
                 controller_layers: int = 3,
                 mlp_channels: Sequence[int] = (64, 64),
                 norm_cfg: dict = dict(type='GN', num_groups=32),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(sr_ratios) != 4:
            raise ValueError('CrossModalFPNHead: sr_ratios needs one value '
                             'per level (strides 4, 8, 16, 32).')
        if dyn_layers < 1:
            raise ValueError('CrossModalFPNHead: dyn_layers must be >= 1.')
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.lateral_convs = ModuleList([
            ConvModule(embed_dims, embed_dims, 1, bias=False,
                       norm_cfg=norm_cfg, act_cfg=None) for _ in range(4)
        ])
        self.output_convs = ModuleList([
            ConvModule(embed_dims, embed_dims, 3, padding=1, bias=False,
                       norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
            for _ in range(4)
        ])
        self.fusions = ModuleList([
            AudioSRAFusionBlock(embed_dims, num_heads, r,
                                feedforward_channels, attn_drop, proj_drop,
                                ffn_drop) for r in sr_ratios
        ])
        self.mask_conv = nn.Conv2d(embed_dims, mask_dim, 3, padding=1)
        chans = [mask_dim] + [dyn_channels] * (dyn_layers - 1) + \
            [dyn_out_channels]
        self.dyn_shapes = list(zip(chans[1:], chans[:-1]))  # (out, in)
        num_params = sum(o * i + o for o, i in self.dyn_shapes)
        self.controller = MLP(embed_dims, embed_dims, num_params,
                              controller_layers)
        mlp, c_in = [], num_queries * dyn_out_channels
        for c in mlp_channels:
            mlp += [nn.Conv2d(c_in, c, 1), nn.ReLU(inplace=True)]
            c_in = c
        self.map_mlp = nn.Sequential(*mlp)
        self.fc = nn.Conv2d(c_in, num_classes, 1)
        self.pos_enc = SinePositionalEncoding(num_feats=embed_dims // 2,
                                              normalize=True)
        self._const = ConstCache()

    # ------------------------------------------------------------------ pixel
    def _pos(self, h: int, w: int, num_frames: int,
             device: torch.device) -> Tensor:
        """Cached (1, T*h*w, d): 2-D sine position + frame-index sine."""

        def build() -> Tensor:
            p2d = self.pos_enc(None, torch.empty(1, 1, h, w, device=device))
            p2d = p2d.flatten(2).transpose(1, 2)  # (1, h*w, d)
            pt = sine_embed_1d(num_frames, self.embed_dims, device)
            return (p2d + pt[:, None]).reshape(1, num_frames * h * w, -1)

        return self._const(('pos', h, w, num_frames, device), build)

    def forward_pixel(self, feats: List[Tensor], audio: Tensor,
                      num_frames: int,
                      frame_valid: Optional[Tensor] = None) -> Tensor:
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
        a_pos = self._const(('t', t, audio.device),
                            lambda: sine_embed_1d(t, self.embed_dims,
                                                  audio.device))
        a_pos = a_pos.to(audio.dtype)[None]
        a_mask = padding_mask(frame_valid)
        y = None
        for lvl in (3, 2, 1, 0):  # top-down: stride 32 -> 4
            fusion = self.fusions[lvl]
            x = self.lateral_convs[lvl](feats[lvl])
            h, w = x.shape[-2:]
            r = fusion.sr_ratio
            hr, wr = -(-h // r), -(-w // r)
            pos = self._pos(h, w, t, x.device).to(dtype)
            pos_r = self._pos(hr, wr, t, x.device).to(dtype)
            x = fusion(x, pos, pos_r, audio, a_pos,
                       padding_mask(frame_valid, hr * wr), a_mask, t)
            if y is not None:
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
            weight = params[..., start:start + o * c_in].reshape(
                s, bt, n, o, c_in)
            start += o * c_in
            bias = params[..., start:start + o].unsqueeze(-1)
            start += o
            if i == 0:
                x = torch.einsum('sbnoc,bcp->sbnop', weight, x.to(
                    weight.dtype)) + bias
            else:
                x = torch.einsum('sbnoc,sbncp->sbnop', weight, x) + bias
            if i < len(self.dyn_shapes) - 1:
                x = F.relu(x)
        maps = x.reshape(s * bt, -1, h, w)  # (S*B*T, N*dyn_out, h, w)
        logits = self.fc(self.map_mlp(maps))
        return logits.reshape(s, bt, self.num_classes, h, w)
