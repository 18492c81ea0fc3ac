"""One training run per work dir: a lock file that names its holder (``tools/train.py``).

The lock is ``<work_dir>/.train.lock``, held with ``fcntl.flock`` for the whole run (the kernel releases it when
the process ends, however it ends) and holding ``pid``, ``host``, start time and command line of the run, so a
second run is refused with a message naming the first. A lock file left by a run that no longer exists (killed,
crashed, machine rebooted) is stale: it is taken over with a warning. Where the file system does not support
``flock``, a lock is stale when its host is this machine and its process is gone.
"""

import errno
import json
import logging
import os
import os.path as osp
import socket
import sys
import time
from typing import Optional

from mmengine.logging import print_log

LOCK_NAME = '.train.lock'

try:
    import fcntl
except ImportError:  # Windows: liveness from pid and host only
    fcntl = None


class WorkDirInUseError(RuntimeError):
    """Another training run holds the work dir."""


def _process_alive(pid: int, started: Optional[float]) -> bool:
    """Whether process ``pid`` of this machine exists and (when ``started`` is known) started at that time, so a
    reused pid does not keep a stale lock alive."""
    try:
        import psutil

        proc = psutil.Process(pid)
        return started is None or abs(proc.create_time() - started) < 2.0
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except Exception:  # psutil.NoSuchProcess, AccessDenied on a dead pid
        return False


def _process_start_time() -> Optional[float]:
    try:
        import psutil

        return psutil.Process(os.getpid()).create_time()
    except Exception:
        return None


def describe(holder: dict) -> str:
    """``pid 123 on host gpu1 (started 2026-12-06 07:30:00: tools/train.py CFG ...)``."""
    started = holder.get('started')
    when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started)) if started else 'at an unknown time'
    command = holder.get('command') or '?'
    return f'pid {holder.get("pid", "?")} on host {holder.get("host", "?")} (started {when}: {command})'


class WorkDirLock:
    """Hold ``<work_dir>/.train.lock`` while a training run writes into ``work_dir``.

    Use as a context manager (or :meth:`acquire` / :meth:`release`).

    Raises:
        WorkDirInUseError: another live run holds the work dir (named in the message, with the ways on).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _refuse(self, holder: dict) -> WorkDirInUseError:
        return WorkDirInUseError(
            f'work dir {self.work_dir} is in use by another training run: {describe(holder)}. Two runs in one work '
            f'dir would overwrite each other\'s checkpoints. Wait for it to finish (or stop it), or train into '
            f'another folder with --work-dir NEW_DIR. If that run is gone for good (e.g. its machine was switched '
            f'off), delete {self.path}.'
        )

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            locked = False
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                except OSError as err:
                    if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        holder = self._read()
                        os.close(fd)
                        raise self._refuse(holder) from None
                    # ENOLCK / EOPNOTSUPP: no flock on this file system; fall back to pid and host
            try:
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:  # the holder removed the file meanwhile
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            break
        holder = self._read()
        if holder:
            same_host = holder.get('host') == socket.gethostname()
            if not locked and same_host and _process_alive(int(holder.get('pid', -1)), holder.get('started')):
                os.close(fd)
                raise self._refuse(holder)
            if not locked and not same_host:
                os.close(fd)
                raise self._refuse(holder)  # cannot tell whether a run on another machine is alive
            print_log(
                f'{self.path}: the lock of an earlier run ({describe(holder)}) was left behind; that run no longer '
                'runs, so its lock is taken over',
                logger='current',
                level=logging.WARNING,
            )
        me = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=_process_start_time() or time.time(),
            command=' '.join([osp.basename(sys.executable)] + sys.argv),
        )
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it) and unlock."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
