"""``AudioSwapDataset``: pair every clip with the audio of another clip (a "does the model listen?" control)."""
import copy
from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmseg.registry import DATASETS


def derangement(n: int, seed: int = 0) -> List[int]:
    """Return a seeded permutation ``p`` of ``range(n)`` with ``p[i] != i`` for every ``i`` (``n >= 2``).

    A random permutation is drawn and each fixed point is swapped with its successor; a swap never creates a new
    fixed point, so the result is a derangement.
    """
    if n < 2:
        raise ValueError(f'derangement needs at least 2 items to swap audio between clips, got {n}')
    perm = np.random.RandomState(seed).permutation(n)
    for i in range(n):
        if perm[i] == i:
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    assert all(int(p) != i for i, p in enumerate(perm))
    return [int(p) for p in perm]


@DATASETS.register_module()
class AudioSwapDataset:
    """Wrap an AVS dataset so clip ``i`` is loaded with the audio of clip ``perm[i]`` (``perm`` a derangement).

    Frames, masks and metadata stay those of clip ``i``; only ``audio_path`` is replaced before the pipeline runs,
    so the metric compares predictions with the true masks while the model hears another clip. The donor's id is
    kept in ``audio_video_id``. Used by ``tools/test.py --shuffle-audio SEED``.

    Args:
        dataset (BaseDataset | dict): the wrapped dataset (config or instance).
        seed (int): seed of the derangement. Defaults to 0.
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], seed: int = 0, lazy_init: bool = False):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = seed
        self._metainfo = self.dataset.metainfo
        self._perm: List[int] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    @property
    def pipeline(self):
        return self.dataset.pipeline

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self._perm = derangement(len(self.dataset), self.seed)
        self._fully_initialized = True

    def __len__(self) -> int:
        self.full_init()
        return len(self._perm)

    def get_data_info(self, idx: int) -> dict:
        """Data info of clip ``idx`` with ``audio_path`` taken from clip ``perm[idx]``."""
        self.full_init()
        info = self.dataset.get_data_info(idx)
        donor = self.dataset.get_data_info(self._perm[idx])
        info['audio_path'] = donor['audio_path']
        info['audio_video_id'] = donor.get('video_id')
        return info

    def __getitem__(self, idx: int) -> dict:
        return self.dataset.pipeline(self.get_data_info(idx))
