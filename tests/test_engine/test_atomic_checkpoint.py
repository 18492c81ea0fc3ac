"""AtomicCheckpointHook and --resume's choice of checkpoint (projects/ccformer/engine/hooks/atomic_checkpoint_hook.py,
engine/resume.py): a save interrupted mid-write (an injected exception, a killed process) never costs the previous
checkpoint, the previous best, or a readable ``last_checkpoint``; resume skips an incomplete newest checkpoint.

A toy mmengine Runner (``toy_runner.py``: every epoch saves a new best) keeps each run to a second.
"""

import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

import projects.ccformer  # noqa: F401  (registers the hook and the 'atomic_local' backend)
from projects.ccformer.engine.hooks import atomic_checkpoint_hook
from projects.ccformer.engine.resume import checkpoint_problem, find_resume_checkpoint, remove_leftover_temp_files
from projects.ccformer.utils.atomic import atomic_open, leftover_temp_files

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

from toy_runner import toy_runner  # noqa: E402  (tests/test_engine/toy_runner.py)

HERE = osp.dirname(osp.abspath(__file__))


def _interrupt_writes_of(monkeypatch, fragment: str, interrupt=KeyboardInterrupt):
    """Writes of checkpoints whose name holds ``fragment`` write half of their bytes, then are interrupted."""
    real = atomic_checkpoint_hook.write_bytes

    def half_then_interrupt(path, data):
        if fragment not in osp.basename(path):
            return real(path, data)
        with atomic_open(path, 'wb') as f:
            f.write(data[: len(data) // 2])
            raise interrupt()

    monkeypatch.setattr(atomic_checkpoint_hook, 'write_bytes', half_then_interrupt)


def _complete(path: str) -> bool:
    return checkpoint_problem(path) is None


def test_previous_best_survives_an_interrupted_best_save(tmp_path, monkeypatch):
    work = str(tmp_path)
    toy_runner(work, 1).train()
    assert _complete(osp.join(work, 'best_acc_epoch_1.pth'))
    _interrupt_writes_of(monkeypatch, 'best_acc_epoch_2')
    with pytest.raises(KeyboardInterrupt):
        toy_runner(work, 2, resume=True).train()
    names = sorted(os.listdir(work))
    assert 'best_acc_epoch_1.pth' in names and _complete(osp.join(work, 'best_acc_epoch_1.pth')), names
    assert 'best_acc_epoch_2.pth' not in names  # no truncated best
    assert leftover_temp_files(work) == []
    assert _complete(osp.join(work, 'epoch_2.pth'))  # saved before the validation


def test_max_keep_one_keeps_the_old_checkpoint_until_the_new_one_is_complete(tmp_path, monkeypatch):
    work = str(tmp_path)
    toy_runner(work, 1).train()
    _interrupt_writes_of(monkeypatch, 'epoch_2.pth')
    with pytest.raises(KeyboardInterrupt):
        toy_runner(work, 2, resume=True).train()
    assert _complete(osp.join(work, 'epoch_1.pth')) and not osp.exists(osp.join(work, 'epoch_2.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert osp.basename(f.read()) == 'epoch_1.pth'
    monkeypatch.undo()
    toy_runner(work, 2, resume=True).train()  # resumes from epoch 1; the retired checkpoint goes after the save
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['best_acc_epoch_2.pth', 'epoch_2.pth']


def test_a_process_killed_while_saving_the_best(tmp_path):
    """SIGKILL in the middle of writing best_acc_epoch_2.pth (half of its bytes on disk): the earlier best stays
    complete, last_checkpoint names a complete file, and --resume's choice is complete."""
    work = str(tmp_path / 'work')
    script = tmp_path / 'killed.py'
    script.write_text(
        textwrap.dedent(
            f'''
            import os, signal
            from projects.ccformer.engine.hooks import atomic_checkpoint_hook
            from toy_runner import toy_runner
            from projects.ccformer.utils.atomic import atomic_open
            real = atomic_checkpoint_hook.write_bytes

            def killed_mid_write(path, data):
                if 'best_acc_epoch_2' not in os.path.basename(path):
                    return real(path, data)
                with atomic_open(path, 'wb') as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

            atomic_checkpoint_hook.write_bytes = killed_mid_write
            toy_runner({work!r}, 3).train()
            '''
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    names = sorted(os.listdir(work))
    assert _complete(osp.join(work, 'best_acc_epoch_1.pth')), names
    assert 'best_acc_epoch_2.pth' not in names
    assert len(leftover_temp_files(work)) == 1  # the half-written file, under its temporary name
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert _complete(f.read().strip())
    assert find_resume_checkpoint(work) == (None, [])  # last_checkpoint names a complete file: mmengine resumes
    assert [osp.basename(p) for p in remove_leftover_temp_files(work)][0].startswith('.best_acc_epoch_2.pth.')


def _save(path, epoch):
    torch.save(dict(meta=dict(epoch=epoch), state_dict=dict(w=torch.ones(64))), path)


def test_resume_skips_an_incomplete_newest_checkpoint(tmp_path):
    work = str(tmp_path)
    assert find_resume_checkpoint(work) == (None, [])  # nothing recorded: mmengine decides
    for epoch in (1, 2, 3):
        _save(osp.join(work, f'epoch_{epoch}.pth'), epoch)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_3.pth'))
    assert find_resume_checkpoint(work) == (None, [])  # the named file is complete
    data = open(osp.join(work, 'epoch_3.pth'), 'rb').read()
    open(osp.join(work, 'epoch_3.pth'), 'wb').write(data[: len(data) // 2])  # cut short (a killed plain save)
    path, notes = find_resume_checkpoint(work)
    assert path == osp.join(work, 'epoch_2.pth')
    assert len(notes) == 1 and 'epoch_3.pth (named in last_checkpoint) is truncated or corrupt' in notes[0]
    open(osp.join(work, 'epoch_2.pth'), 'wb').write(b'')  # and an empty one
    path, notes = find_resume_checkpoint(work)
    assert path == osp.join(work, 'epoch_1.pth') and 'epoch_2.pth is empty' in notes[1]
    os.remove(osp.join(work, 'epoch_1.pth'))
    with pytest.raises(FileNotFoundError, match='nothing to resume from .*epoch_3.pth.*truncated.*Start without'):
        find_resume_checkpoint(work)


def test_resume_when_last_checkpoint_names_a_deleted_file(tmp_path):
    """An earlier mmengine removed the oldest checkpoint before writing the new one: the named file is missing."""
    work = str(tmp_path)
    for name in ('epoch_2.pth', 'epoch_10.pth', 'best_acc_epoch_9.pth'):
        _save(osp.join(work, name), 0)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_11.pth'))
    path, notes = find_resume_checkpoint(work)
    assert path == osp.join(work, 'epoch_10.pth') and 'epoch_11.pth (named in last_checkpoint) is missing' in notes[0]


def test_checkpoint_problem_reads_no_pickle(tmp_path):
    """A complete zip checkpoint is recognised by its records' checksums; a flipped byte is corrupt."""
    path = str(tmp_path / 'c.pth')
    _save(path, 1)
    assert checkpoint_problem(path) is None
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.file_size > 100)
    data = bytearray(open(path, 'rb').read())
    h = info.header_offset  # local header: name and extra lengths at +26 / +28 (the extra pads for alignment)
    start = h + 30 + int.from_bytes(data[h + 26 : h + 28], 'little') + int.from_bytes(data[h + 28 : h + 30], 'little')
    data[start + 10] ^= 0xFF
    open(path, 'wb').write(bytes(data))
    assert 'corrupt' in checkpoint_problem(path)
