"""Speed and memory benchmark of an audio-visual segmentor and of its visual backbone alone (command line of
``projects.ccformer.benchmark``, where the sweep lives: ``BenchmarkOptions`` and ``run``).

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

import argparse
from typing import Any, Dict, Optional, Sequence

from projects.ccformer.benchmark import BenchmarkOptions, run
from projects.ccformer.benchmark import options as choices


def parse_args(argv: Optional[Sequence[str]] = None) -> BenchmarkOptions:
    """Parse the command line into checked :class:`BenchmarkOptions` (``--mode``, ``--amp``, ``--batch-size``,
    ``--threads`` and the variant flags take several values for a sweep)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', default=None, help='optional checkpoint (random weights without it)')
    parser.add_argument('--mode', nargs='+', choices=choices.MODES, default=['infer'])
    parser.add_argument('--batch-size', nargs='+', type=int, default=[2], help='clips per batch')
    parser.add_argument(
        '--amp',
        nargs='+',
        choices=list(choices.AMP_DTYPES) + list(choices.PURE_DTYPES),
        default=['bf16'],
        help='autocast dtype (none = fp32); bf16-pure: a copy of the model cast to bf16 and bf16 '
        'inputs, no autocast (inference only; the fp32 model stays on the device, so use '
        'peak_alone_est_bytes for its memory)',
    )
    parser.add_argument('--compile', action='store_true', help='torch.compile the timed modules')
    parser.add_argument('--compile-mode', default='reduce-overhead', choices=choices.COMPILE_MODES)
    parser.add_argument('--compile-backend', default='inductor', help='torch.compile backend (tests use aot_eager)')
    parser.add_argument('--frames', type=int, default=None, help='frames per clip (default: 5, or cfg num_frames)')
    parser.add_argument('--size', type=int, default=224, help='square input size H = W')
    parser.add_argument('--iters', type=int, default=50, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations (first includes compile)')
    parser.add_argument('--device', default=None, help='cuda or cpu (default: cuda when available)')
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
    parser.add_argument('--parts', nargs='+', choices=choices.PARTS, default=list(choices.PARTS), help='what to time')
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
        choices=choices.BACKENDS,
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
        choices=choices.ORT_OPT_LEVELS,
        default=['all'],
        help='ONNX Runtime graph optimisation levels to time',
    )
    parser.add_argument(
        '--ort-precision',
        nargs='+',
        choices=choices.ORT_PRECISIONS,
        default=['fp32'],
        help='int8: MatMul/Gemm weights quantised (dynamic quantisation; outputs change)',
    )
    parser.add_argument(
        '--memory-format',
        nargs='+',
        choices=choices.MEMORY_FORMATS,
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
    args = vars(parser.parse_args(argv))
    if args['device'] is None:
        del args['device']  # BenchmarkOptions' default: cuda when available
    try:
        return BenchmarkOptions(**args, argv=None if argv is None else list(argv)).check()
    except ValueError as err:
        parser.error(str(err))


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the sweep, print one line per record, write the JSON if asked; return the report."""
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
