"""Reading checkpoints without executing code: the primitives the models and the tools load weights with.

Every checkpoint the project reads goes through mmengine's ``CheckpointLoader``: ``Runner.load_checkpoint`` and
``Runner.resume`` (``tools/test.py``, ``tools/train.py --resume``, ``load_from``), ``mmengine.runner.load_checkpoint``,
``Pretrained`` init (mmengine / mmdet backbones, :class:`VGGish`, :class:`TimmPyramidBackbone`) and the tools.
:func:`install_safe_loaders` (called when ``projects.ccformer.engine`` is imported, and by
:func:`load_checkpoint_file`) replaces each of its schemes by one that reads with ``torch.load(weights_only=True)``
and the explicit allowlist :func:`checkpoint_safe_globals` of the non-tensor objects an mmengine 0.11 checkpoint
holds (read from checkpoints written by ``tools/train.py``):

* ``message_hub.log_scalars``: ``mmengine.logging.HistoryBuffer`` objects; each pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min' | 'max' | 'mean' | 'current')``, so ``builtins.getattr`` is admitted only in that
  form (:func:`_history_buffer_method`);
* numpy arrays, scalars and dtypes inside them and in ``runtime_info`` (``numpy._core.multiarray._reconstruct`` /
  ``scalar``, ``numpy.ndarray``, ``numpy.dtype`` and the numeric / bool / string dtype classes; also under numpy 1's
  ``numpy.core`` names, for files written with numpy 1);
* everything else is tensors and plain Python (``meta`` with the config text, ``state_dict``, optimizer and
  scheduler states), which ``weights_only`` admits by default.

Any other global (``os.system``, a class of some package, ...) is refused before it is called:
:class:`UnsafeCheckpointError` names the file, the refused globals and the opt-in. A file you trust (e.g. one
written by other code that pickles its own objects) is loaded with full unpickling when its path is listed in
the environment variable ``CCFORMER_TRUSTED_CHECKPOINTS`` (several paths separated by ``os.pathsep``, or a JSON
list for paths that hold it), which the
tools' ``--trust-checkpoint`` flag and :func:`trust_checkpoint` set; off by default. A truncated or corrupt file
raises :class:`CorruptCheckpointError` naming it; :func:`check_pretrained_file` names a missing pretrained file and
where to get it.

This module needs torch, numpy and mmengine only, and imports nothing else of the package: the backbones
(``models``) read their pretrained files with it, and ``engine/safe_checkpoint.py`` checks whole-model checkpoints
on top of it.
"""

import contextlib
import io
import json
import logging
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = 'CCFORMER_TRUSTED_CHECKPOINTS'
HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')
_DTYPE_CODES = '?bBhHiIlLqQefdgFDGUS'
_CORRUPT_PATTERNS = (
    'PytorchStreamReader',
    'central directory',
    'zip archive',
    'Ran out of input',
    'unexpected EOF',
    'invalid load key',
    'truncated',
    'file is corrupted',
    'storage has wrong',
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects whose loading could run code; it was refused before running any."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file is truncated or not a checkpoint at all."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not fit the model it is loaded into."""


# ------------------------------------------------------------------------------------------------ allowlist
def _history_buffer_method(obj, name: str):
    """``builtins.getattr`` as admitted in a checkpoint: only ``HistoryBuffer.<statistics method>``."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS + tuple(HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused global builtins.getattr({getattr(obj, "__name__", type(obj).__name__)}, '
        f'{name!r}): only HistoryBuffer statistics methods may be looked up'
    )


