"""The typed output of the decode head: mask logits per decoder stage and the presence score, by name."""

from typing import List, NamedTuple, Optional

from torch import Tensor


class HeadOutput(NamedTuple):
    """What :meth:`CCFormerHead.forward` returns (B clips, T frames, S decoder stages, K classes).

    Attributes:
        stage_logits (list[Tensor]): S x ``(B*T, K, H/4, W/4)`` mask logits of every decoder stage (the last one
            is the prediction), not gated by the presence score.
        presence (Tensor | None): ``(B*T,)`` presence logit per frame (does anything visible make the frame's
            sound? :class:`AudioVisualPresence`), in the logits' dtype; None when the head has no presence head.
        category_audio (Tensor | None): ``(B*T, C)`` category logits of each frame's sound (:class:`CategoryBridge`,
            C categories); None without ``category_head``.
        category_visual (Tensor | None): ``(B*T, C, h, w)`` category logits of each place of the frame.
        presence_map (Tensor | None): ``(B*T, h, w)`` the presence head's match logit of every location
            (:meth:`AudioVisualPresence.forward_map`), whose max is ``presence``; given in training only, and only
            when the head trains it (``presence_head=dict(map_loss_weight=w)``, w > 0).

    A NamedTuple, so ``torch.compile``, ``torch.jit.trace`` and forward hooks see a plain tuple of tensors.
    """

    stage_logits: List[Tensor]
    presence: Optional[Tensor] = None
    category_audio: Optional[Tensor] = None
    category_visual: Optional[Tensor] = None
    presence_map: Optional[Tensor] = None

    @property
    def num_stages(self) -> int:
        """S."""
        return len(self.stage_logits)
