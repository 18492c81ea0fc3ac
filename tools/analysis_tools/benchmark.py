"""Speed and memory benchmark of an audio-visual segmentor and of its visual backbone alone.

The model is built from a config with random weights (every ``Pretrained`` ``init_cfg`` and ``pretrained`` entry is
switched off, so no checkpoint files are needed) unless ``--checkpoint`` is given. Inputs are random tensors of the
shapes the data preprocessor produces (see ``docs/design.md``): frames ``(N, T, 3, H, W)`` (normalised floats) and
log-mel audio ``(N, T, 1, 96, 64)``; in ``train`` mode also random ground-truth masks ``(T, H, W)`` with the
``gt_valid`` / ``frame_valid`` metainfo. The data preprocessor and data loading are not timed.

For every requested (mode, amp, batch size) the same process times, one after the other:

* ``model``: ``infer``: ``model(inputs, None, 'tensor', audio=audio)`` (or ``mode='predict'`` with
  ``--forward-mode predict``) under ``torch.no_grad``; ``train``: one full optimisation step, i.e.
  ``model(..., mode='loss')``, ``model.parse_losses``, ``backward`` and ``AdamW.step`` (a ``GradScaler`` only for fp16).
* ``backbone``: ``model.backbone(frames.flatten(0, 1))`` in the same mode, precision and compile setting; in ``train``
  mode the loss is the sum of the means of its output maps and the step is ``AdamW`` over the backbone's parameters.

``--backend onnxruntime`` (inference, fp32, CPU) also times the model's tensor core exported to ONNX
(``projects.ccformer.deployment``; exported in-process from the same weights unless ``--onnx FILE`` is given) and run
by ONNX Runtime (``--ort-opt-level``: its graph optimisation levels; ``--ort-precision int8``: the export with
its MatMul / Gemm weights quantised to int8 by ``onnxruntime.quantization.quantize_dynamic``, which does NOT keep
the outputs equal), on the same inputs; ``--memory-format channels_last`` times a channels-last copy of the PyTorch
model. Each such record carries ``max_abs_diff`` (the largest logit difference from the eager, contiguous PyTorch
model on the timed inputs) and ``mask_agreement`` (fraction of pixels whose ``logit > 0`` agrees). ``--threads 1 2``
sweeps the intra-op threads (PyTorch and ONNX Runtime). ``--rounds R`` repeats the whole sweep R times, one record of
each variant after the other (A, B, A, B ...: on a shared machine a load change then hits every variant alike), and the
``summary`` gives the median over the rounds and the speed-up over eager PyTorch.

Timing: ``--warmup`` untimed iterations (the first one, which includes ``torch.compile``, is reported as
``first_call_s``), then ``--iters`` iterations, each bracketed by CUDA events (or ``time.perf_counter`` on CPU). The
JSON gives the median, p10, p90 and mean seconds per iteration, clips/s and frames/s from the median, the wall-clock
throughput of the whole timed loop, and (CUDA) the peak memory of the phase.

Examples::

    # inference, PVT-v2-b5, bf16, 2 and 16 clips a batch, eager and compiled with CUDA graphs
    python tools/analysis_tools/benchmark.py configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py \
        --mode infer --amp bf16 --batch-size 2 16 --json work_dirs/bench_infer.json
    python tools/analysis_tools/benchmark.py CONFIG --mode infer --amp bf16 --batch-size 2 16 \
        --compile --compile-mode reduce-overhead --json work_dirs/bench_infer_compiled.json
    # training step, bf16 vs fp32
    python tools/analysis_tools/benchmark.py CONFIG --mode train --amp bf16 none --batch-size 2 16
    # CPU latency of the demo: seconds per 5-frame clip
    python tools/analysis_tools/benchmark.py CONFIG --device cpu --mode infer --amp none --batch-size 1 \
        --iters 3 --warmup 1 --forward-mode predict
    # CPU: eager PyTorch vs channels-last vs ONNX Runtime, 1 and 2 threads, interleaved over 3 rounds
    python tools/analysis_tools/benchmark.py CONFIG --device cpu --mode infer --amp none --batch-size 1 --parts model \
        --backend pytorch onnxruntime --memory-format contiguous channels_last --threads 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from projects.ccformer.utils.benchmark import (
    AMP_DTYPES,
    PURE_DTYPES,
    BackboneForward,
    TensorForward,
    autocast,
    barrier,
    build_model,
    compile_kwargs,
    count_dispatched_ops,
    count_params,
    environment,
    load_config,
    make_data_samples,
    make_inputs,
    memory_phase,
    num_classes_of,
    summarize,
    time_steps,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (``--mode``, ``--amp`` and ``--batch-size`` take several values for a sweep)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', default=None, help='optional checkpoint (random weights without it)')
    parser.add_argument('--mode', nargs='+', choices=['infer', 'train'], default=['infer'])
    parser.add_argument('--batch-size', nargs='+', type=int, default=[2], help='clips per batch')
    parser.add_argument(
        '--amp',
        nargs='+',
        choices=list(AMP_DTYPES) + list(PURE_DTYPES),
        default=['bf16'],
        help='autocast dtype (none = fp32); bf16-pure: a copy of the model cast to bf16 and bf16 '
        'inputs, no autocast (inference only; the fp32 model stays on the device, so use '
        'peak_alone_est_bytes for its memory)',
    )
    parser.add_argument('--compile', action='store_true', help='torch.compile the timed modules')
    parser.add_argument(
        '--compile-mode',
        default='reduce-overhead',
        choices=['default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'],
    )
    parser.add_argument('--compile-backend', default='inductor', help='torch.compile backend (tests use aot_eager)')
    parser.add_argument('--frames', type=int, default=None, help='frames per clip (default: 5, or cfg num_frames)')
    parser.add_argument('--size', type=int, default=224, help='square input size H = W')
    parser.add_argument('--iters', type=int, default=50, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations (first includes compile)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--forward-mode',
        choices=['tensor', 'predict'],
        default='tensor',
        help="infer mode: time mode='tensor' (logits) or mode='predict' (upsampled masks)",
    )
    parser.add_argument(
        '--gt-valid',
        choices=['all', 'first'],
        default='all',
        help="train mode: frames with labels ('first' = S4 training, frame 1 only)",
    )
    parser.add_argument(
        '--parts',
        nargs='+',
        choices=['model', 'backbone'],
        default=None,
        help='what to time (default: model and backbone)',
    )
    parser.add_argument(
        '--backbone-only-too',
        action='store_true',
        help='kept for compatibility: the backbone is timed by default (see --parts)',
    )
    parser.add_argument('--fused-adamw', action='store_true', help='AdamW(fused=True) on CUDA')
    parser.add_argument(
        '--count-ops',
        action='store_true',
        help='infer mode: also count the ATen operations one forward dispatches, per sub-module '
        '(what bounds an eager run that waits on the host)',
    )
    parser.add_argument('--tf32', action='store_true', help='allow TF32 matmuls/convs in fp32 runs')
    parser.add_argument(
        '--threads',
        type=int,
        nargs='+',
        default=None,
        help='intra-op threads on CPU (torch.set_num_threads and ONNX Runtime); several for a sweep',
    )
    parser.add_argument(
        '--backend',
        nargs='+',
        choices=['pytorch', 'onnxruntime'],
        default=['pytorch'],
        help='onnxruntime: also time the ONNX export of the model run by ONNX Runtime (infer, '
        '--amp none, CPU, part model)',
    )
    parser.add_argument(
        '--onnx',
        default=None,
        help='ONNX file of the same weights (tools/deployment/pytorch2onnx.py; default: exported '
        'here into a temporary folder, random weights included)',
    )
    parser.add_argument(
        '--ort-opt-level',
        nargs='+',
        choices=['disable', 'basic', 'extended', 'all'],
        default=['all'],
        help='ONNX Runtime graph optimisation levels to time',
    )
    parser.add_argument(
        '--ort-precision',
        nargs='+',
        choices=['fp32', 'int8'],
        default=['fp32'],
        help='int8: MatMul/Gemm weights quantised (dynamic quantisation; outputs change)',
    )
    parser.add_argument(
        '--memory-format',
        nargs='+',
        choices=['contiguous', 'channels_last'],
        default=['contiguous'],
        help='PyTorch weights and activations layout (CPU: oneDNN)',
    )
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='repeat the sweep, interleaving the variants, and summarise medians over rounds',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='write the results here (JSON; rewritten after each record)')
    parser.add_argument(
        '--barrier',
        default=None,
        metavar='DIR',
        help='several processes compile/warm up at the same time, then time one after another: '
        'each writes DIR/ready.<pid> after its warm-up, waits for --barrier-count of them, '
        'and times while holding DIR/lock (one record per process)',
    )
    parser.add_argument('--barrier-count', type=int, default=1)
    parser.add_argument('--barrier-timeout', type=float, default=900.0, help='seconds to wait for the others')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='override config entries (mmengine DictAction syntax)',
    )
    args = parser.parse_args(argv)
    if args.parts is None:
        args.parts = ['model', 'backbone']
    if args.iters < 1 or args.warmup < 1:
        parser.error('--iters and --warmup must be at least 1 (the first call is never timed)')
    if any(b < 1 for b in args.batch_size):
        parser.error('--batch-size must be positive')
    if args.barrier and len(args.mode) * len(args.amp) * len(args.batch_size) * len(args.parts) != 1:
        parser.error('--barrier needs exactly one record per process (one --mode, --amp, --batch-size, --parts)')
    if args.rounds < 1 or any(t < 1 for t in args.threads or []):
        parser.error('--rounds and --threads must be positive')
    if 'onnxruntime' in args.backend:
        if (
            args.device != 'cpu'
            or 'infer' not in args.mode
            or 'none' not in args.amp
            or 'model' not in args.parts
            or args.compile
            or args.forward_mode != 'tensor'
        ):
            parser.error(
                '--backend onnxruntime times fp32 CPU inference of the whole model: it needs --device cpu, '
                "--mode infer, --amp none, --parts model and --forward-mode tensor, without --compile"
            )
    if 'channels_last' in args.memory_format and (args.compile or args.barrier):
        parser.error('--memory-format channels_last is an eager variant: not with --compile / --barrier')
    return args


def _release_barrier(args: argparse.Namespace) -> None:
    """A process that failed before its barrier counts as ready, so the others do not wait for it."""
    if args.barrier:
        os.makedirs(args.barrier, exist_ok=True)
        with open(os.path.join(args.barrier, f'ready.{os.getpid()}'), 'w'):
            pass


# ----------------------------------------------------------------------------------------------- steps


def _sum_means(out: Any) -> torch.Tensor:
    """Scalar 'loss' for the backbone-only training step: sum of the means of every output tensor."""
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_sum_means(o) for o in out)


def _compile_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    return compile_kwargs(args.compile_backend, args.compile_mode)


def _maybe_compile(module: nn.Module, args: argparse.Namespace) -> Callable:
    if not args.compile:
        return module
    return torch.compile(module, **_compile_kwargs(args))


def _mark_step(args: argparse.Namespace) -> None:
    """Tell the CUDA-graph trees a new iteration starts (outputs of the last replay may be overwritten)."""
    from projects.ccformer.models.segmentors.ccformer import CCFormer  # the model's own rule for CUDA graphs

    if args.compile and CCFormer.uses_cuda_graphs(_compile_kwargs(args)):
        torch.compiler.cudagraph_mark_step_begin()


def _make_optimizer(params: List[nn.Parameter], device: torch.device, fused: bool) -> torch.optim.Optimizer:
    kwargs = dict(lr=2e-5, weight_decay=0.01)  # the configs' AdamW (schedule_60e.py); values do not change speed
    if fused and device.type == 'cuda':
        kwargs['fused'] = True
    return torch.optim.AdamW(params, **kwargs)


def make_step(
    part: str,
    mode: str,
    model: nn.Module,
    data: Dict[str, Any],
    amp: str,
    device: torch.device,
    args: argparse.Namespace,
) -> Callable[[], Any]:
    """The function timed for one (part, mode): see the module docstring for what it runs."""
    if part == 'backbone':
        module: nn.Module = BackboneForward(model.backbone)
    elif mode == 'infer' and args.forward_mode == 'tensor':
        module = TensorForward(model)
    else:
        module = model
    inputs, audio = data['inputs'], data['audio']
    marks_itself = args.compile and part == 'model' and hasattr(model, 'compile_cfg')
    if marks_itself:
        # the model's own compile switch (CCFormer.compile_cfg): only its tensor core is compiled, the data
        # samples, losses' targets and post-processing stay eager; its first call per input signature is eager
        model.compile_cfg = _compile_kwargs(args)
        fn: Callable = module
    else:
        fn = _maybe_compile(module, args)

    if mode == 'infer':
        model.eval()

        def forward() -> Any:
            if part == 'backbone':
                return fn(inputs)
            if args.forward_mode == 'tensor':
                return fn(inputs, audio)
            return fn(inputs, data['data_samples'], mode='predict', audio=audio)

        def infer_step() -> None:
            if not marks_itself:
                _mark_step(args)
            with torch.no_grad(), autocast(device, amp):
                forward()

        return infer_step

    model.train()
    trained = model.backbone if part == 'backbone' else model
    params = [p for p in trained.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError(f'benchmark: the {part} has no trainable parameters; nothing to time in train mode')
    optimizer = _make_optimizer(params, device, args.fused_adamw)
    scaler = torch.amp.GradScaler(device.type) if amp == 'fp16' else None

    def loss_of() -> torch.Tensor:
        if part == 'backbone':
            return _sum_means(fn(inputs))
        losses = fn(inputs, data['data_samples'], mode='loss', audio=audio)
        loss, _ = model.parse_losses(losses)
        return loss

    def train_step() -> None:
        if not marks_itself:
            _mark_step(args)
        with autocast(device, amp):
            loss = loss_of()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_step.optimizer = optimizer  # type: ignore[attr-defined]  (released after the phase)
    return train_step


def run_one(
    model: nn.Module,
    part: str,
    mode: str,
    amp: str,
    batch: int,
    frames: int,
    device: torch.device,
    args: argparse.Namespace,
) -> Dict[str, Any]:
    """Time one (part, mode, amp, batch) combination and return its record."""
    gen = torch.Generator().manual_seed(args.seed)
    data: Dict[str, Any] = make_inputs(batch, frames, args.size, device, gen)
    if amp in PURE_DTYPES:
        if mode == 'train':
            _release_barrier(args)
            return dict(
                part=part,
                mode=mode,
                amp=amp,
                batch_size=batch,
                frames=frames,
                size=args.size,
                compile=args.compile,
                status='error',
                error=f'--amp {amp} casts the weights: inference only (train with --amp bf16)',
            )
        model = copy.deepcopy(model).to(PURE_DTYPES[amp])
        data = {k: v.to(PURE_DTYPES[amp]) for k, v in data.items()}
    if part == 'model' and (mode == 'train' or args.forward_mode == 'predict'):
        data['data_samples'] = make_data_samples(
            batch, frames, args.size, num_classes_of(model), args.gt_valid, device, gen
        )
    record: Dict[str, Any] = dict(
        part=part,
        mode=mode,
        amp=amp,
        batch_size=batch,
        frames=frames,
        size=args.size,
        compile=args.compile,
        compile_mode=args.compile_mode if args.compile else None,
        compile_backend=args.compile_backend if args.compile else None,
        forward_mode=args.forward_mode if part == 'model' and mode == 'infer' else None,
    )
    timed = model.backbone if part == 'backbone' else model
    record.update(
        params=count_params(timed),
        trainable_params=count_params(timed, trainable_only=True),
        param_bytes=sum(p.numel() * p.element_size() for p in timed.parameters()),
    )
    try:
        with memory_phase(device) as mem:
            step = make_step(part, mode, model, data, amp, device, args)
            timing = time_steps(
                step,
                args.iters,
                args.warmup,
                device,
                lambda: barrier(args.barrier, args.barrier_count, args.barrier_timeout),
            )
        record.update(summarize(timing, batch, frames))
        record.update(mem)
        if args.count_ops and mode == 'infer' and not args.compile:
            record['dispatched_ops'] = count_dispatched_ops(step, model)
        if 'peak_above_start_bytes' in mem:
            # estimate of the peak with only this part on the device: its parameters + what the phase added
            record['peak_alone_est_bytes'] = record['param_bytes'] + mem['peak_above_start_bytes']
        record['status'] = 'ok'
    except torch.cuda.OutOfMemoryError as err:
        record.update(status='oom', error=str(err).splitlines()[0])
        _release_barrier(args)
    except Exception as err:  # noqa: BLE001  (record the failure and go on with the sweep)
        record.update(status='error', error=f'{type(err).__name__}: {err}'.splitlines()[0][:500])
        _release_barrier(args)
    finally:
        step = None  # noqa: F841  (drop the optimizer state and graphs before the next phase)
        model.zero_grad(set_to_none=True)
        if hasattr(model, 'compile_cfg'):
            model.compile_cfg = None
        if args.compile:
            torch._dynamo.reset()
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return record


class Variants:
    """What the sweep times besides the eager model: its channels-last copy and ONNX Runtime sessions of its
    export, built on first use and shared by every record (one export, one session per threads and level)."""

    def __init__(self, model: nn.Module, frames: int, args: argparse.Namespace) -> None:
        self.model, self.frames, self.args = model, frames, args
        self._channels_last: Optional[nn.Module] = None
        self._sessions: Dict[Any, Any] = {}
        self._refs: Dict[int, torch.Tensor] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix='ccformer_onnx_')
        self.onnx_file = args.onnx
        self.int8_file: Optional[str] = None
        self.export: Dict[str, Any] = {}

    def pytorch(self, memory_format: str) -> nn.Module:
        if memory_format == 'contiguous':
            return self.model
        if self._channels_last is None:
            self._channels_last = copy.deepcopy(self.model).to(memory_format=torch.channels_last)
        return self._channels_last

    def session(self, level: str, threads: Optional[int], precision: str = 'fp32') -> Any:
        """An ONNX Runtime session of the model's export (exported here at the first call unless ``--onnx``;
        ``precision='int8'``: its dynamically quantised copy, made at the first call)."""
        from projects.ccformer.deployment import ORTSegmentor

        if self.onnx_file is None:
            from projects.ccformer.deployment.onnx_export import export_onnx

            path = os.path.join(self._tmp.name, 'model.onnx')
            t0 = time.perf_counter()
            export_onnx(self.model, path, self.frames, (self.args.size, self.args.size))
            self.export.update(export_s=time.perf_counter() - t0, onnx_bytes=os.path.getsize(path))
            self.onnx_file = path
        if precision == 'int8' and self.int8_file is None:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = os.path.join(self._tmp.name, 'model_int8.onnx')
            t0 = time.perf_counter()
            quantize_dynamic(self.onnx_file, path, weight_type=QuantType.QInt8, op_types_to_quantize=['MatMul', 'Gemm'])
            self.export.update(quantize_s=time.perf_counter() - t0, onnx_int8_bytes=os.path.getsize(path))
            self.int8_file = path
        key = (level, threads, precision)
        if key not in self._sessions:
            self._sessions[key] = ORTSegmentor(
                self.int8_file if precision == 'int8' else self.onnx_file,
                num_threads=threads,
                graph_optimization_level=level,
            ).session
        return self._sessions[key]

    @torch.no_grad()
    def reference(self, data: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the eager fp32 model on ``data`` (one forward per batch size)."""
        batch = data['inputs'].shape[0]
        if batch not in self._refs:
            self._refs[batch] = TensorForward(self.model.eval())(data['inputs'], data['audio']).float()
        return self._refs[batch]

    def compare(self, out: torch.Tensor, data: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """``max_abs_diff`` and ``mask_agreement`` (``logit > 0``) of ``out`` against :meth:`reference`."""
        ref = self.reference(data)
        return dict(
            max_abs_diff=float((out - ref).abs().max()), mask_agreement=float(((out > 0) == (ref > 0)).float().mean())
        )

    def close(self) -> None:
        self._sessions.clear()
        self._tmp.cleanup()


def run_onnxruntime(
    variants: Variants,
    level: str,
    precision: str,
    threads: Optional[int],
    batch: int,
    frames: int,
    device: torch.device,
    args: argparse.Namespace,
) -> Dict[str, Any]:
    """Time ONNX Runtime on the tensor core's inputs (the ``model`` part, ``--forward-mode tensor``)."""
    data = make_inputs(batch, frames, args.size, device, torch.Generator().manual_seed(args.seed))
    record: Dict[str, Any] = dict(
        part='model',
        mode='infer',
        amp='none',
        batch_size=batch,
        frames=frames,
        size=args.size,
        compile=False,
        compile_mode=None,
        compile_backend=None,
        forward_mode='tensor',
        backend='onnxruntime',
        ort_opt_level=level,
        ort_precision=precision,
        memory_format=None,
        params=count_params(variants.model),
        trainable_params=count_params(variants.model, trainable_only=True),
    )
    try:
        session = variants.session(level, threads, precision)
        feeds = dict(frames=data['inputs'].numpy(), audio=data['audio'].numpy())
        record.update(
            summarize(
                time_steps(lambda: session.run(['logits'], feeds), args.iters, args.warmup, device), batch, frames
            )
        )
        record.update(variants.compare(torch.from_numpy(session.run(['logits'], feeds)[0]), data))
        record['max_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        record['status'] = 'ok'
    except Exception as err:  # noqa: BLE001  (record the failure and go on with the sweep)
        record.update(status='error', error=f'{type(err).__name__}: {err}'.splitlines()[0][:500])
    return record


def sweep(mode: str, amp: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The variants timed for one (mode, amp): each part per memory format, then ONNX Runtime per level."""
    out = [dict(backend='pytorch', part=part, memory_format=fmt) for part in args.parts for fmt in args.memory_format]
    if 'onnxruntime' in args.backend and mode == 'infer' and amp == 'none':
        out += [
            dict(backend='onnxruntime', part='model', ort_opt_level=level, ort_precision=precision)
            for level in args.ort_opt_level
            for precision in args.ort_precision
        ]
    return out


SUMMARY_KEYS = (
    'part',
    'mode',
    'amp',
    'batch_size',
    'compile',
    'backend',
    'memory_format',
    'ort_opt_level',
    'ort_precision',
    'threads',
    'forward_mode',
)


def summarize_rounds(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per variant: the median over rounds of the per-round medians, and ``speedup_vs_eager``: the eager
    (contiguous, not compiled) PyTorch model's median over this one, same part, mode, precision, batch and threads."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for rec in results:
        if rec.get('status') == 'ok':
            groups.setdefault(tuple(rec.get(k) for k in SUMMARY_KEYS), []).append(rec)
    summary = []
    for key, recs in groups.items():
        medians = [r['median_s'] for r in recs]
        entry = dict(
            zip(SUMMARY_KEYS, key), rounds=len(recs), median_s=statistics.median(medians), per_round_median_s=medians
        )
        entry['s_per_clip'] = entry['median_s'] / entry['batch_size']
        if any('max_abs_diff' in r for r in recs):
            entry['max_abs_diff'] = max(r['max_abs_diff'] for r in recs)
            entry['mask_agreement'] = min(r['mask_agreement'] for r in recs)
        summary.append(entry)
    for entry in summary:
        for ref in summary:
            if (
                ref['backend'] == 'pytorch'
                and ref['memory_format'] == 'contiguous'
                and not ref['compile']
                and all(ref[k] == entry[k] for k in ('part', 'mode', 'amp', 'batch_size', 'threads'))
            ):
                entry['speedup_vs_eager'] = ref['median_s'] / entry['median_s']
    return summary


def _variant(rec: Dict[str, Any]) -> str:
    if rec.get('backend') == 'onnxruntime':
        return f"ort-{rec['ort_opt_level']}" + ('-int8' if rec.get('ort_precision') == 'int8' else '')
    return 'channels_last' if rec.get('memory_format') == 'channels_last' else 'pytorch'


def _line(rec: Dict[str, Any]) -> str:
    head = (
        f"{rec['part']:8s} {rec['mode']:5s} {rec['amp']:4s} bs={rec['batch_size']:<3d} "
        f"compile={'y' if rec['compile'] else 'n'}"
    )
    if (
        rec.get('threads') is not None
        or rec.get('backend', 'pytorch') != 'pytorch'
        or rec.get('memory_format') not in (None, 'contiguous')
    ):
        head += f" {_variant(rec):13s} threads={rec.get('threads')}"
    if rec['status'] != 'ok':
        return f"{head}  {rec['status'].upper()}: {rec.get('error', '')}"
    mem = f"  peak {rec['peak_mem_bytes'] / 1e9:6.2f} GB" if 'peak_mem_bytes' in rec else ''
    return (
        f"{head}  {rec['median_s'] * 1e3:9.2f} ms/it (p10 {rec['p10_s'] * 1e3:.2f}, p90 {rec['p90_s'] * 1e3:.2f})"
        f"  {rec['frames_per_s']:9.1f} frames/s  {rec['clips_per_s']:8.2f} clips/s  "
        f"{rec['s_per_clip']:.4f} s/clip  first {rec['first_call_s']:.1f} s{mem}"
    )


def add_ratios(results: List[Dict[str, Any]]) -> None:
    """Add ``model_over_backbone`` (frames/s ratio) to each model record that has its backbone twin."""
    for rec in results:
        if rec['part'] != 'model' or rec['status'] != 'ok':
            continue
        for other in results:
            if (
                other['part'] == 'backbone'
                and other['status'] == 'ok'
                and all(
                    other.get(k) == rec.get(k)
                    for k in ('mode', 'amp', 'batch_size', 'compile', 'backend', 'memory_format', 'threads', 'round')
                )
            ):
                rec['model_over_backbone'] = rec['frames_per_s'] / other['frames_per_s']


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the sweep, print one line per record, write the JSON if asked; return the report."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(
            'benchmark: --device cuda asked for but torch.cuda.is_available() is False; use --device cpu'
        )
    if args.threads:
        torch.set_num_threads(args.threads[0])
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    if device.type == 'cpu' and 'fp16' in args.amp:
        raise ValueError('benchmark: --amp fp16 is not supported on CPU; use bf16 or none')

    cfg = load_config(args.config, args.cfg_options)
    frames = args.frames or int(cfg.get('num_frames', 5))
    model = build_model(cfg, args.checkpoint).to(device)
    report: Dict[str, Any] = dict(
        config=args.config,
        argv=list(sys.argv if argv is None else argv),
        env=environment(device),
        tf32=args.tf32,
        results=[],
    )
    variants = Variants(model, frames, args)
    try:
        for rnd in range(args.rounds):
            for mode in args.mode:
                for amp in args.amp:
                    for batch in args.batch_size:
                        for threads in args.threads or [None]:
                            for var in sweep(mode, amp, args):
                                if threads:
                                    torch.set_num_threads(threads)
                                rec = _run_variant(variants, var, mode, amp, batch, threads, frames, device, args)
                                rec.update(round=rnd, threads=threads)
                                report['results'].append(rec)
                                report.update(variants.export)
                                print(_line(rec), flush=True)
                                write_json(report, args.json)  # keep what is done if a later record is killed
    finally:
        variants.close()
    add_ratios(report['results'])
    for rec in report['results']:
        if 'model_over_backbone' in rec:
            print(
                f"model/backbone frames/s  {rec['mode']} {rec['amp']} bs={rec['batch_size']} "
                f"compile={'y' if rec['compile'] else 'n'}: {rec['model_over_backbone']:.3f}"
            )
    if args.rounds > 1 or len(report['results']) > len(args.parts) * len(args.mode) * len(args.amp) * len(
        args.batch_size
    ):
        report['summary'] = summarize_rounds(report['results'])
        for entry in report['summary']:
            speedup = f"  {entry['speedup_vs_eager']:.2f}x eager" if 'speedup_vs_eager' in entry else ''
            diff = (
                f"  max|diff| {entry['max_abs_diff']:.2g}, masks agree {100 * entry['mask_agreement']:.3f}%"
                if 'max_abs_diff' in entry
                else ''
            )
            print(
                f"summary {entry['part']:8s} {entry['mode']} {entry['amp']} bs={entry['batch_size']} "
                f"{_variant(entry):13s} threads={entry['threads']}: {entry['s_per_clip']:.4f} s/clip "
                f"(median of {entry['rounds']} rounds){speedup}{diff}"
            )
    write_json(report, args.json)
    return report


def _run_variant(
    variants: Variants,
    var: Dict[str, Any],
    mode: str,
    amp: str,
    batch: int,
    threads: Optional[int],
    frames: int,
    device: torch.device,
    args: argparse.Namespace,
) -> Dict[str, Any]:
    """One record of :func:`sweep`'s variant ``var``."""
    if var['backend'] == 'onnxruntime':
        return run_onnxruntime(
            variants, var['ort_opt_level'], var['ort_precision'], threads, batch, frames, device, args
        )
    model = variants.pytorch(var['memory_format'])
    rec = run_one(model, var['part'], mode, amp, batch, frames, device, args)
    rec.update(backend='pytorch', memory_format=var['memory_format'], ort_opt_level=None, ort_precision=None)
    if (
        var['memory_format'] != 'contiguous'
        and rec['status'] == 'ok'
        and var['part'] == 'model'
        and mode == 'infer'
        and amp == 'none'
        and args.forward_mode == 'tensor'
    ):
        data = make_inputs(batch, frames, args.size, device, torch.Generator().manual_seed(args.seed))
        with torch.no_grad():
            out = TensorForward(model.eval())(data['inputs'], data['audio']).float()
        rec.update(variants.compare(out, data))
    return rec


def write_json(report: Dict[str, Any], path: Optional[str]) -> None:
    """Write ``report`` to ``path`` atomically (nothing when ``path`` is None)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


if __name__ == '__main__':
    main()
