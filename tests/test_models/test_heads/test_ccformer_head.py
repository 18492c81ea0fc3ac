"""Tests of the CCFormer decode head (MTM + cross-modal FPN head).

Shapes used by the tiny head: d=32, N=3 queries, B=2 clips, T=3 frames,
64x64 input -> feats at strides 4/8/16/32 = 16/8/4/2 pixels; logits
(B*T, K, 16, 16) per decoder stage.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from projects.ccformer.models.decode_heads import (
    AttentionQueryGenerator,
    CCFormerHead,
    MultiQueryTransformerDecoder,
    SDPAttention,
)
from projects.ccformer.models.decode_heads.layers import ITILayer, MSDeformAttn
from projects.ccformer.models.utils import EIMOutput

D, N, B, T, HW = 32, 3, 2, 3, 64


def tiny_cfg(num_classes=1, **overrides):
    """Config of a tiny head (embed_dims 32, few layers, no dropout)."""
    cfg = dict(
        type='CCFormerHead',
        num_classes=num_classes,
        embed_dims=D,
        num_queries=N,
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=D, num_heads=4, num_levels=3, num_points=2, dropout=0.0, batch_first=True
                ),
                ffn_cfg=dict(embed_dims=D, feedforward_channels=64, ffn_drop=0.0),
            ),
        ),
        query_generator=dict(num_layers=1, num_heads=4, feedforward_channels=64, proj_drop=0.0, ffn_drop=0.0),
        decoder=dict(
            num_ici_layers=2,
            num_iti_layers=1,
            ici_layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=D, num_heads=4),
                cross_attn_cfg=dict(
                    embed_dims=D, num_heads=4, num_levels=3, num_points=2, dropout=0.0, batch_first=True
                ),
                ffn_cfg=dict(embed_dims=D, feedforward_channels=64, ffn_drop=0.0),
            ),
            iti_layer_cfg=dict(num_heads=4, feedforward_channels=64, proj_drop=0.0, ffn_drop=0.0),
        ),
        seg_head=dict(
            num_heads=4,
            feedforward_channels=64,
            proj_drop=0.0,
            ffn_drop=0.0,
            mlp_channels=(16,),
            norm_cfg=dict(type='GN', num_groups=8),
        ),
    )
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def build(num_classes=1, **overrides):
    torch.manual_seed(0)
    head = MODELS.build(tiny_cfg(num_classes, **overrides))
    head.init_weights()
    return head


def neck_out(seed=0, frame_valid=None):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(B * T, D, HW // s, HW // s, generator=g) for s in (4, 8, 16, 32)]
    return EIMOutput(
        feats=feats,
        feats_orig=feats,
        audio=torch.randn(B, T, D, generator=g),
        audio_orig=torch.randn(B, T, D, generator=g),
        frame_valid=frame_valid,
    )


def samples(gt, gt_valid):
    """gt (B, T, H, W) long, gt_valid list of B lists."""
    out = []
    for i in range(gt.shape[0]):
        s = SegDataSample(metainfo=dict(gt_valid=gt_valid[i]))
        s.gt_sem_seg = PixelData(data=gt[i])
        out.append(s)
    return out


def test_forward_shapes_and_predict():
    head = build().eval()
    assert isinstance(head, CCFormerHead)
    inputs = neck_out()
    with torch.no_grad():
        out = head(inputs)
        pred = head.predict(inputs)
    assert out.presence is None  # no presence head
    outs = out.stage_logits
    assert len(outs) == out.num_stages == 2  # one per decoder stage (2 ICI layers)
    for o in outs:
        assert o.shape == (B * T, 1, HW // 4, HW // 4)
        assert torch.isfinite(o).all()
    torch.testing.assert_close(pred, outs[-1])
    assert not torch.allclose(outs[0], outs[1])


@pytest.mark.parametrize(
    'decoder,stages',
    [
        (dict(num_ici_layers=0), 3),  # w/o ICI keeps 3 stages of ITI layers
        (dict(num_iti_layers=0), 2),  # w/o ITI
        (dict(combine='gate'), 2),
        (dict(num_ici_layers=3, num_iti_layers=2), 3),
    ],
)
def test_decoder_ablations_run(decoder, stages):
    head = build(decoder=decoder).eval()
    with torch.no_grad():
        outs = head(neck_out()).stage_logits
    assert len(outs) == stages
    assert all(o.shape == (B * T, 1, 16, 16) for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)
    if decoder.get('num_iti_layers') == 0:
        assert not hasattr(head.decoder, 'inter_query')
    if decoder.get('num_ici_layers') == 0:
        assert len(head.decoder.ici_layers) == 0
        assert len(head.decoder.iti_layers) == 3


def test_default_encoder_follows_embed_dims():
    head = MODELS.build(
        dict(type='CCFormerHead', num_classes=1, embed_dims=D, seg_head=dict(norm_cfg=dict(type='GN', num_groups=8)))
    )
    assert head.encoder.embed_dims == D
    assert len(head.encoder.layers) == 3


def test_decoder_bad_counts():
    with pytest.raises(ValueError, match='both 0'):
        MultiQueryTransformerDecoder(embed_dims=D, num_ici_layers=0, num_iti_layers=0)
    with pytest.raises(ValueError, match='num_stages'):
        MultiQueryTransformerDecoder(embed_dims=D, num_ici_layers=2, num_stages=3)


@pytest.mark.parametrize(
    'mode,context', [('attention', 'clip'), ('attention', 'frame'), ('repeat', 'clip'), ('none', 'clip')]
)
def test_query_generator_modes(mode, context):
    head = build(query_generator=dict(mode=mode, audio_context=context))
    head.eval()
    a = neck_out(0)
    b = copy.copy(a)
    b = b._replace(audio=a.audio + 1.0)  # change the enhanced audio
    with torch.no_grad():
        out_a, out_b = head.predict(a), head.predict(b)
    assert out_a.shape == (B * T, 1, 16, 16)
    # only the generator reads the enhanced audio: 'none' ignores it
    assert torch.allclose(out_a, out_b) == (mode == 'none')
    with pytest.raises(ValueError, match='mode'):
        AttentionQueryGenerator(embed_dims=D, mode='bogus')


def test_semantic_head_and_padded_frames():
    """K=71; padded frames' content must not change valid frames' output."""
    valid = torch.tensor([[True, True, True], [True, True, False]])
    head = build(num_classes=71).eval()
    a = neck_out(0, frame_valid=valid)
    b = neck_out(0, frame_valid=valid)
    pad = 1 * T + 2  # clip 1, frame 2 (flattened B*T index)
    for f in b.feats:
        f[pad] = torch.randn_like(f[pad]) * 3
    b.audio[1, 2] += 5.0
    b.audio_orig[1, 2] -= 5.0
    with torch.no_grad():
        out_a, out_b = head.predict(a), head.predict(b)
    assert out_a.shape == (B * T, 71, 16, 16)
    keep = [i for i in range(B * T) if i != pad]
    torch.testing.assert_close(out_a[keep], out_b[keep], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out_a[pad], out_b[pad])
    # without the mask, the padded frame leaks into its clip
    a, b = a._replace(frame_valid=None), b._replace(frame_valid=None)
    with torch.no_grad():
        out_a, out_b = head.predict(a), head.predict(b)
    assert not torch.allclose(out_a[T : T + 2], out_b[T : T + 2], atol=1e-4)


def test_dice_loss_gt_valid_and_official_formula():
    head = build().eval()
    inputs = neck_out()
    g = torch.Generator().manual_seed(1)
    gt = (torch.rand(B, T, 32, 32, generator=g) > 0.5).long()
    gt_valid = [[1, 0, 0], [1, 0, 0]]  # S4 training: frame 1 only
    with torch.no_grad():
        logits = head(inputs).stage_logits
        losses = head.loss_by_feat(logits, samples(gt, gt_valid))  # a list of stage logits is taken too
    assert set(losses) == {'d0.loss_dice', 'loss_dice'}
    # official AVSegFormer Dice on frame 1 of each clip, last stage
    p = F.interpolate(logits[-1], size=(32, 32), mode='bilinear', align_corners=False).sigmoid()[:, 0].flatten(1)
    g_ = gt.flatten(0, 1).flatten(1).float()
    dice = 1 - 2 * (p * g_).sum(1) / ((p * p).sum(1) + 1e-3 + (g_ * g_).sum(1) + 1e-3)
    expected = dice[[0, T]].mean()
    torch.testing.assert_close(losses['loss_dice'], expected)
    # frames with gt_valid 0 do not affect the loss
    gt2 = gt.clone()
    gt2[:, 1:] = 1 - gt2[:, 1:]
    losses2 = head.loss_by_feat(logits, samples(gt2, gt_valid))
    for k in losses:
        torch.testing.assert_close(losses[k], losses2[k])
    gt3 = gt.clone()
    gt3[0, 0] = 1 - gt3[0, 0]
    losses3 = head.loss_by_feat(logits, samples(gt3, gt_valid))
    assert not torch.allclose(losses['loss_dice'], losses3['loss_dice'])


def test_ce_loss_gt_valid_and_ignore():
    head = build(num_classes=71).eval()
    g = torch.Generator().manual_seed(2)
    gt = torch.randint(0, 71, (B, T, 32, 32), generator=g)
    gt[0, 0, :4] = 255  # padding pixels
    gt_valid = [[1, 1, 1], [1, 0, 0]]
    with torch.no_grad():
        out = head(neck_out())
        losses = head.loss_by_feat(out, samples(gt, gt_valid))
    logits = out.stage_logits
    assert set(losses) == {'d0.loss_ce', 'loss_ce'}
    up = F.interpolate(logits[-1], size=(32, 32), mode='bilinear')
    flat = gt.flatten(0, 1)
    per_frame = torch.stack([F.cross_entropy(up[i : i + 1], flat[i : i + 1], ignore_index=255) for i in range(B * T)])
    w = torch.tensor([1.0, 1, 1, 1, 0, 0])
    torch.testing.assert_close(losses['loss_ce'], (per_frame * w).sum() / w.sum())
    gt2 = gt.clone()
    gt2[1, 1:] = 0
    losses2 = head.loss_by_feat(out, samples(gt2, gt_valid))
    torch.testing.assert_close(losses['loss_ce'], losses2['loss_ce'])


def test_loss_bad_gt_valid():
    head = build()
    gt = torch.zeros(B, T, 16, 16, dtype=torch.long)
    with pytest.raises(ValueError, match='gt_valid'):
        head.loss(neck_out(), samples(gt, [[1, 0], [1, 0]]))
    with pytest.raises(ValueError, match='4 maps'):
        bad = neck_out()
        bad = bad._replace(feats=bad.feats[1:])
        head(bad)


def test_gradients_reach_all_parameters():
    head = build(decoder=dict(combine='gate'))
    head.train()
    # mmcv zero-initialises the weights of the sampling offsets and attention
    # weights (Deformable DETR), which blocks the gradient to the encoder's
    # query positions (level_embed) at step 0 only; after one optimiser step
    # they are nonzero. Emulate that state.
    for m in head.modules():
        if isinstance(m, MSDeformAttn):
            nn.init.normal_(m.sampling_offsets.weight, std=0.01)
            nn.init.normal_(m.attention_weights.weight, std=0.01)
    g = torch.Generator().manual_seed(3)
    gt = (torch.rand(B, T, 32, 32, generator=g) > 0.5).long()
    losses = head.loss(neck_out(), samples(gt, [[1, 0, 0], [1, 1, 1]]))
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    missing = [
        n for n, p in head.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not missing, missing


def test_bf16_autocast_cpu():
    head = build(num_classes=71).eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = head(neck_out(frame_valid=torch.ones(B, T, dtype=torch.bool))).stage_logits
    assert all(torch.isfinite(o.float()).all() for o in outs)
    with torch.no_grad():
        ref = head(neck_out(frame_valid=torch.ones(B, T, dtype=torch.bool))).stage_logits
    err = (outs[-1].float() - ref[-1]).abs().mean() / ref[-1].abs().mean()
    assert err < 0.1


# ------------------------------------------------------------ equivalences
def ref_mha(attn, q, k, v, kpm=None):
    """Reference attention through nn.MultiheadAttention's functional on the
    parameters of an mmcv ``MultiheadAttention`` / ``SDPAttention``."""
    mha = attn.attn
    out, _ = F.multi_head_attention_forward(
        q.transpose(0, 1),
        k.transpose(0, 1),
        v.transpose(0, 1),
        attn.embed_dims,
        attn.num_heads,
        mha.in_proj_weight,
        mha.in_proj_bias,
        None,
        None,
        False,
        0.0,
        mha.out_proj.weight,
        mha.out_proj.bias,
        training=False,
        key_padding_mask=kpm,
        need_weights=False,
    )
    return out.transpose(0, 1)


def test_sdpa_attention_matches_mmcv_multihead_attention():
    """The opt-in SDPAttention loads mmcv MultiheadAttention's parameters and
    gives its results: cross / self attention, key padding, per-head 3-D
    masks, and key_pos taken from query_pos when it has the key's shape."""
    from mmcv.cnn.bricks.transformer import MultiheadAttention

    torch.manual_seed(0)
    mha = MultiheadAttention(D, 4, batch_first=True).eval()
    attn = SDPAttention(D, 4).eval()
    nn.init.normal_(mha.attn.in_proj_bias)
    attn.load_state_dict(mha.state_dict())
    q, k = torch.randn(2, 5, D), torch.randn(2, 7, D)
    qp, kp = torch.randn(2, 5, D), torch.randn(1, 7, D)
    kpm = torch.zeros(2, 7, dtype=torch.bool)
    kpm[1, 4:] = True
    window = torch.rand(2, 5, 7) > 0.6
    window[..., 0] = False
    window = window.repeat_interleave(4, 0)
    cases = [
        dict(key=k, value=k, query_pos=qp, key_pos=kp, key_padding_mask=kpm),
        dict(key=k, value=k, query_pos=qp, key_pos=kp, attn_mask=window),
        dict(query_pos=qp, key_pos=qp),
        dict(key=q, value=q, query_pos=qp),
    ]
    with torch.no_grad():
        for kw in cases:
            torch.testing.assert_close(attn(q, **kw), mha(q, **kw), atol=1e-5, rtol=1e-5)
        ref = q + ref_mha(mha, q + qp, k + kp, k, kpm)
        torch.testing.assert_close(attn(q, **cases[0]), ref, atol=1e-5, rtol=1e-5)