def checkpoint_safe_globals() -> List:
    """The globals an mmengine checkpoint may hold besides tensors and plain Python (see the module docstring)."""
    from mmengine.logging import HistoryBuffer
    from numpy._core.multiarray import _reconstruct, scalar

    dtypes = sorted({type(np.dtype(c)) for c in _DTYPE_CODES}, key=lambda t: t.__name__)
    return [
        HistoryBuffer,
        (_history_buffer_method, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        _reconstruct,
        scalar,
        (_reconstruct, 'numpy.core.multiarray._reconstruct'),
        (scalar, 'numpy.core.multiarray.scalar'),
        *dtypes,
    ]


def _allowed_global_names() -> set:
    """Names ``torch.load(weights_only=True)`` admits here: torch's defaults and :func:`checkpoint_safe_globals`."""
    from torch import _weights_only_unpickler as wou

    names = set(wou._get_allowed_globals())
    for g in checkpoint_safe_globals():
        names.add(g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}')
    return names


# ------------------------------------------------------------------------------------------------ trust opt-in
def _trust_key(filename: str) -> str:
    return filename if '://' in filename else osp.realpath(osp.expanduser(filename))


def _listed(value: str) -> List[str]:
    """The paths of ``CCFORMER_TRUSTED_CHECKPOINTS``: a JSON list (any path, ``:`` included) or paths separated by
    ``os.pathsep``."""
    if value.lstrip().startswith('['):
        try:
            paths = json.loads(value)
        except ValueError as err:
            raise ValueError(f'{TRUST_ENV} is not a valid JSON list of paths ({err}): {value!r}') from err
        return [str(p) for p in paths if p]
    return [p for p in value.split(os.pathsep) if p]


def trusted_checkpoints() -> set:
    """The files listed in ``CCFORMER_TRUSTED_CHECKPOINTS`` (resolved paths; URLs as written)."""
    return {_trust_key(p) for p in _listed(os.environ.get(TRUST_ENV, ''))}


def trust_checkpoint(filename: str) -> None:
    """Load ``filename`` with full unpickling from now on (in this process and its children).

    Only for files from a source you trust: unpickling can run any code the file contains. The list is kept in the
    environment variable ``CCFORMER_TRUSTED_CHECKPOINTS``: paths separated by ``os.pathsep``, or a JSON list once a
    path (or URL) holds that separator (``:`` on Linux).
    """
    current = _listed(os.environ.get(TRUST_ENV, ''))
    key = _trust_key(filename)
    if key in trusted_checkpoints():
        return
    paths = current + [key]
    if any(os.pathsep in p for p in paths) or os.environ.get(TRUST_ENV, '').lstrip().startswith('['):
        os.environ[TRUST_ENV] = json.dumps(paths)
    else:
        os.environ[TRUST_ENV] = os.pathsep.join(paths)


def is_trusted(filename: str) -> bool:
    """Whether ``filename`` was opted in for full unpickling."""
    return _trust_key(filename) in trusted_checkpoints()


# ------------------------------------------------------------------------------------------------ errors
def _scan_pickles(data: bytes):
    """``(globals, complete)``: ``module.name`` of every global the pickles at the start of ``data`` import (static
    scan, nothing runs) and whether at least one whole pickle was read (False: the bytes are no pickle at all)."""
    found: List[str] = []
    stream = io.BytesIO(data)
    complete = False
    for _ in range(8):  # a legacy torch file is several pickles (magic, protocol, sys info, object) then storages
        strings: List[str] = []
        memo: Dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == 'GLOBAL':
                    found.append(arg.replace(' ', '.').replace('__builtin__.', 'builtins.'))
                elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    found.append(f'{strings[-2]}.{strings[-1]}')
                elif isinstance(arg, str) and 'UNICODE' in op.name:
                    strings.append(arg)
                elif op.name == 'MEMOIZE' and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ('BINGET', 'LONG_BINGET', 'GET') and arg in memo:
                    strings.append(memo[arg])
            complete = True
        except Exception:
            break
    return list(dict.fromkeys(found)), complete


def _pickle_data(path: str) -> bytes:
    """The object pickle of a ``torch.save`` zip file, else the first MiB of the file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            record = next((n for n in zf.namelist() if n.endswith('data.pkl')), None)
            return zf.read(record) if record else b''
    with open(path, 'rb') as f:
        return f.read(1 << 20)


def _refused_globals(path: Optional[str], message: str) -> List[str]:
    """The globals of a refused checkpoint that the safe loader does not admit (from the file, else the message)."""
    names: List[str] = []
    if path is not None and osp.isfile(path):
        try:
            allowed = _allowed_global_names()
            names = [n for n in _scan_pickles(_pickle_data(path))[0] if n not in allowed]
        except Exception:  # the scan only improves the message
            names = []
    if not names:
        names = re.findall(r'GLOBAL (\S+)', message)
    if 'refused global builtins.getattr' in message:
        names = ['builtins.getattr'] + [n for n in names if n != 'builtins.getattr']
    return names


def _is_pickle(path: str) -> bool:
    """Whether the file (or the object record of a zip checkpoint) parses as a pickle."""
    try:
        return _scan_pickles(_pickle_data(path))[1]
    except Exception:
        return False


def _unsafe_error(filename: str, path: Optional[str], err: BaseException) -> UnsafeCheckpointError:
    names = _refused_globals(path, str(err))
    reason = re.search(r'(Unsupported [^\n]*|Trying to load unsupported [^\n]*|refused global [^\n]*)', str(err))
    what = (
        f'it imports {", ".join(names[:5])}{" ..." if len(names) > 5 else ""}, which a checkpoint of tensors, '
        'numbers and mmengine logs never needs'
        if names
        else 'torch cannot read it without full unpickling' + (f' ({reason.group(1).strip()[:160]})' if reason else '')
    )
    listed = f"'{json.dumps([filename])}'" if os.pathsep in filename else filename  # a path with ':' as JSON
    return UnsafeCheckpointError(
        f'refused to load checkpoint {filename}: {what}. Loading it could run code hidden in the file, so it was '
        f'not unpickled. Only if you trust where the file comes from, opt in for this file with '
        f'--trust-checkpoint (tools/train.py, tools/test.py, demo/video_demo.py), trust_checkpoint(path) in Python, '
        f'or {TRUST_ENV}={listed} in the environment (README, "How checkpoints are loaded").'
    )


def _is_corrupt(err: BaseException) -> bool:
    """Whether a load error means a truncated / garbled file (not a refused global, not a device problem)."""
    if isinstance(err, (RuntimeError, pickle.UnpicklingError)):
        return any(p in str(err) for p in _CORRUPT_PATTERNS)
    return isinstance(
        err,
        (
            EOFError,
            IndexError,
            KeyError,
            ValueError,
            TypeError,
            AttributeError,
            OverflowError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
            struct.error,
        ),
    )


def _corrupt_error(filename: str, err: BaseException) -> CorruptCheckpointError:
    size = f' ({osp.getsize(filename)} bytes)' if osp.isfile(filename) else ''
    reason = (str(err).split('. ')[0].splitlines() or [''])[0][:160] or type(err).__name__
    return CorruptCheckpointError(
        f'checkpoint {filename}{size} is truncated or corrupt and cannot be read ({reason}). Download or copy it '
        f'again (compare its size / sha256 with the source), or use another checkpoint.'
    )


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside runs with ``weights_only=True`` (even where the caller passes False) and the
    checkpoint allowlist."""
    previous = os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD')
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            yield
    finally:
        if previous is None:
            os.environ.pop('TORCH_FORCE_WEIGHTS_ONLY_LOAD', None)
        else:
            os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = previous


@contextlib.contextmanager
def _load_errors(filename: str, path: Optional[str] = None) -> Iterator[None]:
    """Turn the errors of a weights-only load into :class:`UnsafeCheckpointError` (a refused global, or a pickle
    torch cannot read safely) or :class:`CorruptCheckpointError` (truncated / garbled), naming ``filename``."""
    try:
        yield
    except pickle.UnpicklingError as err:
        if not _refused_globals(path, str(err)) and (_is_corrupt(err) or (path is not None and not _is_pickle(path))):
            raise _corrupt_error(filename, err) from None
        raise _unsafe_error(filename, path, err) from None
    except Exception as err:
        if _is_corrupt(err):
            raise _corrupt_error(filename, err) from None
        raise


# ------------------------------------------------------------------------------------------------ loaders
def load_from_local(filename: str, map_location=None):
    """Read a local checkpoint with ``torch.load(weights_only=True)`` and the allowlist (full unpickling only for
    files opted in with :func:`trust_checkpoint`).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs globals outside the allowlist (nothing of it was run).
        CorruptCheckpointError: truncated / not a checkpoint.
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if osp.getsize(path) == 0:
        raise _corrupt_error(filename, EOFError('the file is empty'))
    with _load_errors(filename, path):
        if is_trusted(path):
            print_log(
                f'{filename} is listed in {TRUST_ENV}: loading it with full unpickling (trusted source)',
                logger='current',
                level=logging.WARNING,
            )
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(checkpoint_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Detected pickle protocol')  # refused below anyway
            return torch.load(path, map_location=map_location, weights_only=True)


def _safe_scheme(loader: Callable) -> Callable:
    """Wrap one of mmengine's remote loaders (http, torchvision://, ...) so its ``torch.load`` is weights-only."""

    def load(filename, map_location=None):
        if is_trusted(filename):
            return loader(filename, map_location)
        with _weights_only_loads(), _load_errors(filename):
            return loader(filename, map_location)

    load.__name__ = loader.__name__  # mmengine logs "Loads checkpoint by <name[10:]> backend"
    load._ccformer_safe = True
    return load


def install_safe_loaders() -> None:
    """Replace every scheme of mmengine's ``CheckpointLoader`` by its weights-only form (idempotent)."""
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if getattr(loader, '_ccformer_safe', False):
            continue
        safe = load_from_local if prefix == '' else _safe_scheme(loader)
        safe._ccformer_safe = True
        CheckpointLoader.register_scheme(prefix, safe, force=True)


def load_checkpoint_file(filename: str, map_location='cpu'):
    """Read a checkpoint (path or URL) through the safe loaders; returns what ``torch.load`` returns."""
    install_safe_loaders()  # also covers schemes registered after projects.ccformer was imported
    return CheckpointLoader.load_checkpoint(filename, map_location=map_location)


# ---------------------------------------------------------------------------------- state dicts, pretrained files
def checkpoint_state_dict(checkpoint, filename: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """``checkpoint['state_dict']`` (or the checkpoint itself) with a DDP ``module.`` prefix removed."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f'{filename} holds {type(checkpoint).__name__}, not a state dict or an '
            f'mmengine checkpoint (a dict with "state_dict")'
        )
    out = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())
    out._metadata = getattr(state, '_metadata', OrderedDict())  # per-module versions (BatchNorm)
    return out


def check_pretrained_file(path: str, what: str, url: str = '') -> None:
    """Raise a clear ``FileNotFoundError`` when a local pretrained checkpoint is missing.

    Args:
        path: the ``init_cfg`` checkpoint; remote paths (``http(s)://``, ``torchvision://``, ...) are left to
            mmengine's loaders.
        what: the module that needs it, for the message (e.g. ``'VGGish'``).
        url: where the file can be downloaded, for the message.
    """
    if '://' in path or osp.isfile(path):
        return
    hint = f' Download it from {url} and' if url else ' Download it and'
    raise FileNotFoundError(
        f'{what}: pretrained checkpoint "{path}" not found (cwd: {osp.abspath(".")}).{hint} put it at that '
        f'path (see README, "Pretrained weights"), or set the init_cfg checkpoint in the config '
        f'(e.g. --cfg-options) to where it is; set init_cfg=None to train from scratch.'
    )
