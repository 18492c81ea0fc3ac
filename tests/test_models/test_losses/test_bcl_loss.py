"""BCL: frame-level InfoNCE checked against a hand computation on 2 clips x 2 frames."""

import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from projects.ccformer.models.losses import bimodal_info_nce
from projects.ccformer.models.utils import EIMOutput

TAU = 0.5


def embeddings():
    g = torch.Generator().manual_seed(3)
    q = F.normalize(torch.randn(2, 2, 4, generator=g), dim=-1)
    k = F.normalize(torch.randn(2, 2, 4, generator=g), dim=-1)
    return q, k


def s(q, k, i, j):
    """similarity / tau of query frame i and key frame j (frames numbered b * 2 + t)."""
    return float(q.view(4, 4)[i] @ k.view(4, 4)[j]) / TAU


def test_exclude_same_clip_by_hand():
    q, k = embeddings()
    other = {0: [2, 3], 1: [2, 3], 2: [0, 1], 3: [0, 1]}
    losses = []
    for i in range(4):  # positive = same frame; denominator = positive + the other clip's frames
        den = math.exp(s(q, k, i, i)) + sum(math.exp(s(q, k, i, j)) for j in other[i])
        losses.append(-math.log(math.exp(s(q, k, i, i)) / den))
    expected = sum(losses) / 4
    got = bimodal_info_nce(q, k, TAU)
    assert abs(got.item() - expected) < 1e-5


def test_same_clip_as_positives_by_hand():
    q, k = embeddings()
    clip = {0: [0, 1], 1: [0, 1], 2: [2, 3], 3: [2, 3]}
    losses = []
    for i in range(4):  # SupCon: mean over the two same-clip positives, all 4 frames in the denominator
        den = sum(math.exp(s(q, k, i, j)) for j in range(4))
        losses.append(-sum(math.log(math.exp(s(q, k, i, p)) / den) for p in clip[i]) / 2)
    got = bimodal_info_nce(q, k, TAU, same_clip='positive')
    assert abs(got.item() - sum(losses) / 4) < 1e-5


def test_padded_frames_excluded_by_hand():
    q, k = embeddings()
    valid = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)  # frame 3 (clip 1, frame 1) is padding
    q_pad, k_pad = q.clone(), k.clone()
    q_pad[1, 1] = 1e3  # garbage must not leak
    k_pad[1, 1] = -1e3
    other = {0: [2], 1: [2], 2: [0, 1]}
    losses = []
    for i in range(3):
        den = math.exp(s(q, k, i, i)) + sum(math.exp(s(q, k, i, j)) for j in other[i])
        losses.append(-math.log(math.exp(s(q, k, i, i)) / den))
    got = bimodal_info_nce(q_pad, k_pad, TAU, frame_valid=valid)
    assert abs(got.item() - sum(losses) / 3) < 1e-5


def test_both_directions_sum_by_hand():
    """directions='both': the query->key loss plus the key->query loss (each key frame the anchor against the
    query frames of the other clips), summed as in the authors' code."""
    q, k = embeddings()
    other = {0: [2, 3], 1: [2, 3], 2: [0, 1], 3: [0, 1]}
    per_direction = []
    for sim in (lambda i, j: s(q, k, i, j), lambda i, j: s(q, k, j, i)):  # anchors: query frames, then key frames
        losses = [
            -math.log(math.exp(sim(i, i)) / (math.exp(sim(i, i)) + sum(math.exp(sim(i, j)) for j in other[i])))
            for i in range(4)
        ]
        per_direction.append(sum(losses) / 4)
    both = bimodal_info_nce(q, k, TAU, directions='both')
    assert abs(both.item() - sum(per_direction)) < 1e-5
    assert abs(bimodal_info_nce(q, k, TAU).item() - per_direction[0]) < 1e-5
    torch.testing.assert_close(both, bimodal_info_nce(q, k, TAU) + bimodal_info_nce(k, q, TAU))
    # padded frames are left out in both directions
    valid = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    torch.testing.assert_close(
        bimodal_info_nce(q, k, TAU, valid, directions='both'),
        bimodal_info_nce(q, k, TAU, valid) + bimodal_info_nce(k, q, TAU, valid),
    )


def test_module_directions_and_errors():
    one = MODELS.build(dict(type='BiModalContrastiveLoss', embed_dims=32))
    both = MODELS.build(dict(type='BiModalContrastiveLoss', embed_dims=32, directions='both'))
    both.load_state_dict(one.state_dict())
    o = neck_out()
    qn = F.normalize(one.query_head(o.audio), dim=-1)
    kn = F.normalize(one.key_head(o.audio_orig), dim=-1)
    torch.testing.assert_close(both(o), 0.1 * (bimodal_info_nce(qn, kn, 0.07) + bimodal_info_nce(kn, qn, 0.07)))
    assert sum(p.numel() for p in both.parameters()) == sum(p.numel() for p in one.parameters())
    q, k = embeddings()
    with pytest.raises(ValueError, match='same_clip'):
        bimodal_info_nce(q, k, TAU, same_clip='negative')
    with pytest.raises(ValueError, match='directions'):
        bimodal_info_nce(q, k, TAU, directions='symmetric')
    with pytest.raises(ValueError, match='directions'):
        MODELS.build(dict(type='BiModalContrastiveLoss', directions='mean'))
    with pytest.raises(ValueError, match='pairing'):
        MODELS.build(dict(type='BiModalContrastiveLoss', pairing='audio'))


def neck_out(b=2, t=3, d=32, valid=None, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(b * t, d, 4, 4, generator=g, requires_grad=requires_grad) for _ in range(2)]
    return EIMOutput(
        audio=torch.randn(b, t, d, generator=g, requires_grad=requires_grad),
        audio_orig=torch.randn(b, t, d, generator=g, requires_grad=requires_grad),
        feats=feats,
        feats_orig=[f * 2 for f in feats],
        frame_valid=valid,
    )


@pytest.mark.parametrize('pairing', ['enhanced_audio', 'original_visual', 'enhanced_visual'])
def test_module_pairings_weight_and_padding(pairing):
    loss = MODELS.build(dict(type='BiModalContrastiveLoss', embed_dims=32, pairing=pairing))
    assert loss.loss_name == 'loss_bcl' and loss.loss_weight == 0.1
    valid = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    out = neck_out(valid=valid, requires_grad=True)
    val = loss(out)
    assert val.ndim == 0 and torch.isfinite(val)
    val.backward()
    assert torch.isfinite(out.audio_orig.grad).all()
    assert torch.count_nonzero(out.audio_orig.grad[1, 1:]) == 0  # padded frames get no gradient
    # the module = 0.1 * InfoNCE of the chosen modality
    o = neck_out(valid=valid)
    qf = loss.query_features(o)
    ref = {
        'enhanced_audio': o.audio,
        'original_visual': o.feats_orig[-1].mean((2, 3)).view(2, 3, -1),
        'enhanced_visual': o.feats[-1].mean((2, 3)).view(2, 3, -1),
    }[pairing]
    torch.testing.assert_close(qf, ref)
    qn = F.normalize(loss.query_head(qf), dim=-1)
    kn = F.normalize(loss.key_head(o.audio_orig), dim=-1)
    torch.testing.assert_close(loss(o), 0.1 * bimodal_info_nce(qn, kn, 0.07, valid))


def test_default_head_size():
    loss = MODELS.build(dict(type='BiModalContrastiveLoss'))
    n = sum(p.numel() for p in loss.parameters())
    assert n == 2 * (256 * 512 + 512 + 512 * 128 + 128)  # 0.39 M, the paper's w/o-BCL delta (0.4 M)