def test_iti_layer_equals_per_clip_reference():
    """Batched ITI (B clips at once) == Eqs. 7-9 written per clip."""
    torch.manual_seed(0)
    layer = ITILayer(D, 4, 64, proj_drop=0.0, ffn_drop=0.0).eval()
    intra, inter = torch.randn(B, T * N, D), torch.randn(B, N, D)
    ipos, ppos = torch.randn(1, T * N, D), torch.randn(1, N, D)
    kpm = torch.zeros(B, T * N, dtype=torch.bool)
    kpm[1, -N:] = True  # last frame of clip 1 padded
    with torch.no_grad():
        out_q, out_p = layer(intra, inter, ipos, ppos, kpm)
        for b in range(B):
            q, p, m = intra[b : b + 1], inter[b : b + 1], kpm[b : b + 1]
            a, e = layer.intra, layer.inter
            q = a.norms[0](q + ref_mha(a.self_attn, q + ipos, q + ipos, q, m))
            q = a.norms[1](a.ffn(q))
            p = e.norms[0](p + ref_mha(e.cross_attn, p + ppos, q + ipos, q, m))
            p = e.norms[1](p + ref_mha(e.self_attn, p + ppos, p + ppos, p))
            p = e.norms[2](e.ffn(p))
            torch.testing.assert_close(out_q[b : b + 1], q, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out_p[b : b + 1], p, atol=1e-5, rtol=1e-5)
    no_ffn = ITILayer(D, 4, 64, intra_ffn=False)
    assert no_ffn.intra.ffn is None and len(no_ffn.intra.norms) == 1
    with torch.no_grad():
        assert no_ffn.eval()(intra, inter, ipos, ppos, kpm)[0].shape == intra.shape


