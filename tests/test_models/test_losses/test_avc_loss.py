"""AVC loss: region means and the two InfoNCE directions checked against a hand computation."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from projects.ccformer.models.losses.avc_loss import region_means
from projects.ccformer.models.utils import EIMOutput

TAU = 0.5
D = 4


def identity_heads(loss: nn.Module) -> nn.Module:
    """Make both MLP heads the identity on non-negative inputs (ReLU passes them), so the hand computation can
    work on the pooled features themselves."""
    for head in (loss.visual_head, loss.audio_head):
        with torch.no_grad():
            head[0].weight.copy_(torch.eye(D))
            head[0].bias.zero_()
            head[2].weight.copy_(torch.eye(D))
            head[2].bias.zero_()
    return loss


def build(**kwargs) -> nn.Module:
    cfg = dict(type='AudioVisualCorrespondenceLoss', embed_dims=D, hidden_dims=D, proj_dims=D, temperature=TAU)
    return identity_heads(MODELS.build(dict(cfg, **kwargs)))


def case(b=2, t=2, size=4, seed=0):
    """EIM output with non-negative features at stride 1 of a ``size`` x ``size`` frame (scale 1 is the one used),
    and a foreground of the left half of every frame."""
    g = torch.Generator().manual_seed(seed)
    feats = [torch.rand(b * t, D, size, size, generator=g) for _ in range(4)]
    audio = torch.rand(b, t, D, generator=g)
    x = EIMOutput(feats=feats, feats_orig=feats, audio=audio, audio_orig=audio)
    fg = torch.zeros(b * t, size, size, dtype=torch.bool)
    fg[:, :, : size // 2] = True
    return x, fg


def s(x, y):
    return float(F.normalize(x, dim=-1) @ F.normalize(y, dim=-1)) / TAU


def hand(x, fg, valid, frame_negative, t=2):
    feat, audio = x.feats_orig[1], x.audio_orig.flatten(0, 1)
    m = fg.float()[:, None]
    inside = (feat * m).sum((2, 3)) / m.sum((2, 3))
    outside = (feat * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3))
    frames = [i for i in range(len(valid)) if valid[i]]
    av, va = [], []
    for i in frames:
        others = [j for j in frames if j // t != i // t]
        den = math.exp(s(audio[i], inside[i])) + sum(math.exp(s(audio[i], inside[j])) for j in others)
        if frame_negative:
            den += math.exp(s(audio[i], outside[i]))
        if others or frame_negative:
            av.append(-math.log(math.exp(s(audio[i], inside[i])) / den))
        if others:
            den = math.exp(s(inside[i], audio[i])) + sum(math.exp(s(inside[i], audio[j])) for j in others)
            va.append(-math.log(math.exp(s(inside[i], audio[i])) / den))
    mean = lambda v: sum(v) / len(v) if v else 0.0  # noqa: E731
    return mean(av) + mean(va)


def test_region_means():
    feat = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: [[0, 1], [2, 3]], channel 1: [[4, 5], [6, 7]]
    mask = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    inside, outside, area_in, area_out = region_means(feat, mask)
    assert inside.tolist() == [[1.0, 5.0]] and outside.tolist() == [[2.0, 6.0]]
    assert area_in.tolist() == [2.0] and area_out.tolist() == [2.0]


@pytest.mark.parametrize('frame_negative', [True, False])
def test_matches_hand_computation(frame_negative):
    x, fg = case()
    valid = torch.ones(4, dtype=torch.bool)
    got = build(frame_negative=frame_negative, loss_weight=1.0)(x, fg, valid)
    assert got.item() == pytest.approx(hand(x, fg, valid, frame_negative), rel=1e-5)


def test_invalid_and_empty_frames_take_no_part():
    x, fg = case()
    valid = torch.tensor([True, False, True, True])
    fg[3] = False  # frame 3 has no sounding object
    loss = build(loss_weight=1.0)
    got = loss(x, fg, valid)
    expected = hand(x, fg, torch.tensor([True, False, True, False]), True)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # whatever the excluded frames hold, the loss is the same
    feats = [f.clone() for f in x.feats_orig]
    feats[1][1] += 5.0
    feats[1][3] += 5.0
    audio = x.audio_orig.clone()
    audio[0, 1] += 5.0
    audio[1, 1] += 5.0
    x2 = EIMOutput(feats=feats, feats_orig=feats, audio=audio, audio_orig=audio)
    assert loss(x2, fg, valid).item() == pytest.approx(got.item(), rel=1e-6)


def test_one_clip_learns_from_the_rest_of_its_frame_only():
    x, fg = case(b=1, t=2)
    valid = torch.ones(2, dtype=torch.bool)
    with_frame = build(loss_weight=1.0)
    assert with_frame(x, fg, valid).item() == pytest.approx(hand(x, fg, valid, True), rel=1e-5)
    without = build(frame_negative=False, loss_weight=1.0)
    zero = without(x, fg, valid)
    assert zero.item() == 0.0
    zero.backward()  # a graph that reaches every parameter (no unused parameters under DDP)
    assert all(p.grad is not None for p in without.parameters())


def test_frame_negative_needs_a_background():
    x, fg = case(b=1, t=2)
    fg[:] = True  # the sounding object fills the frame: nothing to contrast it with
    assert build(loss_weight=1.0)(x, fg, torch.ones(2, dtype=torch.bool)).item() == 0.0


def test_region_matching_its_sound_scores_lower():
    """The loss is low when each frame's sounding region looks like its sound and the rest of the frame does not."""
    x, fg = case(b=2, t=1, size=4)
    feat = torch.zeros(2, D, 4, 4)
    audio = torch.zeros(2, 1, D)
    for i in range(2):
        feat[i, i][fg[i]] = 1.0  # region of frame i: channel i
        feat[i, 2][~fg[i]] = 1.0  # rest of the frame: channel 2
        audio[i, 0, i] = 1.0
    matched = EIMOutput(feats=[feat] * 4, feats_orig=[feat] * 4, audio=audio, audio_orig=audio)
    swapped = EIMOutput(feats=[feat] * 4, feats_orig=[feat] * 4, audio=audio.flip(0), audio_orig=audio.flip(0))
    loss, valid = build(loss_weight=1.0), torch.ones(2, dtype=torch.bool)
    assert loss(matched, fg, valid).item() < loss(swapped, fg, valid).item()


def test_weight_and_arguments():
    x, fg = case()
    valid = torch.ones(4, dtype=torch.bool)
    assert build(loss_weight=0.25)(x, fg, valid).item() == pytest.approx(0.25 * hand(x, fg, valid, True), rel=1e-5)
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(dict(type='AudioVisualCorrespondenceLoss', temperature=0.0))
