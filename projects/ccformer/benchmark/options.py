"""The settings of one benchmark sweep (``tools/analysis_tools/benchmark.py``'s flags, checked once)."""

import dataclasses
from typing import List, Optional, Sequence

import torch

from .timing import AMP_DTYPES, PURE_DTYPES

MODES = ('infer', 'train')
PARTS = ('model', 'backbone')
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
BACKENDS = ('pytorch', 'onnxruntime')
ORT_OPT_LEVELS = ('disable', 'basic', 'extended', 'all')
ORT_PRECISIONS = ('fp32', 'int8')
MEMORY_FORMATS = ('contiguous', 'channels_last')


def _default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


@dataclasses.dataclass
class BenchmarkOptions:
    """What one sweep times; every list-valued field is swept (see ``tools/analysis_tools/benchmark.py``).

    Attributes:
        config: model config file. checkpoint: optional weights (random weights without).
        mode: ``'infer'`` / ``'train'``. batch_size: clips per batch. amp: ``'bf16'``, ``'fp16'``, ``'none'``
            (fp32) or ``'bf16-pure'`` (a bf16 copy of the model, inference only).
        compile, compile_mode, compile_backend: ``torch.compile`` of the timed modules.
        frames: frames per clip (None: the config's ``num_frames``, else 5). size: square input size.
        iters / warmup: timed / untimed iterations (the first untimed one includes compiling).
        device: ``'cuda'`` or ``'cpu'``. forward_mode: ``'tensor'`` (logits) or ``'predict'`` (masks).
        gt_valid: ``'all'`` or ``'first'`` (S4 training: frame 1 labelled). parts: ``'model'`` / ``'backbone'``.
        fused_adamw: ``AdamW(fused=True)`` on CUDA. count_ops: count dispatched ATen operations (infer).
        tf32: allow TF32 in fp32 runs. threads: intra-op CPU threads to sweep (None: as set).
        backend: ``'pytorch'`` and / or ``'onnxruntime'`` (fp32 CPU inference of the model). onnx: an exported
            file of the same weights (default: exported in the process). ort_opt_level / ort_precision: ONNX
            Runtime graph optimisation levels and ``'fp32'`` / ``'int8'`` (dynamically quantised weights).
        memory_format: ``'contiguous'`` / ``'channels_last'`` (eager PyTorch).
        rounds: repeat the sweep, interleaving the variants, and summarise medians over the rounds.
        seed: of the random inputs. json: where to write the report (rewritten after each record).
        barrier / barrier_count / barrier_timeout: compile in parallel with other processes, then time one
            after another (:func:`~.timing.barrier`).
        cfg_options: ``KEY=VALUE`` overrides of the config. argv: the command line, for the record.
    """

    config: str
    checkpoint: Optional[str] = None
    mode: Sequence[str] = ('infer',)
    batch_size: Sequence[int] = (2,)
    amp: Sequence[str] = ('bf16',)
    compile: bool = False
    compile_mode: str = 'reduce-overhead'
    compile_backend: str = 'inductor'
    frames: Optional[int] = None
    size: int = 224
    iters: int = 50
    warmup: int = 10
    device: str = dataclasses.field(default_factory=_default_device)
    forward_mode: str = 'tensor'
    gt_valid: str = 'all'
    parts: Sequence[str] = PARTS
    fused_adamw: bool = False
    count_ops: bool = False
    tf32: bool = False
    threads: Optional[Sequence[int]] = None
    backend: Sequence[str] = ('pytorch',)
    onnx: Optional[str] = None
    ort_opt_level: Sequence[str] = ('all',)
    ort_precision: Sequence[str] = ('fp32',)
    memory_format: Sequence[str] = ('contiguous',)
    rounds: int = 1
    seed: int = 0
    json: Optional[str] = None
    barrier: Optional[str] = None
    barrier_count: int = 1
    barrier_timeout: float = 900.0
    cfg_options: Sequence[str] = ()
    argv: Optional[List[str]] = None

    def check(self) -> 'BenchmarkOptions':
        """Refuse settings that cannot be timed together; returns ``self``.

        Raises:
            ValueError: naming the option(s) and what to change.
        """
        choices = dict(
            mode=MODES,
            amp=tuple(AMP_DTYPES) + tuple(PURE_DTYPES),
            parts=PARTS,
            backend=BACKENDS,
            ort_opt_level=ORT_OPT_LEVELS,
            ort_precision=ORT_PRECISIONS,
            memory_format=MEMORY_FORMATS,
        )
        for name, allowed in choices.items():
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad or not getattr(self, name):
                raise ValueError(f'--{name.replace("_", "-")} {bad or "(empty)"}: choose from {list(allowed)}')
        if self.iters < 1 or self.warmup < 1:
            raise ValueError('--iters and --warmup must be at least 1 (the first call is never timed)')
        if any(b < 1 for b in self.batch_size):
            raise ValueError('--batch-size must be positive')
        records = len(self.mode) * len(self.amp) * len(self.batch_size) * len(self.parts)
        if self.barrier and records != 1:
            raise ValueError(
                '--barrier needs exactly one record per process (one --mode, --amp, --batch-size, --parts)'
            )
        if self.rounds < 1 or any(t < 1 for t in self.threads or []):
            raise ValueError('--rounds and --threads must be positive')
        if 'onnxruntime' in self.backend and (
            self.device != 'cpu'
            or 'infer' not in self.mode
            or 'none' not in self.amp
            or 'model' not in self.parts
            or self.compile
            or self.forward_mode != 'tensor'
        ):
            raise ValueError(
                '--backend onnxruntime times fp32 CPU inference of the whole model: it needs --device cpu, '
                '--mode infer, --amp none, --parts model and --forward-mode tensor, without --compile'
            )
        if 'channels_last' in self.memory_format and (self.compile or self.barrier):
            raise ValueError('--memory-format channels_last is an eager variant: not with --compile / --barrier')
        return self
