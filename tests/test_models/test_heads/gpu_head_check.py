"""GPU checks of the CCFormer decode head (not a pytest file: needs CUDA).

Run on the lent GPU from the repository root::

    python tests/test_models/test_heads/gpu_head_check.py \
        [--compile none|infer|train|all] [--out FILE.json]

Checks and prints (JSON): which dtypes mmcv's compiled ``ms_deform_attn``
kernel accepts; the full-size head (d=256, PVT-v2 sizes, 5-frame 224x224
clips) with the compiled kernel equals mmcv's PyTorch path (fp32); bf16
autocast forward+backward is finite and close to fp32; forward + loss +
backward raise no host-device synchronisation
(``torch.cuda.set_sync_debug_mode('error')``); median timings of the head
alone (forward in eval, forward+backward in train) for 2 and 16 clips.
"""

import argparse
import copy
import json
import time

import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from projects.ccformer.models.decode_heads import layers as L
from projects.ccformer.models.utils import EIMOutput


def kernel_dtypes() -> dict:
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction as Fn

    res = {}
    shapes = torch.tensor([[8, 8]], device='cuda')
    start = torch.tensor([0], device='cuda')
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        try:
            v = torch.randn(2, 64, 2, 16, device='cuda', dtype=dt)
            loc = torch.rand(2, 5, 2, 1, 4, 2, device='cuda', dtype=dt)
            w = torch.rand(2, 5, 2, 1, 4, device='cuda', dtype=dt)
            Fn.apply(v, shapes, start, loc, w, 2)
            torch.cuda.synchronize()
            res[str(dt)] = 'ok'
        except Exception as e:  # noqa: BLE001
            res[str(dt)] = f'{type(e).__name__}: {str(e)[:120]}'
    return res


