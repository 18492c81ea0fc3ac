"""Per-frame flags of a batch of clips, read from the data samples' metainfo."""

from typing import Optional, Sequence

import torch
from torch import Tensor


def frame_flags(
    data_samples: Optional[Sequence], key: str, num_frames: int, device: torch.device, default: int = 1
) -> Optional[Tensor]:
    """``(N, T)`` bool tensor of the metainfo list ``key`` of each sample (``default`` for a sample without it);
    None when there are no samples or every flag equals ``default``.

    Built from host lists and copied without a device synchronisation, so a batch whose flags are all default
    (S4 / MS3: every frame real, no audio replaced) keeps the attention kernels mask-free.
    """
    if not data_samples:
        return None
    rows = [list(ds.metainfo.get(key) or [default] * num_frames) for ds in data_samples]
    if any(len(r) != num_frames for r in rows):
        raise ValueError(
            f'CCFormer: metainfo {key!r} lists {[len(r) for r in rows]} frames, the clips have '
            f'{num_frames}; the dataset must give one flag per frame'
        )
    if all(bool(v) == bool(default) for r in rows for v in r):
        return None
    mask = torch.tensor([[bool(v) for v in r] for r in rows], dtype=torch.bool)
    if device.type == 'cuda':
        return mask.pin_memory().to(device, non_blocking=True)
    return mask.to(device)