def test_ici_batched_equals_per_frame():
    head = build().eval()
    inputs = neck_out()
    dec = head.decoder
    with torch.no_grad():
        memory, _, levels = head._encode(inputs.feats[1:])
        spatial, starts = levels['spatial_shapes'], levels['level_start_index']
        query, query_pos = head.query_generator(inputs.audio)
        ref = dec.ref_point_head(query_pos).sigmoid()[:, :, None].expand(-1, -1, 3, -1)
        kw = dict(key_padding_mask=None, spatial_shapes=spatial, level_start_index=starts)
        batched = dec.ici_layers[0](query, query_pos=query_pos, value=memory, reference_points=ref, **kw)
        for i in range(B * T):
            s = slice(i, i + 1)
            one = dec.ici_layers[0](query[s], query_pos=query_pos[s], value=memory[s], reference_points=ref[s], **kw)
            torch.testing.assert_close(batched[s], one, atol=1e-5, rtol=1e-5)
        # encoder: batched frames == one frame at a time
        for i in (0, B * T - 1):
            one, _, _ = head._encode([f[i : i + 1] for f in inputs.feats[1:]])
            torch.testing.assert_close(memory[i : i + 1], one, atol=1e-5, rtol=1e-5)


def test_generator_clip_context_equals_per_frame_loop():
    torch.manual_seed(0)
    gen = AttentionQueryGenerator(
        D, N, num_layers=2, num_heads=4, feedforward_channels=64, proj_drop=0.0, ffn_drop=0.0
    ).eval()
    audio = torch.randn(B, T, D)
    valid = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        query, _ = gen(audio, valid)
        t_pos = gen._temporal(T, audio)
        kpm = ~valid
        for b in range(B):
            for t in range(T):
                q = gen.audio_query.weight[None]
                qp = gen.query_pos.weight[None] + t_pos[t]
                for layer in gen.layers:
                    q = layer.norms[0](
                        q
                        + ref_mha(
                            layer.cross_attn, q + qp, audio[b : b + 1] + t_pos[None], audio[b : b + 1], kpm[b : b + 1]
                        )
                    )
                    q = layer.norms[1](q + ref_mha(layer.self_attn, q + qp, q + qp, q))
                    q = layer.norms[2](layer.ffn(q))
                q = q + gen.query_feat.weight[None]
                torch.testing.assert_close(query[b * T + t : b * T + t + 1], q, atol=1e-5, rtol=1e-5)


