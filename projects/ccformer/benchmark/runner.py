"""The benchmark sweep: for every (mode, precision, batch size, threads) the model and its visual backbone timed
one after the other in one process, and the variants of the model (channels-last copy, ONNX Runtime sessions of its
export); what each record holds is described in ``tools/analysis_tools/benchmark.py``.

:func:`run` runs a :class:`~.options.BenchmarkOptions` sweep and returns the report (and writes it as JSON after
every record, so what finished is kept if a later record is killed).
"""

import copy
import gc
import os
import resource
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from ..deployment import ORTSegmentor
from ..deployment.onnx_export import export_onnx
from ..models.utils.compile import uses_cuda_graphs
from .build import (
    BackboneForward,
    TensorCore,
    build_model,
    count_params,
    load_config,
    make_data_samples,
    make_inputs,
    num_classes_of,
)
from .options import BenchmarkOptions
from .report import add_model_over_backbone, format_record, format_summary, summarize_rounds, write_json
from .timing import (
    PURE_DTYPES,
    autocast,
    barrier,
    compile_kwargs,
    count_dispatched_ops,
    environment,
    memory_phase,
    summarize,
    time_steps,
)

#: keys that make a record the backbone twin of a model record in one report
TWIN_KEYS = ('mode', 'amp', 'batch_size', 'compile', 'backend', 'memory_format', 'threads', 'round')


def release_barrier(opts: BenchmarkOptions) -> None:
    """A process that failed before its barrier counts as ready, so the others do not wait for it."""
    if opts.barrier:
        os.makedirs(opts.barrier, exist_ok=True)
        with open(os.path.join(opts.barrier, f'ready.{os.getpid()}'), 'w'):
            pass


# ----------------------------------------------------------------------------------------------- steps


