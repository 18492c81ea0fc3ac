"""bf16 mixed precision without a ``GradScaler``: :class:`BF16OptimWrapper`."""

import logging
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS
from torch.optim import Optimizer


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` that runs the forward under ``torch.autocast(dtype=torch.bfloat16)``.

    Why not ``AmpOptimWrapper(dtype='bfloat16')``: mmengine 0.11 always builds a ``GradScaler`` there, and
    ``GradScaler.step`` reads its inf/nan check on the host, i.e. one host-device synchronisation (plus the
    scale/unscale kernels) per training step, which stalls a launch-bound step. bf16 has fp32's exponent range,
    so it needs no loss scaling: ``backward``/``step`` here are plain ``OptimWrapper`` ones (no scaler, no
    ``.item()``). ``clip_grad`` works as in ``OptimWrapper`` (which logs the grad norm, a host read of its own).

    The autocast device type is the one of the model's parameters (``cuda`` or ``cpu``), so it also runs on CPU.
    Checkpoints of ``AmpOptimWrapper`` load (their ``loss_scaler`` entry is dropped), and checkpoints of this
    wrapper load into plain ``OptimWrapper``.

    Args:
        optimizer, accumulative_counts, clip_grad: as in ``OptimWrapper``.
        dtype: accepted for config compatibility with ``AmpOptimWrapper``; only ``'bfloat16'``,
            ``torch.bfloat16`` or None.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        accumulative_counts: int = 1,
        clip_grad: Optional[dict] = None,
        dtype: Union[str, torch.dtype, None] = None,
        **kwargs,
    ) -> None:
        if 'loss_scale' in kwargs:
            raise ValueError(
                f'BF16OptimWrapper got loss_scale={kwargs["loss_scale"]!r}: bf16 has the exponent range of fp32 and '
                'needs no loss scaling; remove `optim_wrapper.loss_scale` from the config.'
            )
        if dtype in ('float16', 'half', torch.float16):
            raise ValueError(
                'BF16OptimWrapper got dtype=float16: fp16 needs loss scaling; use AmpOptimWrapper '
                '(tools/train.py --amp) for float16.'
            )
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'BF16OptimWrapper only autocasts to bfloat16, got dtype={dtype!r}.')
        super().__init__(optimizer, accumulative_counts, clip_grad, **kwargs)  # unknown kwargs: TypeError
        self.cast_dtype = torch.bfloat16

    @staticmethod
    def _device_type(model: nn.Module) -> str:
        module = getattr(model, 'module', None)  # DDP-like wrappers
        module = module if isinstance(module, nn.Module) else model
        param = next(module.parameters(), None)
        return 'cpu' if param is None else param.device.type

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The parent's context (no_sync during gradient accumulation) plus bf16 autocast."""
        with super().optim_context(model), torch.autocast(device_type=self._device_type(model), dtype=torch.bfloat16):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state; the ``loss_scaler`` entry of an ``AmpOptimWrapper`` checkpoint is dropped."""
        if 'loss_scaler' in state_dict:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler')
            print_log(
                'BF16OptimWrapper: dropped the `loss_scaler` state of the checkpoint (AmpOptimWrapper); '
                'bf16 training needs no loss scale.',
                logger='current',
                level=logging.INFO,
            )
        super().load_state_dict(state_dict)


__all__ = ['BF16OptimWrapper']
