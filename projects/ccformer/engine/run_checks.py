"""Checks the command-line tools run before any work starts (``tools/train.py``, ``tools/test.py``, the demo).

* :func:`check_cfg_options`: a ``--cfg-options`` key whose top-level name is neither in the config nor a key the
  mmengine ``Runner`` reads is a typo; mmengine would merge it silently and ignore it. A value that is not of the
  kind the config holds there (``train_cfg.max_epochs=abc`` where the config has an integer) is refused, naming
  the option, instead of failing deep inside the run.
* :func:`check_output_dir`: an output folder argument that names an existing file fails at once, not after the
  whole test set has been segmented.
* :func:`set_test_checkpoint`: a test (``tools/test.py``, ``tools/analysis_tools/robustness.py``) loads its checkpoint
  strictly, as saved, and never resumes.
* :func:`earlier_run_files` / :func:`check_fresh_work_dir`: ``tools/train.py`` into a work dir that holds an earlier
  run's checkpoints, without ``--resume``, would replace its ``epoch_*.pth`` / ``last_checkpoint`` and leave a stale
  ``best_*.pth`` beside the new one; it is refused unless the earlier files are given up explicitly.
"""

import difflib
import glob
import inspect
import logging
import os
import os.path as osp
from typing import Iterable, List

from mmengine.logging import print_log

from ..utils.config import config_value

#: top-level config keys mmengine's Runner / our tools read that a config need not define
RUNNER_CONFIG_KEYS = (
    'compile',
    'model_wrapper_cfg',
    'find_unused_parameters',
    'activation_checkpointing',
    'efficient_conv_bn_eval',
    'sync_bn',
    'runner_type',
    'custom_imports',
    'tta_model',
    'tta_pipeline',
    'gpu_ids',
    'num_frames',
    'strategy',
)
CHECKPOINT_PATTERNS = ('epoch_*.pth', 'iter_*.pth', 'best_*.pth', 'last_checkpoint')


def known_top_level_keys(cfg) -> set:
    """Keys of ``cfg`` plus the Runner arguments and :data:`RUNNER_CONFIG_KEYS`."""
    from mmengine.runner import Runner

    runner_args = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    return set(cfg.keys()) | runner_args | set(RUNNER_CONFIG_KEYS)


def check_cfg_options(cfg, options: dict, config: str) -> None:
    """Refuse ``--cfg-options`` whose top-level key is unknown (typo), suggesting the closest known key, or whose
    value is not of the kind the config holds at that key (:func:`check_option_value`).

    Raises:
        KeyError: naming the option, the config and the closest keys.
        ValueError: naming the option, the value given and the kind expected.
    """
    known = known_top_level_keys(cfg)
    for key in options or {}:
        top = key.split('.')[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
            hint = f'; did you mean {" or ".join(repr(c) for c in close)}?' if close else ''
            raise KeyError(
                f'--cfg-options {key}: unknown top-level key {top!r} (not in {config} and not read by '
                f'the mmengine Runner){hint} It would be ignored silently.'
            )
        check_option_value(key, options[key], config_value(cfg, key, _MISSING), config)


_MISSING = object()


def check_option_value(key: str, value, current, config: str) -> None:
    """Refuse a text ``--cfg-options`` value where the config holds a number or a bool: ``DictAction`` keeps what
    does not parse as a number (``abc``, ``1e-3x``) as a string, and mmengine would fail deep inside the run (or
    silently compare a string with a number).

    Raises:
        ValueError: naming the option, the value and the kind the config holds there.
    """
    if current is _MISSING or current is None or not isinstance(value, str):
        return
    if isinstance(current, bool):
        kind = 'True or False'
    elif isinstance(current, (int, float)):
        kind = 'a number'
    else:
        return
    raise ValueError(
        f'--cfg-options {key}={value}: {key} is {kind} in {config} (it is {current!r}), so {value!r} cannot be '
        f'used. Give {kind}, e.g. {key}={current!r}.'
    )


def check_output_dir(path: str, flag: str) -> None:
    """Refuse an output folder argument that names an existing file, before any work is done."""
    if path and osp.exists(path) and not osp.isdir(path):
        raise FileExistsError(
            f'{flag} {path}: this is an existing file, but {flag} takes a folder (the masks are '
            f'written as {flag} DIR/<video>/<video>_<k>.png). Pass a new or existing folder.'
        )


def earlier_run_files(work_dir: str) -> List[str]:
    """Checkpoints (``epoch_*``, ``iter_*``, ``best_*.pth``) and ``last_checkpoint`` already in ``work_dir``."""
    if not osp.isdir(work_dir):
        return []
    return sorted({p for pattern in CHECKPOINT_PATTERNS for p in glob.glob(osp.join(work_dir, pattern))})


def _listing(files: Iterable[str], n: int = 4) -> str:
    files = [osp.basename(f) for f in files]
    return ', '.join(files[:n]) + (f' and {len(files) - n} more' if len(files) > n else '')


def check_fresh_work_dir(work_dir: str, resume: bool, overwrite: bool) -> None:
    """Before training: refuse a work dir holding an earlier run's checkpoints unless ``resume`` or ``overwrite``.

    With ``overwrite`` the earlier checkpoints and ``last_checkpoint`` are deleted (the user gave them up), so the
    new run's ``best_*.pth`` cannot be mistaken for an old one; logs and configs of the earlier run stay.

    Raises:
        FileExistsError: naming the work dir, some of its checkpoints and the three ways on.
    """
    files = earlier_run_files(work_dir)
    if not files or resume:
        return
    if not overwrite:
        raise FileExistsError(
            f'work dir {work_dir} already holds an earlier run ({_listing(files)}); training here would overwrite '
            f'its checkpoints. Continue that run with --resume, train into a new folder with --work-dir NEW_DIR, '
            f'or pass --overwrite to delete its checkpoints and start again.'
        )
    for path in files:
        try:
            os.remove(path)
        except FileNotFoundError:  # another rank of the same launch removed it
            pass
    print_log(
        f'--overwrite: deleted the earlier run\'s {_listing(files, len(files))} in {work_dir}',
        logger='current',
        level=logging.WARNING,
    )


def is_ema_hook(hook) -> bool:
    """Whether a ``custom_hooks`` entry is mmengine's ``EMAHook`` (its type a name or, in lazy configs, a class)."""
    kind = hook.get('type') if isinstance(hook, dict) else None
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return name.split('.')[-1] == 'EMAHook'


def set_test_checkpoint(cfg, checkpoint: str, config: str, allow_partial: bool = False) -> None:
    """Make ``cfg`` test ``checkpoint`` as it was saved.

    * ``load_from`` is the checkpoint and ``resume`` is False: a config saved by a resumed training run says
      ``resume = True``, and mmengine would then rebuild the training loop, optimizer and train data to resume.
    * :class:`~.hooks.StrictCheckpointHook` refuses a checkpoint that does not fit the model (mmengine loads with
      ``strict=False`` and would score the model with random weights where keys differ), or only warns with
      ``allow_partial``.
    * The ``EMAHook`` is left out: a checkpoint of a config that averages the weights holds the average as its
      ``state_dict``, and the hook's copy of the model would not see the parts the strict hook loads from their own
      files (the frozen VGGish).
    """
    cfg.load_from = checkpoint
    cfg.resume = False
    hooks = [h for h in cfg.get('custom_hooks', []) if not is_ema_hook(h)]
    cfg.custom_hooks = hooks + [
        dict(type='StrictCheckpointHook', checkpoint=checkpoint, config=config, allow_partial=allow_partial)
    ]
