# Copyright (c) CCFormer authors. All rights reserved.
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
model on the timed inputs) and ``mask_agreement`` (fraction of pixels whose ``logit > 0`` agrees). ``--threads 1 2`` sweeps the
intra-op threads (PyTorch and ONNX Runtime). ``--rounds R`` repeats the whole sweep R times, one record of each
variant after the other (A, B, A, B ...: on a shared machine a load change then hits every variant alike), and the
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
import contextlib
import copy
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'none': None}
# weights cast instead of autocast (inference only): no per-operation casts
PURE_DTYPES = {'bf16-pure': torch.bfloat16}
AUDIO_SHAPE = (1, 96, 64)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (``--mode``, ``--amp`` and ``--batch-size`` take several values for a sweep)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', default=None, help='optional checkpoint (random weights without it)')
    parser.add_argument('--mode', nargs='+', choices=['infer', 'train'], default=['infer'])
    parser.add_argument('--batch-size', nargs='+', type=int, default=[2], help='clips per batch')
    parser.add_argument('--amp', nargs='+', choices=list(AMP_DTYPES) + list(PURE_DTYPES), default=['bf16'],
                        help='autocast dtype (none = fp32); bf16-pure: a copy of the model cast to bf16 and bf16 '
                             'inputs, no autocast (inference only; the fp32 model stays on the device, so use '
                             'peak_alone_est_bytes for its memory)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the timed modules')
    parser.add_argument('--compile-mode', default='reduce-overhead',
                        choices=['default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'])
    parser.add_argument('--compile-backend', default='inductor', help='torch.compile backend (tests use aot_eager)')
    parser.add_argument('--frames', type=int, default=None, help='frames per clip (default: 5, or cfg num_frames)')
    parser.add_argument('--size', type=int, default=224, help='square input size H = W')
    parser.add_argument('--iters', type=int, default=50, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations (first includes compile)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--forward-mode', choices=['tensor', 'predict'], default='tensor',
                        help="infer mode: time mode='tensor' (logits) or mode='predict' (upsampled masks)")
    parser.add_argument('--gt-valid', choices=['all', 'first'], default='all',
                        help="train mode: frames with labels ('first' = S4 training, frame 1 only)")
    parser.add_argument('--parts', nargs='+', choices=['model', 'backbone'], default=None,
                        help='what to time (default: model and backbone)')
    parser.add_argument('--backbone-only-too', action='store_true',
                        help='kept for compatibility: the backbone is timed by default (see --parts)')
    parser.add_argument('--fused-adamw', action='store_true', help='AdamW(fused=True) on CUDA')
    parser.add_argument('--count-ops', action='store_true',
                        help='infer mode: also count the ATen operations one forward dispatches, per sub-module '
                             '(what bounds an eager run that waits on the host)')
    parser.add_argument('--tf32', action='store_true', help='allow TF32 matmuls/convs in fp32 runs')
    parser.add_argument('--threads', type=int, nargs='+', default=None,
                        help='intra-op threads on CPU (torch.set_num_threads and ONNX Runtime); several for a sweep')
    parser.add_argument('--backend', nargs='+', choices=['pytorch', 'onnxruntime'], default=['pytorch'],
                        help='onnxruntime: also time the ONNX export of the model run by ONNX Runtime (infer, '
                             '--amp none, CPU, part model)')
    parser.add_argument('--onnx', default=None,
                        help='ONNX file of the same weights (tools/deployment/pytorch2onnx.py; default: exported '
                             'here into a temporary folder, random weights included)')
    parser.add_argument('--ort-opt-level', nargs='+', choices=['disable', 'basic', 'extended', 'all'],
                        default=['all'], help='ONNX Runtime graph optimisation levels to time')
    parser.add_argument('--ort-precision', nargs='+', choices=['fp32', 'int8'], default=['fp32'],
                        help='int8: MatMul/Gemm weights quantised (dynamic quantisation; outputs change)')
    parser.add_argument('--memory-format', nargs='+', choices=['contiguous', 'channels_last'],
                        default=['contiguous'], help='PyTorch weights and activations layout (CPU: oneDNN)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='repeat the sweep, interleaving the variants, and summarise medians over rounds')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='write the results here (JSON; rewritten after each record)')
    parser.add_argument('--barrier', default=None, metavar='DIR',
                        help='several processes compile/warm up at the same time, then time one after another: '
                             'each writes DIR/ready.<pid> after its warm-up, waits for --barrier-count of them, '
                             'and times while holding DIR/lock (one record per process)')
    parser.add_argument('--barrier-count', type=int, default=1)
    parser.add_argument('--barrier-timeout', type=float, default=900.0, help='seconds to wait for the others')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override config entries (mmengine DictAction syntax)')
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
        if args.device != 'cpu' or 'infer' not in args.mode or 'none' not in args.amp or 'model' not in args.parts \
                or args.compile or args.forward_mode != 'tensor':
            parser.error('--backend onnxruntime times fp32 CPU inference of the whole model: it needs --device cpu, '
                         "--mode infer, --amp none, --parts model and --forward-mode tensor, without --compile")
    if 'channels_last' in args.memory_format and (args.compile or args.barrier):
        parser.error('--memory-format channels_last is an eager variant: not with --compile / --barrier')
    return args


# ----------------------------------------------------------------------------------------------- model building


def strip_pretrained(node: Any) -> int:
    """Switch off every pretrained-weight reference in a (nested) config, in place.

    ``init_cfg`` entries of type ``Pretrained`` are removed, ``pretrained`` / ``checkpoint_path`` strings become
    ``None`` and ``pretrained=True`` (timm) becomes ``False``.

    Returns:
        int: the number of entries changed.
    """
    changed = 0
    if isinstance(node, dict):
        for key in list(node.keys()):
            value = node[key]
            if key == 'init_cfg' and _is_pretrained_init(value):
                node[key] = _drop_pretrained_init(value)
                changed += 1
            elif key in ('pretrained', 'checkpoint_path') and isinstance(value, (str, bool)) and value:
                node[key] = False if isinstance(value, bool) else None
                changed += 1
            else:
                changed += strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            changed += strip_pretrained(item)
    return changed


def _is_pretrained_init(value: Any) -> bool:
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, dict) and v.get('type') == 'Pretrained' for v in items)


