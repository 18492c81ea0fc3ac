"""Bi-modal Contrastive Learning (BCL) loss (ccformer.md section 5; paper Sec. III-D, Table IX).

Frame-level InfoNCE over the M = B*T frames of a batch. The query modality (default: the *enhanced* audio after
the EIM) and the key modality (the *original* projected audio) are mapped by small MLP heads to a common space and
L2-normalised; ``s_ij = <q_i, k_j> / tau``. For query frame i = (b, t):

* positive: key frame (b, t);
* negatives: every valid frame of the *other* clips;
* **[choice]** the other frames of the same clip are left out of the denominator (``same_clip='exclude'``,
  default: they may hold the same sound), or used as extra positives (``same_clip='positive'``);
* padded frames (``frame_valid`` 0, AVSS) are neither anchors nor keys.

With positives P(i) and the admitted set A(i) = P(i) + negatives (SupCon form when |P(i)| > 1; the paper's equation
is not in our copy)::

    L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) ),   L = mean over valid i.

``directions='both'`` (the configs) adds the same loss with the roles swapped (each key frame the anchor against
the query frames, ``s`` transposed): ``L = L_q->k + L_k->q``, the sum of both directions as the authors' later code
computes it (``docs/design.md``, "Fidelity"); ``'query_to_key'`` is ``L_q->k`` alone.

``pairing`` (Table IX) picks the query modality: ``'enhanced_audio'`` (default), ``'original_visual'`` or
``'enhanced_visual'`` (global average pool of the chosen EIM scale, per frame); the key is always the original
audio. Default tau = 0.07 (the usual InfoNCE value; the paper does not give it), weight 0.1 (paper).
MLP heads ``Linear(d, 512) - ReLU - Linear(512, 128)`` x 2 hold 0.39 M parameters, the paper's w/o-BCL delta
(143.4 - 143.0 M).
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ..utils import EIMOutput

PAIRINGS = ('enhanced_audio', 'original_visual', 'enhanced_visual')
DIRECTIONS = ('query_to_key', 'both')


def bimodal_info_nce(
    query: Tensor,
    key: Tensor,
    temperature: float,
    frame_valid: Optional[Tensor] = None,
    same_clip: str = 'exclude',
    directions: str = 'query_to_key',
) -> Tensor:
    """Frame-level InfoNCE on already projected, L2-normalised embeddings.

    Args:
        query, key: ``(B, T, p)`` normalised embeddings. frame_valid: ``(B, T)`` bool or None.
        same_clip: ``'exclude'`` or ``'positive'``.
        directions: ``'query_to_key'`` (query frames are the anchors) or ``'both'`` (plus the key-to-query
            direction, summed).

    Returns:
        scalar loss (per direction the mean over valid anchors; 0 when no valid frame).
    """
    if directions not in DIRECTIONS:
        raise ValueError(f'directions must be one of {DIRECTIONS}, got {directions!r}')
    b, t, _ = query.shape
    q, k = query.flatten(0, 1), key.flatten(0, 1)  # (M, p)
    logits = (q @ k.t()).float() / temperature  # (M, M)
    clip = torch.arange(b, device=q.device).repeat_interleave(t)
    same = clip[:, None] == clip[None, :]
    eye = torch.eye(b * t, dtype=torch.bool, device=q.device)
    valid = (
        torch.ones(b * t, dtype=torch.bool, device=q.device) if frame_valid is None else frame_valid.reshape(-1).bool()
    )
    pair_valid = valid[:, None] & valid[None, :]
    if same_clip == 'exclude':
        pos = eye
        admitted = (eye | ~same) & pair_valid
    elif same_clip == 'positive':
        pos = same & pair_valid
        admitted = pair_valid
    else:
        raise ValueError(f"same_clip must be 'exclude' or 'positive', got {same_clip!r}")
    pos = pos & pair_valid
    admitted = admitted | eye  # padded anchors keep only their own (unused) diagonal: no empty rows

    def one_way(lg: Tensor) -> Tensor:
        lg = lg.masked_fill(~admitted, float('-inf'))
        log_prob = lg - torch.logsumexp(lg, dim=1, keepdim=True)
        log_prob = log_prob.masked_fill(~pos, 0.0)
        per_anchor = -log_prob.sum(1) / pos.sum(1).clamp(min=1)
        per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
        return per_anchor.sum() / valid.sum().clamp(min=1)

    loss = one_way(logits)
    if directions == 'both':  # pos / admitted are symmetric: the transpose makes the keys the anchors
        loss = loss + one_way(logits.t())
    return loss


class _ProjHead(nn.Sequential):
    """Linear(d, h) - ReLU - Linear(h, p)."""

    def __init__(self, in_dims: int, hidden_dims: int, out_dims: int) -> None:
        super().__init__(nn.Linear(in_dims, hidden_dims), nn.ReLU(inplace=True), nn.Linear(hidden_dims, out_dims))


@MODELS.register_module()
class BiModalContrastiveLoss(nn.Module):
    """BCL (see module docstring).

    Args:
        embed_dims (int): d of the EIM outputs. hidden_dims / proj_dims (int): MLP head widths (512 / 128).
        temperature (float): tau. Default 0.07.
        pairing (str): one of ``'enhanced_audio'``, ``'original_visual'``, ``'enhanced_visual'``.
        visual_scale (int): EIM scale pooled for the visual pairings (default -1: stride 32).
        same_clip (str): ``'exclude'`` (default) or ``'positive'``.
        directions (str): ``'query_to_key'`` (default: the query modality's frames are the anchors) or ``'both'``
            (the sum of both directions; the configs' choice, see the module docstring).
        loss_weight (float): lambda. Default 0.1. loss_name (str): key in the loss dict. Default ``'loss_bcl'``.

    Shapes:
        ``forward(x)`` reads the :class:`EIMOutput` ``x``: ``audio`` / ``audio_orig`` ``(B, T, d)``, ``feats`` /
        ``feats_orig`` ``4 x (B*T, d, H_i, W_i)`` and ``frame_valid`` ``(B, T)`` or None; returns a scalar
        (weighted).
    """

    def __init__(
        self,
        embed_dims: int = 256,
        hidden_dims: int = 512,
        proj_dims: int = 128,
        temperature: float = 0.07,
        pairing: str = 'enhanced_audio',
        visual_scale: int = -1,
        same_clip: str = 'exclude',
        directions: str = 'query_to_key',
        loss_weight: float = 0.1,
        loss_name: str = 'loss_bcl',
    ) -> None:
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f'BiModalContrastiveLoss: pairing must be one of {PAIRINGS}, got {pairing!r}')
        if same_clip not in ('exclude', 'positive'):
            raise ValueError(f"BiModalContrastiveLoss: same_clip must be 'exclude' or 'positive', got {same_clip!r}")
        if directions not in DIRECTIONS:
            raise ValueError(f'BiModalContrastiveLoss: directions must be one of {DIRECTIONS}, got {directions!r}')
        if temperature <= 0:
            raise ValueError(f'BiModalContrastiveLoss: temperature must be > 0, got {temperature}')
        self.temperature, self.pairing, self.visual_scale = temperature, pairing, visual_scale
        self.same_clip, self.directions = same_clip, directions
        self.loss_weight, self._loss_name = loss_weight, loss_name
        self.query_head = _ProjHead(embed_dims, hidden_dims, proj_dims)
        self.key_head = _ProjHead(embed_dims, hidden_dims, proj_dims)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def query_features(self, x: EIMOutput) -> Tensor:
        """(B, T, d) features of the query modality chosen by ``pairing``."""
        b, t = x.audio_orig.shape[:2]
        if self.pairing == 'enhanced_audio':
            return x.audio
        feats = x.feats_orig if self.pairing == 'original_visual' else x.feats
        return feats[self.visual_scale].mean(dim=(2, 3)).view(b, t, -1)

    def forward(self, x: EIMOutput) -> Tensor:
        q = F.normalize(self.query_head(self.query_features(x)).float(), dim=-1)
        k = F.normalize(self.key_head(x.audio_orig).float(), dim=-1)
        loss = bimodal_info_nce(q, k, self.temperature, x.frame_valid, self.same_clip, self.directions)
        return self.loss_weight * loss
