"""SeededSampler: a training sample's random augmentation depends only on (seed, epoch, index)."""

import pickle
import random

import numpy as np
import torch

import projects.ccformer  # noqa: F401
from projects.ccformer.datasets import AVSBenchS4Dataset, SeededIndex, SeededSampler
from projects.ccformer.datasets.samplers import derive_seed
from projects.ccformer.datasets.transforms.processing import seeded_rng

FLIP_PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(
        type='ClipConsistentTransform',
        transforms=[dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PhotoMetricDistortion')],
    ),
]


def _dataset(root):
    return AVSBenchS4Dataset(data_root=root, split='train', pipeline=FLIP_PIPELINE)


def _augmented(ds, idx):
    out = ds[idx]
    return np.stack(out['imgs']), out['flip']


def test_sampler_yields_same_order_with_seeds(toy_s4_root):
    ds = _dataset(toy_s4_root)
    sampler = SeededSampler(ds, shuffle=True, seed=7)
    sampler.set_epoch(3)
    indices = list(sampler)
    from mmengine.dataset import DefaultSampler

    ref = DefaultSampler(ds, shuffle=True, seed=7)
    ref.set_epoch(3)
    assert [int(i) for i in indices] == list(ref)
    assert all(isinstance(i, SeededIndex) and i.seed == derive_seed(7, 3, int(i)) for i in indices)
    sampler.set_epoch(4)
    assert {int(i): i.seed for i in sampler} != {int(i): i.seed for i in indices}
    copy = pickle.loads(pickle.dumps(indices[0]))  # as sent to a data-loader worker
    assert int(copy) == int(indices[0]) and copy.seed == indices[0].seed


def test_seeded_index_augmentation_ignores_global_rng(toy_s4_root):
    """The same SeededIndex gives the same augmented clip whatever state the global RNGs are in (another worker, a
    resumed run), and the global RNG state is left as it was."""
    ds = _dataset(toy_s4_root)
    outs = []
    for state in (0, 1, 2):
        np.random.seed(state)
        random.seed(state)
        torch.manual_seed(state)
        before = np.random.get_state()[1].copy()
        outs.append(_augmented(ds, SeededIndex(1, seed=1234)))
        assert np.array_equal(np.random.get_state()[1], before)
    for imgs, flip in outs[1:]:
        np.testing.assert_array_equal(imgs, outs[0][0])
        assert flip == outs[0][1]
    # different seeds do draw differently (photometric distortion changes the pixels)
    others = [_augmented(ds, SeededIndex(1, seed=s))[0] for s in range(4)]
    assert any(not np.array_equal(o, others[0]) for o in others[1:])
    # a plain int index keeps drawing from the global RNG (test / val loaders)
    np.random.seed(0)
    a = _augmented(ds, 1)[0]
    b = _augmented(ds, 1)[0]
    assert not np.array_equal(a, b)


def test_seeded_rng_restores_state():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    with seeded_rng(99):
        inside = np.random.rand()
    assert np.random.rand() == expected
    with seeded_rng(99):
        assert np.random.rand() == inside
