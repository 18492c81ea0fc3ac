"""ONNX Runtime segmentor: a CCFormer exported by ``tools/deployment/pytorch2onnx.py``, run with numpy, OpenCV and
onnxruntime only (no PyTorch, mmcv, mmengine or mmseg).

The ONNX file holds the model's tensor core (``CCFormer._forward``): normalised frames ``frames (N, T, 3, H, W)``
and log-mel audio ``audio (N, T, 1, 96, 64)`` -> ``logits (N, T, K, H, W)`` at the exported size ``(H, W)``, with a
dynamic N. What the PyTorch path does around it is done here in numpy, with the parameters the exporter wrote into
the file's metadata (key ``ccformer``, JSON), so no config is needed:

* pre-processing (the test pipeline and ``AVSDataPreprocessor``): frames resized to ``(H, W)`` (bilinear: OpenCV as
  ``inference_avs_model``'s ``img_size``, or PIL as ``AVSSResize`` for configs whose test pipeline has it), BGR ->
  RGB, ``(x - mean) / std``;
* post-processing (``CCFormer.postprocess_result`` and ``inference_avs_model``): logits resized bilinearly to the
  frame size, then ``sigmoid(logit) > threshold`` (K = 1; ``decode_head.threshold`` stored at export, 0.5 for files
  exported without it) or ``argmax`` over the K classes (the label map resized nearest).
"""

import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..datasets.audio import pad_examples_repeat
from ..utils.outputs import check_finite_logits

#: metadata key of the exported file and its layout version
META_KEY = 'ccformer'
META_VERSION = 1
INPUT_NAMES = ('frames', 'audio')
OUTPUT_NAME = 'logits'
AUDIO_EXAMPLE_SHAPE = (1, 96, 64)
#: ``graph_optimization_level`` names -> onnxruntime's ``GraphOptimizationLevel`` member names
OPT_LEVELS = {
    'disable': 'ORT_DISABLE_ALL',
    'basic': 'ORT_ENABLE_BASIC',
    'extended': 'ORT_ENABLE_EXTENDED',
    'all': 'ORT_ENABLE_ALL',
}


def _import_onnxruntime():
    try:
        import onnxruntime
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            'the ONNX Runtime backend needs onnxruntime: pip install -r '
            'requirements/deploy.txt (or pip install onnxruntime)'
        ) from err
    return onnxruntime


def session_options(num_threads: Optional[int] = None, graph_optimization_level: str = 'all'):
    """``onnxruntime.SessionOptions`` with ``num_threads`` intra-op threads (None: onnxruntime's default, one per
    core), one inter-op thread (the graph runs its nodes in sequence) and the given optimisation level."""
    ort = _import_onnxruntime()
    if graph_optimization_level not in OPT_LEVELS:
        raise ValueError(
            f'graph_optimization_level must be one of {sorted(OPT_LEVELS)}, got {graph_optimization_level!r}'
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[graph_optimization_level])
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f'num_threads must be positive, got {num_threads}')
        options.intra_op_num_threads = int(num_threads)
    return options


