"""EIM neck: shapes, switches, clip-wide attention, padded frames, batched-scale equivalence, size."""

import pytest
import torch
from mmseg.registry import MODELS

from projects.ccformer.models.necks import EIM
from projects.ccformer.models.necks.eim import clip_tokens_to_maps, maps_to_clip_tokens

B, T, D = 2, 3, 32
CH = (8, 16, 24, 32)
SIZES = ((8, 8), (4, 4), (2, 2), (1, 1))


def tiny(**kw) -> EIM:
    cfg = dict(
        type='EIM',
        in_channels=CH,
        audio_channels=16,
        embed_dims=D,
        num_heads=4,
        ffn_dims=64,
        norm_cfg=dict(type='GN', num_groups=8),
        max_frames=5,
    )
    cfg.update(kw)
    return MODELS.build(cfg).eval()


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(B * T, c, *hw, generator=g) for c, hw in zip(CH, SIZES)]
    return feats, torch.rand(B * T, 16, generator=g)


def test_token_reshapes_roundtrip():
    x = torch.randn(B * T, D, 4, 5)
    tok = maps_to_clip_tokens(x, T)
    assert tok.shape == (B, T * 20, D)
    torch.testing.assert_close(tok[1, 20 * 2 + 7], x[1 * T + 2, :, 1, 2])  # clip 1, frame 2, pixel (1, 2)
    torch.testing.assert_close(clip_tokens_to_maps(tok, T, (4, 5)), x)


def test_eim_shapes():
    feats, audio = inputs()
    out = tiny()(feats, audio, T)
    assert [tuple(f.shape) for f in out.feats] == [(B * T, D, *hw) for hw in SIZES]
    assert [tuple(f.shape) for f in out.feats_orig] == [(B * T, D, *hw) for hw in SIZES]
    assert out.audio.shape == (B, T, D) and out.audio_orig.shape == (B, T, D)
    assert out.frame_valid is None
    assert torch.equal(out.feats[0], out.feats_orig[0])  # default: AVE on strides 8/16/32
    for f, fo in zip(out.feats[1:], out.feats_orig[1:]):
        assert not torch.allclose(f, fo)
    assert not torch.allclose(out.audio, out.audio_orig)
    out = tiny(ave_scales=(0, 1, 2, 3))(feats, audio, T)
    assert not torch.allclose(out.feats[0], out.feats_orig[0])


def test_eim_switches():
    feats, audio = inputs()
    torch.manual_seed(0)
    full = tiny()
    for kw, same_v, same_a in [
        (dict(use_eim=False), True, True),
        (dict(use_ave=False), True, False),
        (dict(use_vae=False), False, True),
    ]:
        m = tiny(**kw)
        m.load_state_dict(full.state_dict(), strict=False)  # same projections / layers where present
        out = m(feats, audio, T)
        assert torch.equal(out.feats[0], out.feats_orig[0])  # stride 4 is not in the default ave_scales
        for f, fo in zip(out.feats[1:], out.feats_orig[1:]):
            assert torch.equal(f, fo) == same_v, kw
        assert torch.equal(out.audio, out.audio_orig) == same_a, kw
    # w/o EIM keeps only the projections
    n_proj = sum(p.numel() for p in tiny(use_eim=False).parameters())
    assert n_proj == sum(c * D + 2 * D for c in CH) + 16 * D + D  # conv (no bias, GN) + GN affine + Linear
    # AVE only on selected scales
    out = tiny(ave_scales=(2, 3))(feats, audio, T)
    assert torch.equal(out.feats[0], out.feats_orig[0])
    assert not torch.allclose(out.feats[3], out.feats_orig[3])


def test_eim_attention_is_clip_wide():
    feats, audio = inputs()
    m = tiny()
    out = m(feats, audio, T)
    audio2 = audio.clone()
    audio2[2] += 1.0  # clip 0, frame 2
    out2 = m(feats, audio2, T)
    # the enhanced visual tokens of frame 0 in clip 0 see frame 2's audio; clip 1 does not
    assert not torch.allclose(out.feats[1][0], out2.feats[1][0])
    torch.testing.assert_close(out.feats[1][T:], out2.feats[1][T:])