def _drop_pretrained_init(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        kept = [v for v in value if not (isinstance(v, dict) and v.get('type') == 'Pretrained')]
        return kept or None
    return None


def load_config(path: str, cfg_options: Sequence[str] = ()) -> 'mmengine.Config':  # noqa: F821
    """Load a config, apply ``KEY=VALUE`` overrides and strip pretrained weights from ``cfg.model``."""
    from mmengine.config import Config, DictAction

    if not os.path.isfile(path):
        raise FileNotFoundError(f'benchmark: config file {path!r} does not exist; pass a path such as '
                                'configs/ccformer/<name>.py (run from the repository root)')
    if REPO_ROOT not in sys.path:  # custom_imports = ['projects.ccformer'] needs the repo root
        sys.path.insert(0, REPO_ROOT)
    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    if 'model' not in cfg:
        raise KeyError(f'benchmark: config {path!r} has no `model` entry')
    strip_pretrained(cfg.model)
    return cfg


def build_model(cfg: 'mmengine.Config', checkpoint: Optional[str] = None) -> nn.Module:  # noqa: F821
    """Build ``cfg.model`` on the CPU in the config's default scope, initialise it and load ``checkpoint``."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmengine.logging import MMLogger

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')  # mmengine logs every parameter's init at INFO
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    if checkpoint:  # read without executing code; a checkpoint of another model is refused
        from projects.ccformer.engine.safe_checkpoint import load_model_checkpoint
        load_model_checkpoint(model, checkpoint, config=str(cfg.filename or ''))
    if not hasattr(model, 'backbone'):
        raise AttributeError(f'benchmark: {type(model).__name__} has no `backbone` attribute; '
                             'use --parts model to time the whole model only')
    return model


def num_classes_of(model: nn.Module) -> int:
    """Number of label values the ground truth may hold (2 for binary masks)."""
    head = getattr(model, 'decode_head', None)
    k = getattr(head, 'num_classes', None) or getattr(head, 'out_channels', None) or 1
    return max(int(k), 2)


# ----------------------------------------------------------------------------------------------- inputs


def make_inputs(batch: int, frames: int, size: int, device: torch.device,
                generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """Random preprocessed inputs: ``inputs (N, T, 3, H, W)`` ~ N(0, 1) and ``audio (N, T, 1, 96, 64)``."""
    inputs = torch.randn(batch, frames, 3, size, size, generator=generator)
    audio = torch.randn(batch, frames, *AUDIO_SHAPE, generator=generator)
    return dict(inputs=inputs.to(device), audio=audio.to(device))


def make_data_samples(batch: int, frames: int, size: int, num_classes: int, gt_valid: str,
                      device: torch.device, generator: torch.Generator) -> list:
    """``SegDataSample`` per clip with random blob masks ``(T, H, W)`` and the metainfo of ``docs/design.md``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for b in range(batch):
        low = torch.rand(frames, 1, 7, 7, generator=generator)
        blobs = nn.functional.interpolate(low, size=(size, size), mode='bilinear', align_corners=False)[:, 0]
        if num_classes <= 2:
            gt = (blobs > 0.5).long()
        else:
            labels = torch.randint(1, num_classes, (frames, 1, 1), generator=generator)
            gt = torch.where(blobs > 0.5, labels, torch.zeros_like(labels))
        valid = [1] * frames if gt_valid == 'all' else [1] + [0] * (frames - 1)
        gt = gt * torch.tensor(valid).view(frames, 1, 1)
        sample = SegDataSample(metainfo=dict(
            video_id=f'bench_{b}', category='', img_path=f'bench_{b}/0.png',
            frame_paths=[f'bench_{b}/{t}.png' for t in range(frames)], audio_path=f'bench_{b}.pkl',
            ori_shape=(size, size), img_shape=(size, size), pad_shape=(size, size), num_frames=frames,
            frame_valid=[1] * frames, gt_valid=valid, flip=False, flip_direction=None, scale_factor=(1.0, 1.0)))
        sample.gt_sem_seg = PixelData(data=gt.to(device))
        samples.append(sample)
    return samples


# ----------------------------------------------------------------------------------------------- timing


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in ``bf16``/``fp16``; a null context for ``none`` and ``bf16-pure``."""
    dtype = AMP_DTYPES.get(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def barrier(directory: Optional[str], count: int, timeout: float) -> Iterator[Dict[str, Any]]:
    """Wait until ``count`` processes are warm, then hold an exclusive lock on ``directory/lock`` while timing.

    Lets several processes pay their ``torch.compile`` time in parallel while each is timed alone.
    A null context when ``directory`` is None.
    """
    info: Dict[str, Any] = {}
    if directory is None:
        yield info
        return
    import fcntl
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f'ready.{os.getpid()}'), 'w'):
        pass
    t0 = time.perf_counter()
    while sum(n.startswith('ready.') for n in os.listdir(directory)) < count:
        if time.perf_counter() - t0 > timeout:
            info['barrier_timed_out'] = True
            break
        time.sleep(0.5)
    info['barrier_wait_s'] = time.perf_counter() - t0
    with open(os.path.join(directory, 'lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield info
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _release_barrier(args: argparse.Namespace) -> None:
    """A process that failed before its barrier counts as ready, so the others do not wait for it."""
    if args.barrier:
        os.makedirs(args.barrier, exist_ok=True)
        with open(os.path.join(args.barrier, f'ready.{os.getpid()}'), 'w'):
            pass


def time_steps(step: Callable[[], Any], iters: int, warmup: int, device: torch.device,
               before_timing: Optional[Callable[[], contextlib.AbstractContextManager]] = None) -> Dict[str, Any]:
    """Run ``step`` ``warmup`` times untimed, then ``iters`` times timed.

    On CUDA each timed iteration is bracketed by CUDA events and the host does not wait between iterations, so the
    numbers include launch gaps but no artificial synchronisation. ``before_timing`` (a context-manager factory) is
    entered after the warm-up and held during the timed loop (see ``barrier``).

    Returns:
        dict: ``first_call_s``, ``warmup_s``, per-iteration ``times_s`` and ``wall_s`` of the timed loop.
    """
    t0 = time.perf_counter()
    step()
    synchronize(device)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        step()
    synchronize(device)
    warm = time.perf_counter() - t0
    with (before_timing or contextlib.nullcontext)() as extra:
        if extra:  # waited at a barrier: one more untimed step so clocks and caches are warm again
            step()
            synchronize(device)
        result = _timed_loop(step, iters, device)
    result.update(first_call_s=first, warmup_s=warm, **(extra or {}))
    return result


def _timed_loop(step: Callable[[], Any], iters: int, device: torch.device) -> Dict[str, Any]:
    if device.type == 'cuda':
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        w0 = time.perf_counter()
        for i in range(iters):
            starts[i].record()
            step()
            ends[i].record()
        torch.cuda.synchronize(device)
        wall = time.perf_counter() - w0
        times = [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)]
    else:
        times = []
        w0 = time.perf_counter()
        for _ in range(iters):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        wall = time.perf_counter() - w0
    return dict(times_s=times, wall_s=wall)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(timing: Dict[str, Any], batch: int, frames: int) -> Dict[str, Any]:
    """Median / spread of the per-iteration times and the throughputs they give."""
    times = timing['times_s']
    median = statistics.median(times)
    n = len(times)
    extra = {k: timing[k] for k in ('barrier_wait_s', 'barrier_timed_out') if k in timing}
    return dict(
        **extra, iters=n, first_call_s=timing['first_call_s'], warmup_s=timing['warmup_s'],
        median_s=median, p10_s=percentile(times, 10), p90_s=percentile(times, 90),
        mean_s=statistics.fmean(times), min_s=min(times), max_s=max(times),
        clips_per_s=batch / median, frames_per_s=batch * frames / median,
        wall_clips_per_s=batch * n / timing['wall_s'], wall_frames_per_s=batch * frames * n / timing['wall_s'],
        s_per_clip=median / batch)


@contextlib.contextmanager
def memory_phase(device: torch.device) -> Iterator[Dict[str, Any]]:
    """Collect the peak memory of a phase: CUDA allocator peak (absolute and above the phase's start)."""
    stats: Dict[str, Any] = {}
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    try:
        yield stats
    finally:
        if device.type == 'cuda':
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            stats.update(peak_mem_bytes=peak, peak_mem_gib=peak / 2**30, start_mem_bytes=start,
                         peak_above_start_bytes=peak - start,
                         peak_reserved_bytes=torch.cuda.max_memory_reserved(device))
        else:
            # ru_maxrss is in KiB on Linux: the process-wide high-water mark, not per phase
            stats.update(max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


# ----------------------------------------------------------------------------------------------- steps


class TensorForward(nn.Module):
    """``model(inputs, None, 'tensor', audio=audio)`` as a module, so it can be compiled as one graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, audio: torch.Tensor) -> Any:
        return self.model(inputs, None, mode='tensor', audio=audio)


class BackboneForward(nn.Module):
    """``backbone(frames.flatten(0, 1))``: the visual encoder alone on ``(N, T, 3, H, W)`` frames."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.backbone(inputs.flatten(0, 1))


def _sum_means(out: Any) -> torch.Tensor:
    """Scalar 'loss' for the backbone-only training step: sum of the means of every output tensor."""
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_sum_means(o) for o in out)


def compile_kwargs(backend: str, mode: str) -> Dict[str, Any]:
    """``torch.compile`` arguments: ``mode`` only applies to inductor."""
    kwargs: Dict[str, Any] = dict(backend=backend)
    if backend == 'inductor':
        kwargs['mode'] = mode
    return kwargs


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


def make_step(part: str, mode: str, model: nn.Module, data: Dict[str, Any], amp: str, device: torch.device,
              args: argparse.Namespace) -> Callable[[], Any]:
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


def count_dispatched_ops(step: Callable[[], Any], model: nn.Module) -> Dict[str, Any]:
    """ATen operations dispatched by one call of ``step``, by the sub-module that issued them.

    Returns:
        dict: ``total``; ``by_part``: per child of the model (``backbone``, ``neck``, ``decode_head`` ...; ``other``
        for operations outside every child); ``detail``: per grandchild where one was active (e.g.
        ``decode_head.decoder``), else per child. Views count too (they cost host time, not kernels).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    stack = ['other']
    detail: Dict[str, int] = {}

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            detail[stack[-1]] = detail.get(stack[-1], 0) + 1
            return func(*args, **(kwargs or {}))

    handles = []
    for name, module in model.named_modules():
        if name and name.count('.') <= 1:
            handles.append(module.register_forward_pre_hook(lambda m, a, n=name: stack.append(n)))
            handles.append(module.register_forward_hook(lambda m, a, o: stack.pop() and None))
    try:
        with _Count():
            step()
    finally:
        for h in handles:
            h.remove()
    by_part: Dict[str, int] = {}
    for name, n in detail.items():
        by_part[name.split('.')[0]] = by_part.get(name.split('.')[0], 0) + n
    return dict(total=sum(detail.values()), by_part=by_part, detail=detail)


# ----------------------------------------------------------------------------------------------- driver


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def environment(device: torch.device) -> Dict[str, Any]:
    """Versions and device, for the record."""
    env: Dict[str, Any] = dict(
        torch=torch.__version__, python=platform.python_version(), host=platform.node(),
        device=str(device), cpu_threads=torch.get_num_threads(), cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(), load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None)
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_mem_bytes=props.total_memory, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    for name in ('mmcv', 'mmengine', 'mmseg', 'mmdet', 'timm'):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001  (optional packages: record absence only)
            env[name] = None
    return env


def run_one(model: nn.Module, part: str, mode: str, amp: str, batch: int, frames: int,
            device: torch.device, args: argparse.Namespace) -> Dict[str, Any]:
    """Time one (part, mode, amp, batch) combination and return its record."""
    gen = torch.Generator().manual_seed(args.seed)
    data: Dict[str, Any] = make_inputs(batch, frames, args.size, device, gen)
    if amp in PURE_DTYPES:
        if mode == 'train':
            _release_barrier(args)
            return dict(part=part, mode=mode, amp=amp, batch_size=batch, frames=frames, size=args.size,
                        compile=args.compile, status='error',
                        error=f'--amp {amp} casts the weights: inference only (train with --amp bf16)')
        model = copy.deepcopy(model).to(PURE_DTYPES[amp])
        data = {k: v.to(PURE_DTYPES[amp]) for k, v in data.items()}
    if part == 'model' and (mode == 'train' or args.forward_mode == 'predict'):
        data['data_samples'] = make_data_samples(batch, frames, args.size, num_classes_of(model),
                                                 args.gt_valid, device, gen)
    record: Dict[str, Any] = dict(part=part, mode=mode, amp=amp, batch_size=batch, frames=frames, size=args.size,
                                  compile=args.compile, compile_mode=args.compile_mode if args.compile else None,
                                  compile_backend=args.compile_backend if args.compile else None,
                                  forward_mode=args.forward_mode if part == 'model' and mode == 'infer' else None)
    timed = model.backbone if part == 'backbone' else model
    record.update(params=count_params(timed), trainable_params=count_params(timed, trainable_only=True),
                  param_bytes=sum(p.numel() * p.element_size() for p in timed.parameters()))
    try:
        with memory_phase(device) as mem:
            step = make_step(part, mode, model, data, amp, device, args)
            timing = time_steps(step, args.iters, args.warmup, device,
                                lambda: barrier(args.barrier, args.barrier_count, args.barrier_timeout))
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
            self._sessions[key] = ORTSegmentor(self.int8_file if precision == 'int8' else self.onnx_file,
                                               num_threads=threads, graph_optimization_level=level).session
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
        return dict(max_abs_diff=float((out - ref).abs().max()),
                    mask_agreement=float(((out > 0) == (ref > 0)).float().mean()))

    def close(self) -> None:
        self._sessions.clear()
        self._tmp.cleanup()


def run_onnxruntime(variants: Variants, level: str, precision: str, threads: Optional[int], batch: int, frames: int,
                    device: torch.device, args: argparse.Namespace) -> Dict[str, Any]:
    """Time ONNX Runtime on the tensor core's inputs (the ``model`` part, ``--forward-mode tensor``)."""
    data = make_inputs(batch, frames, args.size, device, torch.Generator().manual_seed(args.seed))
    record: Dict[str, Any] = dict(part='model', mode='infer', amp='none', batch_size=batch, frames=frames,
                                  size=args.size, compile=False, compile_mode=None, compile_backend=None,
                                  forward_mode='tensor', backend='onnxruntime', ort_opt_level=level,
                                  ort_precision=precision, memory_format=None, params=count_params(variants.model),
                                  trainable_params=count_params(variants.model, trainable_only=True))
    try:
        session = variants.session(level, threads, precision)
        feeds = dict(frames=data['inputs'].numpy(), audio=data['audio'].numpy())
        record.update(summarize(time_steps(lambda: session.run(['logits'], feeds), args.iters, args.warmup,
                                           device), batch, frames))
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
        out += [dict(backend='onnxruntime', part='model', ort_opt_level=level, ort_precision=precision)
                for level in args.ort_opt_level for precision in args.ort_precision]
    return out


SUMMARY_KEYS = ('part', 'mode', 'amp', 'batch_size', 'compile', 'backend', 'memory_format', 'ort_opt_level',
                'ort_precision', 'threads', 'forward_mode')


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
        entry = dict(zip(SUMMARY_KEYS, key), rounds=len(recs), median_s=statistics.median(medians),
                     per_round_median_s=medians)
        entry['s_per_clip'] = entry['median_s'] / entry['batch_size']
        if any('max_abs_diff' in r for r in recs):
            entry['max_abs_diff'] = max(r['max_abs_diff'] for r in recs)
            entry['mask_agreement'] = min(r['mask_agreement'] for r in recs)
        summary.append(entry)
    for entry in summary:
        for ref in summary:
            if (ref['backend'] == 'pytorch' and ref['memory_format'] == 'contiguous' and not ref['compile']
                    and all(ref[k] == entry[k] for k in ('part', 'mode', 'amp', 'batch_size', 'threads'))):
                entry['speedup_vs_eager'] = ref['median_s'] / entry['median_s']
    return summary


def _variant(rec: Dict[str, Any]) -> str:
    if rec.get('backend') == 'onnxruntime':
        return f"ort-{rec['ort_opt_level']}" + ('-int8' if rec.get('ort_precision') == 'int8' else '')
    return 'channels_last' if rec.get('memory_format') == 'channels_last' else 'pytorch'


def _line(rec: Dict[str, Any]) -> str:
    head = (f"{rec['part']:8s} {rec['mode']:5s} {rec['amp']:4s} bs={rec['batch_size']:<3d} "
            f"compile={'y' if rec['compile'] else 'n'}")
    if rec.get('threads') is not None or rec.get('backend', 'pytorch') != 'pytorch' \
            or rec.get('memory_format') not in (None, 'contiguous'):
        head += f" {_variant(rec):13s} threads={rec.get('threads')}"
    if rec['status'] != 'ok':
        return f"{head}  {rec['status'].upper()}: {rec.get('error', '')}"
    mem = f"  peak {rec['peak_mem_bytes'] / 1e9:6.2f} GB" if 'peak_mem_bytes' in rec else ''
    return (f"{head}  {rec['median_s'] * 1e3:9.2f} ms/it (p10 {rec['p10_s'] * 1e3:.2f}, p90 {rec['p90_s'] * 1e3:.2f})"
            f"  {rec['frames_per_s']:9.1f} frames/s  {rec['clips_per_s']:8.2f} clips/s  "
            f"{rec['s_per_clip']:.4f} s/clip  first {rec['first_call_s']:.1f} s{mem}")


def add_ratios(results: List[Dict[str, Any]]) -> None:
    """Add ``model_over_backbone`` (frames/s ratio) to each model record that has its backbone twin."""
    for rec in results:
        if rec['part'] != 'model' or rec['status'] != 'ok':
            continue
        for other in results:
            if (other['part'] == 'backbone' and other['status'] == 'ok'
                    and all(other.get(k) == rec.get(k) for k in ('mode', 'amp', 'batch_size', 'compile', 'backend',
                                                                 'memory_format', 'threads', 'round'))):
                rec['model_over_backbone'] = rec['frames_per_s'] / other['frames_per_s']


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the sweep, print one line per record, write the JSON if asked; return the report."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('benchmark: --device cuda asked for but torch.cuda.is_available() is False; '
                           'use --device cpu')
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
    report: Dict[str, Any] = dict(config=args.config, argv=list(sys.argv if argv is None else argv),
                                  env=environment(device), tf32=args.tf32, results=[])
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
            print(f"model/backbone frames/s  {rec['mode']} {rec['amp']} bs={rec['batch_size']} "
                  f"compile={'y' if rec['compile'] else 'n'}: {rec['model_over_backbone']:.3f}")
    if args.rounds > 1 or len(report['results']) > len(args.parts) * len(args.mode) * len(args.amp) * len(
            args.batch_size):
        report['summary'] = summarize_rounds(report['results'])
        for entry in report['summary']:
            speedup = f"  {entry['speedup_vs_eager']:.2f}x eager" if 'speedup_vs_eager' in entry else ''
            diff = (f"  max|diff| {entry['max_abs_diff']:.2g}, masks agree {100 * entry['mask_agreement']:.3f}%"
                    if 'max_abs_diff' in entry else '')
            print(f"summary {entry['part']:8s} {entry['mode']} {entry['amp']} bs={entry['batch_size']} "
                  f"{_variant(entry):13s} threads={entry['threads']}: {entry['s_per_clip']:.4f} s/clip "
                  f"(median of {entry['rounds']} rounds){speedup}{diff}")
    write_json(report, args.json)
    return report


def _run_variant(variants: Variants, var: Dict[str, Any], mode: str, amp: str, batch: int, threads: Optional[int],
                 frames: int, device: torch.device, args: argparse.Namespace) -> Dict[str, Any]:
    """One record of :func:`sweep`'s variant ``var``."""
    if var['backend'] == 'onnxruntime':
        return run_onnxruntime(variants, var['ort_opt_level'], var['ort_precision'], threads, batch, frames, device,
                               args)
    model = variants.pytorch(var['memory_format'])
    rec = run_one(model, var['part'], mode, amp, batch, frames, device, args)
    rec.update(backend='pytorch', memory_format=var['memory_format'], ort_opt_level=None, ort_precision=None)
    if var['memory_format'] != 'contiguous' and rec['status'] == 'ok' and var['part'] == 'model' \
            and mode == 'infer' and amp == 'none' and args.forward_mode == 'tensor':
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
