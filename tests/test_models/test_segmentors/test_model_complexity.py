"""tools/analysis_tools/get_flops.py: parameter split and FLOP counting (incl. the SDPA and baddbmm handles)."""

import os.path as osp

import torch
from _tools import load_tool
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmengine.analysis import FlopAnalyzer
from mmseg.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
TINY = osp.join(ROOT, 'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
GET_FLOPS = 'tools/analysis_tools/get_flops.py'


def test_sdpa_handle_counts_eim_attention():
    """FLOPs of the EIM's (opt-in SDPA) attention = AVE (T*sum(n) queries x T keys) + VAE (T queries x T*n_i keys
    per scale)."""
    tool = load_tool(GET_FLOPS)
    b, t, d = 2, 3, 32
    neck = MODELS.build(
        dict(
            type='EIM',
            in_channels=(8, 8, 8, 8),
            audio_channels=16,
            embed_dims=d,
            num_heads=4,
            ffn_dims=64,
            norm_cfg=dict(type='GN', num_groups=8),
            ave_scales=(0, 1, 2, 3),
            vae_scales=(0, 1, 2, 3),
            attn_type='SDPAttention',
        )
    ).eval()
    sizes = (8, 4, 2, 1)
    feats = tuple(torch.randn(b * t, 8, s, s) for s in sizes)
    audio = torch.randn(b * t, 16)

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.neck = neck

        def forward(self, f0, f1, f2, f3, a):
            out = self.neck([f0, f1, f2, f3], a, t)
            return tuple(out.feats) + (out.audio,)

    an = FlopAnalyzer(Wrap(), feats + (audio,))
    an.set_op_handle('aten::scaled_dot_product_attention', tool.sdpa_flop_jit)
    an.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    n = sum(s * s for s in sizes)
    assert an.by_operator()['scaled_dot_product_attention'] == 4 * b * t * t * n * d
    # the FFN of AVE runs on every visual token: 2 * d * ffn_dims per token, plus the attention projections
    ops = an.by_operator()
    linear = ops.get('linear', 0) + ops.get('addmm', 0)  # 2-D projections dispatch addmm
    tokens = b * t * n
    ave = tokens * (2 * d * d + 2 * d * 64)  # q, out projections + FFN on visual tokens
    vae = tokens * 2 * d * d + 4 * b * t * (2 * d * d + 2 * d * 64)  # k, v of visual tokens; per scale q/out/FFN
    assert linear == ave + vae + b * t * 16 * d + b * t * d * d * 2  # + audio proj + AVE k/v of audio tokens


def test_baddbmm_handle_counts_masked_attention():
    """mmcv ``MultiheadAttention`` with an attention mask computes QK^T with ``baddbmm``: counted like the unmasked
    ``bmm``, so a mask does not change the FLOPs (B*h*Lq*Lk*(E/h) each for QK^T and AV, plus the projections)."""
    tool = load_tool(GET_FLOPS)
    b, lq, lk, d, heads = 2, 5, 7, 16, 4
    attn = MultiheadAttention(d, heads, batch_first=True).eval()
    query, key = torch.randn(b, lq, d), torch.randn(b, lk, d)

    class Wrap(torch.nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.attn, self.mask = attn, mask

        def forward(self, q, k):
            return self.attn(q, k, k, attn_mask=self.mask)

    mask = torch.zeros(lq, lk, dtype=torch.bool)
    mask[:, -2:] = True  # the last two keys masked (as padded frames are)
    with torch.no_grad():
        masked = tool.flop_analyzer(Wrap(mask), (query, key))
        plain = tool.flop_analyzer(Wrap(None), (query, key))
        matmuls = 2 * b * lq * lk * d  # QK^T + AV over the heads
        projections = b * (lq + 2 * lk + lq) * d * d  # q, k, v, out
        assert plain.total() == masked.total() == matmuls + projections
        assert masked.by_operator()['baddbmm'] == matmuls // 2
        assert 'aten::baddbmm' not in masked.unsupported_ops()


def test_get_flops_on_tiny_config(tmp_path, capsys):
    tool = load_tool(GET_FLOPS)
    out = tmp_path / 'flops.json'
    tool.main([TINY, '--frames', '2', '--json', str(out)])  # the frame size from the config
    text = capsys.readouterr().out
    assert '1 FLOP = 1 fused multiply-add' in text and 'trainable params' in text
    import json

    res = json.loads(out.read_text())
    assert res['shape'] == [64, 64] and res['frames'] == 2 and '2 frames x 3 x 64 x 64' in text
    p, f = res['params'], res['flops']
    assert p['trainable'] == sum(v for k, v in p.items() if k.startswith('trainable.'))
    assert p['trainable.bcl_loss'] > 0 and p['total'] >= p['trainable']
    assert f['total'] > 0 and abs(sum(v for k, v in f.items() if k != 'total') - f['total']) <= 0.01 * f['total']
    assert f['neck'] > 0 and f['decode_head'] > 0 and f['backbone'] > 0
    assert 'aten::scaled_dot_product_attention' not in res['uncounted_ops']
    assert 'aten::baddbmm' not in res['uncounted_ops']  # the masked attentions of the tiny model are counted
