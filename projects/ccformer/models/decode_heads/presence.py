"""Sounding-object presence: does anything visible in a frame make the frame's sound?"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class AudioVisualPresence(BaseModule):
    """Frame-level presence logit from audio-visual correspondence.

    The frame's original audio feature and the visual tokens of one EIM scale (before AVE, so the visual side
    holds no audio) are projected to a common space and L2-normalised; the logit is the best match over the
    frame's locations, scaled and shifted by learned scalars::

        p_t = exp(s) * max_xy cos(W_a a_t, W_v v_t(x, y)) + b

    Silence and noise match no object, and an off-screen sound matches none of the visible ones, so ``p_t`` is
    low exactly where the ground truth is empty; trained with a binary cross-entropy on "the frame's ground truth
    has foreground" (``CCFormerHead``, ``presence_head``). :meth:`forward_map` gives the logit of every location
    before the max, which ``CCFormerHead(presence_head=dict(map_loss_weight=w))`` also trains location by location
    against the ground-truth mask.

    Args:
        embed_dims (int): d of the EIM outputs.
        proj_dims (int | None): width of the common space (None: d).
        in_index (int): EIM scale of the visual tokens (0 = stride 4 ... 3 = stride 32). Default 1 (stride 8).
        init_scale (float): initial ``exp(s)``. Default 10.

    Shapes:
        audio ``(B, T, d)``, feats 4 x ``(B*T, d, H_i, W_i)`` -> ``(B*T,)`` logits (:meth:`forward_map`:
        ``(B*T, H_i, W_i)`` at ``in_index``).
    """

    def __init__(
        self,
        embed_dims: int = 256,
        proj_dims: Optional[int] = None,
        in_index: int = 1,
        init_scale: float = 10.0,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        proj_dims = proj_dims or embed_dims
        self.in_index = in_index
        self.audio_proj = nn.Linear(embed_dims, proj_dims)
        self.visual_proj = nn.Conv2d(embed_dims, proj_dims, 1)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward_map(self, audio: Tensor, feats) -> Tensor:
        """The match logit of every location, ``exp(s) * cos(W_a a_t, W_v v_t(x, y)) + b``: ``(B*T, h, w)``."""
        a = F.normalize(self.audio_proj(audio.flatten(0, 1)), dim=-1)  # (B*T, p)
        v = F.normalize(self.visual_proj(feats[self.in_index]), dim=1)  # (B*T, p, h, w)
        return torch.einsum('mp,mphw->mhw', a, v) * self.logit_scale.exp() + self.bias

    def forward(self, audio: Tensor, feats) -> Tensor:
        """The frame's presence logit, the best match over its locations: ``(B*T,)``."""
        return self.forward_map(audio, feats).flatten(1).amax(1)
