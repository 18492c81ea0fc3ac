"""One training run per work dir (projects/ccformer/engine/work_dir_lock.py): a second run is refused naming the
first; the lock of a run that no longer exists is taken over."""

import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest

from projects.ccformer.engine.work_dir_lock import LOCK_NAME, WorkDirInUseError, WorkDirLock

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HOLDER = '''
import sys, time
from projects.ccformer.engine.work_dir_lock import WorkDirLock
WorkDirLock(sys.argv[1]).acquire()
print('locked', flush=True)
time.sleep(120)
'''


def _holder(work: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLDER, work],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_second_run_is_refused_naming_the_first(tmp_path):
    work = str(tmp_path / 'work')
    proc = _holder(work)
    try:
        with pytest.raises(WorkDirInUseError) as info:
            WorkDirLock(work).acquire()
        msg = str(info.value)
        assert f'is in use by another training run: pid {proc.pid} on host {socket.gethostname()}' in msg
        assert '--work-dir NEW_DIR' in msg
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder was killed: its lock file stays, but the run is gone, so the lock is taken over
    holder = json.load(open(osp.join(work, LOCK_NAME)))
    assert holder['pid'] == proc.pid
    with WorkDirLock(work):
        assert json.load(open(osp.join(work, LOCK_NAME)))['pid'] == os.getpid()
    assert not osp.exists(osp.join(work, LOCK_NAME))  # released


def test_stale_lock_without_flock(tmp_path, monkeypatch):
    """Where the file system has no flock, a lock of this host whose process is gone is stale; a live one is not."""
    import projects.ccformer.engine.work_dir_lock as lock_module

    monkeypatch.setattr(lock_module, 'fcntl', None)
    work = str(tmp_path)
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    lock = osp.join(work, LOCK_NAME)
    with open(lock, 'w') as f:
        json.dump(dict(pid=int(dead.stdout), host=socket.gethostname(), started=time.time() - 60), f)
    WorkDirLock(work).acquire().release()
    with open(lock, 'w') as f:  # this very process: alive
        json.dump(dict(pid=os.getpid(), host=socket.gethostname(), started=None), f)
    with pytest.raises(WorkDirInUseError, match=f'pid {os.getpid()}'):
        WorkDirLock(work).acquire()
