"""Atomic file writes: nothing a user already has is replaced by a half-written file.

Every writer goes to a temporary file in the target's folder (``.<name>.<random>.tmp<ext>``: hidden, same file
system, same extension for the libraries that pick a format from it), which is flushed and ``fsync``-ed and then
renamed over the target (``os.replace``, atomic on POSIX and Windows). A failure or a kill before the rename leaves
the target as it was (at worst a temporary file beside it, which :func:`leftover_temp_files` finds). A failed write
(disk full, quota, read-only folder) raises :class:`OSError` naming the target file.

* :func:`atomic_open` - a file object (``'wb'`` / ``'w'``), for ``torch.save``, ``pickle.dump``, ``csv.writer``...;
* :func:`atomic_path` - a temporary path, for writers that only take a path (``torch.onnx.export``, PyAV);
* :func:`write_bytes`, :func:`write_text`, :func:`write_image` (an image encoded in memory with OpenCV, then
  written: ``cv2.imwrite`` reports success even when the disk is full).

Standard library only (``write_image`` imports OpenCV when called), so the ONNX Runtime deployment can use it.
"""

import contextlib
import errno
import os
import os.path as osp
import secrets
from typing import IO, Iterator, List, Optional, Sequence

TEMP_MARK = '.tmp'


def temp_name(path: str) -> str:
    """A fresh temporary name beside ``path``: ``<folder>/.<name>.<8 hex>.tmp<ext>``."""
    folder, base = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{base}.{secrets.token_hex(4)}{TEMP_MARK}{osp.splitext(base)[1]}')


def is_temp_file(name: str) -> bool:
    """Whether a file name is one of :func:`temp_name`'s (a write that did not finish)."""
    base = osp.basename(name)
    if not base.startswith('.'):
        return False
    parts = base.split('.')
    return any(
        len(h) == 8 and all(c in '0123456789abcdef' for c in h) and t == TEMP_MARK[1:] for h, t in zip(parts, parts[1:])
    )


def leftover_temp_files(folder: str, targets: Optional[Sequence[str]] = None) -> List[str]:
    """Temporary files of writes to ``folder`` that never finished (the writer was killed), optionally only those
    of the given target names (e.g. ``['epoch_3.pth']``)."""
    if not osp.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if is_temp_file(name) and (targets is None or any(name.startswith(f'.{t}.') for t in targets)):
            found.append(osp.join(folder, name))
    return found


def write_error(path: str, err: OSError) -> OSError:
    """``err`` as an :class:`OSError` (same errno) whose message names ``path`` and, for a full disk, the fix."""
    reason = err.strerror or str(err)
    hint = ''
    if err.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', -1)):
        hint = ': the disk (or your quota) is full. Free some space or write to another folder'
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = ': the folder is not writable. Choose another output folder'
    # OSError(errno, message) is the builtin subclass of that errno (PermissionError, ...); no filename attribute,
    # which str() would append a second time
    return OSError(err.errno, f'cannot write {path} ({reason}){hint}; the file was left as it was')


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX; no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = True) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the file written there
    replaces ``path``. On an error (or a write that left no file) the temporary file is removed and ``path`` is
    untouched.

    Raises:
        OSError: naming ``path`` (disk full, no permission, ...) or because the block wrote no file.
    """
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise write_error(path, err) from err
    tmp = temp_name(path)
    try:
        yield tmp
        if not osp.isfile(tmp):
            raise OSError(errno.EIO, 'the writer produced no file')
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        if err.filename not in (None, tmp):  # about another file (e.g. an input the block read): as it is
            raise
        raise write_error(path, err) from err
    except BaseException:
        _remove_quietly(tmp)
        raise
    if fsync:
        _fsync_folder(folder)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'wb', encoding: Optional[str] = None, newline: Optional[str] = None) -> IO:
    """Open a temporary file beside ``path`` for writing (``'wb'`` or ``'w'``); it is flushed, ``fsync``-ed and
    renamed over ``path`` when the block ends without an error. The new file gets the permissions a plain
    ``open`` would give it (``0o666`` less the umask)."""
    if mode not in ('w', 'wb', 'wt'):
        raise ValueError(f'atomic_open writes whole files: mode must be "w" or "wb", got {mode!r}')
    if 'b' in mode and (encoding is not None or newline is not None):
        raise ValueError('atomic_open: encoding and newline apply to text mode only')
    with atomic_path(path, fsync=False) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    _fsync_folder(osp.dirname(osp.abspath(path)))


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, 'wb') as f:
        f.write(data)
    if osp.getsize(path) != len(data):  # a file system that lost data without an error
        raise OSError(errno.EIO, f'cannot write {path}: {osp.getsize(path)} of {len(data)} bytes arrived')
    return path


def write_text(path: str, text: str, encoding: str = 'utf-8', newline: Optional[str] = None) -> str:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, 'w', encoding=encoding, newline=newline) as f:
        f.write(text)
    return path


def write_image(path: str, img, params: Sequence[int] = ()) -> str:
    """Encode ``img`` with OpenCV by the extension of ``path`` (``.png``, ``.jpg``, ...) and write it atomically.

    Unlike ``cv2.imwrite``, which returns True even when the disk is full and leaves an empty file, an encoding
    or write failure raises, naming the file.

    Raises:
        ValueError: OpenCV cannot encode ``img`` in that format. OSError: the write failed.
    """
    import cv2

    ext = osp.splitext(path)[1] or '.png'
    try:
        ok, buf = cv2.imencode(ext, img, list(params))
    except cv2.error:  # no encoder for the extension, or an image it cannot take
        ok = False
    if not ok:
        raise ValueError(
            f'cannot encode an image of shape {getattr(img, "shape", None)} and dtype '
            f'{getattr(img, "dtype", None)} as {ext} for {path}'
        )
    return write_bytes(path, buf.tobytes())


__all__ = [
    'atomic_open',
    'atomic_path',
    'write_bytes',
    'write_text',
    'write_image',
    'write_error',
    'is_temp_file',
    'leftover_temp_files',
    'temp_name',
]
