"""ONNX export of a CCFormer's tensor core and its check with ONNX Runtime against PyTorch.

The exported graph is ``CCFormer.forward(frames, None, mode='tensor', audio=audio)`` on the CPU: normalised frames
``frames (N, T, 3, H, W)`` and log-mel audio ``audio (N, T, 1, 96, 64)`` -> ``logits (N, T, K, H, W)``, with N
dynamic and T, H, W fixed at export. On the CPU the deformable attention runs mmcv's PyTorch path (``grid_sample``,
ONNX ``GridSample``, opset >= 16), with the level sizes as constants. The pre- and post-processing parameters
(``num_frames``, ``input_size``, ``mean``, ``std``, ``bgr_to_rgb``, ``num_classes``, ``threshold``, ``dataset_meta``)
are written into the file's metadata for :class:`~projects.ccformer.deployment.ORTSegmentor`.

Needs torch, onnx and the model stack (mmcv, mmseg); the file it writes needs only onnxruntime.
"""

import json
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..datasets.audio import LOG_OFFSET
from ..models.segmentors.ccformer import SILENT_LOGIT
from ..utils.atomic import atomic_path
from ..utils.outputs import check_finite_logits
from .ort_segmentor import AUDIO_EXAMPLE_SHAPE, INPUT_NAMES, META_KEY, META_VERSION, OUTPUT_NAME, ORTSegmentor

#: ONNX opset of the export: GridSample needs >= 16, LayerNormalization >= 17
DEFAULT_OPSET = 17


