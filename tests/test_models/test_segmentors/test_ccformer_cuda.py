"""CUDA only (skipped on CPU): the full PVT-v2-b5 CCFormer (random weights) trains and predicts under bf16 autocast
with mmcv's compiled deformable-attention kernel, and matches fp32 within bf16 tolerance.

Run on the GPU machine: ``python -m pytest tests/test_models/test_segmentors/test_ccformer_cuda.py -s``.
"""

import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from projects.ccformer.utils import strip_pretrained

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def full_model(config='configs/ccformer_pvt_s4.py'):
    cfg = Config.fromfile(osp.join(ROOT, config))
    init_default_scope('mmseg')
    model_cfg = cfg.model.to_dict()
    strip_pretrained(model_cfg)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(model_cfg)).cuda()
    model.init_weights()
    return model


def test_full_model_bf16_train_and_predict_with_compiled_msda():
    import mmcv.ops.multi_scale_deform_attn as msda

    calls = {'fwd': 0, 'bwd': 0}
    fwd, bwd = msda.ext_module.ms_deform_attn_forward, msda.ext_module.ms_deform_attn_backward

    def count_fwd(*a, **k):
        calls['fwd'] += 1
        return fwd(*a, **k)

    def count_bwd(*a, **k):
        calls['bwd'] += 1
        return bwd(*a, **k)

    msda.ext_module.ms_deform_attn_forward, msda.ext_module.ms_deform_attn_backward = count_fwd, count_bwd
    try:
        model = full_model()
        b, t = 2, 5
        g = torch.Generator(device='cuda').manual_seed(0)
        x = torch.randn(b, t, 3, 224, 224, device='cuda', generator=g)
        audio = torch.randn(b, t, 1, 96, 64, device='cuda', generator=g)
        gt = (torch.rand(b, t, 224, 224, device='cuda', generator=g) > 0.5).long()
        samples = [
            SegDataSample(
                gt_sem_seg=PixelData(data=gt[i]),
                metainfo=dict(
                    img_shape=(224, 224), ori_shape=(224, 224), frame_valid=[1] * t, gt_valid=[1, 0, 0, 0, 0]
                ),
            )
            for i in range(b)
        ]
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
        model.train()
        for step in range(5):
            torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast('cuda', dtype=torch.bfloat16):
                losses = model(x, samples, mode='loss', audio=audio)
            total = sum(v for k, v in losses.items() if 'loss' in k)
            total.backward()
            grads_ok = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            print(f'step {step}: loss {float(total):.4f} ({len(losses)} terms) {time.perf_counter() - start:.3f} s')
            assert torch.isfinite(total) and grads_ok
        assert calls['fwd'] > 0 and calls['bwd'] > 0  # the compiled kernel ran forward and backward
        print(f'compiled MSDA calls: {calls}; peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB')
        model.eval()
        with torch.no_grad():
            ref = model(x, mode='tensor', audio=audio)
            with torch.autocast('cuda', dtype=torch.bfloat16):
                out = model(x, mode='tensor', audio=audio)
                preds = model(x, samples, mode='predict', audio=audio)
        assert out.shape == (b, t, 1, 224, 224) and torch.isfinite(out).all()
        assert preds[0].pred_sem_seg.data.shape == (t, 224, 224)
        err = (out.float() - ref).abs().max() / ref.abs().max()
        agree = ((out.float() > 0) == (ref > 0)).float().mean()
        print(f'bf16 vs fp32: max rel err {float(err):.4f}, mask agreement {float(agree):.4f}')
        assert agree > 0.9
    finally:
        msda.ext_module.ms_deform_attn_forward, msda.ext_module.ms_deform_attn_backward = fwd, bwd


def _clips(b=2, t=5, size=224):
    g = torch.Generator(device='cuda').manual_seed(0)
    x = torch.randn(b, t, 3, size, size, device='cuda', generator=g)
    audio = torch.randn(b, t, 1, 96, 64, device='cuda', generator=g)
    return x, audio


def test_bf16_weights_with_compiled_msda():
    """model.to(bfloat16): the kernel gets float32 (it has no bf16 path), masks agree with fp32."""
    model = full_model().eval()
    x, audio = _clips()
    with torch.no_grad():
        ref = model(x, mode='tensor', audio=audio)
        out = model.to(torch.bfloat16)(x, mode='tensor', audio=audio)  # float32 inputs are cast by the model
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    agree = ((out.float() > 0) == (ref > 0)).float().mean()
    print(f'bf16 weights vs fp32: mask agreement {float(agree):.4f}')
    assert agree > 0.9


def test_compile_cfg_reduce_overhead_matches_eager():
    """compile_cfg=dict(mode='reduce-overhead') (inductor + CUDA graphs): same logits as eager for two different
    batches called in turn (each replay must read its own inputs), compared after all calls (the returned logits are
    upsampled copies, so later replays must leave them alone)."""
    model = full_model().eval()
    batches = [_clips(), tuple(v.flip(0) for v in _clips())]
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        refs = [model(x, mode='tensor', audio=a).float() for x, a in batches]
        model.compile_cfg = dict(mode='reduce-overhead')
        try:
            outs = [model(*batches[i % 2][:1], mode='tensor', audio=batches[i % 2][1]) for i in range(6)]
        finally:
            model.compile_cfg = None
            torch._dynamo.reset()
    assert not torch.allclose(refs[0], refs[1])
    for i, out in enumerate(outs):
        err = (out.float() - refs[i % 2]).norm() / refs[i % 2].norm()
        print(f'call {i}: compiled vs eager (bf16): rel err {float(err):.2e}')
        assert err < 2e-2


