"""Whole-model checkpoints: strict checks that a checkpoint fits a model, and loading it.

:func:`check_state_dict_fits` / :func:`load_model_checkpoint` refuse a checkpoint whose keys or shapes do not fit
the model (``tools/test.py``, the demo, ``init_avs_model``); the only parts that may be absent are frozen modules
that load their own ``Pretrained`` file (the frozen VGGish), which are then initialised from that file. The file is
read by :func:`~projects.ccformer.utils.checkpoint.load_checkpoint_file` (weights-only, never runs code; see
``projects/ccformer/utils/checkpoint.py``, whose names are importable from here too), and checkpoints of the
earlier parameter layout are renamed first (:func:`~projects.ccformer.models.utils.convert_ccformer_keys`).
"""

import logging
from typing import Dict, List, Sequence

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.runner.checkpoint import load_state_dict

from ..models.utils import convert_ccformer_keys
from ..utils.checkpoint import (  # noqa: F401  (the reading primitives, importable from here as well)
    TRUST_ENV,
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    checkpoint_safe_globals,
    checkpoint_state_dict,
    install_safe_loaders,
    is_trusted,
    load_checkpoint_file,
    load_from_local,
    trust_checkpoint,
    trusted_checkpoints,
)


def _frozen_pretrained_prefixes(model: torch.nn.Module) -> List[str]:
    """Prefixes (``audio_encoder.``) of frozen submodules that load their own ``Pretrained`` file."""
    prefixes = []
    for name, module in model.named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if (
            name
            and getattr(module, 'frozen', False)
            and isinstance(init_cfg, dict)
            and init_cfg.get('type') == 'Pretrained'
            and init_cfg.get('checkpoint')
        ):
            prefixes.append(name + '.')
    return prefixes


def _examples(keys: Sequence[str], n: int = 5) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:n]) + (f', ... ({len(keys)} in all)' if len(keys) > n else '')


def check_state_dict_fits(
    model: torch.nn.Module,
    state_dict: Dict[str, torch.Tensor],
    filename: str,
    config: str = '',
    allow_partial: bool = False,
) -> List[str]:
    """Refuse a state dict whose keys or shapes do not fit ``model``.

    Missing keys are allowed only under frozen submodules with a ``Pretrained`` ``init_cfg`` (the frozen VGGish);
    those prefixes are returned so the caller initialises them from their own file. BatchNorm's
    ``num_batches_tracked`` is ignored (as mmengine does).

    Raises:
        CheckpointMismatchError: naming the file, the config and some of the missing / unexpected / mis-shaped
            keys, unless ``allow_partial`` (then a warning is logged).
    """
    own = {k: v for k, v in model.state_dict().items()}
    exempt = [p for p in _frozen_pretrained_prefixes(model) if not any(k.startswith(p) for k in state_dict)]
    missing = [
        k
        for k in own
        if k not in state_dict and 'num_batches_tracked' not in k and not any(k.startswith(p) for p in exempt)
    ]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}'
        for k in own
        if k in state_dict and hasattr(state_dict[k], 'shape') and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f'{len(missing)} model keys missing from it ({_examples(missing)})' if missing else '',
            f'{len(unexpected)} keys the model does not have ({_examples(unexpected)})' if unexpected else '',
            f'{len(shapes)} shapes differ ({_examples(shapes, 3)})' if shapes else '',
        ]
        where = f' built from {config}' if config else ''
        message = (
            f'checkpoint {filename} does not fit the model{where}: '
            + '; '.join(p for p in parts if p)
            + '. Is it a checkpoint of this config?'
        )
        if not allow_partial:
            raise CheckpointMismatchError(
                message + ' To load the matching part on purpose (fine-tuning, debugging), pass '
                '--allow-partial-checkpoint (tools/test.py, demo/video_demo.py) or strict=False (init_avs_model).'
            )
        print_log(
            message + ' Loading the matching part only (partial load allowed).', logger='current', level=logging.WARNING
        )
    return exempt


def init_exempt_modules(model: torch.nn.Module, prefixes: Sequence[str]) -> None:
    """``init_weights()`` of the frozen pretrained submodules a checkpoint left out (they load their own file)."""
    for prefix in prefixes:
        module = model.get_submodule(prefix.rstrip('.'))
        print_log(
            f'{prefix.rstrip(".")} is not in the checkpoint: it is frozen and loads its own pretrained file '
            f'{module.init_cfg["checkpoint"]}',
            logger='current',
        )
        module.init_weights()


def load_model_checkpoint(
    model: torch.nn.Module, filename: str, config: str = '', strict: bool = True, map_location='cpu'
) -> dict:
    """Safely read ``filename`` and load it into ``model``, refusing a checkpoint that does not fit (``strict``).

    Returns:
        The checkpoint (``meta`` with ``dataset_meta`` for mmengine checkpoints).
    """
    checkpoint = load_checkpoint_file(filename, map_location=map_location)
    # checkpoints of the earlier layout fit as they are
    state = convert_ccformer_keys(checkpoint_state_dict(checkpoint, filename))
    exempt = check_state_dict_fits(model, state, filename, config, allow_partial=not strict)
    init_exempt_modules(model, exempt)
    load_state_dict(model, state, strict=False, logger=MMLogger.get_current_instance())
    return checkpoint if isinstance(checkpoint, dict) else {'state_dict': state}
