"""Presence head (frame gating) and the temporal audio window of the EIM and the FPN head."""

import pytest
import torch
import torch.nn.functional as F
from test_ccformer_head import B, T, build, neck_out, samples

from projects.ccformer.models.decode_heads import CCFormerHead
from projects.ccformer.models.utils import HeadOutput, audio_window_mask, frame_distance_mask


def test_frame_distance_mask():
    m = frame_distance_mask(3, 0, [2], 1, torch.device('cpu'))
    assert m.shape == (6, 3)
    expected = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 0, 1], [1, 0, 1], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.equal(m, expected)
    m1 = frame_distance_mask(3, 1, [1, 2], 1, torch.device('cpu'))  # two query groups
    assert m1.shape == (9, 3) and not m1[0, 1] and m1[0, 2] and m1[3, 2] and not m1[7, 2]
    assert frame_distance_mask(3, None, [4], 1, torch.device('cpu')) is None
    assert frame_distance_mask(3, 2, [4], 1, torch.device('cpu')) is None  # spans the clip
    keys = frame_distance_mask(2, 0, [1], 3, torch.device('cpu'))  # VAE: audio queries, visual keys
    assert torch.equal(keys, torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool))


def test_audio_window_mask_never_leaves_a_query_without_keys():
    window = frame_distance_mask(3, 0, [1], 1, torch.device('cpu'))
    padding = torch.tensor([[False, False, True]])  # frame 2 padded
    m = audio_window_mask(window, padding)
    assert m.shape == (1, 3, 3)
    assert torch.equal(m[0, 0], torch.tensor([False, True, True]))
    assert not m[0, 2].all()  # falls back to all keys


@pytest.mark.parametrize('window', [0, 1])
def test_eim_and_fpn_audio_window_limit_the_audio_reach(window):
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    eim = MODELS.build(
        dict(
            type='EIM',
            in_channels=[8, 8, 8, 8],
            embed_dims=32,
            num_heads=4,
            ffn_dims=32,
            audio_channels=16,
            audio_window=window,
            norm_cfg=dict(type='GN', num_groups=8),
        )
    ).eval()
    t = 4
    feats = [torch.randn(t, 8, s, s) for s in (8, 4, 2, 1)]
    audio = torch.randn(t, 16)
    changed = audio.clone()
    changed[0] += 3.0  # change frame 0's sound
    with torch.no_grad():
        a, b = eim(feats, audio, t), eim(feats, changed, t)
    for x, y in zip(a.feats[1:], b.feats[1:]):
        diff = (x - y).abs().amax(dim=(1, 2, 3))
        assert (diff[window + 1 :] == 0).all() and (diff[: window + 1] > 0).all()
    diff = (a.audio - b.audio).abs().amax(dim=-1)[0]  # VAE: audio of frame t
    assert diff[0] > 0  # reads visual tokens only


def test_fpn_audio_window_zero_uses_own_frame_audio_only():
    head = build(seg_head=dict(audio_window=0)).eval()
    x = neck_out(0)
    y = neck_out(0)
    y.audio_orig[0, 1] += 4.0  # clip 0, frame 1
    with torch.no_grad():
        fa = head.seg_head.forward_pixel([x.feats[0]] + x.feats[1:], x.audio_orig, T)
        fb = head.seg_head.forward_pixel([y.feats[0]] + y.feats[1:], y.audio_orig, T)
    diff = (fa - fb).abs().amax(dim=(1, 2, 3))
    assert diff[1] > 0 and (diff[[0, 2, 3, 4, 5]] == 0).all()


def test_presence_gate_binary_and_semantic():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[2.0, -1.0]]]])  # (2, 1, 1, 2)
    presence = torch.tensor([1.0, -0.5]).view(2, 1, 1, 1)
    gated = CCFormerHead.gate(logits, presence)
    assert torch.equal(gated > 0, torch.tensor([[[[True, False]]], [[[False, False]]]]))
    sem = torch.tensor([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]]).view(2, 3, 1, 1)  # foreground class 1 wins
    out = CCFormerHead.gate(sem, presence)
    assert out.argmax(1).flatten().tolist() == [1, 0]
    assert torch.equal(out[:, 1:], sem[:, 1:])


