"""Which checkpoint ``tools/train.py --resume`` continues from: the newest complete one.

mmengine resumes from the file ``last_checkpoint`` names. That file can be missing (an earlier mmengine removed the
oldest checkpoint before writing the new one) or incomplete (a checkpoint written by a plain ``CheckpointHook``
when the run was killed, a copy cut short); then :func:`find_resume_checkpoint` names the newest complete
``epoch_*`` / ``iter_*.pth`` and says which files it skipped and why.
"""

import logging
import os
import os.path as osp
import zipfile
from typing import List, Optional, Tuple

from mmengine.logging import print_log

from ..utils.atomic import leftover_temp_files


def _number(path: str) -> int:
    stem = osp.splitext(osp.basename(path))[0]
    tail = stem.split('_')[-1]
    return int(tail) if tail.isdigit() else -1


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (``'missing'``, ``'empty'``, ``'truncated ...'``), or None if complete.

    A ``torch.save`` zip file is complete when its central directory reads and every record's CRC matches
    (``zipfile.testzip``, no unpickling). Other files are read with the safe loader.
    """
    if not osp.isfile(path):
        return 'missing'
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            return f'truncated or corrupt ({size} bytes: {err})'
        return None if bad is None else f'corrupt ({size} bytes: record {bad} fails its checksum)'
    from .safe_checkpoint import CorruptCheckpointError, load_checkpoint_file

    try:
        load_checkpoint_file(path)
    except CorruptCheckpointError:
        return f'truncated or corrupt ({size} bytes)'
    return None


def _recorded(work_dir: str) -> Optional[str]:
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        last = f.read().strip()
    return last or None


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The checkpoint to resume from and the notes on what was skipped.

    Returns:
        ``(path, notes)``: ``path`` None means "let mmengine decide" (``last_checkpoint`` names a complete file, or
        the work dir has no ``last_checkpoint``); otherwise the newest complete ``epoch_*`` / ``iter_*.pth``.

    Raises:
        FileNotFoundError: ``last_checkpoint`` exists but no complete checkpoint is left (naming what was found).
    """
    last = _recorded(work_dir)
    if last is None and not osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        return None, []
    notes = []
    if last is not None:
        problem = checkpoint_problem(last)
        if problem is None:
            return None, []
        notes.append(f'{last} (named in last_checkpoint) is {problem}')
    else:
        notes.append(f'{osp.join(work_dir, "last_checkpoint")} is empty')
    candidates = sorted(
        (
            osp.join(work_dir, f)
            for f in os.listdir(work_dir)
            if (f.startswith('epoch_') or f.startswith('iter_')) and f.endswith('.pth')
        ),
        key=_number,
        reverse=True,
    )
    for path in candidates:
        if last is not None and osp.abspath(path) == osp.abspath(last):
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, notes
        notes.append(f'{path} is {problem}')
    raise FileNotFoundError(
        f'nothing to resume from in {work_dir}: ' + '; '.join(notes) + '. Start without --resume (with --overwrite '
        'to give up the earlier run) or restore a checkpoint.'
    )


def resume_source(work_dir: str) -> Optional[str]:
    """:func:`find_resume_checkpoint`, logging each skipped file and the choice (``tools/train.py --resume``)."""
    path, notes = find_resume_checkpoint(work_dir)
    for note in notes:
        print_log(f'--resume: skipping {note}', logger='current', level=logging.WARNING)
    if path is not None:
        print_log(
            f'--resume: resuming from {path}, the newest complete checkpoint', logger='current', level=logging.WARNING
        )
    return path


def remove_leftover_temp_files(work_dir: str) -> List[str]:
    """Delete the temporary files of checkpoint writes that a killed run left in ``work_dir`` (call while holding
    the work dir's lock); returns their paths."""
    removed = []
    for path in leftover_temp_files(work_dir):
        if '.pth.' in osp.basename(path) or osp.basename(path).startswith('.last_checkpoint.'):
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
    if removed:
        print_log(
            f'removed {len(removed)} incomplete file(s) left by a run killed while saving: '
            + ', '.join(osp.basename(p) for p in removed),
            logger='current',
            level=logging.WARNING,
        )
    return removed
