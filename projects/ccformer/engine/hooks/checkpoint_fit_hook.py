"""Refuse a checkpoint that does not fit the model when ``Runner.load_checkpoint`` loads it (``tools/test.py``)."""

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmseg.registry import HOOKS

from ..safe_checkpoint import check_state_dict_fits, checkpoint_state_dict, init_exempt_modules


@HOOKS.register_module()
class StrictCheckpointHook(Hook):
    """Check the loaded checkpoint against the model before mmengine copies it in (``after_load_checkpoint``).

    mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: a checkpoint of another model would be
    scored with random weights after a log line. This hook raises
    :class:`~projects.ccformer.engine.safe_checkpoint.CheckpointMismatchError` instead (naming the file, the config
    and some keys), or only warns with ``allow_partial=True``. Frozen submodules that load their own ``Pretrained``
    file (the frozen VGGish) may be absent; they are initialised from that file.

    Args:
        checkpoint (str): the checkpoint's name for the messages.
        config (str): the config's name for the messages.
        allow_partial (bool): load the matching part of a checkpoint that does not fit, with a warning.
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str = 'checkpoint', config: str = '', allow_partial: bool = False) -> None:
        self.checkpoint = checkpoint
        self.config = config
        self.allow_partial = allow_partial

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):  # DDP, test-time augmentation
            model = model.module
        exempt = check_state_dict_fits(
            model,
            checkpoint_state_dict(checkpoint, self.checkpoint),
            self.checkpoint,
            self.config,
            allow_partial=self.allow_partial,
        )
        init_exempt_modules(model, exempt)