class TensorCore(nn.Module):
    """``model(frames, None, mode='tensor', audio=audio)`` as a module with two tensor inputs (what is exported).

    Shapes: frames ``(N, T, 3, H, W)``, audio ``(N, T, 1, 96, 64)`` -> logits ``(N, T, K, H, W)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.model(frames, None, mode='tensor', audio=audio)


def frame_resize(model: nn.Module, input_size: Tuple[int, int]) -> str:
    """How the config's test pipeline (``model.cfg``, as ``init_avs_model`` sets it) resizes frames, for
    :class:`ORTSegmentor`: ``'pil'`` for ``AVSSResize(mode='resize')`` (PIL bilinear, the official AVSS
    geometry), ``'opencv'`` when the pipeline does not resize (``inference_avs_model``'s ``img_size`` resize).

    Raises:
        ValueError: a resize the ONNX Runtime pre-processing does not reproduce, or one to another size.
    """
    cfg = getattr(model, 'cfg', None)
    pipeline = []
    if cfg is not None and 'test_dataloader' in cfg and 'pipeline' in cfg.test_dataloader.dataset:
        pipeline = cfg.test_dataloader.dataset.pipeline
    elif cfg is not None and 'test_pipeline' in cfg:
        pipeline = cfg.test_pipeline
    resizes = [t for t in pipeline if 'Resize' in t['type'] or 'Crop' in t['type']]
    if not resizes:
        return 'opencv'
    t = resizes[0]
    if len(resizes) == 1 and t['type'].split('.')[-1] == 'AVSSResize' and t.get('mode', 'resize') == 'resize':
        if tuple(input_size) != (t.get('size', 224),) * 2:
            raise ValueError(
                f'ONNX export: the test pipeline resizes frames to {t.get("size", 224)} x '
                f'{t.get("size", 224)} (AVSSResize); export with --shape {t.get("size", 224)} '
                f'{t.get("size", 224)}'
            )
        return 'pil'
    raise ValueError(
        f'ONNX export: the ONNX Runtime pre-processing does not reproduce the test pipeline\'s '
        f'{[r["type"] for r in resizes]}; only AVSSResize(mode="resize") or no resize'
    )


def export_metadata(
    model: nn.Module, num_frames: int, input_size: Tuple[int, int], opset: int, source: Optional[Dict[str, str]] = None
) -> dict:
    """The pre- and post-processing parameters :class:`ORTSegmentor` reads (``META_KEY`` of the file)."""
    pre = model.data_preprocessor
    head = model.decode_head
    meta = dict(
        version=META_VERSION,
        num_frames=int(num_frames),
        input_size=[int(v) for v in input_size],
        mean=[float(v) for v in pre.mean.flatten()],
        std=[float(v) for v in pre.std.flatten()],
        bgr_to_rgb=bool(pre.bgr_to_rgb),
        resize=frame_resize(model, input_size),
        num_classes=int(head.num_classes),
        threshold=float(getattr(head, 'threshold', 0.5)),
        align_corners=bool(getattr(model, 'align_corners', False)),
        opset=int(opset),
        torch=torch.__version__,
        dataset_meta=_jsonable(getattr(model, 'dataset_meta', None)),
    )
    meta.update(source or {})
    return meta


def _jsonable(value):
    """``dataset_meta`` (tuples, numpy arrays, nested) as JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_input_size(model: nn.Module, input_size: Tuple[int, int]) -> None:
    """The exported size must be one the PyTorch path runs unpadded: a multiple of the backbone's largest stride
    (32) and of the preprocessor's ``size_divisor``."""
    divisor = max(32, int(getattr(model.data_preprocessor, 'size_divisor', None) or 1))
    if len(input_size) != 2 or any(int(v) <= 0 or int(v) % divisor for v in input_size):
        raise ValueError(
            f'ONNX export: input size {tuple(input_size)} must be two positive multiples of {divisor} '
            f'(the backbone\'s stride 32 and the data preprocessor\'s size_divisor), e.g. --shape 224 224'
        )


def dummy_inputs(
    batch: int, num_frames: int, input_size: Tuple[int, int], seed: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random model inputs: frames ~ N(0, 1) ``(N, T, 3, H, W)``; audio ``(N, T, 1, 96, 64)`` in the range of
    VGGish log-mels (``log(mel + 0.01)``: about -4.6 to 3)."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randn(batch, num_frames, 3, *input_size, generator=gen)
    audio = torch.rand(batch, num_frames, *AUDIO_EXAMPLE_SHAPE, generator=gen) * 7.5 - 4.6
    return frames, audio


def export_onnx(
    model: nn.Module,
    out_file: str,
    num_frames: int,
    input_size: Tuple[int, int] = (224, 224),
    batch_size: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    source: Optional[Dict[str, str]] = None,
) -> dict:
    """Export ``model``'s tensor core to ``out_file`` (TorchScript-based exporter, constant folding on).

    Args:
        model: a CCFormer (e.g. from ``init_avs_model``); it is put in eval mode on the CPU and run eagerly
            (``compile_cfg`` is switched off for the export and restored).
        out_file: the ``.onnx`` file to write (its folder is created). It is written to a temporary file beside
            it and renamed into place once exported, given its metadata and checked, so a failed or interrupted
            export leaves an earlier file of that name as it was.
        num_frames: T. input_size: ``(H, W)``. batch_size: N of the example input.
        opset: ONNX opset (>= 16 for GridSample).
        dynamic_batch: N is a dynamic dimension of the graph.
        source: extra metadata strings (e.g. ``config``, ``checkpoint`` names).

    Returns:
        dict: the metadata written into the file.
    """
    import onnx

    if opset < 16:
        raise ValueError(f'ONNX export: opset {opset} has no GridSample (the deformable attention); use >= 16')
    check_input_size(model, input_size)
    frame_resize(model, input_size)  # refuse a pipeline the runtime cannot reproduce before the slow export
    model.eval().cpu()
    saved_compile = getattr(model, 'compile_cfg', None)
    if saved_compile is not None:
        model.compile_cfg = None
    core = TensorCore(model).eval()
    frames, audio = dummy_inputs(batch_size, num_frames, input_size)
    meta = export_metadata(model, num_frames, input_size, opset, source)
    try:
        with torch.no_grad(), atomic_path(out_file) as tmp:
            # eager call first: caches the head's shape constants (constants of the graph); a model whose logits
            # are NaN / inf (broken weights) is not exported
            check_finite_logits(core(frames, audio), (source or {}).get('checkpoint', 'ONNX export'))
            axes = {name: {0: 'batch'} for name in (*INPUT_NAMES, OUTPUT_NAME)} if dynamic_batch else None
            with warnings.catch_warnings():  # the models' shape checks become constants of the graph, as meant
                warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
                torch.onnx.export(
                    core,
                    (frames, audio),
                    tmp,
                    input_names=list(INPUT_NAMES),
                    output_names=[OUTPUT_NAME],
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            proto = onnx.load(tmp)
            del proto.metadata_props[:]
            proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
            onnx.save(proto, tmp)
            onnx.checker.check_model(tmp)
    finally:
        if saved_compile is not None:
            model.compile_cfg = saved_compile
    return meta


@torch.no_grad()
def compare_with_pytorch(model: nn.Module, segmentor: ORTSegmentor, frames: torch.Tensor, audio: torch.Tensor) -> dict:
    """Run the PyTorch model and the ONNX Runtime session on the same inputs.

    Returns:
        dict: ``max_abs_diff`` and ``max_rel_diff`` (over the largest logit, leaving out the ``-SILENT_LOGIT`` of
        frames that ``empty_when_silent`` empties) of the logits, ``mask_agreement`` (fraction of pixels whose K = 1
        mask ``logit > 0`` or K > 1 ``argmax`` agree), ``batch_size``.
    """
    ref = TensorCore(model.eval()).eval()(frames, audio).float().numpy()
    out = segmentor.forward(frames.numpy(), audio.numpy())
    if out.shape != ref.shape:
        raise RuntimeError(f'ONNX Runtime logits {out.shape} differ in shape from PyTorch {ref.shape}')
    diff = float(np.abs(out - ref).max())
    if ref.shape[2] == 1:
        agree = float(((out > 0) == (ref > 0)).mean())
    else:
        agree = float((out.argmax(2) == ref.argmax(2)).mean())
    return dict(
        max_abs_diff=diff,
        max_rel_diff=diff / max(float(np.abs(ref[np.abs(ref) < SILENT_LOGIT / 2]).max(initial=0.0)), 1e-12),
        mask_agreement=agree,
        batch_size=int(frames.shape[0]),
    )


def verify_onnx(
    model: nn.Module, onnx_file: str, batch_sizes: Sequence[int] = (1, 2), num_threads: Optional[int] = None
) -> Dict[str, dict]:
    """Load ``onnx_file`` with ONNX Runtime and compare it with ``model`` on random inputs of each batch size (two
    sizes check the dynamic batch); the last frame of the first clip hears digital silence, so a model's
    ``empty_when_silent`` is checked too. Returns :func:`compare_with_pytorch`'s dict per batch size."""
    segmentor = ORTSegmentor(onnx_file, num_threads=num_threads)
    results = {}
    for i, n in enumerate(batch_sizes):
        frames, audio = dummy_inputs(n, segmentor.num_frames, segmentor.input_size, seed=100 + i)
        audio[0, -1] = float(np.log(LOG_OFFSET))
        results[f'batch_{n}'] = compare_with_pytorch(model, segmentor, frames, audio)
    return results
