"""CategoryBridge: category scores of the sound and of each place, the map where the heard category is seen."""

import pytest
import torch
import torch.nn.functional as F
from test_ccformer_head import B, T, build, neck_out, samples

from projects.ccformer.models.decode_heads import CategoryBridge
from projects.ccformer.models.utils import HeadOutput


def _evidence(bridge, audio, visual):
    q = F.softmax(audio, 1)[:, :, None, None]
    p = F.softmax(visual, 1)
    pi = bridge.log_prior().exp()[None, :, None, None]
    return ((q * p).sum(1, keepdim=True) / (pi * p).sum(1, keepdim=True)).log()


def test_evidence_compares_the_heard_category_with_the_prior():
    torch.manual_seed(0)
    bridge = CategoryBridge(embed_dims=8, num_categories=5)
    audio = torch.randn(4, 5) * 3
    visual = torch.randn(4, 5, 3, 2) * 3
    # nothing counted (a bridge that never saw a category label): a uniform prior and no evidence at all
    torch.testing.assert_close(bridge.log_prior(), torch.full((5,), 0.2).log())
    assert (bridge.evidence(audio, visual) == 0).all()
    bridge.category_counts.copy_(torch.tensor([3.0, 1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(bridge.evidence(audio, visual), _evidence(bridge, audio, visual))
    # a sound that says nothing (q = pi) gives no evidence anywhere
    uninformative = bridge.log_prior()[None].expand(4, -1)
    torch.testing.assert_close(bridge.evidence(uninformative, visual), torch.zeros(4, 1, 3, 2), atol=1e-5, rtol=0)
    # sure of category 1: positive where category 1 is seen, negative where category 0 is
    sure = torch.full((1, 5), -30.0)
    sure[0, 1] = 30.0
    seen = torch.full((1, 5, 1, 2), -30.0)
    seen[0, 1, 0, 0] = 30.0
    seen[0, 0, 0, 1] = 30.0
    r = bridge.evidence(sure, seen)[0, 0, 0]
    torch.testing.assert_close(r[0], torch.tensor(4.0).log(), atol=1e-4, rtol=0)  # 1 / pi_1
    assert r[1] < -20


def test_forward_shapes():
    bridge = CategoryBridge(embed_dims=8, num_categories=4, in_index=1)
    audio = torch.randn(2, 3, 8)
    feats = [torch.randn(6, 8, s, s) for s in (8, 4, 2, 1)]
    a, v = bridge(audio, feats)
    assert a.shape == (6, 4) and v.shape == (6, 4, 4, 4)
    assert 'category_counts' in bridge.state_dict()
    with pytest.raises(ValueError, match='num_categories'):
        CategoryBridge(num_categories=1)


def test_loss_uses_heard_frames_for_audio_and_labelled_heard_frames_for_the_mask():
    torch.manual_seed(0)
    bridge = CategoryBridge(embed_dims=8, num_categories=3)
    a = torch.randn(4, 3, requires_grad=True)
    v = torch.randn(4, 3, 2, 2, requires_grad=True)
    category = torch.tensor([2, 2, 0, -1])
    heard = torch.tensor([True, False, True, True])
    labelled = torch.tensor([True, True, False, True])
    gt = torch.zeros(4, 4, 4)
    gt[0, :2, :2] = 1  # frame 0: the top-left cell
    gt[0, 2, 2] = 1  # and a quarter of the bottom-right one
    loss_a, loss_v = bridge.loss(a, v, category, heard, gt, labelled)
    # audio: frames 0 and 2 (frame 1 is not heard, frame 3 has no category)
    torch.testing.assert_close(loss_a, F.cross_entropy(a[[0, 2]], torch.tensor([2, 0])))
    # visual: frame 0 only (labelled, heard, with a category), its cells weighted by the mask's share
    cells = F.cross_entropy(v[0:1], torch.full((1, 2, 2), 2), reduction='none')[0]
    share = torch.tensor([[1.0, 0.0], [0.0, 0.25]])
    torch.testing.assert_close(loss_v, (cells * share).sum() / share.sum())
    (loss_a + loss_v).backward()
    assert v.grad[1:].abs().sum() == 0 and v.grad[0, :, 0, 1].abs().sum() == 0
    # training mode counts the heard frames' categories; eval mode does not
    assert bridge.category_counts.tolist() == [1.0, 0.0, 1.0]
    bridge.eval()
    bridge.loss(a, v, category, heard, gt, labelled)
    assert bridge.category_counts.tolist() == [1.0, 0.0, 1.0]
    # the counts stay below MAX_COUNT in all (their shares kept), so a half-precision buffer cannot overflow
    bridge.train()
    bridge.category_counts.copy_(torch.tensor([9000.0, 0.0, 999.0]))
    bridge.loss(a, v, category, heard, gt, labelled)
    torch.testing.assert_close(bridge.category_counts, torch.tensor([9001.0, 0.0, 1000.0]) * (1e4 / 10001))
    bridge.eval()
    # nothing qualifies: zero losses that still backpropagate
    none = torch.full((4,), -1)
    za, zv = bridge.loss(a, v, none, heard, gt, labelled)
    assert float(za) == 0 and float(zv) == 0 and za.requires_grad


def test_head_trains_it_from_category_index_and_gates_predictions():
    head = build(category_head=dict(num_categories=4, loss_weight=0.5), category_margin=0.05).eval()
    head.category_head.category_counts.copy_(torch.tensor([2.0, 1.0, 0.0, 1.0]))
    inputs = neck_out()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[0, 0, 4:12, 4:12] = 1
    gt[1, 0, 16:24, 8:16] = 1
    data = samples(gt, [[1, 0, 0], [1, 0, 0]])
    data[0].set_metainfo(dict(category_index=3, sounding=[1, 1, 0]))
    data[1].set_metainfo(dict(category_index=1, sounding=[0, -1, -1]))  # labelled but silent; the rest unknown
    with torch.no_grad():
        out = head(inputs)
        losses = head.loss_by_feat(out, data)
        final = head.predict(inputs)
    assert isinstance(out, HeadOutput) and out.category_audio.shape == (B * T, 4)
    assert out.category_visual.shape == (B * T, 4, 16, 16)  # stride 4 of the 64 x 64 input
    heard = torch.tensor([True, True, False, False, False, False])
    labelled = torch.tensor([True, False, False, True, False, False])
    fg = (gt == 1).flatten(0, 1).float()
    exp_a, exp_v = head.category_head.loss(
        out.category_audio, out.category_visual, torch.tensor([3, 3, 3, 1, 1, 1]), heard, fg, labelled
    )
    torch.testing.assert_close(losses['loss_category_audio'], 0.5 * exp_a)
    torch.testing.assert_close(losses['loss_category_visual'], 0.5 * exp_v)
    # the evidence against the heard category lowers the logits; evidence for it changes nothing
    where = head.category_head.evidence(out.category_audio, out.category_visual)
    assert (where + 0.05 < 0).any() and (where + 0.05 > 0).any()
    torch.testing.assert_close(final, out.stage_logits[-1] + (where + 0.05).clamp(max=0))
    with pytest.raises(ValueError, match='category'):
        head.loss_by_feat(HeadOutput(out.stage_logits), data)
    data[1].set_metainfo(dict(category_index=4))  # past num_categories=4
    with pytest.raises(ValueError, match='category_index 4 >= category_head.num_categories=4'):
        head.loss_by_feat(out, data)


def test_category_head_needs_a_binary_head():
    with pytest.raises(ValueError, match='binary head'):
        build(71, category_head=dict(num_categories=4))


def test_samples_without_category_give_zero_losses_a_warning_and_no_change():
    from mmengine.logging import MMLogger

    head = build(category_head=dict(num_categories=4))
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[:, 0, 4:12, 4:12] = 1
    logger = MMLogger.get_instance('test_category_bridge')
    warnings = []
    handler = type('H', (__import__('logging').Handler,), {'emit': lambda self, r: warnings.append(r.getMessage())})()
    logger.addHandler(handler)
    try:
        with torch.no_grad():
            for _ in range(2):
                losses = head.loss_by_feat(head(neck_out()), samples(gt, [[1, 0, 0], [1, 0, 0]]))
    finally:
        logger.removeHandler(handler)
    assert float(losses['loss_category_audio']) == 0 and float(losses['loss_category_visual']) == 0
    assert sum('no category_index' in w for w in warnings) == 1  # once
    # trained on such data the bridge counted nothing, so the predictions are the segmentation head's own
    assert head.category_head.category_counts.sum() == 0
    head.eval()
    with torch.no_grad():
        out = head(neck_out())
        torch.testing.assert_close(head.predict(neck_out()), out.stage_logits[-1])