def test_eim_padded_frames_are_ignored():
    feats, audio = inputs()
    m = tiny()
    valid = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out = m(feats, audio, T, valid)
    feats2 = [f.clone() for f in feats]
    for f in feats2:
        f[2] = torch.randn_like(f[2]) * 5  # garbage in the padded frame (clip 0, frame 2)
    audio2 = audio.clone()
    audio2[2] = 7.0
    out2 = m(feats2, audio2, T, valid)
    keep = [0, 1, 3, 4, 5]
    for f, f2 in zip(out.feats, out2.feats):
        torch.testing.assert_close(f[keep], f2[keep])
    torch.testing.assert_close(out.audio[:, :2], out2.audio[:, :2])
    torch.testing.assert_close(out.audio[1], out2.audio[1])
    assert torch.isfinite(out.audio).all() and out.frame_valid is valid


def test_shared_ave_batched_equals_per_scale():
    feats, audio = inputs()
    m = tiny(ave_scales=(0, 1, 2, 3))
    vis = [p(x) for p, x in zip(m.visual_proj, feats)]
    a0 = m.audio_proj(audio).view(B, T, D)
    batched = m.ave(vis, a0, T, None)
    layer, a_pos = m.ave_layers[0], m.temporal_pos.weight[None, :T]
    for s, v in enumerate(vis):
        hw = v.shape[-2:]
        single = layer(maps_to_clip_tokens(v, T), a0, a0, query_pos=m._token_pos(T, hw), key_pos=a_pos)
        torch.testing.assert_close(batched[s], clip_tokens_to_maps(single, T, hw), rtol=1e-5, atol=1e-5)


def test_eim_iterations_and_per_scale_weights():
    feats, audio = inputs()
    one, two = tiny(), tiny(num_iters=2)
    two.load_state_dict(one.state_dict())
    assert not torch.allclose(one(feats, audio, T).audio, two(feats, audio, T).audio)
    per_scale = tiny(share_weights=False)
    assert len(per_scale.ave_layers) == 3 and len(per_scale.vae_layers) == 3
    assert per_scale(feats, audio, T).audio.shape == (B, T, D)


def test_eim_default_size_and_errors():
    m = EIM()  # paper sizes: d = 256, 8 heads, FFN 2048, PVT-v2-b5 channels
    layer = 4 * (256 * 256 + 256) + (256 * 2048 + 2048) + (2048 * 256 + 256) + 2 * 2 * 256
    fusion = sum(p.numel() for n, p in m.named_parameters() if not n.startswith(('visual_proj', 'audio_proj')))
    assert fusion == 2 * layer + 10 * 256 == 2632704  # ~2.6 M, the paper's w/o-EIM delta
    with pytest.raises(ValueError, match='in_channels'):
        m([torch.randn(2, 64, 8, 8)], torch.randn(2, 128), 2)
    with pytest.raises(ValueError, match='ave_scales'):
        EIM(ave_scales=(4,))
    feats, audio = inputs()
    with pytest.raises(ValueError, match='max_frames'):
        tiny()(feats[:1] * 4, audio, 6)


def test_eim_compiles_with_aot_autograd():
    """torch.compile (aot_eager: dynamo + AOT autograd's forward and backward graphs, no code generation) of the
    EIM computes the eager outputs and gradients."""
    eim = tiny().train()
    for m in eim.modules():  # dropout off: one function
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    feats, audio = inputs()

    def run(fn):
        eim.zero_grad(set_to_none=True)
        out = fn(feats, audio, T)
        tensors = [*out.feats, *out.feats_orig, out.audio, out.audio_orig]
        sum(t.square().mean() for t in tensors).backward()
        return [t.detach() for t in tensors], [p.grad.clone() for p in eim.parameters() if p.grad is not None]

    torch._dynamo.reset()
    try:
        ref, ref_grads = run(eim)
        out, grads = run(torch.compile(eim, backend='aot_eager'))
    finally:
        torch._dynamo.reset()
    assert len(out) == len(ref) == 10 and len(grads) == len(ref_grads) > 10
    for a, b in zip(out + grads, ref + ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
