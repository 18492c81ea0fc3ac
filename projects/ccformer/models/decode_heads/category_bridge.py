"""Where the heard category is seen: audio and visual category scores that meet in one per-pixel map."""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class CategoryBridge(BaseModule):
    """Per-pixel evidence that the category heard in a frame is the one seen there.

    The frame's original audio feature (before VAE) and the visual tokens of one EIM scale (before AVE, so the
    visual side holds no audio) are each classified into K categories; the map compares the heard category's
    visual probability with that of a category drawn from the training prior::

        q_t = softmax(W_a a_t)                            (K,)        which category sounds in frame t
        p_t(x, y) = softmax(W_v v_t(x, y))                (K, h, w)   which category is seen at (x, y)
        r_t(x, y) = log sum_k q_t,k p_t,k(x, y) - log sum_k pi_k p_t,k(x, y)

    ``pi`` is the share of each category among the training frames (the buffer ``category_counts``, counted during
    training and kept below 1e4 in all by rescaling, so it fits any float dtype). ``r > 0`` where the heard category
    explains the place better than a category picked at random, ``r < 0`` where the place shows another category,
    and ``r = 0`` when the sound says nothing (``q = pi``) and everywhere while nothing has been counted (a bridge
    that never saw a category label, e.g. trained on data without categories, changes nothing).

    Trained on the category labels a dataset gives (AVSBench S4: the CSV ``category`` of a clip, whose one source
    sounds all clip long): a cross-entropy on ``q_t`` for every frame whose sound is the clip's category, and a
    cross-entropy on ``p_t`` in the labelled frames' ground-truth mask, each cell weighted by the mask's share of
    it. Both sides learn the categories from labels instead of learning which picture goes with which sound from
    the masks alone. At inference ``CCFormerHead`` lowers the mask logits by the evidence against the heard
    category (:meth:`lower`: ``logits + min(r + margin, 0)``): a place showing another category than the one heard
    is emptied, and where ``r + margin >= 0`` the masks are those of the segmentation head (adding a capped ``r``
    would shrink them at their borders). This is not part of the paper.

    Args:
        embed_dims (int): d of the EIM outputs.
        num_categories (int): K, at least the number of categories of the training data (toy data: 4 or 10;
            AVSBench S4: 23).
        in_index (int): EIM scale of the visual tokens (0 = stride 4 ... 3 = stride 32). Default 0.

    Shapes (K categories here, not the head's classes):
        audio ``(B, T, d)``, feats 4 x ``(B*T, d, H_i, W_i)`` -> audio logits ``(B*T, K)`` and visual logits
        ``(B*T, K, h, w)`` at the size of ``feats[in_index]``; :meth:`evidence` -> ``(B*T, 1, h, w)``.
    """

    def __init__(
        self, embed_dims: int = 256, num_categories: int = 32, in_index: int = 0, init_cfg: Optional[dict] = None
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_categories < 2:
            raise ValueError(f'CategoryBridge: num_categories must be at least 2, got {num_categories}.')
        self.num_categories = num_categories
        self.in_index = in_index
        self.audio_cls = nn.Linear(embed_dims, num_categories)
        self.visual_cls = nn.Conv2d(embed_dims, num_categories, 1)
        self.register_buffer('category_counts', torch.zeros(num_categories))

    def forward(self, audio: Tensor, feats) -> Tuple[Tensor, Tensor]:
        return self.audio_cls(audio.flatten(0, 1)), self.visual_cls(feats[self.in_index])

    #: the counts are rescaled to this total when they pass it (the shares are what counts)
    MAX_COUNT = 1e4

    def log_prior(self) -> Tensor:
        """``log pi`` (K,): the training frames' category shares; uniform before any was counted."""
        counts = self.category_counts.float()
        counts = torch.where(counts.sum() > 0, counts, torch.ones_like(counts))
        return (counts / counts.sum()).clamp(min=1e-12).log()

    def evidence(self, audio_logits: Tensor, visual_logits: Tensor) -> Tensor:
        """``r`` (see the class): ``(B*T, K)``, ``(B*T, K, h, w)`` -> ``(B*T, 1, h, w)``, float32; 0 while
        nothing has been counted."""
        log_p = F.log_softmax(visual_logits.float(), dim=1)
        log_q = F.log_softmax(audio_logits.float(), dim=1)[:, :, None, None]
        log_pi = self.log_prior()[None, :, None, None]
        r = torch.logsumexp(log_q + log_p, 1, keepdim=True) - torch.logsumexp(log_pi + log_p, 1, keepdim=True)
        return torch.where(self.category_counts.sum() > 0, r, torch.zeros_like(r))

    def lower(self, logits: Tensor, audio_logits: Tensor, visual_logits: Tensor, margin: float = 0.0) -> Tensor:
        """``logits + min(r + margin, 0)``: mask logits ``(B*T, C, H, W)`` lowered where the place shows another
        category than the one heard; ``r`` (:meth:`evidence`) is resized bilinearly to the logits' size."""
        where = self.evidence(audio_logits, visual_logits).to(logits.dtype)
        if where.shape[-2:] != logits.shape[-2:]:
            where = F.interpolate(where, size=logits.shape[-2:], mode='bilinear', align_corners=False)
        return logits + (where + margin).clamp(max=0)

    def loss(
        self,
        audio_logits: Tensor,
        visual_logits: Tensor,
        category: Tensor,
        heard: Tensor,
        gt: Tensor,
        labelled: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """Audio and visual category losses; in training mode also counts the heard frames' categories.

        Args:
            audio_logits (Tensor): ``(M, K)`` (M = B*T frames).
            visual_logits (Tensor): ``(M, K, h, w)``.
            category (Tensor): ``(M,)`` long, the frame's category in ``[0, K)``, -1 where unknown (the head checks
                the range).
            heard (Tensor): ``(M,)`` bool, the frame's sound is its category's (not replaced, not silent).
            gt (Tensor): ``(M, H, W)`` float, 1 on the labelled category's pixels, 0 elsewhere, for the
                labelled frames.
            labelled (Tensor): ``(M,)`` bool, frames with a ground-truth mask.

        Returns:
            tuple: ``loss_category_audio`` (mean cross-entropy over the heard frames) and
            ``loss_category_visual`` (cross-entropy of the cells in the masks of the labelled heard frames,
            weighted by the mask's share of each cell); each 0 (with a gradient) when nothing qualifies.
        """
        audio_on = ((category >= 0) & heard).float()
        visual_on = audio_on * labelled.float()
        cat = category.clamp(min=0)
        if self.training:
            # one-hot sums (deterministic on CUDA, unlike a weighted bincount)
            counts = self.category_counts.float() + (F.one_hot(cat, self.num_categories) * audio_on[:, None]).sum(0)
            self.category_counts.copy_(counts * (self.MAX_COUNT / counts.sum()).clamp(max=1.0))
        # masked means without host synchronisation: 0 (with a gradient) when nothing qualifies
        loss_a = (F.cross_entropy(audio_logits.float(), cat, reduction='none') * audio_on).sum()
        loss_a = loss_a / audio_on.sum().clamp(min=1.0)
        v = visual_logits.float()
        share = F.adaptive_avg_pool2d(gt[:, None].float(), v.shape[-2:])[:, 0] * visual_on[:, None, None]  # (M, h, w)
        cells = F.cross_entropy(v, cat[:, None, None].expand_as(share), reduction='none')  # (M, h, w)
        loss_v = (cells * share).sum() / share.sum().clamp(min=1e-6)
        return loss_a, loss_v