def test_default_sizes_match_paper_budget():
    """Full-size head (d=256): parts sized as the paper's Table IV deltas."""
    head = MODELS.build(dict(type='CCFormerHead', num_classes=1))

    def count(m):
        return sum(p.numel() for p in m.parameters())

    dec = head.decoder
    assert len(dec.ici_layers) == 3 and len(dec.iti_layers) == 9
    assert count(dec.ici_layers[0]) == 1_521_184
    assert count(dec.iti_layers[0]) == 2_893_824
    # nine ITI layers ~26 M (143.4 - 117.3), three ICI ~4.6 M (143.4 - 138.8)
    assert abs(count(dec.iti_layers) / 1e6 - 26.1) < 0.2
    assert abs(count(dec.ici_layers) / 1e6 - 4.6) < 0.1


# ------------------------------------------------- slim FPN, encoder, ops
def count(m):
    return sum(p.numel() for p in m.parameters())


def test_default_head_sizes_after_slimming():
    """Encoder FFN 1024, coarse FPN levels at d, light stride-4 level."""
    head = MODELS.build(dict(type='CCFormerHead', num_classes=1))
    d = 256
    enc_layer = head.encoder.layers[0]
    assert enc_layer.ffn.feedforward_channels == 1024
    # FFN 256-1024-256: 2 * 256 * 1024 + 1024 + 256
    assert count(enc_layer.ffn) == 525_568
    seg = head.seg_head
    assert seg.fine_level == 'light' and seg.fine_dims == 64
    c = 64
    # stride-4 audio block: P (d -> c), c-wide attention (4 c^2 + 4 c), LN
    assert count(seg.fusions[0]) == (d * c + c) + (4 * c * c + 4 * c) + 2 * c
    assert count(seg.output_convs[0]) == 9 * c * c + 2 * c  # 3x3 + GN
    assert count(seg.lateral_convs[0]) == d * c + 2 * c  # 1x1 + GN
    assert count(seg.fine_reduce) == d * c + c
    assert seg.mask_conv.in_channels == c
    # coarse levels keep SRA + audio attention + FFN(2048) at d
    for lvl, r in ((1, 4), (2, 2), (3, 1)):
        block = seg.fusions[lvl]
        assert block.sr_ratio == r and block.ffn.feedforward_channels == 2048
    assert not hasattr(seg.fusions[3], 'sr')
    # the query generator has 3 layers of 1.58 M
    assert len(head.query_generator.layers) == 3
    # 2 attentions (4 d^2 + 4 d) + FFN d-2048-d + 3 LN
    assert count(head.query_generator.layers[0]) == 2 * (4 * d * d + 4 * d) + (2 * d * 2048 + 2048 + d) + 3 * 2 * d


