"""``DatasetEpochHook``: tell the training dataset which epoch starts, for per-epoch seeded draws."""
from mmengine.hooks import Hook

from mmseg.registry import HOOKS


@HOOKS.register_module()
class DatasetEpochHook(Hook):
    """Call ``set_epoch(runner.epoch)`` on the training dataset (and on the datasets it wraps) before each epoch.

    Datasets whose random draws are a function of ``(seed, epoch, index)`` (e.g. ``NegativeAudioDataset``) then
    draw anew every epoch, and a resumed run draws exactly what an uninterrupted one does. Worker processes get
    the epoch because the hook runs before the epoch's workers are started (``persistent_workers=False``); with
    persistent workers the hook raises, since their copies of the dataset would keep epoch 0.
    """

    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_dataloader
        dataset = loader.dataset
        found = False
        while dataset is not None:
            if hasattr(dataset, 'set_epoch'):
                if getattr(loader, 'persistent_workers', False) and loader.num_workers > 0:
                    raise RuntimeError(
                        f'DatasetEpochHook: {type(dataset).__name__} draws per epoch, but the train dataloader '
                        f'keeps persistent workers whose dataset copies never see the new epoch; set '
                        f'train_dataloader.persistent_workers=False')
                dataset.set_epoch(runner.epoch)
                found = True
            dataset = getattr(dataset, 'dataset', None)
        if not found:
            runner.logger.debug('DatasetEpochHook: the training dataset has no set_epoch')