def _sum_means(out: Any) -> torch.Tensor:
    """Scalar 'loss' for the backbone-only training step: sum of the means of every output tensor."""
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_sum_means(o) for o in out)


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
    opts: BenchmarkOptions,
) -> Callable[[], Any]:
    """The function timed for one (part, mode).

    ``infer``: the model's tensor core (``model(inputs, None, 'tensor', audio=audio)``) or, with
    ``forward_mode='predict'``, ``mode='predict'``, under ``torch.no_grad``; ``train``: one optimisation step
    (``mode='loss'``, ``parse_losses``, ``backward``, ``AdamW.step``; a ``GradScaler`` for fp16 only). The backbone
    part runs ``backbone(frames.flatten(0, 1))``; its training loss is the sum of the means of its maps.
    """
    if part == 'backbone':
        module: nn.Module = BackboneForward(model.backbone)
    elif mode == 'infer' and opts.forward_mode == 'tensor':
        module = TensorCore(model)
    else:
        module = model
    inputs, audio = data['inputs'], data['audio']
    kwargs = compile_kwargs(opts.compile_backend, opts.compile_mode)
    marks_itself = opts.compile and part == 'model' and hasattr(model, 'compile_cfg')
    if marks_itself:
        # the model's own compile switch (CCFormer.compile_cfg): only its tensor core is compiled, the data
        # samples, losses' targets and post-processing stay eager; its first call per input signature is eager
        model.compile_cfg = kwargs
        fn: Callable = module
    else:
        fn = torch.compile(module, **kwargs) if opts.compile else module

    def mark_step() -> None:
        """Tell the CUDA-graph trees a new iteration starts (outputs of the last replay may be overwritten)."""
        if opts.compile and not marks_itself and uses_cuda_graphs(kwargs):
            torch.compiler.cudagraph_mark_step_begin()

    if mode == 'infer':
        model.eval()

        def forward() -> Any:
            if part == 'backbone':
                return fn(inputs)
            if opts.forward_mode == 'tensor':
                return fn(inputs, audio)
            return fn(inputs, data['data_samples'], mode='predict', audio=audio)

        def infer_step() -> None:
            mark_step()
            with torch.no_grad(), autocast(device, amp):
                forward()

        return infer_step

    model.train()
    trained = model.backbone if part == 'backbone' else model
    params = [p for p in trained.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError(f'benchmark: the {part} has no trainable parameters; nothing to time in train mode')
    optimizer = _make_optimizer(params, device, opts.fused_adamw)
    scaler = torch.amp.GradScaler(device.type) if amp == 'fp16' else None

    def loss_of() -> torch.Tensor:
        if part == 'backbone':
            return _sum_means(fn(inputs))
        losses = fn(inputs, data['data_samples'], mode='loss', audio=audio)
        loss, _ = model.parse_losses(losses)
        return loss

    def train_step() -> None:
        mark_step()
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


def _base_record(part: str, mode: str, amp: str, batch: int, frames: int, opts: BenchmarkOptions) -> Dict[str, Any]:
    return dict(
        part=part,
        mode=mode,
        amp=amp,
        batch_size=batch,
        frames=frames,
        size=opts.size,
        compile=opts.compile,
        compile_mode=opts.compile_mode if opts.compile else None,
        compile_backend=opts.compile_backend if opts.compile else None,
        forward_mode=opts.forward_mode if part == 'model' and mode == 'infer' else None,
    )


def run_one(
    model: nn.Module,
    part: str,
    mode: str,
    amp: str,
    batch: int,
    frames: int,
    device: torch.device,
    opts: BenchmarkOptions,
) -> Dict[str, Any]:
    """Time one (part, mode, amp, batch) combination and return its record (``status`` ``'ok'``, ``'oom'`` or
    ``'error'`` with the first line of the error: a failure is recorded and the sweep goes on)."""
    gen = torch.Generator().manual_seed(opts.seed)
    data: Dict[str, Any] = make_inputs(batch, frames, opts.size, device, gen)
    record = _base_record(part, mode, amp, batch, frames, opts)
    if amp in PURE_DTYPES:
        if mode == 'train':
            release_barrier(opts)
            return dict(
                record,
                status='error',
                error=f'--amp {amp} casts the weights: inference only (train with --amp bf16)',
            )
        model = copy.deepcopy(model).to(PURE_DTYPES[amp])
        data = {k: v.to(PURE_DTYPES[amp]) for k, v in data.items()}
    if part == 'model' and (mode == 'train' or opts.forward_mode == 'predict'):
        data['data_samples'] = make_data_samples(
            batch, frames, opts.size, num_classes_of(model), opts.gt_valid, device, gen
        )
    timed = model.backbone if part == 'backbone' else model
    record.update(
        params=count_params(timed),
        trainable_params=count_params(timed, trainable_only=True),
        param_bytes=sum(p.numel() * p.element_size() for p in timed.parameters()),
    )
    step = None
    try:
        with memory_phase(device) as mem:
            step = make_step(part, mode, model, data, amp, device, opts)
            timing = time_steps(
                step,
                opts.iters,
                opts.warmup,
                device,
                lambda: barrier(opts.barrier, opts.barrier_count, opts.barrier_timeout),
            )
        record.update(summarize(timing, batch, frames))
        record.update(mem)
        if opts.count_ops and mode == 'infer' and not opts.compile:
            record['dispatched_ops'] = count_dispatched_ops(step, model)
        if 'peak_above_start_bytes' in mem:
            # estimate of the peak with only this part on the device: its parameters + what the phase added
            record['peak_alone_est_bytes'] = record['param_bytes'] + mem['peak_above_start_bytes']
        record['status'] = 'ok'
    except torch.cuda.OutOfMemoryError as err:
        record.update(status='oom', error=str(err).splitlines()[0])
        release_barrier(opts)
    except Exception as err:  # noqa: BLE001  (record the failure and go on with the sweep)
        record.update(status='error', error=f'{type(err).__name__}: {err}'.splitlines()[0][:500])
        release_barrier(opts)
    finally:
        step = None  # noqa: F841  (drop the optimizer state and graphs before the next phase)
        model.zero_grad(set_to_none=True)
        if hasattr(model, 'compile_cfg'):
            model.compile_cfg = None
        if opts.compile:
            torch._dynamo.reset()
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return record


# ----------------------------------------------------------------------------------------------- variants


class Variants:
    """What the sweep times besides the eager model: its channels-last copy and ONNX Runtime sessions of its
    export, built on first use and shared by every record (one export, one session per threads and level)."""

    def __init__(self, model: nn.Module, frames: int, opts: BenchmarkOptions) -> None:
        self.model, self.frames, self.opts = model, frames, opts
        self._channels_last: Optional[nn.Module] = None
        self._sessions: Dict[Any, Any] = {}
        self._refs: Dict[int, torch.Tensor] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix='ccformer_onnx_')
        self.onnx_file = opts.onnx
        self.int8_file: Optional[str] = None
        self.export: Dict[str, Any] = {}

    def pytorch(self, memory_format: str) -> nn.Module:
        if memory_format == 'contiguous':
            return self.model
        if self._channels_last is None:
            self._channels_last = copy.deepcopy(self.model).to(memory_format=torch.channels_last)
        return self._channels_last

    def session(self, level: str, threads: Optional[int], precision: str = 'fp32') -> Any:
        """An ONNX Runtime session of the model's export (exported here at the first call unless ``onnx`` is
        given; ``precision='int8'``: its dynamically quantised copy, made at the first call)."""
        if self.onnx_file is None:
            path = os.path.join(self._tmp.name, 'model.onnx')
            t0 = time.perf_counter()
            export_onnx(self.model, path, self.frames, (self.opts.size, self.opts.size))
            self.export.update(export_s=time.perf_counter() - t0, onnx_bytes=os.path.getsize(path))
            self.onnx_file = path
        if precision == 'int8' and self.int8_file is None:
            from onnxruntime.quantization import QuantType, quantize_dynamic  # optional: only for this variant

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
            self._refs[batch] = TensorCore(self.model.eval())(data['inputs'], data['audio']).float()
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
    opts: BenchmarkOptions,
) -> Dict[str, Any]:
    """Time ONNX Runtime on the tensor core's inputs (the ``model`` part, ``forward_mode='tensor'``)."""
    data = make_inputs(batch, frames, opts.size, device, torch.Generator().manual_seed(opts.seed))
    record: Dict[str, Any] = dict(
        _base_record('model', 'infer', 'none', batch, frames, opts),
        compile=False,
        compile_mode=None,
        compile_backend=None,
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
        timing = time_steps(lambda: session.run(['logits'], feeds), opts.iters, opts.warmup, device)
        record.update(summarize(timing, batch, frames))
        record.update(variants.compare(torch.from_numpy(session.run(['logits'], feeds)[0]), data))
        record['max_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        record['status'] = 'ok'
    except Exception as err:  # noqa: BLE001  (record the failure and go on with the sweep)
        record.update(status='error', error=f'{type(err).__name__}: {err}'.splitlines()[0][:500])
    return record


def sweep(mode: str, amp: str, opts: BenchmarkOptions) -> List[Dict[str, Any]]:
    """The variants timed for one (mode, amp): each part per memory format, then ONNX Runtime per level and
    precision."""
    out = [dict(backend='pytorch', part=part, memory_format=fmt) for part in opts.parts for fmt in opts.memory_format]
    if 'onnxruntime' in opts.backend and mode == 'infer' and amp == 'none':
        out += [
            dict(backend='onnxruntime', part='model', ort_opt_level=level, ort_precision=precision)
            for level in opts.ort_opt_level
            for precision in opts.ort_precision
        ]
    return out


def run_variant(
    variants: Variants,
    var: Dict[str, Any],
    mode: str,
    amp: str,
    batch: int,
    threads: Optional[int],
    frames: int,
    device: torch.device,
    opts: BenchmarkOptions,
) -> Dict[str, Any]:
    """One record of :func:`sweep`'s variant ``var``; a channels-last fp32 tensor-mode record also holds its
    difference from the eager model (:meth:`Variants.compare`)."""
    if var['backend'] == 'onnxruntime':
        return run_onnxruntime(
            variants, var['ort_opt_level'], var['ort_precision'], threads, batch, frames, device, opts
        )
    model = variants.pytorch(var['memory_format'])
    rec = run_one(model, var['part'], mode, amp, batch, frames, device, opts)
    rec.update(backend='pytorch', memory_format=var['memory_format'], ort_opt_level=None, ort_precision=None)
    if (
        var['memory_format'] != 'contiguous'
        and rec['status'] == 'ok'
        and var['part'] == 'model'
        and mode == 'infer'
        and amp == 'none'
        and opts.forward_mode == 'tensor'
    ):
        data = make_inputs(batch, frames, opts.size, device, torch.Generator().manual_seed(opts.seed))
        with torch.no_grad():
            out = TensorCore(model.eval())(data['inputs'], data['audio']).float()
        rec.update(variants.compare(out, data))
    return rec


# ----------------------------------------------------------------------------------------------- the sweep


def run(opts: BenchmarkOptions, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the sweep of ``opts``: one record per (round, mode, amp, batch size, threads, variant), each logged as
    one line; the report (``config``, ``argv``, ``env``, ``tf32``, ``results`` and, for several rounds or variants,
    ``summary``) is written to ``opts.json`` after every record and returned."""
    opts.check()
    device = torch.device(opts.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(
            'benchmark: --device cuda asked for but torch.cuda.is_available() is False; use --device cpu'
        )
    if device.type == 'cpu' and 'fp16' in opts.amp:
        raise ValueError('benchmark: --amp fp16 is not supported on CPU; use bf16 or none')
    if opts.threads:
        torch.set_num_threads(opts.threads[0])
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = opts.tf32
    torch.backends.cudnn.allow_tf32 = opts.tf32

    cfg = load_config(opts.config, opts.cfg_options)
    frames = opts.frames or int(cfg.get('num_frames', 5))
    model = build_model(cfg, opts.checkpoint).to(device)
    report: Dict[str, Any] = dict(
        config=opts.config,
        argv=list(sys.argv if opts.argv is None else opts.argv),
        env=environment(device),
        tf32=opts.tf32,
        results=[],
    )
    variants = Variants(model, frames, opts)
    try:
        for rnd in range(opts.rounds):
            for mode in opts.mode:
                for amp in opts.amp:
                    for batch in opts.batch_size:
                        for threads in opts.threads or [None]:
                            for var in sweep(mode, amp, opts):
                                if threads:
                                    torch.set_num_threads(threads)
                                rec = run_variant(variants, var, mode, amp, batch, threads, frames, device, opts)
                                rec.update(round=rnd, threads=threads)
                                report['results'].append(rec)
                                report.update(variants.export)
                                log(format_record(rec))
                                write_json(report, opts.json)  # keep what is done if a later record is killed
    finally:
        variants.close()
    add_model_over_backbone(report['results'], TWIN_KEYS)
    for rec in report['results']:
        if 'model_over_backbone' in rec:
            log(
                f"model/backbone frames/s  {rec['mode']} {rec['amp']} bs={rec['batch_size']} "
                f"compile={'y' if rec['compile'] else 'n'}: {rec['model_over_backbone']:.3f}"
            )
    plain = len(opts.parts) * len(opts.mode) * len(opts.amp) * len(opts.batch_size)
    if opts.rounds > 1 or len(report['results']) > plain:
        report['summary'] = summarize_rounds(report['results'])
        for entry in report['summary']:
            log(format_summary(entry))
    write_json(report, opts.json)
    return report
