"""Audio-visual correspondence (AVC) loss on the sounding region: an auxiliary objective of the robust recipe, not
part of the paper (docs/robustness.md, "Audio-visual correspondence loss").

The segmentation loss can be lowered by segmenting every salient object, whatever sounds; nothing in it asks the
visual features to tell *which kind* of object is in a region. This loss asks it directly, on every supervised
frame i = (b, t) whose ground truth holds a sounding object and whose audio is its own (frames whose audio was
replaced by negative-audio training, padded frames and empty frames take no part):

* ``v_i``: the EIM's visual projection at ``visual_scale`` (before AVE, ``feats_orig``) averaged over the frame's
  ground-truth foreground, the mask resized to the feature map by area; ``u_i``: the same over the rest of the frame
  (the other objects and the background);
* ``a_i``: the frame's projected audio before VAE (``audio_orig``);
* MLP heads map the regions and the audio to a common space, L2-normalised; ``s(x, y) = <x, y> / tau``.

With N(i) the valid frames of the other clips of the batch (frames of the same clip may hold the same sound and are
left out, as in BCL)::

    L_a->v(i) = -log( exp s(a_i, v_i) / [ exp s(a_i, v_i) + sum_{j in N(i)} exp s(a_i, v_j) + w * exp s(a_i, u_i) ] )
    L_v->a(i) = -log( exp s(v_i, a_i) / [ exp s(v_i, a_i) + sum_{j in N(i)} exp s(v_i, a_j) ] )
    L = lambda * mean_i ( L_a->v(i) + L_v->a(i) )

``w`` is 1 with ``frame_negative=True`` (default) and 0 without: the rest of the same frame is the hardest negative
a sound has (the objects that are visible but silent) and needs no other clip, so the loss works with one clip a
batch and with one labelled frame a clip (S4).
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ..utils import EIMOutput


class _ProjHead(nn.Sequential):
    """Linear(d, h) - ReLU - Linear(h, p)."""

    def __init__(self, in_dims: int, hidden_dims: int, out_dims: int) -> None:
        super().__init__(nn.Linear(in_dims, hidden_dims), nn.ReLU(inplace=True), nn.Linear(hidden_dims, out_dims))


def region_means(feat: Tensor, mask: Tensor) -> tuple:
    """Mean feature inside and outside a soft mask.

    Args:
        feat: ``(M, d, h, w)``. mask: ``(M, h, w)`` in [0, 1].

    Returns:
        ``(inside, outside, area_in, area_out)``: ``(M, d)``, ``(M, d)``, ``(M,)``, ``(M,)`` (areas in pixels of
        the feature map; a region of area 0 gives a zero mean).
    """
    m = mask[:, None].to(feat.dtype)
    area_in, area_out = m.sum((1, 2, 3)), (1 - m).sum((1, 2, 3))
    inside = (feat * m).sum((2, 3)) / area_in.clamp(min=1e-6)[:, None]
    outside = (feat * (1 - m)).sum((2, 3)) / area_out.clamp(min=1e-6)[:, None]
    return inside, outside, area_in, area_out


@MODELS.register_module()
class AudioVisualCorrespondenceLoss(nn.Module):
    """AVC loss (see the module docstring).

    Args:
        embed_dims (int): d of the EIM outputs. hidden_dims / proj_dims (int): MLP head widths.
        temperature (float): tau. Default 0.07.
        visual_scale (int): EIM scale whose visual projection is pooled (default 1: stride 8; the coarse scales of
            a small input hold a few cells that mix every object).
        frame_negative (bool): the rest of the frame as a negative of its sound. Default True.
        min_area (float): a frame takes part when its foreground covers at least this many cells of the feature
            map (and the rest of the frame as many, with ``frame_negative``). Default 0.5.
        loss_weight (float): lambda. Default 0.1. loss_name (str): key in the loss dict. Default ``'loss_avc'``.

    Shapes:
        ``forward(x, foreground, valid)``: ``x`` the :class:`EIMOutput` (``feats_orig`` 4 x ``(B*T, d, H_i, W_i)``,
        ``audio_orig`` ``(B, T, d)``); ``foreground`` ``(B*T, H, W)`` bool, the ground-truth sounding pixels;
        ``valid`` ``(B*T,)`` bool, the frames that may take part. Returns a scalar (weighted; 0 when fewer than one
        frame has a negative).
    """

    def __init__(
        self,
        embed_dims: int = 256,
        hidden_dims: int = 512,
        proj_dims: int = 128,
        temperature: float = 0.07,
        visual_scale: int = 1,
        frame_negative: bool = True,
        min_area: float = 0.5,
        loss_weight: float = 0.1,
        loss_name: str = 'loss_avc',
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'AudioVisualCorrespondenceLoss: temperature must be > 0, got {temperature}')
        self.temperature, self.visual_scale = temperature, visual_scale
        self.frame_negative, self.min_area = frame_negative, min_area
        self.loss_weight, self._loss_name = loss_weight, loss_name
        self.visual_head = _ProjHead(embed_dims, hidden_dims, proj_dims)
        self.audio_head = _ProjHead(embed_dims, hidden_dims, proj_dims)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, x: EIMOutput, foreground: Tensor, valid: Tensor) -> Tensor:
        b, t = x.audio_orig.shape[:2]
        feat = x.feats_orig[self.visual_scale]
        mask = F.interpolate(foreground[:, None].float(), size=feat.shape[-2:], mode='area')[:, 0]
        inside, outside, area_in, area_out = region_means(feat, mask)
        valid = valid.reshape(-1).bool() & (area_in >= self.min_area)
        if self.frame_negative:
            valid = valid & (area_out >= self.min_area)
        v = F.normalize(self.visual_head(inside).float(), dim=-1)
        a = F.normalize(self.audio_head(x.audio_orig.flatten(0, 1)).float(), dim=-1)
        clip = torch.arange(b, device=feat.device).repeat_interleave(t)
        other = (clip[:, None] != clip[None, :]) & valid[:, None] & valid[None, :]
        eye = torch.eye(b * t, dtype=torch.bool, device=feat.device)
        admitted = other | eye
        logits = (a @ v.t()) / self.temperature  # (M, M): audio anchors x regions
        extra = [F.normalize(self.visual_head(outside).float(), dim=-1)] if self.frame_negative else []
        terms = []
        for lg, own in ((logits, extra), (logits.t(), [])):
            lg = lg.masked_fill(~admitted, float('-inf'))
            cols = [lg] + [((a * e).sum(-1, keepdim=True)) / self.temperature for e in own]
            full = torch.cat(cols, dim=1)
            terms.append(torch.logsumexp(full, dim=1) - logits.diagonal())
        # an anchor without any negative (no other valid clip, no frame negative) teaches nothing
        has_negative = other.any(1) | (torch.full_like(valid, self.frame_negative))
        use = valid & has_negative
        if not bool(use.any()):
            return logits.sum() * 0.0 + sum(p.sum() * 0.0 for p in self.parameters())
        loss_av = terms[0][use].mean()
        use_va = valid & other.any(1)
        loss_va = terms[1][use_va].mean() if bool(use_va.any()) else logits.sum() * 0.0
        return self.loss_weight * (loss_av + loss_va)
