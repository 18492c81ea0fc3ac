"""Early Integration Module (EIM): bilateral, multi-scale, iterative audio-visual fusion (ccformer.md section 2).

Paper: Gong et al., "Complementary and Contrastive Learning for Audio-Visual Segmentation", TMM 2025, Sec. III-B,
Fig. 2. The equations are reconstructed from the prose (ccformer.md); the choices made where it is open:

* **[choice] clip-wide attention**: queries and keys span all T frames of a clip (not one frame); a learned temporal
  position embedding ``P_t`` is added to the audio tokens and, so that a token knows its frame, to the visual tokens
  used as queries (AVE) or keys (VAE). Values never carry positions (DETR convention).
* **[choice] parallel**: AVE and VAE both read the *original* (projected) features of the current iteration, so
  neither waits for the other ("parallel, bilateral").
* **[choice] shared weights** (``share_weights=True``): one AVE layer and one VAE layer are applied at every scale
  (and iteration). This is what makes the module's size match the paper's delta (143.4 - 140.8 = 2.6 M): two
  post-norm layers of d = 256 with an FFN of 2048 hold 2 x 1.315 M = 2.63 M parameters. Per-scale weights
  (``share_weights=False``) would hold 1.315 M per AVE / VAE scale.
* **[choice] scales**: ``ave_scales`` / ``vae_scales`` select the scales AVE enhances and VAE iterates over
  (fine to coarse). Default: strides 8, 16, 32 (the scales the MTM's deformable encoder reads), which matches the
  paper's FLOPs delta of the EIM (86.3 - 80.8 = 5.5 G for a 5-frame 224 x 224 clip; this choice: 6.8 G). Including
  the stride-4 map (``(0, 1, 2, 3)``) costs 27 G, because the AVE projections and FFN then run on 15,680 more
  tokens per clip. With shared weights the tokens of all AVE scales go through one attention call (exactly
  equivalent, since each visual query attends to the same audio keys independently), so there is no Python loop
  over scales for AVE. VAE is sequential over the scales by definition (``A_i`` depends on ``A_{i-1}``); each of
  its steps has only T queries per clip.

Equations (the paper's numbered equations were lost in our copy; per clip, d = 256; ``V_i`` visual tokens of scale i
for all T frames, ``A_0`` projected VGGish audio):

* AVE:  ``V'_i = LN(V_i + MHA(V_i + P, A_0 + P, A_0)); V''_i = LN(V'_i + FFN(V'_i))``
* VAE:  ``A'_i = LN(A_{i-1} + MHA(A_{i-1} + P, V_i + P, V_i)); A_i = LN(A'_i + FFN(A'_i))``

Both are :class:`~projects.ccformer.models.utils.attention.PostNormCrossAttentionLayer` (mmdet's DETR decoder layer
without self-attention; mmcv ``MultiheadAttention`` and ``FFN``).

The 1 x 1 conv + GroupNorm projections of the four visual scales to d and the audio ``Linear(128, d)`` belong to the
neck but are kept in the "w/o EIM" ablation (``use_eim=False``), which outputs the projections only.
"""

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ..utils import EIMOutput, frame_distance_mask
from ..utils.attention import PostNormCrossAttentionLayer, attend_clip, attn_cfg, ffn_cfg


