"""The typed hand-off from the EIM neck to the decode head and the BCL loss."""

from typing import List, NamedTuple, Optional

from torch import Tensor


class EIMOutput(NamedTuple):
    """What the EIM neck hands to the decode head and the BCL loss (B clips, T frames, d channels).

    Attributes:
        feats (list[Tensor]): 4 x ``(B*T, d, H_i, W_i)``, strides 4/8/16/32, audio-enhanced (AVE) where the EIM
            enhances a scale, else the projection.
        feats_orig (list[Tensor]): 4 x ``(B*T, d, H_i, W_i)``, the visual projections before AVE.
        audio (Tensor): ``(B, T, d)``, vision-enhanced audio (VAE).
        audio_orig (Tensor): ``(B, T, d)``, the projected audio before VAE.
        frame_valid (Tensor | None): ``(B, T)`` bool, False on padded frames; None when every frame is real.

    A NamedTuple, so ``torch.compile``, ``torch.jit.trace`` and forward hooks see a plain tuple of tensors.
    """

    feats: List[Tensor]
    feats_orig: List[Tensor]
    audio: Tensor
    audio_orig: Tensor
    frame_valid: Optional[Tensor] = None

    @property
    def num_frames(self) -> int:
        """T."""
        return self.audio.shape[1]

    @property
    def embed_dims(self) -> int:
        """d."""
        return self.audio.shape[2]
