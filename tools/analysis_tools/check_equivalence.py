"""Check that the speed paths of a segmentor compute what the plain fp32 eager model computes.

On fixed random inputs (seeded; shapes as in ``docs/design.md``) the model in ``eval`` mode (dropout off) is run as
the fp32 eager reference and compared with:

* ``autocast``: the same forward under ``torch.autocast`` (bf16 / fp16): relative error of the last decoder layer's
  logits ``||out - ref|| / ||ref||`` and the fraction of pixels whose binary / argmax prediction agrees.
* ``compile``: ``torch.compile`` of the tensor-mode forward (``--compile-backend inductor`` on a GPU;
  ``aot_eager`` traces the same graphs without generating code and is quick on a CPU).
* ``train-amp``: ``mode='loss'`` + ``backward`` under autocast against fp32: the loss, and the relative error of the
  concatenated gradients; both must be finite.
* ``train-compile``: loss and gradients of ``mode='loss'`` with the model's ``compile_cfg`` (its tensor core through
  ``torch.compile``) against eager.
* ``msda`` (CUDA only): mmcv's compiled ``MultiScaleDeformableAttention`` kernel against its PyTorch
  (``grid_sample``) path inside the whole model, forward (logits) and backward (gradients), fp32; then forward +
  backward with the compiled kernel under bf16 autocast. The calls that reach each path are counted, so the record
  proves which path ran.

Writes a JSON report; exits with status 1 when a check exceeds its tolerance.

Example::

    python tools/analysis_tools/check_equivalence.py CONFIG --device cuda --checks autocast compile train-amp msda \
        --amp bf16 fp16 --json work_dirs/equivalence.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch import nn

from projects.ccformer.utils.benchmark import (
    TensorForward,
    autocast,
    build_model,
    compile_kwargs,
    load_config,
    make_data_samples,
    make_inputs,
    num_classes_of,
)

# Tolerances on the relative error of the final logits / gradients against fp32 eager (random weights, deep net:
# bf16 keeps 8 mantissa bits, so ~4e-3 per op accumulates over tens of layers).
FP16_LOSS_SCALE = 2.0**16  # GradScaler's initial scale
TOLERANCES = {
    'bf16': 5e-2,
    'fp16': 1e-2,
    'compile': 1e-3,
    'msda': 1e-4,
    'msda_grad': 5e-3,
    'grad_bf16': 2e-1,
    'grad_fp16': 5e-2,
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--checks',
        nargs='+',
        default=['autocast', 'train-amp'],
        choices=['autocast', 'compile', 'train-amp', 'train-compile', 'msda'],
    )
    parser.add_argument(
        '--amp',
        nargs='+',
        default=['bf16'],
        choices=['bf16', 'fp16', 'bf16-pure'],
        help='bf16-pure (autocast check only): a copy of the model cast to bf16, bf16 inputs',
    )
    parser.add_argument('--compile-backend', default='inductor')
    parser.add_argument('--compile-mode', default='default')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--frames', type=int, default=None)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None)
    parser.add_argument('--cfg-options', nargs='+', default=[])
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- helpers


def last_logits(out: Any) -> torch.Tensor:
    """The prediction of a tensor-mode forward: the last element of a list over decoder layers, or the tensor."""
    while isinstance(out, (list, tuple)):
        out = out[-1]
    if isinstance(out, dict):
        raise TypeError(
            f'check_equivalence: tensor-mode output is a dict {list(out)}; expected logits '
            '(a tensor or a list over decoder layers), see docs/design.md'
        )
    return out


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64 (NaN when either holds a non-finite value)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not (torch.isfinite(out).all() and torch.isfinite(ref).all()):
        return math.nan
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def prediction_agreement(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Fraction of pixels whose prediction is the same; logits ``(..., K, H, W)``: K = 1 sign, else argmax."""
    if out.shape[-3] == 1:
        return float(((out > 0) == (ref > 0)).float().mean())
    return float((out.argmax(-3) == ref.argmax(-3)).float().mean())