def maps_to_clip_tokens(x: Tensor, num_frames: int) -> Tensor:
    """(B*T, d, H, W) -> (B, T*H*W, d), frame-major."""
    bt, d, h, w = x.shape
    return x.flatten(2).transpose(1, 2).reshape(bt // num_frames, num_frames * h * w, d)


def clip_tokens_to_maps(x: Tensor, num_frames: int, hw: Sequence[int]) -> Tensor:
    """(B, T*H*W, d) -> (B*T, d, H, W)."""
    b, _, d = x.shape
    h, w = hw
    return x.reshape(b * num_frames, h * w, d).transpose(1, 2).reshape(b * num_frames, d, h, w)


@MODELS.register_module()
class EIM(BaseModule):
    """Early Integration Module: AVE (audio -> vision) and VAE (vision -> audio), see module docstring.

    Args:
        in_channels (Sequence[int]): channels of the 4 backbone scales (strides 4, 8, 16, 32).
        audio_channels (int): audio embedding width (VGGish: 128).
        embed_dims (int): d. Default 256.
        num_heads (int): attention heads. Default 8.
        attn_type (str): ``'MultiheadAttention'`` (mmcv, default) or ``'SDPAttention'``.
        ffn_dims (int): FFN hidden width. Default 2048.
        dropout (float): dropout in attention / FFN. Default 0.
        use_eim (bool): False = projections only ("w/o EIM", Table IV).
        use_ave (bool): audio-guided vision enhancement on/off ("w/o AVE").
        use_vae (bool): vision-guided audio enhancement on/off ("w/o VAE").
        ave_scales (Sequence[int]): scales (0 = stride 4 ... 3 = stride 32) AVE enhances. Default (1, 2, 3).
        vae_scales (Sequence[int]): scales VAE iterates over, in order. Default (1, 2, 3).
        num_iters (int): repetitions of the (parallel) AVE + VAE step, weights shared. Default 1.
        share_weights (bool): one AVE / one VAE layer for all scales (default) or one per scale.
        max_frames (int): size of the temporal position table (AVSS: 10).
        audio_window (int | None): AVE / VAE attend only across frames at most this many frames apart (0: a
            frame's visual tokens and its own audio token only). None (default): the whole clip.
        norm_cfg (dict): norm of the visual projections. Default GN(32).

    Shapes (B clips, T frames):
        feats: 4 x ``(B*T, C_i, H_i, W_i)``; audio: ``(B*T, audio_channels)``; frame_valid: ``(B, T)`` bool or None
        -> :class:`EIMOutput` (feats=4 x (B*T, d, H_i, W_i) enhanced, feats_orig=4 x (B*T, d, H_i, W_i)
        projected, audio=(B, T, d) enhanced, audio_orig=(B, T, d) projected, frame_valid=(B, T) bool or None).
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (64, 128, 320, 512),
        audio_channels: int = 128,
        embed_dims: int = 256,
        num_heads: int = 8,
        ffn_dims: int = 2048,
        dropout: float = 0.0,
        use_eim: bool = True,
        use_ave: bool = True,
        use_vae: bool = True,
        ave_scales: Sequence[int] = (1, 2, 3),
        vae_scales: Sequence[int] = (1, 2, 3),
        num_iters: int = 1,
        share_weights: bool = True,
        max_frames: int = 10,
        audio_window: Optional[int] = None,
        attn_type: str = 'MultiheadAttention',
        norm_cfg: dict = dict(type='GN', num_groups=32, requires_grad=True),
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if audio_window is not None and audio_window < 0:
            raise ValueError(f'EIM: audio_window must be None or >= 0, got {audio_window}')
        self.audio_window = audio_window
        n = len(in_channels)
        for name, scales in (('ave_scales', ave_scales), ('vae_scales', vae_scales)):
            if any(not 0 <= s < n for s in scales):
                raise ValueError(f'EIM: {name}={tuple(scales)} must index the {n} input scales')
        if num_iters < 1:
            raise ValueError(f'EIM: num_iters must be >= 1, got {num_iters}')
        self.embed_dims, self.max_frames, self.num_iters = embed_dims, max_frames, num_iters
        self.use_ave = use_eim and use_ave and len(ave_scales) > 0
        self.use_vae = use_eim and use_vae and len(vae_scales) > 0
        self.ave_scales, self.vae_scales = list(ave_scales), list(vae_scales)
        self.share_weights = share_weights

        self.visual_proj = nn.ModuleList(
            ConvModule(c, embed_dims, 1, norm_cfg=norm_cfg, act_cfg=None) for c in in_channels
        )
        self.audio_proj = nn.Linear(audio_channels, embed_dims)

        def layers(k: int) -> nn.ModuleList:
            return nn.ModuleList(
                PostNormCrossAttentionLayer(
                    attn_cfg(embed_dims, num_heads, dropout, dropout, type=attn_type),
                    ffn_cfg(embed_dims, ffn_dims, dropout),
                )
                for _ in range(1 if share_weights else k)
            )

        self.ave_layers = layers(len(self.ave_scales)) if self.use_ave else None
        self.vae_layers = layers(len(self.vae_scales)) if self.use_vae else None
        self.temporal_pos = nn.Embedding(max_frames, embed_dims) if (self.use_ave or self.use_vae) else None
        if self.temporal_pos is not None:
            nn.init.normal_(self.temporal_pos.weight, std=0.02)

    # ------------------------------------------------------------------ helpers
    def _token_pos(self, num_frames: int, hw: Sequence[int]) -> Tensor:
        """Temporal position of each clip token: (1, T*H*W, d)."""
        p = self.temporal_pos.weight[:num_frames]
        return p[:, None, :].expand(num_frames, hw[0] * hw[1], self.embed_dims).reshape(1, -1, self.embed_dims)

    @staticmethod
    def _token_valid(frame_valid: Optional[Tensor], hw: Sequence[int]) -> Optional[Tensor]:
        """(B, T) -> (B, T*H*W) key-valid mask of clip tokens."""
        if frame_valid is None:
            return None
        b, t = frame_valid.shape
        return frame_valid[:, :, None].expand(b, t, hw[0] * hw[1]).reshape(b, -1)

    def ave(self, vis: List[Tensor], audio: Tensor, num_frames: int, frame_valid: Optional[Tensor]) -> List[Tensor]:
        """Audio-guided vision enhancement (AVE) of the scales in ``ave_scales``.

        vis: 4 x (B*T, d, H_i, W_i); audio: (B, T, d) original -> 4 x (B*T, d, H_i, W_i).
        """
        a_pos = self.temporal_pos.weight[None, :num_frames]  # (1, T, d)
        out = list(vis)
        hws = [tuple(vis[s].shape[-2:]) for s in self.ave_scales]
        tokens = [maps_to_clip_tokens(vis[s], num_frames) for s in self.ave_scales]
        pos = [self._token_pos(num_frames, hw) for hw in hws]
        if self.share_weights:  # one attention call for all AVE scales
            q = torch.cat(tokens, 1) if len(tokens) > 1 else tokens[0]
            qp = torch.cat(pos, 1) if len(pos) > 1 else pos[0]
            mask = frame_distance_mask(num_frames, self.audio_window, [h * w for h, w in hws], 1, audio.device)
            enhanced = attend_clip(self.ave_layers[0], q, audio, qp, a_pos, frame_valid, mask)
            enhanced = enhanced.split([tk.shape[1] for tk in tokens], dim=1)
        else:
            enhanced = [
                attend_clip(
                    layer,
                    tk,
                    audio,
                    p,
                    a_pos,
                    frame_valid,
                    frame_distance_mask(num_frames, self.audio_window, [hw[0] * hw[1]], 1, audio.device),
                )
                for layer, tk, p, hw in zip(self.ave_layers, tokens, pos, hws)
            ]
        for s, hw, e in zip(self.ave_scales, hws, enhanced):
            out[s] = clip_tokens_to_maps(e, num_frames, hw)
        return out

    def vae(self, vis: List[Tensor], audio: Tensor, num_frames: int, frame_valid: Optional[Tensor]) -> Tensor:
        """Vision-guided audio enhancement (VAE), iterated over ``vae_scales``.

        vis: 4 x (B*T, d, H_i, W_i); audio: (B, T, d) = A_0 -> (B, T, d) = A_last.
        """
        a_pos = self.temporal_pos.weight[None, :num_frames]
        a = audio
        for j, s in enumerate(self.vae_scales):
            hw = tuple(vis[s].shape[-2:])
            layer = self.vae_layers[0 if self.share_weights else j]
            a = attend_clip(
                layer,
                a,
                maps_to_clip_tokens(vis[s], num_frames),
                a_pos,
                self._token_pos(num_frames, hw),
                self._token_valid(frame_valid, hw),
                frame_distance_mask(num_frames, self.audio_window, [1], hw[0] * hw[1], a.device),
            )
        return a

    # ------------------------------------------------------------------ forward
    def forward(
        self, feats: Sequence[Tensor], audio: Tensor, num_frames: int, frame_valid: Optional[Tensor] = None
    ) -> EIMOutput:
        """See the class docstring for shapes."""
        if len(feats) != len(self.visual_proj):
            raise ValueError(
                f'EIM got {len(feats)} visual scales, configured for {len(self.visual_proj)} '
                f'(in_channels); set neck.in_channels to the backbone channels'
            )
        if num_frames > self.max_frames and self.temporal_pos is not None:
            raise ValueError(
                f'EIM: clips of {num_frames} frames exceed max_frames={self.max_frames}; '
                f'raise neck.max_frames in the config'
            )
        vis = [proj(x) for proj, x in zip(self.visual_proj, feats)]
        bt = vis[0].shape[0]
        a0 = self.audio_proj(audio).view(bt // num_frames, num_frames, self.embed_dims)
        v, a = vis, a0
        for _ in range(self.num_iters):
            v_new = self.ave(v, a, num_frames, frame_valid) if self.use_ave else v
            a = self.vae(v, a, num_frames, frame_valid) if self.use_vae else a
            v = v_new
        return EIMOutput(feats=v, feats_orig=vis, audio=a, audio_orig=a0, frame_valid=frame_valid)
