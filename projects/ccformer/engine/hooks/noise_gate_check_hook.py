"""After each validation: how often the model masks a frame when it hears white noise, in the training log.

A presence gate that stays open whatever the model hears (``docs/robustness.md``, "A collapse on the oracle
family") passes an ordinary validation: the validation clips' own audio does sound, so their mIoU looks normal. The
same clips heard through white noise show it at once: a working gate masks almost none of them, a collapsed one
most. :class:`NoiseGateCheckHook` measures that share after every validation, logs it as ``val/noise_masked`` next to
the mIoU and warns when it is above ``warn_above``. It is a diagnostic, not a selection metric: a model that masks
nothing at all scores 0 too.
"""

import contextlib
import math
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmseg.registry import HOOKS

from ...datasets.audio_conditions import EVAL_NOISE_DBFS
from ...datasets.audio_conditions.synthesis import noise_logmel
from ...datasets.transforms.processing import kept_rng_state

#: The figure's name in the log (``val/noise_masked``, next to the validation metrics).
NOISE_MASKED_KEY = 'noise_masked'


def _masked_frames(logits: torch.Tensor, threshold: float, samples) -> torch.Tensor:
    """``(N, T, K, H, W)`` logits -> ``(N, T)`` bool: the frame gets a mask (K = 1: a logit above ``threshold``;
    K > 1: a pixel whose arg-max is not the background 0) within the sample's image (``img_shape``: batch padding
    left out, as ``CCFormer.postprocess_result`` crops it)."""
    out = []
    for x, sample in zip(logits, samples):
        h, w = sample.metainfo.get('img_shape', x.shape[-2:])[:2]
        x = x[..., :h, :w]
        fg = x[:, 0] > threshold if x.shape[1] == 1 else x.argmax(1) > 0
        out.append(fg.flatten(1).any(-1))
    return torch.stack(out)


def _remedy(head) -> str:
    """What to try against an open gate: the relative map loss where the head trains its presence map with BCE."""
    if getattr(head, 'presence_map_loss_weight', 0.0) > 0 and getattr(head, 'presence_map_loss_type', '') == 'bce':
        return "train again with another seed or with model.decode_head.presence_head.map_loss_type='softmax'"
    return 'train again with another seed'


@contextlib.contextmanager
def _kept_random_state():
    """Restore the global random states of Python, NumPy and torch (CPU and the current CUDA device) on exit."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with kept_rng_state(), torch.random.fork_rng(devices=devices):  # fork_rng: the CUDA generator
        yield


@torch.no_grad()
def noise_masked_frames(
    model,
    dataloader: Iterable,
    noise_dbfs: float = EVAL_NOISE_DBFS,
    max_clips: Optional[int] = None,
    seed: int = 0,
    fp16: bool = False,
) -> Tuple[int, int]:
    """Frames given a mask when every frame of the clips of ``dataloader`` is heard through white noise.

    Each real frame's audio is replaced by an example of white noise at ``noise_dbfs`` dB re full scale (the front
    end's log-mel of a noise wav, :func:`noise_logmel`, drawn from ``seed`` batch after batch, so every call with
    the same loader hears the same noise); the frames are segmented as at inference (``mode='tensor'``, the model's
    own threshold, the batch padding left out).

    Args:
        model: a ``CCFormer`` (eval mode is set here and the previous mode restored).
        dataloader: batches as the validation loop gets them.
        noise_dbfs (float): RMS level of the noise. Defaults to -20, the ``noise`` condition of ``robustness.py``.
        max_clips (int, optional): count the first ``max_clips`` clips only. Defaults to all.
        seed (int): seed of the noise. Defaults to 0.
        fp16 (bool): run under autocast, as a validation loop with ``fp16=True`` does. Defaults to False.

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
            with autocast(enabled=fp16):
                logits = model(inputs, samples, mode='tensor', audio=audio)
            valid = model.frame_valid_from_samples(samples, t, inputs.device)
            valid = torch.ones(n, t, dtype=torch.bool) if valid is None else valid.bool().cpu()
            hit = _masked_frames(logits.float(), threshold, samples).cpu() & valid
            keep = n if max_clips is None else min(n, max_clips - clips)  # the last batch may hold more clips
            masked += int(hit[:keep].sum())
            frames += int(valid[:keep].sum())
            clips += keep
            if max_clips is not None and clips >= max_clips:
                break
    finally:
        model.train(training)
    return masked, frames