def _tensors(obj: Any) -> List[torch.Tensor]:
    """Floating tensors in a nested output (dict / list / tuple), in a fixed order."""
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, dict):
        return [t for k in sorted(obj) for t in _tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


@contextlib.contextmanager
def capture_neck(model: nn.Module) -> Iterator[List[torch.Tensor]]:
    """Collect the floating tensors the model's neck returns (EIM features and audio) during the context.

    Random-weight logits can be nearly constant (the final bias dominates), which makes their relative error a weak
    check; the neck's outputs vary and are compared too.
    """
    captured: List[torch.Tensor] = []
    neck = getattr(model, 'neck', None)
    handle = (
        None
        if neck is None
        else neck.register_forward_hook(
            lambda mod, inp, out: captured.extend(t.detach().float() for t in _tensors(out))
        )
    )
    try:
        yield captured
    finally:
        if handle is not None:
            handle.remove()


def max_relative_error(outs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor]) -> float:
    """Largest relative error over paired tensors (NaN when the lists differ in length or a value is not finite)."""
    if len(outs) != len(refs) or not outs:
        return math.nan
    return max(relative_error(o, r) for o, r in zip(outs, refs))


def gradients(model: nn.Module) -> torch.Tensor:
    """All parameter gradients concatenated (zeros where a parameter got none)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().flatten()
            for p in model.parameters()
            if p.requires_grad
        ]
    )


def ok(value: float, tol: float) -> bool:
    return math.isfinite(value) and value <= tol


# ----------------------------------------------------------------------------------------------- checks


def forward_tensor(
    model: nn.Module,
    data: Dict[str, Any],
    device: torch.device,
    amp: str = 'none',
    fn: Optional[Callable] = None,
    internals: Optional[List[torch.Tensor]] = None,
) -> torch.Tensor:
    """Last logits of ``model(inputs, None, 'tensor', audio=audio)`` in fp32; neck outputs into ``internals``."""
    fn = TensorForward(model) if fn is None else fn
    with torch.no_grad(), autocast(device, amp), capture_neck(model) as neck_out:
        out = last_logits(fn(data['inputs'], data['audio'])).float()
    if internals is not None:
        internals.extend(neck_out)
    return out


def loss_and_grads(model: nn.Module, data: Dict[str, Any], device: torch.device, amp: str = 'none') -> Dict[str, Any]:
    """``mode='loss'`` + backward; returns the scalar loss, the per-term losses and the gradients.

    fp16 scales the loss by ``FP16_LOSS_SCALE`` before ``backward`` and unscales the gradients, as a
    ``GradScaler`` does (fp16 gradients underflow without it); bf16 and fp32 need no scaling.
    """
    model.zero_grad(set_to_none=True)
    scale = FP16_LOSS_SCALE if amp == 'fp16' else 1.0
    with autocast(device, amp):
        losses = model(data['inputs'], data['data_samples'], mode='loss', audio=data['audio'])
        loss, log_vars = model.parse_losses(losses)
    (loss * scale).backward()
    grads = gradients(model) / scale
    model.zero_grad(set_to_none=True)
    return dict(loss=float(loss.detach()), terms={k: float(v.detach()) for k, v in log_vars.items()}, grads=grads)


def check_autocast(
    model: nn.Module,
    data: Dict[str, Any],
    device: torch.device,
    amp: str,
    ref: torch.Tensor,
    ref_neck: List[torch.Tensor],
) -> Dict[str, Any]:
    neck: List[torch.Tensor] = []
    if amp == 'bf16-pure':  # weights cast instead of autocast
        pure = copy.deepcopy(model).to(torch.bfloat16)
        cast = dict(data, inputs=data['inputs'].bfloat16(), audio=data['audio'].bfloat16())
        out = forward_tensor(pure, cast, device, 'none', internals=neck)
        neck = [n.float() for n in neck]
    else:
        out = forward_tensor(model, data, device, amp, internals=neck)
    err, neck_err = relative_error(out, ref), max_relative_error(neck, ref_neck)
    tol = TOLERANCES['bf16' if amp == 'bf16-pure' else amp]
    return dict(
        check=f'autocast-{amp}',
        rel_err=err,
        neck_rel_err=neck_err,
        agreement=prediction_agreement(out, ref),
        tol=tol,
        passed=ok(err, tol) and (not ref_neck or ok(neck_err, tol)),
    )


def check_compile(
    model: nn.Module, data: Dict[str, Any], device: torch.device, ref: torch.Tensor, backend: str, mode: str
) -> Dict[str, Any]:
    compiled = torch.compile(TensorForward(model), **compile_kwargs(backend, mode))
    out = forward_tensor(model, data, device, fn=compiled)
    out2 = forward_tensor(model, data, device, fn=compiled)  # second call: the cached graph
    err = max(relative_error(out, ref), relative_error(out2, ref))
    torch._dynamo.reset()
    return dict(
        check=f'compile-{backend}-{mode}',
        rel_err=err,
        agreement=prediction_agreement(out, ref),
        tol=TOLERANCES['compile'],
        passed=ok(err, TOLERANCES['compile']),
    )


def check_train_amp(
    model: nn.Module, data: Dict[str, Any], device: torch.device, amp: str, ref: Dict[str, Any]
) -> Dict[str, Any]:
    res = loss_and_grads(model, data, device, amp)
    loss_err = abs(res['loss'] - ref['loss']) / max(abs(ref['loss']), 1e-12)
    grad_err = relative_error(res['grads'], ref['grads'])
    tol = TOLERANCES[f'grad_{amp}']
    finite = math.isfinite(res['loss']) and bool(torch.isfinite(res['grads']).all())
    return dict(
        check=f'train-{amp}',
        loss=res['loss'],
        loss_fp32=ref['loss'],
        loss_rel_err=loss_err,
        grad_rel_err=grad_err,
        terms=res['terms'],
        tol=tol,
        passed=finite and loss_err <= TOLERANCES[amp] and ok(grad_err, tol),
    )


def check_train_compile(
    model: nn.Module, data: Dict[str, Any], device: torch.device, backend: str, mode: str, ref: Dict[str, Any]
) -> Dict[str, Any]:
    """Loss and gradients with the model's ``compile_cfg`` (its tensor core compiled) against eager.

    Two batches (the given one, and its frames negated with the audio's mel bands reversed) in turn, six steps: the
    first runs eagerly (it caches the shape constants), the second compiles, the other four replay the compiled graph
    (with CUDA graphs: replays of the recorded graph on alternating inputs). Each compiled step is compared with the
    eager result of its batch; the record holds the worst.
    """
    if not hasattr(model, 'compile_cfg'):
        return dict(check='train-compile', passed=None, error=f'{type(model).__name__} has no compile_cfg')
    other = dict(data, inputs=-data['inputs'], audio=data['audio'].flip(-1).contiguous())
    batches = [(data, ref), (other, loss_and_grads(model, other, device))]
    model.compile_cfg = compile_kwargs(backend, mode)
    try:
        runs = [(loss_and_grads(model, batches[i % 2][0], device), batches[i % 2][1]) for i in range(6)][1:]
    finally:
        model.compile_cfg = None
        torch._dynamo.reset()
    loss_err = max(abs(r['loss'] - e['loss']) / max(abs(e['loss']), 1e-12) for r, e in runs)
    grad_err = max(relative_error(r['grads'], e['grads']) for r, e in runs)
    return dict(
        check=f'train-compile-{backend}-{mode}',
        loss=runs[-1][0]['loss'],
        loss_fp32=runs[-1][1]['loss'],
        loss_rel_err=loss_err,
        grad_rel_err=grad_err,
        compiled_steps=len(runs),
        tol=TOLERANCES['compile'],
        passed=ok(loss_err, TOLERANCES['compile']) and ok(grad_err, TOLERANCES['compile']),
    )


class _Counter:
    def __init__(self) -> None:
        self.kernel = 0
        self.pytorch = 0


@contextlib.contextmanager
def msda_path(model: nn.Module, use_kernel: bool) -> Iterator[_Counter]:
    """Route deformable attention to mmcv's CUDA kernel or to its PyTorch path, counting the calls of each.

    mmcv's ``MultiScaleDeformableAttention`` picks the kernel when ``IS_CUDA_AVAILABLE and value.is_cuda``;
    subclasses may have their own switch (``use_cuda_kernel``). Both are set here: the flag in mmcv's module and in
    every ``projects.*`` module that imported it, and ``use_cuda_kernel`` on every sub-module of ``model`` that has
    it. Calls are counted at the lowest level, whatever wraps them (mmcv's autograd Function or a
    ``torch.library`` custom op): the compiled extension's ``ms_deform_attn_forward`` and every module-level
    reference to ``multi_scale_deformable_attn_pytorch``.
    """
    import mmcv.ops.multi_scale_deform_attn as msda

    counter = _Counter()
    ext = msda.ext_module
    orig_kernel = ext.ms_deform_attn_forward
    orig_torch = msda.multi_scale_deformable_attn_pytorch
    modules = [msda] + [m for name, m in list(sys.modules.items()) if name.startswith('projects.') and m is not None]
    flags = [(m, m.IS_CUDA_AVAILABLE) for m in modules if hasattr(m, 'IS_CUDA_AVAILABLE')]
    torch_refs = [m for m in modules if getattr(m, 'multi_scale_deformable_attn_pytorch', None) is orig_torch]
    switches = [(m, m.__dict__.get('use_cuda_kernel', None)) for m in model.modules() if hasattr(m, 'use_cuda_kernel')]

    def counted_kernel(*a: Any, **k: Any) -> Any:
        counter.kernel += 1
        return orig_kernel(*a, **k)

    def counted_torch(*a: Any, **k: Any) -> torch.Tensor:
        counter.pytorch += 1
        return orig_torch(*a, **k)

    try:
        for m, _ in flags:
            m.IS_CUDA_AVAILABLE = use_kernel
        for m, _ in switches:
            m.use_cuda_kernel = use_kernel
        ext.ms_deform_attn_forward = counted_kernel
        for m in torch_refs:
            m.multi_scale_deformable_attn_pytorch = counted_torch
        yield counter
    finally:
        for m, flag in flags:
            m.IS_CUDA_AVAILABLE = flag
        for m, value in switches:
            if value is None:
                m.__dict__.pop('use_cuda_kernel', None)
            else:
                m.use_cuda_kernel = value
        ext.ms_deform_attn_forward = orig_kernel
        for m in torch_refs:
            m.multi_scale_deformable_attn_pytorch = orig_torch


def check_msda(model: nn.Module, data: Dict[str, Any], device: torch.device) -> List[Dict[str, Any]]:
    """Compiled MSDA kernel vs PyTorch path (fp32 forward + backward), then the kernel under bf16 autocast."""
    records = []
    with msda_path(model, False) as c_ref:
        ref_out = forward_tensor(model, data, device)
        ref = loss_and_grads(model, data, device)
    with msda_path(model, True) as c_ker:
        out = forward_tensor(model, data, device)
        res = loss_and_grads(model, data, device)
    err, grad_err = relative_error(out, ref_out), relative_error(res['grads'], ref['grads'])
    records.append(
        dict(
            check='msda-kernel-vs-pytorch-fp32',
            rel_err=err,
            grad_rel_err=grad_err,
            kernel_calls=c_ker.kernel,
            pytorch_calls_ref=c_ref.pytorch,
            pytorch_calls_kernel_run=c_ker.pytorch,
            tol=TOLERANCES['msda'],
            passed=(
                c_ker.kernel > 0
                and c_ker.pytorch == 0
                and c_ref.kernel == 0
                and ok(err, TOLERANCES['msda'])
                and ok(grad_err, TOLERANCES['msda_grad'])
            ),
        )
    )
    rec: Dict[str, Any] = dict(check='msda-kernel-bf16-autocast-fwd-bwd')
    try:
        with msda_path(model, True) as c_bf:
            out_bf = forward_tensor(model, data, device, 'bf16')
            res_bf = loss_and_grads(model, data, device, 'bf16')
        grad_err_bf = relative_error(res_bf['grads'], ref['grads'])
        err_bf = relative_error(out_bf, ref_out)
        rec.update(
            kernel_calls=c_bf.kernel,
            pytorch_calls=c_bf.pytorch,
            rel_err=err_bf,
            grad_rel_err=grad_err_bf,
            loss=res_bf['loss'],
            loss_fp32=ref['loss'],
            passed=(c_bf.kernel > 0 and ok(err_bf, TOLERANCES['bf16']) and ok(grad_err_bf, TOLERANCES['grad_bf16'])),
        )
    except Exception as err:  # noqa: BLE001  (the failure itself is the record: e.g. no bf16 kernel)
        rec.update(passed=False, error=f'{type(err).__name__}: {err}'.splitlines()[0][:500])
    records.append(rec)
    return records


# ----------------------------------------------------------------------------------------------- driver


def run_checks(
    model: nn.Module,
    device: torch.device,
    checks: Sequence[str],
    amps: Sequence[str],
    batch: int,
    frames: int,
    size: int,
    seed: int = 0,
    compile_backend: str = 'inductor',
    compile_mode: str = 'default',
) -> List[Dict[str, Any]]:
    """Run the named checks on one fixed random batch; return one record per comparison."""
    gen = torch.Generator().manual_seed(seed)
    data: Dict[str, Any] = make_inputs(batch, frames, size, device, gen)
    data['data_samples'] = make_data_samples(batch, frames, size, num_classes_of(model), 'all', device, gen)
    model.eval()  # dropout off: the compared runs must compute the same function
    records: List[Dict[str, Any]] = []
    ref_neck: List[torch.Tensor] = []
    ref = forward_tensor(model, data, device, internals=ref_neck)
    if 'autocast' in checks:
        records += [check_autocast(model, data, device, amp, ref, ref_neck) for amp in amps]
    if 'compile' in checks:
        records.append(check_compile(model, data, device, ref, compile_backend, compile_mode))
    if 'train-amp' in checks or 'train-compile' in checks:
        ref_train = loss_and_grads(model, data, device)
    if 'train-amp' in checks:
        records += [check_train_amp(model, data, device, amp, ref_train) for amp in amps]
    if 'train-compile' in checks:
        records.append(check_train_compile(model, data, device, compile_backend, compile_mode, ref_train))
    if 'msda' in checks:
        if device.type != 'cuda':
            records.append(dict(check='msda', passed=None, error='needs CUDA (the compiled kernel is CUDA only)'))
        else:
            records += check_msda(model, data, device)
    return records


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cpu' and 'fp16' in args.amp:
        raise ValueError('check_equivalence: fp16 autocast is not supported on CPU; use --amp bf16')
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 references must be fp32
    torch.backends.cudnn.allow_tf32 = False
    cfg = load_config(args.config, args.cfg_options)
    frames = args.frames or int(cfg.get('num_frames', 5))
    torch.manual_seed(args.seed)
    model = build_model(cfg, args.checkpoint).to(device)
    records = run_checks(
        model,
        device,
        args.checks,
        args.amp,
        args.batch_size,
        frames,
        args.size,
        args.seed,
        args.compile_backend,
        args.compile_mode,
    )
    report = dict(
        config=args.config,
        device=str(device),
        torch=torch.__version__,
        gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
        batch_size=args.batch_size,
        frames=frames,
        size=args.size,
        records=records,
    )
    for rec in records:
        print(json.dumps(rec), flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    report['all_passed'] = all(r['passed'] is not False for r in records)
    return report


if __name__ == '__main__':
    sys.exit(0 if main()['all_passed'] else 1)
