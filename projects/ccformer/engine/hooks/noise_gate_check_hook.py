"""After each validation: how often the model masks a frame when it hears white noise, in the training log.

A presence gate that stays open whatever the model hears (``docs/robustness.md``, "A collapse on the oracle
family") passes an ordinary validation: the validation clips' own audio does sound, so their mIoU looks normal. The
same clips heard through white noise show it at once: a working gate masks almost none of them, a collapsed one
most. :class:`NoiseGateCheckHook` measures that share after every validation, logs it as ``val/noise_masked`` next to
the mIoU (and adds it to the validation metrics, so ``save_best='noise_masked', rule='less'`` can use it) and warns
when it is above ``warn_above``.
"""

import contextlib
import random
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ...datasets.audio_conditions import EVAL_NOISE_DBFS
from ...datasets.audio_conditions.synthesis import noise_logmel

#: The key of the figure among the validation metrics (``val/noise_masked`` in the log).
NOISE_MASKED_KEY = 'noise_masked'


def _masked_frames(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(N, T, K, H, W)`` logits -> ``(N, T)`` bool: the frame gets a mask (K = 1: a logit above ``threshold``;
    K > 1: a pixel whose arg-max is not the background 0)."""
    if logits.shape[2] == 1:
        return (logits[:, :, 0] > threshold).flatten(2).any(-1)
    return (logits.argmax(2) > 0).flatten(2).any(-1)


@contextlib.contextmanager
def _kept_random_state():
    """Restore the global random states of Python, NumPy and torch (CPU and the current CUDA device) on exit."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@torch.no_grad()
def noise_masked_frames(
    model, dataloader: Iterable, noise_dbfs: float = EVAL_NOISE_DBFS, max_clips: Optional[int] = None, seed: int = 0
) -> Tuple[int, int]:
    """Frames given a mask when every frame of the clips of ``dataloader`` is heard through white noise.

    Each real frame's audio is replaced by an example of white noise at ``noise_dbfs`` dB re full scale (the front
    end's log-mel of a noise wav, :func:`noise_logmel`, drawn from ``seed``, so every call hears the same noise); the
    frames are segmented as at inference (``mode='tensor'``, the model's own threshold).

    Args:
        model: a ``CCFormer`` (eval mode is set here and the previous mode restored).
        dataloader: batches as the validation loop gets them.
        noise_dbfs (float): RMS level of the noise. Defaults to -20, the ``noise`` condition of ``robustness.py``.
        max_clips (int, optional): stop after this many clips. Defaults to all.
        seed (int): seed of the noise. Defaults to 0.

    Returns:
        tuple: ``(masked, frames)``, the real frames given a mask and the real frames seen.
    """
    rng = np.random.default_rng(seed)
    threshold = model.logit_threshold
    training = model.training
    model.eval()
    masked = frames = clips = 0
    try:
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            n, t = inputs.shape[:2]
            noise = noise_logmel(rng, n * t, noise_dbfs).reshape(n, t, *data['audio'].shape[2:])
            audio = torch.from_numpy(noise).to(data['audio'])
            logits = model(inputs, samples, mode='tensor', audio=audio)
            valid = model.frame_valid_from_samples(samples, t, inputs.device)
            valid = torch.ones(n, t, dtype=torch.bool) if valid is None else valid.bool().cpu()
            masked += int((_masked_frames(logits.float(), threshold).cpu() & valid).sum())
            frames += int(valid.sum())
            clips += n
            if max_clips is not None and clips >= max_clips:
                break
    finally:
        model.train(training)
    return masked, frames


@HOOKS.register_module()
class NoiseGateCheckHook(Hook):
    """Log, after each validation, the share of validation frames masked under white noise; warn when it is high.

    The figure (``val/noise_masked``, percent of the real frames of the first ``max_clips`` validation clips) is
    what the ``noise`` row of ``tools/analysis_tools/robustness.py`` reports, measured on the validation split: a
    robust model keeps it near 0; a collapsed presence gate, one that is open whatever the model hears, keeps it
    near the share of sounding frames. Above ``warn_above`` the log gets a warning that says what to do. Models
    without a presence head (the paper's recipe, which masks under any sound by design) are not checked; the hook
    says so once.

    It runs before ``EMAHook`` swaps the averaged weights out again (priority ``ABOVE_NORMAL``), so it checks the
    weights that were validated, and before ``LoggerHook`` and ``CheckpointHook``, which log the figure and can keep
    the best checkpoint by it.

    Args:
        noise_dbfs (float): RMS level of the noise in dB re full scale. Defaults to -20.
        max_clips (int, optional): validation clips to hear through noise (the first ones of the loader; in
            distributed training, of each process's share, and the counts are summed). Defaults to 64; None: all.
        warn_above (float): warn when more than this percentage of the frames is masked. Defaults to 50.
        seed (int): seed of the noise (the same noise at every validation). Defaults to 0.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(
        self,
        noise_dbfs: float = EVAL_NOISE_DBFS,
        max_clips: Optional[int] = 64,
        warn_above: float = 50.0,
        seed: int = 0,
    ) -> None:
        if max_clips is not None and max_clips < 1:
            raise ValueError(f'NoiseGateCheckHook: max_clips must be at least 1 (or None: all), got {max_clips}')
        if not 0.0 <= warn_above <= 100.0:
            raise ValueError(f'NoiseGateCheckHook: warn_above is a percentage in [0, 100], got {warn_above}')
        self.noise_dbfs = float(noise_dbfs)
        self.max_clips = max_clips
        self.warn_above = float(warn_above)
        self.seed = int(seed)
        self._said_unchecked = False

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(getattr(model, 'decode_head', None), 'presence_head', None) is None:
            if not self._said_unchecked:
                runner.logger.info(
                    'NoiseGateCheckHook: the model has no presence head (decode_head.presence_head), so it masks '
                    'whatever it hears by design; the white-noise check is skipped'
                )
                self._said_unchecked = True
            return
        with _kept_random_state():  # a second pass over the loader draws a seed: training must not see it
            masked, frames = noise_masked_frames(
                model, runner.val_dataloader, self.noise_dbfs, self.max_clips, self.seed
            )
        counts = torch.tensor([masked, frames], dtype=torch.float64)
        all_reduce(counts)  # summed over ranks; a no-op without distributed training
        masked, frames = int(counts[0]), int(counts[1])
        if frames == 0:
            return
        share = 100.0 * masked / frames
        runner.message_hub.update_scalar(f'val/{NOISE_MASKED_KEY}', share)
        if metrics is not None:
            metrics[NOISE_MASKED_KEY] = share
        if share > self.warn_above:
            runner.logger.warning(
                f'NoiseGateCheckHook: {share:.1f}% of the validation frames ({masked} of {frames}) get a mask when '
                f'they hear white noise at {self.noise_dbfs:g} dBFS (above {self.warn_above:g}%): the presence gate '
                'is open whatever the model hears, so it segments whatever sounds, on screen or not. If '
                f'it stays this high at the end, {_remedy(model.decode_head)} and check the trained model with '
                'tools/analysis_tools/robustness.py (docs/robustness.md, "A collapse on the oracle family")'
            )


def _remedy(head) -> str:
    """What to try against an open gate: the relative map loss where the head trains its presence map with BCE."""
    if getattr(head, 'presence_map_loss_weight', 0.0) > 0 and getattr(head, 'presence_map_loss_type', '') == 'bce':
        return "train again with another seed or with model.decode_head.presence_head.map_loss_type='softmax'"
    return 'train again with another seed'