def test_fine_level_full_restores_previous_layout():
    head = build(seg_head=dict(fine_level='full')).eval()
    seg = head.seg_head
    assert seg.fine_dims == D and not hasattr(seg, 'fine_reduce')
    assert seg.fusions[0].sr_ratio == 8 and seg.fusions[0].ffn is not None
    with torch.no_grad():
        out = head.predict(neck_out())
    assert out.shape == (B * T, 1, 16, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    'seg_cfg',
    [
        dict(fine_audio=False),
        dict(feedforward_channels=(0, 64, 0, 32)),
        dict(fine_dims=16, fine_num_heads=2),
    ],
)
def test_seg_head_switches(seg_cfg):
    head = build(seg_head=seg_cfg).eval()
    seg = head.seg_head
    if seg_cfg.get('fine_audio') is False:
        assert isinstance(seg.fusions[0], nn.Identity)
    if 'feedforward_channels' in seg_cfg:
        assert seg.fusions[1].ffn.feedforward_channels == 64
        assert seg.fusions[2].ffn is None and len(seg.fusions[2].norms) == 2
    if 'fine_dims' in seg_cfg:
        assert seg.output_convs[0].conv.out_channels == 16
        assert seg.fusions[0].cross_attn.num_heads == 2
    with torch.no_grad():
        out = head.predict(neck_out())
    assert out.shape == (B * T, 1, 16, 16) and torch.isfinite(out).all()


