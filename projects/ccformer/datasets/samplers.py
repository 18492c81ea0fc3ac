"""A sampler whose indices carry the seed of each sample's random augmentation (bit-exact resume).

mmcv / mmseg random transforms draw from the process-global numpy / Python RNGs. Their state depends on everything
that ran before in the process or data-loader worker (persistent workers keep it across epochs, and a resumed run
starts from a fresh one), so a run resumed from a checkpoint would augment differently from an uninterrupted run.
:class:`SeededSampler` yields :class:`SeededIndex` values: plain ``int`` indices that also carry
``seed = f(sampler seed, epoch, index)``; the AVS datasets run the pipeline of such an index under
:func:`~projects.ccformer.datasets.transforms.processing.seeded_rng`, so a sample's augmentation depends only on
(seed, epoch, index), in any worker and after any resume.
"""

from typing import Iterator

import numpy as np
from mmengine.dataset import DefaultSampler
from mmseg.registry import DATA_SAMPLERS


def derive_seed(*entropy: int) -> int:
    """A 32-bit seed from non-negative integers (``numpy.random.SeedSequence``; well mixed, reproducible)."""
    return int(np.random.SeedSequence([int(e) % 2**63 for e in entropy]).generate_state(1)[0])


class SeededIndex(int):
    """A dataset index (an ``int``) with the ``seed`` of its sample's augmentation."""

    def __new__(cls, index: int, seed: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):  # sent to data-loader workers
        return SeededIndex, (int(self), self.seed)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed})'


@DATA_SAMPLERS.register_module()
class SeededSampler(DefaultSampler):
    """:class:`mmengine.dataset.DefaultSampler` (same order, same ``set_epoch``) yielding :class:`SeededIndex`.

    ``seed`` of index ``i`` in epoch ``e`` is :func:`derive_seed` ``(sampler seed, e, i)``. Datasets that do not
    read ``SeededIndex.seed`` see ordinary ints.
    """

    def __iter__(self) -> Iterator[int]:
        for index in super().__iter__():
            yield SeededIndex(index, derive_seed(self.seed, self.epoch, index))
