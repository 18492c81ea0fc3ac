"""What every metric family shares: the accepted input types and the F-measure from counts."""

from typing import Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]

#: beta^2 of the official F-measure (binary and semantic).
BETA2 = 0.3


def as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as a tensor (numpy arrays are wrapped without a copy where possible); ``name`` goes into the error."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        return x
    raise TypeError(f'{name} must be a torch.Tensor or np.ndarray, got {type(x).__name__}.')


def fscore_from_counts(tp: np.ndarray, pred_pos: np.ndarray, gt_pos: np.ndarray, beta2: float = BETA2) -> np.ndarray:
    """F-measure ``(1 + b2) P R / (b2 P + R)`` from counts, float64, with 0/0 (no prediction) -> 0.

    Undefined when ``gt_pos`` is 0; callers must drop those frames.
    """
    tp = np.asarray(tp, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        prec = tp / np.asarray(pred_pos, dtype=np.float64)
        rec = tp / np.asarray(gt_pos, dtype=np.float64)
        f = (1 + beta2) * prec * rec / (beta2 * prec + rec)
    return np.nan_to_num(f, nan=0.0)
