"""Evaluation under one audio condition: :class:`AudioConditionDataset` and :class:`AudioSwapDataset`.

``tools/test.py --audio-condition`` and ``tools/analysis_tools/robustness.py`` wrap the test set in them; the
conditions are described in :mod:`projects.ccformer.datasets.audio_conditions`.
"""

import logging
from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from .base import AUDIO_CONDITIONS, NEGATIVE_CONDITIONS, _AudioWrapper
from .clip_kinds import OffscreenPool, _base_dataset, _kinds_error, dataset_clip_kinds
from .synthesis import noise_logmel, silence_logmel

EVAL_NOISE_DBFS = -20.0


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
class AudioConditionDataset(_AudioWrapper):
    """Evaluate under one audio condition (module docstring): every clip of ``dataset`` is heard with it.

    ``original`` and ``shuffled`` keep the ground truth; ``silence``, ``noise`` and ``offscreen`` replace the audio
    of every real frame and empty every frame's ground truth. ``offscreen`` takes each second from a second of
    another clip in which only kinds not visible in this clip are audible (:class:`OffscreenPool`). Donors and
    noise are seeded by ``(seed, index)``. Added metainfo: ``audio_condition`` (T names), ``audio_replaced``
    (T flags); for ``shuffled`` the data info's ``audio_video_id`` names the donor clip.

    Args:
        dataset (BaseDataset | dict): the wrapped dataset (config or instance).
        condition (str): one of ``AUDIO_CONDITIONS``.
        seed (int): seed of donors and noise. Defaults to 0.
        noise_dbfs (float): RMS level of the ``noise`` condition in dB re full scale. Defaults to -20.
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(
        self,
        dataset: Union[BaseDataset, dict],
        condition: str = 'original',
        seed: int = 0,
        noise_dbfs: float = EVAL_NOISE_DBFS,
        lazy_init: bool = False,
    ) -> None:
        if condition not in AUDIO_CONDITIONS:
            raise ValueError(f'audio condition {condition!r} is unknown; use one of {AUDIO_CONDITIONS}')
        self.condition, self.seed, self.noise_dbfs = condition, seed, float(noise_dbfs)
        self._perm: List[int] = []
        self._indices: List[int] = []  # offscreen: the clips that have donor seconds
        super().__init__(dataset, lazy_init=lazy_init)

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices) if self.condition == 'offscreen' else len(self.dataset)

    def _clip(self, idx: int) -> int:
        return self._indices[idx] if self.condition == 'offscreen' else int(idx)

    def _init(self) -> None:
        n = len(self.dataset)
        if self.condition == 'shuffled':
            self._perm = derangement(n, self.seed)
        elif self.condition == 'offscreen':
            self._pool = OffscreenPool(dataset_clip_kinds(self.dataset))
            skipped = []
            for idx in range(n):
                vid = self.dataset.get_data_info(idx)['video_id']
                if self._pool.kinds[idx] is None:
                    raise _kinds_error(_base_dataset(self.dataset), f'what clip {vid!r} shows is unknown')
                if self._pool.has_donor(idx):
                    self._indices.append(idx)
                else:
                    skipped.append(vid)
            if not self._indices:
                raise _kinds_error(
                    _base_dataset(self.dataset), 'no second of any other clip sounds only off screen for any clip'
                )
            if skipped:
                print_log(
                    f'AudioConditionDataset: off-screen sound leaves out {len(skipped)} of {n} clips whose '
                    f'visible kinds cover every sound of the other clips (first: {skipped[0]!r})',
                    logger='current',
                    level=logging.WARNING,
                )

    def get_data_info(self, idx: int) -> dict:
        """Data info of clip ``idx``; ``audio_path`` is the donor's for ``shuffled``."""
        self.full_init()
        idx = self._clip(idx)
        info = super().get_data_info(idx)
        if self._perm:
            donor = self.dataset.get_data_info(self._perm[idx])
            info['audio_path'] = donor['audio_path']
            info['audio_video_id'] = donor.get('video_id')
        return info

    def __getitem__(self, idx: int) -> dict:
        packed = self.dataset.pipeline(self.get_data_info(idx))
        if self.condition not in NEGATIVE_CONDITIONS:
            return packed
        num = packed['audio'].shape[0]
        rng = np.random.default_rng([self.seed, idx])
        if self.condition == 'silence':
            replacement = dict(enumerate(silence_logmel(num)))
        elif self.condition == 'noise':
            replacement = dict(enumerate(noise_logmel(rng, num, self.noise_dbfs)))
        else:
            replacement = self._offscreen_audio(rng, self._clip(idx), range(num), num)
        return self._apply(packed, replacement, [self.condition] * num, supervise=False)


@DATASETS.register_module()
class AudioSwapDataset(AudioConditionDataset):
    """Clip ``i`` is heard with the audio of clip ``perm[i]`` (a seeded derangement); the ground truth is kept.

    ``AudioConditionDataset(condition='shuffled')``; used by ``tools/test.py --shuffle-audio SEED``.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], seed: int = 0, lazy_init: bool = False) -> None:
        super().__init__(dataset, condition='shuffled', seed=seed, lazy_init=lazy_init)