@pytest.mark.parametrize('num_classes', [1, 71])
def test_presence_head_loss_and_gated_predict(num_classes):
    head = build(num_classes, presence_head=dict(loss_weight=0.5)).eval()
    inputs = neck_out()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[0, 0, 4:12, 4:12] = 1  # only clip 0 frame 0 sounds
    gt_valid = [[1, 1, 0], [1, 1, 1]]
    with torch.no_grad():
        out = head(inputs)
        losses = head.loss_by_feat(out, samples(gt, gt_valid))
        final = head.predict(inputs)
    # the presence score is a named output, one logit per frame; the stage logits hold the K classes only
    assert isinstance(out, HeadOutput) and out.presence.shape == (B * T,)
    assert all(s.shape[1] == num_classes for s in out.stage_logits) and final.shape[1] == num_classes
    assert 'loss_presence' in losses and 'd0.loss_presence' not in losses
    p = out.presence
    target = torch.tensor([1.0, 0, 0, 0, 0, 0])
    w = torch.tensor([1.0, 1, 0, 1, 1, 1])
    expected = 0.5 * (F.binary_cross_entropy_with_logits(p, target, reduction='none') * w).sum() / w.sum()
    torch.testing.assert_close(losses['loss_presence'], expected)
    gated = CCFormerHead.gate(out.stage_logits[-1], p.view(-1, 1, 1, 1))
    torch.testing.assert_close(final, gated)
    # it is the presence head's logit of each frame
    torch.testing.assert_close(head.presence_head(inputs.audio_orig, inputs.feats_orig), p)
    with pytest.raises(ValueError, match='HeadOutput'):
        head.loss_by_feat(out.stage_logits, samples(gt, gt_valid))


@pytest.mark.parametrize('balanced', [False, True])
def test_presence_loss_targets_of_unlabelled_frames_from_sounding(balanced):
    head = build(presence_head=dict(loss_weight=1.0, balanced=balanced)).eval()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[:, 0, 4:12, 4:12] = 1  # labelled frames 0 sound
    data = samples(gt, [[1, 0, 0], [1, 0, 0]])
    data[0].set_metainfo(dict(sounding=[-1, 0, 1]))  # clip 0: frame 1 silent, 2 sounds
    with torch.no_grad():
        stages = head(neck_out())
        losses = head.loss_by_feat(stages, data)
    p = stages.presence
    target = torch.tensor([1.0, 0, 1, 1, 0, 0])
    w = torch.tensor([1.0, 1, 1, 1, 0, 0])  # clip 1 gives no sounding
    value = F.binary_cross_entropy_with_logits(p, target, reduction='none') * w
    if balanced:
        expected = 0.5 * ((value * target).sum() / 3 + (value * (1 - target)).sum() / 1)
    else:
        expected = value.sum() / w.sum()
    torch.testing.assert_close(losses['loss_presence'], expected)
    if balanced:  # one class only: its mean
        only_pos = samples(gt, [[1, 0, 0], [1, 0, 0]])
        pos_loss = head.loss_by_feat(stages, only_pos)['loss_presence']
        expected_pos = F.binary_cross_entropy_with_logits(p[[0, 3]], torch.ones(2))
        torch.testing.assert_close(pos_loss, expected_pos)
    data[0].set_metainfo(dict(sounding=[1, 1]))
    with pytest.raises(ValueError, match='sounding'):
        head.loss_by_feat(stages, data)


def test_presence_margin_shifts_the_gate():
    head = build(presence_head=dict(loss_weight=1.0), presence_margin=2.5).eval()
    inputs = neck_out()
    with torch.no_grad():
        out = head(inputs)
        final = head.predict(inputs)
    torch.testing.assert_close(final, CCFormerHead.gate(out.stage_logits[-1], out.presence.view(-1, 1, 1, 1) + 2.5))


def test_presence_head_bad_config():
    with pytest.raises(TypeError, match='hidden'):
        build(presence_head=dict(loss_weight=1.0, hidden=3))


