"""Seed torch's RNGs from (seed, iteration) before every training iteration (bit-exact resume)."""

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...datasets.samplers import derive_seed

#: separates the model's seed stream from the samplers' (seed, epoch, index) streams
MODEL_STREAM = 1 << 40


@HOOKS.register_module()
class IterSeedHook(Hook):
    """``torch.manual_seed(derive_seed(runner.seed, stream, iteration))`` before each training iteration.

    Random layers (dropout, drop path) then draw a function of the run's seed and the iteration only, so a run
    resumed from any checkpoint draws the same numbers as an uninterrupted one (mmengine does not store the RNG
    states, and validation or data-loader start-up between checkpoint and next iteration consume them). With
    ``randomness.diff_rank_seed`` ``runner.seed`` differs per rank, and so do the draws.
    """

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        torch.manual_seed(derive_seed(runner.seed, MODEL_STREAM, runner.iter))
