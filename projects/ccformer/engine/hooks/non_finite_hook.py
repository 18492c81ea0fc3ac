"""Stop training at the first non-finite loss, naming the clips of the batch; never save a non-finite model."""

from typing import Any, Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def batch_sources(data_batch: Optional[dict], limit: int = 8) -> List[str]:
    """``video_id (audio_path)`` of the clips of a training batch, as far as the data samples carry them."""
    samples = (data_batch or {}).get('data_samples') or []
    out = []
    for sample in samples[:limit]:
        meta = sample.metainfo if hasattr(sample, 'metainfo') else dict(sample)
        audio = meta.get('audio_path')
        out.append(f'{meta.get("video_id", "?")}' + (f' ({audio})' if audio else ''))
    return out + ([f'... ({len(samples)} clips)'] if len(samples) > limit else [])


def non_finite_tensors(tensors: Dict[str, Any]) -> List[str]:
    """Names of the floating tensors of a dict holding NaN or inf."""
    bad = []
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
    return bad


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Guard a training run against NaN / inf.

    * ``after_train_iter``: every loss the model logs (``loss`` and its parts) must be finite; otherwise a
      ``FloatingPointError`` names the iteration, the losses and the clips of the batch (video id and audio file),
      which is where to look first (a broken input) before suspecting the learning rate. The hook runs before
      ``CheckpointHook`` (priority ``ABOVE_NORMAL`` vs ``VERY_LOW``), so no checkpoint of that model is written and
      ``last_checkpoint`` keeps naming the last finite one.
    * ``after_train_epoch`` (before ``CheckpointHook`` saves and rotates files) and ``before_save_checkpoint``: the
      model's parameters and buffers must be finite, so a non-finite model (e.g. from an overflowing update with a
      finite loss) is never saved.

    mmdet's ``CheckInvalidLossHook`` checks only the total loss every 50 iterations, after the bad update and
    without saying which data caused it.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Optional[dict] = None, outputs: Optional[dict] = None
    ) -> None:
        bad = non_finite_tensors(dict(outputs or {}))
        if bad:
            values = ', '.join(f'{k}={float(outputs[k].float().mean())}' for k in bad)
            raise FloatingPointError(
                f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {values}. The batch '
                f'held the clips {"; ".join(batch_sources(data_batch)) or "(no data samples)"}. Check these inputs '
                f'first (non-finite or corrupt audio / frames), then the learning rate. Training stopped before '
                f'any checkpoint of this model was written; last_checkpoint still names the last finite one.'
            )

    def _check_model(self, runner, state: Optional[Dict[str, Any]] = None) -> None:
        if state is None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            state = model.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise FloatingPointError(
                f'the model has non-finite weights after iteration {runner.iter} (e.g. {", ".join(bad[:5])}); '
                f'it is not saved. last_checkpoint still names the last finite checkpoint: resume from it with a '
                f'lower learning rate or check the training data.'
            )

    def after_train_epoch(self, runner) -> None:
        self._check_model(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._check_model(runner, checkpoint.get('state_dict'))