def test_audio_visual_presence_is_the_best_scaled_cosine_match():
    from projects.ccformer.models.decode_heads import AudioVisualPresence

    torch.manual_seed(0)
    m = AudioVisualPresence(embed_dims=8, proj_dims=4, in_index=1, init_scale=5.0)
    with torch.no_grad():
        m.bias.fill_(-1.0)
    audio = torch.randn(2, 3, 8)
    feats = [torch.randn(6, 8, s, s) for s in (8, 4, 2, 1)]
    out = m(audio, feats)
    a = F.normalize(m.audio_proj(audio.flatten(0, 1)), dim=-1)
    v = F.normalize(m.visual_proj(feats[1]), dim=1).flatten(2)  # (6, 4, 16)
    expected = torch.stack([(a[i] @ v[i]).max() for i in range(6)]) * 5.0 - 1.0
    torch.testing.assert_close(out, expected)
    # a visual location equal (after projection) to the sound gives the highest possible score
    assert out.shape == (6,) and (out <= 5.0 - 1.0 + 1e-5).all()


@pytest.mark.parametrize('num_classes', [1, 71])
def test_presence_map_loss_trains_every_location_against_the_mask_share(num_classes):
    """``map_loss_weight``: BCE of each location's match logit against the share of its cell under the mask on
    labelled frames, against 0 on digitally silent labelled frames and on frames whose presence target is 0;
    sounding frames without a label are left out."""
    head = build(num_classes, presence_head=dict(loss_weight=1.0, map_loss_weight=0.5)).train()
    inputs = neck_out()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[0, 0, 0:8, 0:6] = 1  # clip 0 frame 0: the top-left 2 x 1.5 cells of the 8 x 8 map
    gt[0, 2, 16:24, 16:24] = 1  # an unlabelled frame of negative audio: its GT is not used
    gt[1, 0, 8:16, 8:16] = 1  # a labelled frame whose audio is digitally silent
    gt[1, 1, :3, :] = 255  # clip 1 frame 1: three of the four pixel rows of the top cells are padding
    gt[1, 1, 4:8, 4:12] = 1
    data = samples(gt, [[1, 1, 0], [1, 1, 0]])
    data[0].set_metainfo(dict(sounding=[-1, -1, 0]))  # clip 0 frame 2: negative audio
    data[1].set_metainfo(dict(sounding=[0, -1, -1]))  # clip 1 frame 0: silent; frame 2: unknown
    with torch.no_grad():
        out = head(inputs)
        losses = head.loss_by_feat(out, data)
    pmap = out.presence_map
    assert pmap.shape == (B * T, 8, 8)  # stride 8 of 64 x 64 features (in_index 1)
    torch.testing.assert_close(out.presence, pmap.flatten(1).amax(1))
    share = torch.zeros(B * T, 8, 8)
    share[0, :2, 0] = 1.0
    share[0, :2, 1] = 0.5
    share[4, 1, 1:3] = 1.0  # pixel rows 4-8 are the cells of row 1; row 0 has no foreground among its valid pixels
    per_frame = F.binary_cross_entropy_with_logits(pmap, share, reduction='none').flatten(1).mean(1)
    used = torch.tensor([1.0, 1, 1, 1, 1, 0])
    torch.testing.assert_close(losses['loss_presence_map'], 0.5 * (per_frame * used).sum() / used.sum())
    # the frame-level loss is the one without the option
    plain = build(num_classes, presence_head=dict(loss_weight=1.0)).train()
    with torch.no_grad():
        plain_out = plain(inputs)
        plain_losses = plain.loss_by_feat(plain_out, data)
    assert plain_out.presence_map is None and 'loss_presence_map' not in plain_losses
    torch.testing.assert_close(plain_out.presence, out.presence)
    torch.testing.assert_close(plain_losses['loss_presence'], losses['loss_presence'])
    # inference gives no map: the exported outputs stay (masks, presence)
    with torch.no_grad():
        assert head.eval()(inputs).presence_map is None


