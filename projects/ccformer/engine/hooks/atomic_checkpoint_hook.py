"""mmengine's ``CheckpointHook`` whose files are never left half-written and never lost before their successor.

* Checkpoints (``epoch_*`` / ``iter_*`` / ``best_*.pth``) go through mmengine's ``Runner.save_checkpoint`` to the
  file backend ``'atomic_local'`` (:class:`AtomicLocalBackend`): written to a temporary file in the work dir,
  flushed and renamed into place (``projects/ccformer/utils/atomic.py``).
* ``last_checkpoint`` is written the same way, after the checkpoint it names is complete.
* The checkpoint that ``max_keep_ckpts`` retires and the previous best checkpoint are removed only after the new
  one is complete (mmengine removes them first, so a kill while saving left no complete checkpoint).
"""

import contextlib
import os.path as osp
from typing import Iterator, List

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ...utils.atomic import write_bytes, write_text

ATOMIC_BACKEND = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace a file atomically (a temporary file in
    the same folder, flushed, then renamed over it). A failed write raises ``OSError`` naming the file and leaves
    the earlier file as it was."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_text(str(filepath), obj, encoding=encoding)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _DeferredRemovals:
    """A file backend whose ``remove`` / ``rmtree`` only record the path (everything else is the wrapped
    backend's)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.paths: List[str] = []

    def remove(self, path) -> None:
        self.paths.append(str(path))

    def rmtree(self, path) -> None:
        self.paths.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that replaces files only by complete ones.

    Without ``backend_args`` / ``file_client_args`` and with a local ``out_dir`` the checkpoints are written
    through :class:`AtomicLocalBackend`; with a remote ``out_dir`` or your own backend the files go where mmengine
    would put them (removals are still deferred until the successor is saved).
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir or runner.work_dir
        if self.backend_args is None and self.file_client_args is None and '://' not in str(out_dir):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)

    @contextlib.contextmanager
    def _deferred_removals(self) -> Iterator[_DeferredRemovals]:
        """Inside the block ``self.file_backend`` only records removals; they run when the block ends without an
        error, except for the files the hook still keeps (``last_ckpt``, the best checkpoints)."""
        backend = self.file_backend
        if isinstance(backend, _DeferredRemovals):  # nested: the outer block removes
            yield backend
            return
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            yield deferred
        finally:
            self.file_backend = backend
        best = getattr(self, 'best_ckpt_path_dict', {}).values()
        kept = {self.last_ckpt, getattr(self, 'best_ckpt_path', None), *best}
        for path in dict.fromkeys(deferred.paths):
            if path in kept or not is_main_process():
                continue
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):  # checkpoints saved by deepspeed are folders
                backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save checkpoint ``step``, then write ``last_checkpoint``, then remove the checkpoint ``max_keep_ckpts``
        retires (mmengine's bookkeeping of ``keep_ckpt_ids`` / ``last_ckpt`` in the message hub is kept)."""
        with self._deferred_removals() as deferred:
            retired = None
            if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    retired = self.filename_tmpl.format(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            filename = self.filename_tmpl.format(step)
            self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
            runner.message_hub.update_info('last_ckpt', self.last_ckpt)
            runner.save_checkpoint(
                self.out_dir,
                filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args,
            )
            if not is_main_process():
                return
            write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
            if retired is not None:
                deferred.remove(self.file_backend.join_path(self.out_dir, retired))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic; the previous best is removed after the new one is saved."""
        with self._deferred_removals():
            super()._save_best_checkpoint(runner, metrics)