def _relative_error(out, ref):
    out, ref = out.detach().double(), ref.detach().double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def _samples(b=2, t=5, size=224):
    g = torch.Generator(device='cuda').manual_seed(1)
    gt = (torch.rand(b, t, size, size, device='cuda', generator=g) > 0.5).long()
    meta = dict(img_shape=(size, size), ori_shape=(size, size), frame_valid=[1] * t, gt_valid=[1] * t)
    return [SegDataSample(gt_sem_seg=PixelData(data=gt[i]), metainfo=dict(meta)) for i in range(b)]


def _loss_and_grads(model, x, audio, samples, amp=None, scale=1.0):
    """Loss and concatenated gradients of one step; fp16 scales the loss as a GradScaler does."""
    model.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=amp, enabled=amp is not None):
        loss, _ = model.parse_losses(model(x, samples, mode='loss', audio=audio))
    (loss * scale).backward()
    grads = torch.cat([p.grad.float().flatten() / scale for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return float(loss), grads


def test_msda_kernel_matches_its_pytorch_path(monkeypatch):
    """mmcv's compiled deformable-attention kernel (the ``ccformer::ms_deform_attn`` op) computes, inside the whole
    model, the logits and gradients of its PyTorch (``grid_sample``) path, fp32; the calls are counted so the test
    proves which path ran."""
    from projects.ccformer.models.decode_heads import layers

    calls = {'kernel': 0, 'pytorch': 0}
    kernel, pytorch = layers.ext_module.ms_deform_attn_forward, layers.multi_scale_deformable_attn_pytorch

    def count_kernel(*a, **k):
        calls['kernel'] += 1
        return kernel(*a, **k)

    def count_pytorch(*a, **k):
        calls['pytorch'] += 1
        return pytorch(*a, **k)

    monkeypatch.setattr(layers.ext_module, 'ms_deform_attn_forward', count_kernel)
    monkeypatch.setattr(layers, 'multi_scale_deformable_attn_pytorch', count_pytorch)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 references
    model = full_model().eval()
    x, audio = _clips()
    samples = _samples()
    results = {}
    for use_kernel in (False, True):
        monkeypatch.setattr(layers.MSDeformAttn, 'use_cuda_kernel', use_kernel)
        before = dict(calls)
        with torch.no_grad():
            logits = model(x, mode='tensor', audio=audio)
        results[use_kernel] = (logits, _loss_and_grads(model, x, audio, samples)[1])
        ran = {k: calls[k] - before[k] for k in calls}
        assert (ran['kernel'] > 0, ran['pytorch'] > 0) == (use_kernel, not use_kernel), ran
    err = _relative_error(results[True][0], results[False][0])
    grad_err = _relative_error(results[True][1], results[False][1])
    print(f'MSDA kernel vs PyTorch path: logits rel err {err:.2e}, gradients {grad_err:.2e}; calls {calls}')
    assert err < 1e-4 and grad_err < 5e-3


@pytest.mark.parametrize('amp', [torch.bfloat16, torch.float16])
def test_autocast_matches_fp32(amp):
    """bf16 / fp16 autocast (fp16 with a GradScaler's loss scale): logits, loss and gradients within the precision's
    rounding of fp32, all finite."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = full_model().eval()
    x, audio = _clips()
    samples = _samples()
    with torch.no_grad():
        ref = model(x, mode='tensor', audio=audio).float()
        with torch.autocast('cuda', dtype=amp):
            out = model(x, mode='tensor', audio=audio).float()
    ref_loss, ref_grads = _loss_and_grads(model, x, audio, samples)
    loss, grads = _loss_and_grads(model, x, audio, samples, amp, scale=2.0**16 if amp == torch.float16 else 1.0)
    err, grad_err = _relative_error(out, ref), _relative_error(grads, ref_grads)
    print(f'{amp} autocast vs fp32: logits {err:.2e}, loss {loss:.5f} vs {ref_loss:.5f}, gradients {grad_err:.2e}')
    tol, grad_tol = (5e-2, 2e-1) if amp == torch.bfloat16 else (1e-2, 5e-2)
    assert torch.isfinite(out).all() and torch.isfinite(grads).all()
    assert 0 < err < tol and abs(loss - ref_loss) / abs(ref_loss) < tol and grad_err < grad_tol


def test_compile_cfg_training_matches_eager():
    """compile_cfg=dict() (inductor, no CUDA graphs) on the tiny model: loss and gradients of six training steps
    on two alternating batches equal eager (the first step runs eagerly, the second compiles, the others replay)."""
    model = full_model('configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py').eval()
    x, audio = _clips(size=64)
    batches = [(x, audio), (-x, audio.flip(-1).contiguous())]
    samples = _samples(size=64)
    refs = [_loss_and_grads(model, *b, samples) for b in batches]
    model.compile_cfg = dict()
    try:
        runs = [_loss_and_grads(model, *batches[i % 2], samples) for i in range(6)]
    finally:
        model.compile_cfg = None
        torch._dynamo.reset()
    for i, (loss, grads) in enumerate(runs):
        ref_loss, ref_grads = refs[i % 2]
        grad_err = _relative_error(grads, ref_grads)
        print(f'step {i}: compiled vs eager loss {loss:.6f} / {ref_loss:.6f}, gradients rel err {grad_err:.2e}')
        assert abs(loss - ref_loss) / abs(ref_loss) < 1e-3 and grad_err < 1e-3