@pytest.mark.parametrize('num_classes', [1, 5])
def test_softmax_presence_map_loss_trains_where_the_match_is(num_classes):
    """``map_loss_type='softmax'``: the cross-entropy of the softmax of the match logits over a frame's cells against
    the mask's share of each, on labelled frames that hear something and have foreground only; shifting every logit
    (the level of the presence) changes nothing."""
    head = build(num_classes, presence_head=dict(loss_weight=1.0, map_loss_weight=0.5, map_loss_type='softmax')).train()
    inputs = neck_out()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[0, 0, 0:8, 0:6] = 1  # clip 0 frame 0: the top-left 2 x 1.5 cells of the 8 x 8 map
    gt[0, 0, :, 28:] = 255  # its last column of cells is all padding: no share of the softmax
    gt[0, 2, 16:24, 16:24] = 1  # negative audio: left out
    gt[1, 0, 8:16, 8:16] = 1  # digitally silent: left out
    gt[1, 1, :3, :] = 255  # clip 1 frame 1: padding in three of the four pixel rows of the top cells
    gt[1, 1, 4:8, 4:12] = 1
    data = samples(gt, [[1, 1, 0], [1, 1, 0]])  # clip 0 frame 1: labelled, empty: nothing to find, left out
    data[0].set_metainfo(dict(sounding=[-1, -1, 0]))
    data[1].set_metainfo(dict(sounding=[0, -1, -1]))
    with torch.no_grad():
        out = head(inputs)
        loss = head.loss_by_feat(out, data)['loss_presence_map']
        shifted = head.loss_by_feat(out._replace(presence_map=out.presence_map + 3.0), data)['loss_presence_map']
    pmap = out.presence_map
    q0 = torch.zeros(8, 8)
    q0[:2, 0], q0[:2, 1] = 1.0, 0.5
    q4 = torch.zeros(8, 8)
    q4[1, 1:3] = 1.0
    ce0 = -(q0[:, :7].flatten() / q0.sum() * torch.log_softmax(pmap[0, :, :7].flatten(), 0)).sum()
    ce4 = -(q4.flatten() / q4.sum() * torch.log_softmax(pmap[4].flatten(), 0)).sum()
    torch.testing.assert_close(loss, 0.5 * (ce0 + ce4) / 2)
    torch.testing.assert_close(shifted, loss)
    with pytest.raises(ValueError, match='map_loss_type'):
        build(presence_head=dict(loss_weight=1.0, map_loss_weight=1.0, map_loss_type='focal'))
    with pytest.raises(ValueError, match='map_loss_weight > 0'):
        build(presence_head=dict(loss_weight=1.0, map_loss_type='softmax'))


def test_presence_map_loss_leaves_out_frames_without_a_valid_cell():
    head = build(presence_head=dict(loss_weight=1.0, map_loss_weight=1.0)).train()
    gt = torch.zeros(B, T, 32, 32, dtype=torch.long)
    gt[0, 0, 0:8, 0:8] = 1
    gt[0, 1] = 255  # a labelled frame that is all padding
    with torch.no_grad():
        out = head(neck_out())
        loss = head.loss_by_feat(out, samples(gt, [[1, 1, 0], [0, 0, 0]]))['loss_presence_map']
    share = torch.zeros(8, 8)
    share[:2, :2] = 1.0
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(out.presence_map[0], share))
    with pytest.raises(ValueError, match='map_loss_weight'):
        build(presence_head=dict(loss_weight=1.0, map_loss_weight=-1.0))


def test_audio_visual_presence_map_is_the_scaled_cosine_of_every_location():
    from projects.ccformer.models.decode_heads import AudioVisualPresence

    torch.manual_seed(0)
    m = AudioVisualPresence(embed_dims=8, proj_dims=4, in_index=0, init_scale=3.0)
    audio = torch.randn(1, 2, 8)
    feats = [torch.randn(2, 8, s, s) for s in (4, 2, 1, 1)]
    pmap = m.forward_map(audio, feats)
    a = F.normalize(m.audio_proj(audio.flatten(0, 1)), dim=-1)
    v = F.normalize(m.visual_proj(feats[0]), dim=1)
    torch.testing.assert_close(pmap, torch.einsum('mp,mphw->mhw', a, v) * 3.0)
    torch.testing.assert_close(m(audio, feats), pmap.flatten(1).amax(1))