def inputs(b, t=5, size=224, k=1, seed=0):
    g = torch.Generator(device='cuda').manual_seed(seed)
    feats = [torch.randn(b * t, 256, size // s, size // s, device='cuda', generator=g) for s in (4, 8, 16, 32)]
    neck = EIMOutput(
        feats=feats,
        feats_orig=feats,
        audio=torch.randn(b, t, 256, device='cuda', generator=g),
        audio_orig=torch.randn(b, t, 256, device='cuda', generator=g),
        frame_valid=torch.ones(b, t, dtype=torch.bool, device='cuda'),
    )
    samples = []
    for _ in range(b):
        s = SegDataSample(metainfo=dict(gt_valid=[1] + [0] * (t - 1)))
        gt = torch.randint(0, max(k, 2), (t, size, size), device='cuda', generator=g)
        s.gt_sem_seg = PixelData(data=gt)
        samples.append(s)
    return neck, samples


def timeit(fn, iters=20, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return dict(median_ms=round(times[len(times) // 2], 3), min_ms=round(times[0], 3), max_ms=round(times[-1], 3))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', default=None)
    parser.add_argument(
        '--compile',
        choices=['none', 'infer', 'train', 'all'],
        default='none',
        help='also time torch.compile: inference with CUDA graphs '
        '(mode="reduce-overhead"), training forward with inductor',
    )
    args = parser.parse_args()
    report = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, kernel_dtypes=kernel_dtypes())
    torch.manual_seed(0)
    head = MODELS.build(dict(type='CCFormerHead', num_classes=1)).cuda()
    head.init_weights()
    report['params_M'] = round(sum(p.numel() for p in head.parameters()) / 1e6, 3)

    # 0. one MSDA layer: compiled kernel == PyTorch path
    msda = L.MSDeformAttn(embed_dims=256, num_levels=3, batch_first=True).cuda().eval()
    torch.nn.init.normal_(msda.sampling_offsets.weight, std=0.01)
    torch.nn.init.normal_(msda.attention_weights.weight, std=0.01)
    head_shapes = ((28, 28), (14, 14), (7, 7))
    sp, st, ref, _, _, _ = head._level_meta(head_shapes, torch.device('cuda'))
    q = torch.randn(10, sum(h * w for h, w in head_shapes), 256, device='cuda')
    with torch.no_grad():
        a = msda(q, reference_points=ref, spatial_shapes=sp, level_start_index=st)
        L.MSDeformAttn.use_cuda_kernel = False
        b = msda(q, reference_points=ref, spatial_shapes=sp, level_start_index=st)
        L.MSDeformAttn.use_cuda_kernel = True
    report['msda_kernel_vs_pytorch_max_abs'] = float((a - b).abs().max())
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction as Fn

    v = torch.randn(10, q.shape[1], 8, 32, device='cuda', requires_grad=True)
    loc = torch.rand(10, 50, 8, 3, 4, 2, device='cuda', requires_grad=True)
    w = torch.rand(10, 50, 8, 3, 4, device='cuda', requires_grad=True)
    go = torch.randn(10, 50, 256, device='cuda')
    grads = []
    for fn in (L.ms_deform_attn_op, Fn.apply):
        out = fn(v, sp, st, loc, w, 10)
        grads.append([out] + list(torch.autograd.grad(out, (v, loc, w), go)))
    report['custom_op_vs_mmcv_function_max_abs'] = max(float((x - y).abs().max()) for x, y in zip(*grads))

    # 1. compiled kernel == PyTorch path (fp32, eval)
    head.eval()
    neck, samples = inputs(2)
    with torch.no_grad():
        out_k = head(neck)
        L.MSDeformAttn.use_cuda_kernel = False
        out_p = head(neck)
        L.MSDeformAttn.use_cuda_kernel = True
    report['kernel_vs_pytorch_max_rel'] = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(out_k, out_p))

    # 2. bf16 autocast forward + backward, compared with fp32
    head.train()
    for m in head.modules():  # no dropout, so fp32/bf16 are comparable
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    head.zero_grad()
    loss32 = sum(head.loss(neck, samples).values())
    loss32.backward()
    g32 = torch.cat([p.grad.flatten() for p in head.parameters() if p.grad is not None])
    head.zero_grad()
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss16 = sum(head.loss(neck, samples).values())
        logits16 = head(neck)[-1]
    loss16.backward()
    g16 = torch.cat([p.grad.flatten() for p in head.parameters() if p.grad is not None])
    report['bf16'] = dict(
        logits_dtype=str(logits16.dtype),
        loss_fp32=float(loss32.detach()),
        loss_bf16=float(loss16.detach()),
        grad_finite=bool(torch.isfinite(g16).all()),
        grad_cos_vs_fp32=float(torch.nn.functional.cosine_similarity(g16.float(), g32, dim=0)),
    )

    # 3. no host-device syncs in forward + loss + backward (after warm-up)
    try:
        torch.cuda.set_sync_debug_mode('error')
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = sum(head.loss(neck, samples).values())
        loss.backward()
        head.eval()
        with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
            head.predict(neck)
        report['sync_free'] = True
    except RuntimeError as e:
        report['sync_free'] = f'RuntimeError: {str(e)[:300]}'
    finally:
        torch.cuda.set_sync_debug_mode('default')

    # 4. timings of the head alone (bf16 autocast)
    timings = {}
    for b in (2, 16):
        neck, samples = inputs(b)
        head.eval()

        def infer():
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
                head.predict(neck)

        head.train()

        def train():
            with torch.autocast('cuda', dtype=torch.bfloat16):
                loss = sum(head.loss(neck, samples).values())
            loss.backward()

        head.eval()
        timings[f'infer_bf16_{b}clips'] = timeit(infer)
        head.train()
        timings[f'train_bf16_{b}clips'] = timeit(train, iters=10)
        torch.cuda.reset_peak_memory_stats()
        train()
        timings[f'train_bf16_{b}clips']['peak_GB'] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    # pure bf16 weights (no autocast), inference
    head16 = copy.deepcopy(head).to(torch.bfloat16).eval()
    for b in (2, 16):
        neck, _ = inputs(b)
        neck16 = neck._replace(
            feats=[f.bfloat16() for f in neck.feats],
            feats_orig=[f.bfloat16() for f in neck.feats_orig],
            audio=neck.audio.bfloat16(),
            audio_orig=neck.audio_orig.bfloat16(),
        )

        def infer16():
            with torch.no_grad():
                head16.predict(neck16)

        timings[f'infer_purebf16_{b}clips'] = timeit(infer16)
    if args.compile in ('infer', 'all'):
        head.eval()
        for b in (2, 16):
            neck, _ = inputs(b)
            fn = torch.compile(lambda n: head.predict(n), mode='reduce-overhead', dynamic=False)

            def cinfer():
                with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
                    return fn(neck)

            t0 = time.perf_counter()
            out_c = cinfer().clone()
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
                out_e = head.predict(neck)
            timings[f'compiled_infer_bf16_{b}clips'] = timeit(cinfer)
            timings[f'compiled_infer_bf16_{b}clips'].update(
                first_call_s=round(first, 1), max_abs_diff_vs_eager=float((out_c.float() - out_e.float()).abs().max())
            )
    if args.compile in ('train', 'all'):
        head.train()
        neck, samples = inputs(2)
        fwd = torch.compile(lambda n: head(n), dynamic=False)

        def ctrain():
            with torch.autocast('cuda', dtype=torch.bfloat16):
                logits = fwd(neck)
            loss = sum(head.loss_by_feat(logits, samples).values())
            loss.backward()

        t0 = time.perf_counter()
        ctrain()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        timings['compiled_train_bf16_2clips'] = timeit(ctrain, iters=10)
        timings['compiled_train_bf16_2clips']['first_call_s'] = round(first, 1)
    report['timings'] = timings
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
