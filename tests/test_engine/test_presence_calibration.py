"""Presence calibration (``projects/ccformer/engine/presence_calibration.py``): the chosen shift is the best
balanced accuracy, and it moves into the presence bias only."""

from collections import OrderedDict

import numpy as np
import pytest
import torch

from projects.ccformer.engine.presence_calibration import (
    PRESENCE_BIAS_KEY,
    balanced_accuracy,
    calibrated_state_dict,
    choose_margin,
)


def _brute_force_best(scores, labels):
    grid = np.concatenate([-scores, -scores + 1e-6, -scores - 1e-6, [scores.max() + 1, -scores.max() - 1]])
    return max(balanced_accuracy(scores, labels, m)['balanced'] for m in grid)


@pytest.mark.parametrize('seed', range(5))
def test_choose_margin_reaches_the_best_balanced_accuracy(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.3
    scores = rng.normal(size=60) + 1.5 * labels + rng.normal()  # a shifted, imperfect score
    margin = choose_margin(scores, labels)
    best = balanced_accuracy(scores, labels, margin)['balanced']
    assert best == pytest.approx(_brute_force_best(scores, labels))
    assert best >= balanced_accuracy(scores, labels)['balanced']


def test_choose_margin_keeps_zero_when_already_best_and_fixes_a_biased_score():
    labels = np.array([0, 0, 0, 1, 1, 1], bool)
    scores = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    assert choose_margin(scores, labels) == 0.0
    margin = choose_margin(scores + 10, labels)  # says "something sounds" for every frame
    assert balanced_accuracy(scores + 10, labels) == dict(TPR=100.0, TNR=0.0, balanced=50.0)
    assert balanced_accuracy(scores + 10, labels, margin)['balanced'] == 100.0
    assert -11 < margin < -9


def test_choose_margin_needs_both_labels():
    with pytest.raises(ValueError, match='positive and negative'):
        choose_margin(np.array([1.0, 2.0]), np.array([True, True]))


def test_calibrated_state_dict_shifts_the_bias_only():
    state = OrderedDict([(PRESENCE_BIAS_KEY, torch.tensor(0.5)), ('decode_head.w', torch.ones(3))])
    state._metadata = OrderedDict(x=dict(version=1))
    out = calibrated_state_dict(state, -2.0)
    assert out[PRESENCE_BIAS_KEY].item() == -1.5 and state[PRESENCE_BIAS_KEY].item() == 0.5
    assert out['decode_head.w'] is state['decode_head.w'] and out._metadata == state._metadata
    with pytest.raises(KeyError, match='presence head'):
        calibrated_state_dict(OrderedDict(w=torch.ones(1)), 1.0)
