"""Checks on what a model returns: non-finite logits are an error, never empty masks.

NaN logits give ``sigmoid(NaN) > p`` = False (and ``argmax`` = 0) everywhere: every frame would come out as
background without a word. :func:`check_finite_logits` stops instead, naming the model file and the clips (the
inference API, the video demo and ONNX Runtime; ``tools/test.py`` stops in the metric). numpy only; torch tensors
are read through ``.detach().cpu().numpy()``.
"""

from typing import Optional, Sequence

import numpy as np


class NonFiniteOutputError(FloatingPointError):
    """The model produced NaN or infinite logits (broken weights: a corrupted or diverged checkpoint / ONNX file)."""


def check_finite_logits(logits, source: str, clip_names: Optional[Sequence[str]] = None) -> None:
    """Raise :class:`NonFiniteOutputError` if ``logits`` (``(N, T, ...)``: clips first, or one clip ``(T, ...)``
    with one name) hold NaN / inf.

    Args:
        logits: numpy array or torch tensor.
        source: the model (checkpoint or ONNX file) named in the message.
        clip_names: one name per clip (default ``clip 0``, ``clip 1``, ...).
    """
    if hasattr(logits, 'detach'):
        bad_mask = ~np.isfinite(logits.detach().float().cpu().numpy())
    else:
        bad_mask = ~np.isfinite(np.asarray(logits, dtype=np.float32))
    if not bad_mask.any():
        return
    if clip_names is not None and len(clip_names) == 1 and bad_mask.shape[0] != 1:
        bad_mask = bad_mask[None]
    per_clip = bad_mask.reshape(bad_mask.shape[0], -1).sum(1)
    names = list(clip_names) if clip_names is not None else [f'clip {i}' for i in range(len(per_clip))]
    where = ', '.join(f'{names[i]} ({int(n)} values)' for i, n in enumerate(per_clip) if n)
    raise NonFiniteOutputError(
        f'{source}: the model produced {int(per_clip.sum())} NaN / infinite logits of {bad_mask.size} in {where}. '
        'Its weights are broken (a corrupted or diverged checkpoint, or an ONNX file exported from one): its '
        'masks would be all background. Use another checkpoint, or export the model again from a good one.'
    )