def test_seg_head_bad_config():
    from projects.ccformer.models.decode_heads import CrossModalFPNHead

    gn = dict(type='GN', num_groups=8)
    with pytest.raises(ValueError, match='fine_level'):
        CrossModalFPNHead(D, N, fine_level='half', norm_cfg=gn)
    with pytest.raises(ValueError, match='feedforward_channels'):
        CrossModalFPNHead(D, N, feedforward_channels=(64, 64), norm_cfg=gn)
    with pytest.raises(ValueError, match='fine_dims'):
        CrossModalFPNHead(D, N, fine_dims=12, norm_cfg=gn)
    with pytest.raises(ValueError, match="fine_level='light'"):
        CrossModalFPNHead(D, N, fine_level='full', fine_dims=16, norm_cfg=gn)


def test_light_fine_level_equals_reference():
    """forward_pixel's stride-4 level == the formula written out: lateral,
    audio attention (per clip, padded frame's audio masked), d -> c
    projection of the UPSAMPLED stride-8 output, 3x3 conv, mask conv."""
    head = build().eval()
    seg = head.seg_head
    for p in seg.parameters():  # nonzero biases so every term matters
        if p.dim() == 1:
            nn.init.normal_(p, std=0.1)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    inputs = neck_out(4, frame_valid=valid)
    feats, audio = inputs.feats, inputs.audio_orig
    captured = {}
    hook = seg.output_convs[1].register_forward_hook(lambda m, a, o: captured.setdefault('y8', o))
    with torch.no_grad():
        out = seg.forward_pixel(feats, audio, T, valid)
        hook.remove()
        y8 = captured['y8']  # stride-8 output (B*T, d, 8, 8)
        x = seg.lateral_convs[0](feats[0])  # (B*T, c, 16, 16)
        c, h, w = x.shape[1:]
        blk = seg.fusions[0]
        pos = seg._pos(h, w, T, c, x.device)
        a_pos = seg._audio_pos(T, c, audio)
        a = blk.audio_proj(audio)
        rows = []
        for b in range(B):
            v = x[b * T : (b + 1) * T].flatten(2).transpose(1, 2).reshape(1, -1, c)
            kpm = ~valid[b : b + 1]
            v = blk.norms[0](v + ref_mha(blk.cross_attn, v + pos, a[b : b + 1] + a_pos, a[b : b + 1], kpm))
            rows.append(v.reshape(T, h * w, c).transpose(1, 2).reshape(T, c, h, w))
        x = torch.cat(rows)
        up = F.interpolate(y8, size=(h, w), mode='nearest')
        x = x + F.conv2d(up, seg.fine_reduce.weight, seg.fine_reduce.bias)
        ref = seg.mask_conv(seg.output_convs[0](x))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_msda_offset_normalizer_equals_computed():
    head = build().eval()
    inputs = neck_out()
    layer = head.encoder.layers[0].self_attn
    with torch.no_grad():
        memory, _, levels = head._encode(inputs.feats[1:])
        spatial, starts = levels['spatial_shapes'], levels['level_start_index']
        norm = levels['offset_normalizer']
        _, _, ref, _, _, norm2 = head._level_meta(
            tuple((f.shape[-2], f.shape[-1]) for f in inputs.feats[1:]), memory.device
        )
        assert norm is norm2  # cached
        torch.testing.assert_close(norm.flatten(), torch.tensor([8.0, 8, 4, 4, 2, 2]))
        for m in head.modules():  # nonzero offsets so the normalizer matters
            if isinstance(m, MSDeformAttn):
                nn.init.normal_(m.sampling_offsets.weight, std=0.5)
        kw = dict(reference_points=ref, spatial_shapes=spatial, level_start_index=starts)
        a = layer(memory, value=memory, **kw)
        b = layer(memory, value=memory, offset_normalizer=norm, **kw)
    torch.testing.assert_close(a, b)


def test_msda_python_shapes_path_equals_tensor_path():
    """spatial_shapes_list (Python ints) gives mmcv's PyTorch path the same
    result as the (levels, 2) tensor, with fewer dispatched operations (no
    per-level ``.item()`` of a device tensor)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.manual_seed(0)
    attn = MSDeformAttn(embed_dims=32, num_heads=4, num_levels=3, num_points=2, batch_first=True).eval()
    nn.init.normal_(attn.sampling_offsets.weight, std=0.5)
    shapes = [(8, 8), (4, 4), (2, 2)]
    spatial = torch.tensor(shapes)
    starts = torch.tensor([0, 64, 80])
    query = torch.randn(2, 84, 32)
    ref = torch.rand(1, 84, 3, 2)
    ops = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops[-1] += 1
            return func(*args, **(kwargs or {}))

    outs = []
    for extra in ({}, {'spatial_shapes_list': shapes}):
        ops.append(0)
        with torch.no_grad(), Count():
            outs.append(attn(query, reference_points=ref, spatial_shapes=spatial, level_start_index=starts, **extra))
    assert torch.equal(outs[0], outs[1])
    assert ops[1] < ops[0]
