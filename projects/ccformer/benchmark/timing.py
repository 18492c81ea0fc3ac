"""Timing, memory and operation counts of a step, and the record of the machine they ran on.

:func:`time_steps` runs a step untimed (warm-up, the first call holding ``torch.compile``), then timed (CUDA events
on a GPU, ``time.perf_counter`` on a CPU); :func:`summarize` turns the times into medians, spreads and throughputs;
:func:`memory_phase` records the peak memory of a phase; :func:`barrier` lets several processes compile in parallel
and be timed one after another.
"""

import contextlib
import gc
import os
import platform
import resource
import statistics
import time
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import torch
from torch import nn

#: autocast dtypes by ``--amp`` name (``none``: fp32)
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'none': None}
#: weights cast instead of autocast (inference only): no per-operation casts
PURE_DTYPES = {'bf16-pure': torch.bfloat16}


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in ``bf16``/``fp16``; a null context for ``none`` and ``bf16-pure``."""
    dtype = AMP_DTYPES.get(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the device (CUDA only)."""
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


def time_steps(
    step: Callable[[], Any],
    iters: int,
    warmup: int,
    device: torch.device,
    before_timing: Optional[Callable[[], contextlib.AbstractContextManager]] = None,
) -> Dict[str, Any]:
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
        **extra,
        iters=n,
        first_call_s=timing['first_call_s'],
        warmup_s=timing['warmup_s'],
        median_s=median,
        p10_s=percentile(times, 10),
        p90_s=percentile(times, 90),
        mean_s=statistics.fmean(times),
        min_s=min(times),
        max_s=max(times),
        clips_per_s=batch / median,
        frames_per_s=batch * frames / median,
        wall_clips_per_s=batch * n / timing['wall_s'],
        wall_frames_per_s=batch * frames * n / timing['wall_s'],
        s_per_clip=median / batch,
    )


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
            stats.update(
                peak_mem_bytes=peak,
                peak_mem_gib=peak / 2**30,
                start_mem_bytes=start,
                peak_above_start_bytes=peak - start,
                peak_reserved_bytes=torch.cuda.max_memory_reserved(device),
            )
        else:
            # ru_maxrss is in KiB on Linux: the process-wide high-water mark, not per phase
            stats.update(max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def compile_kwargs(backend: str, mode: str) -> Dict[str, Any]:
    """``torch.compile`` arguments: ``mode`` only applies to inductor."""
    kwargs: Dict[str, Any] = dict(backend=backend)
    if backend == 'inductor':
        kwargs['mode'] = mode
    return kwargs


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


def environment(device: torch.device) -> Dict[str, Any]:
    """Versions and device, for the record."""
    env: Dict[str, Any] = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        host=platform.node(),
        device=str(device),
        cpu_threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
    )
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_mem_bytes=props.total_memory,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    for name in ('mmcv', 'mmengine', 'mmseg', 'mmdet', 'timm'):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001  (optional packages: record absence only)
            env[name] = None
    return env


__all__ = [
    'AMP_DTYPES',
    'PURE_DTYPES',
    'autocast',
    'synchronize',
    'barrier',
    'time_steps',
    'percentile',
    'summarize',
    'memory_phase',
    'compile_kwargs',
    'count_dispatched_ops',
    'environment',
]
