"""``--data-root``: point every dataloader of a config at one dataset directory, wrapped datasets included."""

import logging
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

#: Config keys whose ``dataset`` is set (those present and not None).
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _leaf_datasets(dataset, path: str) -> List[tuple]:
    """``(path, dataset dict)`` of the datasets that read files: wrappers are walked through their ``dataset``
    (``RepeatDataset``, ``AudioConditionDataset``, ``NegativeAudioDataset``, ...) or ``datasets`` list
    (``ConcatDataset``)."""
    if not isinstance(dataset, dict):
        raise TypeError(f'{path} must be a dataset config dict to set its data_root, got {type(dataset).__name__}')
    if 'datasets' in dataset:
        return [leaf for i, d in enumerate(dataset['datasets']) for leaf in _leaf_datasets(d, f'{path}.datasets[{i}]')]
    if 'dataset' in dataset:
        return _leaf_datasets(dataset['dataset'], f'{path}.dataset')
    return [(path, dataset)]


def set_data_root(cfg: Config, data_root: Optional[str], keys=DATALOADER_KEYS) -> List[str]:
    """Set ``data_root`` of every dataset read by the dataloaders ``keys`` of ``cfg`` (in place).

    Datasets wrapped by others (a ``dataset=`` or ``datasets=[...]`` key) are reached recursively, and only the
    innermost ones get ``data_root`` (wrappers take no such argument). ``cfg.data_root`` is set too. One
    dataloader whose datasets read from different roots (e.g. a ``ConcatDataset`` of S4 and MS3) cannot be
    pointed at one directory: that is an error naming them.

    Args:
        cfg: the loaded config.
        data_root: the directory; None leaves the config unchanged.
        keys: the dataloader keys to change.

    Returns:
        The dotted config paths of the datasets changed, e.g. ``test_dataloader.dataset.dataset``.
    """
    if data_root is None:
        return []
    changed = []
    for key in keys:
        loader = cfg.get(key, None)
        if not loader or loader.get('dataset') is None:
            continue
        leaves = _leaf_datasets(loader['dataset'], f'{key}.dataset')
        roots = {leaf.get('data_root') for _, leaf in leaves}
        if len(roots) > 1:
            listing = ', '.join(f'{path}.data_root={leaf.get("data_root")!r}' for path, leaf in leaves)
            raise ValueError(
                f'--data-root {data_root}: {key} reads several datasets from different roots '
                f'({listing}); set each with --cfg-options instead.'
            )
        for path, leaf in leaves:
            leaf['data_root'] = data_root
            changed.append(path)
    cfg.data_root = data_root
    if not changed:
        print_log(
            f'--data-root {data_root}: the config has no dataloader dataset to point at it',
            logger='current',
            level=logging.WARNING,
        )
    return changed