@HOOKS.register_module()
class NoiseGateCheckHook(Hook):
    """Log, after each validation, the share of validation frames masked under white noise; warn when it is high.

    The figure (``val/noise_masked``, percent of the real frames of the first ``max_clips`` validation clips) is
    comparable to the ``noise`` row of ``tools/analysis_tools/robustness.py``, measured on the validation split
    (other noise draws): a robust model keeps it near 0; a collapsed presence gate, one that is open whatever the
    model hears, keeps it near the share of sounding frames. Above ``warn_above`` the log gets a warning that says
    what to do. Models without a presence head (the paper's recipe, which masks under any sound by design) are not
    checked; the hook says so once. A check that fails (an unusual model or loader) is reported as a warning and
    never stops training.

    It runs after ``EMAHook`` has swapped the averaged weights in and before it swaps them out again (priority
    ``ABOVE_NORMAL``, EMAHook's ``NORMAL``), so it checks the weights that were validated, and before ``LoggerHook``,
    which writes the figure with the validation metrics. In distributed training each process hears its share of the
    first ``max_clips`` clips and the counts are summed.

    Args:
        noise_dbfs (float): RMS level of the noise in dB re full scale. Defaults to -20.
        max_clips (int, optional): validation clips to hear through noise (the first ones of the loader). Defaults
            to 64; None: all.
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

    def before_train(self, runner) -> None:
        hooks = list(getattr(runner, 'hooks', []))
        mine = next((i for i, h in enumerate(hooks) if h is self), None)
        late_ema = [i for i, h in enumerate(hooks) if isinstance(h, EMAHook) and mine is not None and i < mine]
        if late_ema:
            runner.logger.warning(
                'NoiseGateCheckHook runs after EMAHook, which has then swapped the averaged weights out again: it '
                'checks the raw weights, not the validated ones. Give EMAHook a lower priority than ABOVE_NORMAL.'
            )

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
        share_of = None if self.max_clips is None else math.ceil(self.max_clips / get_world_size())
        fp16 = bool(getattr(getattr(runner, 'val_loop', None), 'fp16', False))
        try:
            with _kept_random_state():  # a second pass over the loader draws a seed: training must not see it
                masked, frames = noise_masked_frames(
                    model, runner.val_dataloader, self.noise_dbfs, share_of, self.seed, fp16=fp16
                )
            failed = 0
        except Exception as err:  # a diagnostic: report, never stop the user's training
            runner.logger.warning(f'NoiseGateCheckHook: the white-noise check failed and is skipped this time: {err!r}')
            masked = frames = 0
            failed = 1
        counts = torch.tensor([masked, frames, failed], dtype=torch.float64)
        all_reduce(counts)  # summed over processes (every process takes part); a no-op without distribution
        masked, frames, failed = (int(c) for c in counts)
        if failed or frames == 0:
            if not failed:
                runner.logger.warning('NoiseGateCheckHook: the validation loader gave no frame to check')
            return
        share = 100.0 * masked / frames
        runner.message_hub.update_scalar(f'val/{NOISE_MASKED_KEY}', share)
        if share > self.warn_above:
            runner.logger.warning(
                f'NoiseGateCheckHook: {share:.1f}% of the validation frames ({masked} of {frames}) get a mask when '
                f'they hear white noise at {self.noise_dbfs:g} dBFS (above {self.warn_above:g}%): the presence gate '
                'is open whatever the model hears, so it segments whatever sounds, on screen or not. If '
                f'it stays this high at the end, {_remedy(model.decode_head)} and check the trained model with '
                'tools/analysis_tools/robustness.py (docs/robustness.md, "A collapse on the oracle family")'
            )