def parse_metadata(custom: Dict[str, str], source: str) -> dict:
    """The exporter's metadata from an ONNX file's ``metadata_props``, checked.

    Raises:
        ValueError: the file was not written by ``tools/deployment/pytorch2onnx.py`` or by a newer layout.
    """
    if META_KEY not in custom:
        raise ValueError(
            f'{source}: no "{META_KEY}" metadata: this ONNX file was not written by '
            'tools/deployment/pytorch2onnx.py; export the model with it'
        )
    try:
        meta = json.loads(custom[META_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(
            f'{source}: the "{META_KEY}" metadata is not valid JSON ({err}); re-export the model with '
            'tools/deployment/pytorch2onnx.py'
        ) from err
    if meta.get('version') != META_VERSION:
        raise ValueError(
            f'{source}: metadata layout version {meta.get("version")!r}, this code reads version '
            f'{META_VERSION}; re-export the model with this checkout\'s tools/deployment/pytorch2onnx.py'
        )
    missing = [
        k for k in ('num_frames', 'input_size', 'mean', 'std', 'bgr_to_rgb', 'num_classes', 'resize') if k not in meta
    ]
    if missing:
        raise ValueError(
            f'{source}: metadata lacks {missing}; re-export the model with tools/deployment/pytorch2onnx.py'
        )
    threshold = meta.setdefault('threshold', 0.5)  # files exported before the threshold was stored: the default
    if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(
            f'{source}: metadata threshold {threshold!r} is not a probability in (0, 1); re-export the '
            'model with tools/deployment/pytorch2onnx.py'
        )
    return meta


class ORTSegmentor:
    """A CCFormer ONNX file run with ONNX Runtime, with the pre- and post-processing of the PyTorch inference API.

    Pass it to ``projects.ccformer.apis.inference_avs_model`` / ``segment_video`` like a PyTorch model
    (``demo/video_demo.py --backend onnxruntime --onnx FILE``), or call :meth:`predict` directly (which needs neither
    PyTorch nor the OpenMMLab stack).

    Args:
        onnx_file (str): written by ``tools/deployment/pytorch2onnx.py``.
        num_threads (int, optional): intra-op threads (None: onnxruntime's default, one per core).
        graph_optimization_level (str): ``'disable'``, ``'basic'``, ``'extended'`` or ``'all'`` (default).
        providers (list, optional): onnxruntime execution providers (default: ``['CPUExecutionProvider']``).

    Attributes:
        num_frames (int): T. input_size (tuple): ``(H, W)`` the model runs at. num_classes (int): K.
        dataset_meta (dict | None): ``classes`` / ``palette`` of the checkpoint the file was exported from.
        backend (str): ``'onnxruntime'``.

    Like the inference API's ``TorchClipSegmentor`` (``projects/ccformer/apis``) it answers the clip-segmentor
    interface the API and the demo use: ``num_frames``, ``input_size``, ``dataset_meta``, :meth:`resolve_img_size`
    and :meth:`segment_clips`.
    """

    backend = 'onnxruntime'

    def __init__(
        self,
        onnx_file: str,
        num_threads: Optional[int] = None,
        graph_optimization_level: str = 'all',
        providers: Optional[Sequence[str]] = None,
    ) -> None:
        ort = _import_onnxruntime()
        if not osp.isfile(onnx_file):
            raise FileNotFoundError(
                f'ONNX file {onnx_file} does not exist; write one with '
                'tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out FILE'
            )
        try:
            self.session = ort.InferenceSession(
                onnx_file,
                sess_options=session_options(num_threads, graph_optimization_level),
                providers=list(providers or ['CPUExecutionProvider']),
            )
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f'{onnx_file}: ONNX Runtime cannot load this file ({type(err).__name__}: {err})') from err
        self.onnx_file = onnx_file
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, onnx_file)
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUT_NAMES or [o.name for o in self.session.get_outputs()] != [OUTPUT_NAME]:
            raise ValueError(
                f'{onnx_file}: inputs {names} / outputs {[o.name for o in self.session.get_outputs()]}, '
                f'expected {INPUT_NAMES} / ({OUTPUT_NAME!r},); re-export the model'
            )
        self.num_frames = int(self.meta['num_frames'])
        self.input_size = tuple(int(v) for v in self.meta['input_size'])
        self.num_classes = int(self.meta['num_classes'])
        self.dataset_meta = self.meta.get('dataset_meta')
        self._mean = np.asarray(self.meta['mean'], np.float32)
        self._std = np.asarray(self.meta['std'], np.float32)
        p = float(self.meta['threshold'])
        #: K = 1: foreground where ``logit > log(p / (1 - p))`` (``sigmoid(logit) > p``), as ``CCFormer``
        self.logit_threshold = math.log(p / (1.0 - p))

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}({self.onnx_file!r}, T={self.num_frames}, input_size={self.input_size}, '
            f'K={self.num_classes}, providers={self.session.get_providers()})'
        )

    # ------------------------------------------------------------------------------------------ tensors
    def forward(self, frames: np.ndarray, audio: np.ndarray, names: Optional[Sequence[str]] = None) -> np.ndarray:
        """The exported core: ``frames (N, T, 3, H, W)`` normalised float32, ``audio (N, T, 1, 96, 64)`` float32
        -> ``logits (N, T, K, H, W)`` float32. ``names``: one per clip, for the messages.

        Raises:
            NonFiniteOutputError: the file produced NaN / inf logits (naming it and the clips).
        """
        t, (h, w) = self.num_frames, self.input_size
        if frames.ndim != 5 or tuple(frames.shape[1:]) != (t, 3, h, w):
            raise ValueError(f'{self.onnx_file}: frames must be (N, T={t}, 3, {h}, {w}), got {tuple(frames.shape)}')
        if tuple(audio.shape) != (frames.shape[0], t) + AUDIO_EXAMPLE_SHAPE:
            raise ValueError(
                f'{self.onnx_file}: audio must be (N={frames.shape[0]}, T={t}, 1, 96, 64), got {tuple(audio.shape)}'
            )
        feeds = dict(frames=np.ascontiguousarray(frames, np.float32), audio=np.ascontiguousarray(audio, np.float32))
        logits = self.session.run([OUTPUT_NAME], feeds)[0]
        check_finite_logits(logits, self.onnx_file, names)
        return logits

    __call__ = forward

    def preprocess(self, clips: Sequence[Sequence[np.ndarray]], channel_order: str = 'rgb') -> np.ndarray:
        """Clips of T uint8 ``(h, w, 3)`` frames -> ``(N, T, 3, H, W)`` float32 normalised model input.

        Frames not at ``input_size`` are resized bilinearly as the config's test pipeline does (``meta['resize']``:
        OpenCV as ``inference_avs_model``'s ``img_size``, or PIL as ``AVSSResize``).
        """
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        h, w = self.input_size
        out = np.empty((len(clips), self.num_frames, 3, h, w), np.float32)
        for i, clip in enumerate(clips):
            if len(clip) != self.num_frames:
                raise ValueError(f'clip {i}: the model takes clips of T={self.num_frames} frames, got {len(clip)}')
            for j, img in enumerate(clip):
                img = np.asarray(img)
                if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                    raise ValueError(
                        f'clip {i}, frame {j}: frames must be (H, W, 3) uint8 arrays, got {img.shape} {img.dtype}'
                    )
                if img.shape[:2] != (h, w):
                    img = _resize(img, (w, h), self.meta['resize'])
                # the model takes RGB when its preprocessor converted BGR to RGB, else the loaded (BGR) order
                if (channel_order == 'bgr') == bool(self.meta['bgr_to_rgb']):
                    img = img[..., ::-1]
                out[i, j] = ((img.astype(np.float32) - self._mean) / self._std).transpose(2, 0, 1)
        return out

    def prepare_audio(self, audio: Sequence[np.ndarray]) -> np.ndarray:
        """Log-mel examples per clip, each ``(n, 96, 64)`` or ``(n, 1, 96, 64)`` -> ``(N, T, 1, 96, 64)`` float32
        (extra examples dropped, missing ones repeat the last: the official S4 padding). Non-finite values are
        refused."""
        out = []
        for i, examples in enumerate(audio):
            examples = np.asarray(examples, np.float32)
            if examples.ndim == 3:
                examples = examples[:, None]
            if examples.ndim != 4 or examples.shape[1:] != AUDIO_EXAMPLE_SHAPE:
                raise ValueError(
                    f'clip {i}: log-mel examples must be (n, 96, 64) or (n, 1, 96, 64), got '
                    f'{examples.shape} (a waveform: projects.ccformer.datasets.audio.'
                    'waveform_to_logmel(waveform, sample_rate) first)'
                )
            if not np.isfinite(examples).all():
                raise ValueError(f'clip {i}: the log-mel examples hold NaN or infinite values')
            out.append(pad_examples_repeat(examples, self.num_frames, f'clip {i}'))
        return np.stack(out)

    # ------------------------------------------------------------------------------------------ masks
    def postprocess(self, logits: np.ndarray, out_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """One clip's logits ``(T, K, H, W)`` -> ``(T, h, w)`` uint8 masks at ``out_shape`` (default ``(H, W)``):
        0/1 (``logit > logit_threshold``) for K = 1, class indices for K > 1."""
        out_h, out_w = out_shape or logits.shape[-2:]
        resize = tuple(logits.shape[-2:]) != (out_h, out_w)
        masks = np.empty((logits.shape[0], out_h, out_w), np.uint8)
        for t, frame in enumerate(logits):
            if frame.shape[0] == 1:
                x = cv2.resize(frame[0], (out_w, out_h), interpolation=cv2.INTER_LINEAR) if resize else frame[0]
                masks[t] = x > self.logit_threshold
            else:
                labels = frame.argmax(0).astype(np.uint8)
                masks[t] = cv2.resize(labels, (out_w, out_h), interpolation=cv2.INTER_NEAREST) if resize else labels
        return masks

    def predict(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        audio: Sequence[np.ndarray],
        channel_order: str = 'rgb',
        out_shapes: Optional[Sequence[Tuple[int, int]]] = None,
        return_logits: bool = False,
        names: Optional[Sequence[str]] = None,
    ) -> Union[List[np.ndarray], Tuple[List[np.ndarray], np.ndarray]]:
        """Segment a batch of clips.

        Args:
            clips: N clips of T uint8 ``(h, w, 3)`` frames (one size per clip).
            audio: N arrays of log-mel examples ``(n, [1,] 96, 64)``.
            channel_order (str): ``'rgb'`` or ``'bgr'`` (OpenCV) frames.
            out_shapes: ``(h, w)`` of each clip's masks (default: its frame size).
            return_logits (bool): also return the ``(N, T, K, H, W)`` logits at the model's input size.
            names: one name per clip, for the messages (default ``clip 0``, ...).

        Returns:
            list of N ``(T, h, w)`` uint8 masks (and the logits when ``return_logits``).

        Raises:
            ValueError: no clip, or as many audio inputs as clips missing. NonFiniteOutputError: NaN / inf logits.
        """
        if len(clips) != len(audio):
            raise ValueError(f'got {len(clips)} clips but {len(audio)} audio inputs')
        if not len(clips):
            raise ValueError(
                f'{type(self).__name__}.predict: no clip given (clips and audio are empty); pass a list of N >= 1 '
                f'clips of T={self.num_frames} frames and a list of N log-mel arrays'
            )
        if out_shapes is None:
            out_shapes = [np.asarray(clip[0]).shape[:2] for clip in clips]
        logits = self.forward(self.preprocess(clips, channel_order), self.prepare_audio(audio), names)
        masks = [self.postprocess(x, shape) for x, shape in zip(logits, out_shapes)]
        return (masks, logits) if return_logits else masks

    def segment_clips(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        audio: Sequence[np.ndarray],
        out_shapes: Sequence[Tuple[int, int]],
        names: Optional[Sequence[str]] = None,
    ) -> List[np.ndarray]:
        """The clip-segmentor interface of the inference API: N clips of T BGR uint8 frames (already at the size
        :meth:`resolve_img_size` chose, or any size: resized as the test pipeline does) and their ``(T, 1, 96, 64)``
        log-mel examples -> N ``(T, h, w)`` uint8 masks at ``out_shapes``."""
        return self.predict(clips, audio, channel_order='bgr', out_shapes=out_shapes, names=names)

    def resolve_img_size(self, img_size: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
        """``img_size`` for ``inference_avs_model``: None (:meth:`preprocess` resizes to ``input_size`` as the test
        pipeline does) or ``input_size``; another size is refused (the ONNX file runs at one size: export another
        with ``pytorch2onnx.py --shape H W``)."""
        if img_size is not None and tuple(img_size) != self.input_size:
            raise ValueError(
                f'{self.onnx_file} was exported for {self.input_size[0]} x {self.input_size[1]} '
                f'frames, not {img_size[0]} x {img_size[1]}: leave the size unset or export the model '
                f'again with tools/deployment/pytorch2onnx.py --shape {img_size[0]} {img_size[1]}'
            )
        return img_size


def _resize(img: np.ndarray, size_wh: Tuple[int, int], method: str) -> np.ndarray:
    """Bilinear resize of a uint8 ``(h, w, 3)`` frame: ``'opencv'`` (``cv2.INTER_LINEAR``) or ``'pil'``
    (``PIL.Image.BILINEAR``, antialiased when shrinking, as ``AVSSResize``)."""
    if method == 'pil':
        from PIL import Image

        return np.asarray(Image.fromarray(img).resize(size_wh, Image.BILINEAR))
    return cv2.resize(img, size_wh, interpolation=cv2.INTER_LINEAR)
