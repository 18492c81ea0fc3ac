"""Inference API: build a CCFormer from config + checkpoint and segment clips or whole video files.

* :func:`init_avs_model` - like ``mmseg.apis.init_model`` (no pretrained downloads, ``dataset_meta`` from the
  checkpoint, eval mode on the requested device, ``num_frames`` from the config).
* :func:`inference_avs_model` - one or more T-frame clips given in memory (frames as arrays or paths, audio as a
  waveform, log-mel examples or a file) -> per-frame masks ``(T, H, W)``.
* :func:`segment_video` - a whole video file cut into T-frame windows and segmented window by window
  (:class:`VideoSegmentation`: memory stays flat with the video's length).

Every model is used through one clip-segmentor interface (:func:`as_clip_segmentor`): ``num_frames`` (T),
``input_size``, ``dataset_meta``, ``num_classes``, ``resolve_img_size(img_size)`` and
``segment_clips(clips, audio, out_shapes)``. A PyTorch segmentor with a ``cfg`` (``init_avs_model``,
``mmseg.apis.init_model``) is wrapped in :class:`TorchClipSegmentor`; ``deployment.ORTSegmentor`` (ONNX Runtime)
implements it itself.

Video decoding / encoding (PyAV) lives in :mod:`projects.ccformer.datasets.video`.
"""

from __future__ import annotations

import contextlib
import math
import os.path as osp
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from ..datasets.video import (
    frame_audio_examples,
    frame_audio_samples,
    iter_video_frames,
    pad_with_silence,
    read_video_audio_pcm,
    video_info,
    video_logmel_examples,
    window_starts,
)
from ..utils.config import (
    config_input_size,
    config_num_frames,
    config_test_pipeline,
    pipeline_input_size,
    strip_pretrained,
)
from ..utils.outputs import check_finite_logits

if TYPE_CHECKING:  # mmseg is imported where a PyTorch model is built: the ONNX Runtime backend runs without it
    from mmseg.structures import SegDataSample

FrameType = Union[str, np.ndarray]
# (waveform, sample_rate) | log-mel examples (n, 96, 64) or (n, 1, 96, 64) | path to .wav / .pkl / video file
AudioType = Union[str, np.ndarray, Tuple[np.ndarray, int]]

LOADER_TYPES = ('LoadAVSFrames', 'LoadAVSMasks', 'LoadAVSAudio', 'LoadAnnotations', 'LoadImageFromFile')
#: a 2-D waveform axis this long or shorter is taken for the channels axis
MAX_AUDIO_CHANNELS = 8


# ------------------------------------------------------------------------------------------------ model
def init_avs_model(
    config: Union[str, Path, Config],
    checkpoint: Optional[str] = None,
    device: str = 'cpu',
    cfg_options: Optional[dict] = None,
    dtype: Union[str, torch.dtype, None] = None,
    strict: bool = True,
) -> torch.nn.Module:
    """Build a CCFormer from a config file and (optionally) load a checkpoint.

    Args:
        config: config path or :class:`Config`.
        checkpoint (str, optional): checkpoint path/URL. With a checkpoint every pretrained-weight reference
            is switched off (:func:`~projects.ccformer.utils.strip_pretrained`; frozen modules keep theirs), so no
            pretrained file is needed. Without one the weights are random (useful for tests only).
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        cfg_options (dict, optional): overrides merged into the config, e.g.
            ``{'model.compile_cfg': dict(mode='reduce-overhead')}`` to run the model through ``torch.compile``.
        dtype (str | torch.dtype, optional): cast the weights, e.g. ``'bfloat16'`` (bf16 inference without
            autocast: fewer operations per forward than autocast, masks within bf16 rounding of float32). Inputs
            are cast by the model and the returned logits are float32. Default None (keep float32).
        strict (bool): refuse a checkpoint whose keys or shapes do not fit the model (``CheckpointMismatchError``
            naming some keys and the config); only frozen modules with their own ``Pretrained`` file (VGGish) may
            be absent. False loads the matching part with a warning. The file itself is always read without
            executing code (``projects/ccformer/engine/safe_checkpoint.py``; ``trust_checkpoint(path)`` opts a
            trusted legacy file in to full unpickling).

    Returns:
        The model in eval mode with ``model.cfg``, ``model.dataset_meta`` and ``model.num_frames`` (the clip length
        T, :func:`~projects.ccformer.utils.config_num_frames`) set.
    """
    if isinstance(config, (str, Path)):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'config file {config} does not exist')
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a filename or Config object, got {type(config)}')
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401  (registers the modules even without custom_imports)

    if checkpoint is not None:
        strip_pretrained(config.model, keep_frozen=True)
    init_default_scope(config.get('default_scope', 'mmseg'))
    model = MODELS.build(config.model)
    model.dataset_meta = None
    if checkpoint is not None:
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'checkpoint {checkpoint} does not exist; train one with tools/train.py '
                f'or pass the path of a downloaded checkpoint'
            )
        from projects.ccformer.engine.safe_checkpoint import load_model_checkpoint

        ckpt = load_model_checkpoint(
            model, checkpoint, config=str(config.filename or 'the given config'), strict=strict
        )
        model.dataset_meta = ckpt.get('meta', {}).get('dataset_meta')
    if model.dataset_meta is None:
        dataset_cfg = config.get('test_dataloader', {}).get('dataset', {})
        metainfo = dataset_cfg.get('metainfo')
        if metainfo is None:
            from mmseg.registry import DATASETS

            cls = DATASETS.get(dataset_cfg.get('type', '')) if dataset_cfg else None
            metainfo = getattr(cls, 'METAINFO', None)
        model.dataset_meta = dict(metainfo) if metainfo else None
    model.cfg = config
    model.num_frames = config_num_frames(config, str(config.filename or 'the given config'))
    model.checkpoint_file = checkpoint
    model.to(device)
    if dtype is not None:
        model.to(_floating_dtype(dtype))
        if getattr(model, 'data_preprocessor', None) is not None:
            model.data_preprocessor.float()  # exact mean/std (bf16 would round 123.675 to 123.5); the model casts
    model.eval()
    return model


def _floating_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """``'bfloat16'`` / ``'bf16'`` / ``torch.bfloat16`` ... -> a floating torch dtype (clear error otherwise)."""
    names = {'bf16': 'bfloat16', 'fp16': 'float16', 'half': 'float16', 'fp32': 'float32', 'float': 'float32'}
    if isinstance(dtype, str):
        dtype = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f'init_avs_model: dtype must be a floating dtype such as "bfloat16" or "float32", got {dtype!r}'
        )
    return dtype


# ------------------------------------------------------------------------------------------------ segmentors
class TorchClipSegmentor:
    """The clip-segmentor interface over a PyTorch segmentor built from a config.

    The config's test pipeline runs without its file loaders (:data:`LOADER_TYPES`) on clips given in memory, then
    ``model.test_step``; the masks are resized to the frames' size.

    Args:
        model: a CCFormer with ``cfg`` (``init_avs_model``, ``mmseg.apis.init_model``).

    Attributes:
        num_frames (int): T: ``model.num_frames`` (set by ``init_avs_model``), else the config's
            (:func:`~projects.ccformer.utils.config_num_frames`).
        input_size (tuple | None): ``(H, W)`` the config runs the model at
            (:func:`~projects.ccformer.utils.config_input_size`).
        dataset_meta (dict | None), num_classes (int): of the model.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        cfg = getattr(model, 'cfg', None)
        if cfg is None:
            raise ValueError(
                f'{type(model).__name__} has no cfg: build the model with projects.ccformer.apis.init_avs_model '
                '(or mmseg.apis.init_model), which keeps its config'
            )
        self.model = model
        self.source = str(getattr(model, 'checkpoint_file', None) or cfg.filename or 'the model')
        self.num_frames = int(getattr(model, 'num_frames', None) or config_num_frames(cfg, str(cfg.filename)))
        self.input_size = config_input_size(cfg)
        self.pipeline_resizes = pipeline_input_size(cfg) is not None
        self.dataset_meta = getattr(model, 'dataset_meta', None)
        self.num_classes = int(model.decode_head.num_classes)
        self.logit_threshold = float(getattr(model, 'logit_threshold', 0.0))
        pipeline = config_test_pipeline(cfg)
        if not pipeline:
            raise ValueError(
                f'{cfg.filename}: the config has neither test_dataloader.dataset.pipeline nor test_pipeline'
            )
        self.pipeline = Compose([t for t in pipeline if t['type'].split('.')[-1] not in LOADER_TYPES])

    def resolve_img_size(self, img_size: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
        """The size frames are resized to before the test pipeline: ``img_size`` if given; else None when the
        pipeline resizes them itself, else the config's :attr:`input_size` (None: frames as they come)."""
        if img_size is not None:
            return tuple(img_size)
        return None if self.pipeline_resizes else self.input_size

    def _results(self, imgs: List[np.ndarray], audio: np.ndarray, name: str, frame_paths=None) -> dict:
        """The loaders' output for one clip of BGR frames and ``(T, 1, 96, 64)`` examples (docs/design.md)."""
        t = self.num_frames
        frame_paths = list(frame_paths) if frame_paths is not None else [None] * t
        return dict(
            imgs=imgs,
            img=imgs[0],
            audio=audio.astype(np.float32),
            img_shape=imgs[0].shape[:2],
            ori_shape=imgs[0].shape[:2],
            video_id=name,
            category='',
            split='test',
            frame_paths=frame_paths,
            img_path=frame_paths[0],
            mask_paths=[None] * t,
            audio_path=None,
            audio_valid=[1] * t,
            frame_valid=[1] * t,
            gt_valid=[0] * t,
            num_frames=t,
            seg_fields=[],
            reduce_zero_label=False,
        )

    @contextlib.contextmanager
    def _captured_logits(self) -> Iterator[List[torch.Tensor]]:
        """Collect the ``(N, T, K, H, W)`` logits ``model.test_step`` hands to ``postprocess_result``."""
        model, captured = self.model, []
        postprocess = model.postprocess_result

        def capture(seg_logits, data_samples=None):
            captured.append(seg_logits)
            return postprocess(seg_logits, data_samples)

        model.postprocess_result = capture
        try:
            yield captured
        finally:
            del model.postprocess_result

    @torch.no_grad()
    def data_samples(
        self, clips: Sequence[List[np.ndarray]], audio: Sequence[np.ndarray], names: Sequence[str], frame_paths=None
    ) -> List[SegDataSample]:
        """``SegDataSample`` per clip (``pred_sem_seg`` at the pipeline's output size, ``seg_logits`` for K = 1).

        Raises:
            NonFiniteOutputError: the model's logits hold NaN / inf (naming the checkpoint and the clips).
        """
        frame_paths = frame_paths or [None] * len(clips)
        data = [self.pipeline(self._results(c, a, n, p)) for c, a, n, p in zip(clips, audio, names, frame_paths)]
        with self._captured_logits() as logits:
            samples = self.model.test_step(pseudo_collate(data))
        for x in logits:
            check_finite_logits(x, self.source, list(names))
        return samples

    def segment_clips(
        self,
        clips: Sequence[List[np.ndarray]],
        audio: Sequence[np.ndarray],
        out_shapes: Sequence[Tuple[int, int]],
        names: Optional[Sequence[str]] = None,
    ) -> List[np.ndarray]:
        """N clips of T BGR uint8 frames and their ``(T, 1, 96, 64)`` examples -> N ``(T, h, w)`` uint8 masks at
        ``out_shapes`` (0/1 for K = 1, class indices otherwise)."""
        names = list(names or [f'clip_{i}' for i in range(len(clips))])
        samples = self.data_samples(clips, audio, names)
        return [_resize_prediction(s, shape, self.logit_threshold) for s, shape in zip(samples, out_shapes)]


def as_clip_segmentor(model):
    """The clip-segmentor interface of ``model``: the model itself when it has one (``ORTSegmentor``), else
    :class:`TorchClipSegmentor` around it."""
    if isinstance(model, TorchClipSegmentor) or callable(getattr(model, 'segment_clips', None)):
        return model
    return TorchClipSegmentor(model)


def get_num_frames(model) -> int:
    """The clip length T the model takes (asked of the model: :func:`as_clip_segmentor`)."""
    return as_clip_segmentor(model).num_frames


# ------------------------------------------------------------------------------------------------ inputs
def _load_frame(frame: FrameType, channel_order: str) -> np.ndarray:
    """One frame as a BGR uint8 array (mmcv convention, what the pipeline expects)."""
    if isinstance(frame, (str, Path)):
        img = cv2.imread(str(frame), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'cannot read frame image {frame}')
        return img
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'a frame must be an (H, W, 3) array, got shape {img.shape}')
    if img.dtype != np.uint8:
        raise ValueError(f'frames must be uint8 (0..255), got {img.dtype}')
    return img[..., ::-1].copy() if channel_order == 'rgb' else img


def waveform_array(waveform: np.ndarray, name: str = 'audio waveform') -> np.ndarray:
    """A waveform given as an array -> float64 ``[samples]`` or ``[samples, channels]`` in [-1, 1].

    * integer PCM is scaled by its dtype: int16 / 32768, int32 / 2**31, int8 / 128, uint8 ``(x - 128) / 128``
      (unsigned 8-bit, as in wav files), ...; floats are taken as they are (in [-1, 1]);
    * a 2-D array may be ``(samples, channels)`` or ``(channels, samples)``: the axis of at most
      :data:`MAX_AUDIO_CHANNELS` entries is the channels axis when the other is longer.

    Raises:
        ValueError: a shape that is neither (both axes short or both long, 3-D or more, empty), or a dtype that is
            no audio (bool, complex, object), naming the shape / dtype.
    """
    arr = np.asarray(waveform)
    if arr.dtype.kind not in 'iuf':
        raise ValueError(f'{name}: audio samples must be integers (PCM) or floats, got dtype {arr.dtype}')
    if arr.dtype.kind in 'iu':
        info = np.iinfo(arr.dtype)
        mid = (int(info.max) + 1) // 2 if arr.dtype.kind == 'u' else 0
        arr = (arr.astype(np.float64) - mid) / float(int(info.max) + 1 - mid)
    else:
        arr = arr.astype(np.float64)
    if arr.ndim == 1 and arr.size:
        return arr
    if arr.ndim == 2 and arr.size:
        rows, cols = arr.shape
        if cols <= MAX_AUDIO_CHANNELS < rows:
            return arr  # (samples, channels)
        if rows <= MAX_AUDIO_CHANNELS < cols:
            return arr.T  # (channels, samples)
    raise ValueError(
        f'{name}: a waveform of shape {tuple(np.shape(waveform))} is ambiguous or empty: pass [samples], '
        f'(samples, channels) or (channels, samples) with at most {MAX_AUDIO_CHANNELS} channels and more samples '
        'than channels'
    )


def audio_to_examples(audio: AudioType, num_frames: int) -> np.ndarray:
    """Any accepted audio input -> ``(T, 1, 96, 64)`` float32 log-mel examples (official S4 padding).

    Args:
        audio: ``(waveform, sample_rate)`` with the waveform as :func:`waveform_array` takes it (float in [-1, 1]
            or integer PCM, ``[samples]``, ``(samples, channels)`` or ``(channels, samples)``); log-mel examples
            ``(n, 96, 64)`` / ``(n, 1, 96, 64)``; or a path to a ``.wav``, an official ``.pkl`` or a video/audio file
            decoded with PyAV.
        num_frames: T. Extra examples are dropped. A video file whose audio track is shorter than T examples is
            padded with silence (reported); for ``.wav`` / ``.pkl`` / arrays missing examples repeat the last (the
            official ``.pkl`` padding).

    Raises:
        ValueError: NaN / inf in the audio (naming the file and where), or a wrong shape.
    """
    from projects.ccformer.datasets.audio import (
        check_finite_audio,
        load_logmel_pkl,
        pad_examples_repeat,
        wav_to_logmel,
        waveform_to_logmel,
    )

    name = 'audio'
    if isinstance(audio, (str, Path)):
        name = str(audio)
        if not osp.isfile(name):
            raise FileNotFoundError(f'audio file {name} does not exist')
        ext = osp.splitext(name)[1].lower()
        if ext == '.pkl':
            examples = load_logmel_pkl(name)
        elif ext == '.wav':
            examples = wav_to_logmel(name)
        else:
            examples = video_logmel_examples(name, num_frames)
    elif isinstance(audio, tuple):
        if len(audio) != 2:
            raise ValueError('audio given as a tuple must be (waveform, sample_rate)')
        waveform = waveform_array(audio[0])
        check_finite_audio(waveform, 'audio waveform', int(audio[1]))
        examples = waveform_to_logmel(waveform, int(audio[1]))
    else:
        examples = np.asarray(audio, dtype=np.float32)
        if examples.ndim == 1 or (examples.ndim == 2 and examples.shape[-1] != 64):
            raise ValueError(
                f'audio array of shape {examples.shape} looks like a waveform: pass it as (waveform, sample_rate)'
            )
    examples = np.asarray(examples, dtype=np.float32)
    if examples.ndim == 3:
        examples = examples[:, None]
    if examples.ndim != 4 or examples.shape[1:] != (1, 96, 64):
        raise ValueError(f'{name}: log-mel examples must be (n, 96, 64) or (n, 1, 96, 64), got {examples.shape}')
    check_finite_audio(examples, name)
    return pad_examples_repeat(examples, num_frames, name)


def _load_clip(
    frames: Sequence[FrameType], num_frames: int, channel_order: str, img_size: Optional[Tuple[int, int]], name: str
) -> Tuple[List[np.ndarray], Tuple[int, int]]:
    """A clip's frames as BGR arrays (resized to ``img_size`` when given) and the frames' own ``(h, w)``."""
    if len(frames) != num_frames:
        raise ValueError(f'{name}: the model takes clips of T={num_frames} frames, got {len(frames)}')
    imgs = [_load_frame(f, channel_order) for f in frames]
    shape = imgs[0].shape[:2]
    if any(img.shape[:2] != shape for img in imgs):
        raise ValueError(f'{name}: all frames of a clip must have the same size')
    if img_size is not None and tuple(img_size) != tuple(shape):
        imgs = [cv2.resize(img, (img_size[1], img_size[0]), interpolation=cv2.INTER_LINEAR) for img in imgs]
    return imgs, shape


def _resize_prediction(sample: SegDataSample, out_shape: Tuple[int, int], logit_threshold: float = 0.0) -> np.ndarray:
    """``(T, H, W)`` uint8 masks at ``out_shape``: bilinear logits ``> logit_threshold`` (binary; the segmentor's
    ``logit_threshold``, from ``decode_head.threshold``) or nearest labels (semantic)."""
    pred = sample.pred_sem_seg.data
    if tuple(pred.shape[-2:]) == tuple(out_shape):
        return pred.cpu().numpy().astype(np.uint8)
    if 'seg_logits' in sample and sample.seg_logits.data.shape[0] == pred.shape[0]:
        logits = sample.seg_logits.data.float()[:, None]
        logits = torch.nn.functional.interpolate(logits, size=out_shape, mode='bilinear', align_corners=False)
        return (logits[:, 0] > logit_threshold).cpu().numpy().astype(np.uint8)
    pred = torch.nn.functional.interpolate(pred[:, None].float(), size=out_shape, mode='nearest')
    return pred[:, 0].cpu().numpy().astype(np.uint8)


def _check_img_size(img_size: Optional[Tuple[int, int]]) -> None:
    if img_size is not None and (len(img_size) != 2 or min(int(v) for v in img_size) <= 0):
        raise ValueError(f'img_size must be two positive integers (h, w), got {tuple(img_size)}')


@torch.no_grad()
def inference_avs_model(
    model,
    frames: Union[Sequence[FrameType], Sequence[Sequence[FrameType]]],
    audio: Union[AudioType, Sequence[AudioType]],
    channel_order: str = 'rgb',
    img_size: Optional[Tuple[int, int]] = None,
    return_datasample: bool = False,
) -> Union[np.ndarray, List[np.ndarray], SegDataSample, List[SegDataSample]]:
    """Segment one clip (or a batch of clips) given in memory.

    Args:
        model: from :func:`init_avs_model` (or ``mmseg.apis.init_model``), or a ``deployment.ORTSegmentor``.
        frames: T frames, each an ``(H, W, 3)`` uint8 array or an image path; or a list of such clips.
        audio: the clip's audio (see :func:`audio_to_examples`); a list (one per clip) for a batch.
        channel_order (str): ``'rgb'`` (PIL / PyAV / imageio arrays) or ``'bgr'`` (OpenCV arrays). Paths are
            always read correctly.
        img_size (tuple, optional): ``(h, w)``: resize the frames (bilinear, as the official preprocessing) before
            the test pipeline; masks are resized back to the frame size. None: the size the config runs the model
            at (its test pipeline's resize, else ``config_input_size``), or the frames as they are when the config
            gives none.
        return_datasample (bool): return the ``SegDataSample`` (``pred_sem_seg`` (T, H', W'), ``seg_logits``)
            instead of the masks (PyTorch models).

    Returns:
        ``(T, H, W)`` uint8 masks (0/1 for S4/MS3, class indices for AVSS) at the input frame size; a list for a
        batch.

    Raises:
        NonFiniteOutputError: the model produced NaN / inf logits (broken weights), naming the model file.
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    _check_img_size(img_size)
    batched = len(frames) > 0 and isinstance(frames[0], (list, tuple))
    clips = list(frames) if batched else [frames]
    audios = list(audio) if batched else [audio]
    if len(audios) != len(clips):
        raise ValueError(f'got {len(clips)} clips but {len(audios)} audio inputs')
    if not clips:
        raise ValueError('inference_avs_model: no clip given')
    segmentor = as_clip_segmentor(model)
    num_frames = segmentor.num_frames
    size = segmentor.resolve_img_size(img_size)
    names = [f'clip_{i}' for i in range(len(clips))]
    loaded = [_load_clip(c, num_frames, channel_order, size, n) for c, n in zip(clips, names)]
    examples = [audio_to_examples(a, num_frames) for a in audios]
    if return_datasample:
        if not callable(getattr(segmentor, 'data_samples', None)):
            raise ValueError(
                'return_datasample needs a PyTorch model; ORTSegmentor.predict(..., return_logits=True) returns '
                'the logits'
            )
        paths = [[str(f) if isinstance(f, (str, Path)) else None for f in c] for c in clips]
        samples = segmentor.data_samples([imgs for imgs, _ in loaded], examples, names, paths)
        return samples if batched else samples[0]
    masks = segmentor.segment_clips([imgs for imgs, _ in loaded], examples, [shape for _, shape in loaded])
    return masks if batched else masks[0]


# ------------------------------------------------------------------------------------------------ whole videos
class SegmentedFrame(NamedTuple):
    """One sampled frame of a video and its mask (what :class:`VideoSegmentation` yields)."""

    index: int  #: k, from 0, among the sampled frames
    timestamp: float  #: time of the frame (s)
    frame: np.ndarray  #: RGB uint8 (H, W, 3)
    mask: np.ndarray  #: uint8 (H, W): 0/1 for binary models, class indices otherwise


class VideoSegmentation:
    """A video segmented window by window: iterate to decode, segment and hand out each sampled frame in order.

    Memory holds one batch of windows (``batch_size`` x T frames, their masks) and the 16 kHz soundtrack as int16
    (32 kB a second), whatever the video's length. Made by :func:`segment_video`; the checks and the audio decoding
    run when it is made, the frames are decoded while it is iterated (once: a second iteration decodes again).

    Attributes:
        info (dict): :func:`~projects.ccformer.datasets.video.video_info`.
        num_frames (int): T. fps (int): frames sampled per second. num_sampled (int): frames sampled in all.
        windows (list): start index of each T-frame window.
        img_size (tuple | None): the size frames are resized to before the model.
        audio_padded_seconds (float): silence added where the audio track is shorter than the picture.
        waveform (np.ndarray): the soundtrack, int16 at 16 kHz (padded with the silence).
        num_classes (int), dataset_meta (dict | None): of the model.
    """

    def __init__(
        self,
        model,
        video_path: str,
        fps: int = 1,
        img_size: Optional[Tuple[int, int]] = None,
        batch_size: int = 1,
        progress: Optional[Callable[[int], None]] = None,
    ) -> None:
        if not isinstance(fps, int) or fps < 1:
            raise ValueError(f'fps must be a positive integer, got {fps!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer (windows per forward pass), got {batch_size!r}')
        _check_img_size(img_size)
        self.segmentor = as_clip_segmentor(model)
        self.video_path, self.fps, self.batch_size, self.progress = video_path, fps, batch_size, progress
        self.num_frames = num_frames = self.segmentor.num_frames
        self.num_classes = int(getattr(self.segmentor, 'num_classes', 1))
        self.dataset_meta = getattr(self.segmentor, 'dataset_meta', None)
        self.img_size = self.segmentor.resolve_img_size(img_size)
        self.info = info = video_info(video_path)
        if not info['has_audio']:
            read_video_audio_pcm(video_path)  # raises the no-audio error with the hint
        if info['duration'] * fps < num_frames:
            raise ValueError(
                f'{video_path} is shorter than one window: {info["duration"]:.2f} s at {fps} frame(s) per second '
                f'gives {int(info["duration"] * fps)} frames, fewer than the T={num_frames} frames the model takes. '
                f'Use a video of at least {num_frames / fps:g} s or a higher --fps.'
            )
        self.num_sampled = int(math.floor(info['duration'] + 1e-6)) * fps
        self.windows = window_starts(self.num_sampled, num_frames)
        if not self.windows:
            raise ValueError(
                f'{video_path}: only {self.num_sampled} frames can be sampled, fewer than one window of '
                f'T={num_frames} frames; use a longer video or a higher --fps'
            )
        from ..datasets.video import sample_frame_indices

        total = info['frames'] or int(round(info['duration'] * (info['fps'] or 1)))
        last = sample_frame_indices(total or 10**9, info['fps'] or 1, self.num_sampled // fps, fps)[-1]
        last_time = last / max(1, int(round(info['fps'] or 1)))
        needed = frame_audio_samples([last_time] * (self.num_sampled if fps == 1 else 1), fps)
        self.waveform, self.audio_padded_seconds = pad_with_silence(
            read_video_audio_pcm(video_path), needed, video_path
        )

    def __len__(self) -> int:
        return self.num_sampled

    def _segment(self, batch: List[int], frames: Dict[int, np.ndarray], times: Dict[int, float]) -> List[np.ndarray]:
        """Masks ``(T, H, W)`` of the windows starting at ``batch``."""
        t = self.num_frames
        clips, audio, shapes, names = [], [], [], []
        for s in batch:
            imgs, shape = _load_clip(
                [frames[s + i] for i in range(t)], t, 'rgb', self.img_size, f'{self.video_path} window at frame {s}'
            )
            clips.append(imgs)
            shapes.append(shape)
            names.append(f'{osp.basename(self.video_path)} frames {s + 1}..{s + t}')
            audio.append(frame_audio_examples(self.waveform, [times[s + i] for i in range(t)], self.fps, first=s))
        return self.segmentor.segment_clips(clips, audio, shapes, names)

    def __iter__(self) -> Iterator[SegmentedFrame]:
        t, windows = self.num_frames, self.windows
        frames: Dict[int, np.ndarray] = {}
        times: Dict[int, float] = {}
        masks: Dict[int, np.ndarray] = {}
        done = 0  # windows segmented
        emitted = 0  # frames handed out
        decoded = iter_video_frames(self.video_path, self.fps, self.num_sampled // self.fps, self.info)
        for k, img, ts in decoded:
            frames[k], times[k] = img, ts
            batch = windows[done : done + self.batch_size]
            if k + 1 < min(batch[-1] + t, self.num_sampled):
                continue
            for s, out in zip(batch, self._segment(batch, frames, times)):
                for i in range(max(0, emitted - s), t):
                    masks.setdefault(s + i, out[i])  # a frame of two windows keeps the first window's mask
            done += len(batch)
            if self.progress is not None:
                self.progress(len(batch))
            while emitted <= k:  # windows start at 0 and follow each other: every frame so far has its mask
                yield SegmentedFrame(emitted, times[emitted], frames[emitted], masks.pop(emitted))
                emitted += 1
            keep_from = windows[done] if done < len(windows) else k + 1
            for i in [i for i in frames if i < keep_from]:  # frames no later window needs
                del frames[i], times[i]
            if done == len(windows):
                break
        if emitted < self.num_sampled:
            raise ValueError(f'{self.video_path}: only {emitted} of {self.num_sampled} sampled frames could be decoded')

    def collect(self) -> Dict:
        """Run the whole video and keep everything in memory (short videos; iterate for long ones).

        Returns:
            dict with ``frames`` (RGB uint8 list), ``masks`` (list of ``(H, W)`` uint8), ``timestamps`` (s),
            ``windows`` (start index of each window), ``info`` (``video_info``) and ``audio_padded_seconds``.
        """
        frames, masks, timestamps = [], [], []
        for item in self:
            frames.append(item.frame)
            masks.append(item.mask)
            timestamps.append(item.timestamp)
        return dict(
            frames=frames,
            masks=masks,
            timestamps=timestamps,
            windows=list(self.windows),
            info=self.info,
            audio_padded_seconds=self.audio_padded_seconds,
        )

    def __getitem__(self, key: str):
        """``result['masks']`` etc.: :meth:`collect` (run once, then kept)."""
        if not hasattr(self, '_collected'):
            self._collected = self.collect()
        return self._collected[key]


def segment_video(
    model,
    video_path: str,
    fps: int = 1,
    img_size: Optional[Tuple[int, int]] = None,
    batch_size: int = 1,
    progress: Optional[Callable[[int], None]] = None,
) -> VideoSegmentation:
    """Segment a whole video file: PyAV decoding, AVSBench sampling, T-frame windows, per-frame masks.

    Args:
        model: from :func:`init_avs_model` (or ``mmseg.apis.init_model``), or a ``deployment.ORTSegmentor``.
        video_path: any container PyAV/FFmpeg reads (mp4, mkv, webm, ...) with an audio track.
        fps (int): frames sampled per second (1 = AVSBench; 2, 5, ... give denser masks).
        img_size (tuple, optional): ``(h, w)`` the frames are resized to before the model; default: the size the
            config runs the model at (:func:`~projects.ccformer.utils.config_input_size`; an ONNX file's export
            size). Masks are returned at the video's resolution.
        batch_size (int): windows per forward pass.
        progress (callable, optional): called with the number of windows done after each batch (e.g.
            ``tqdm.update``; ``len(result.windows)`` windows in all).

    Returns:
        :class:`VideoSegmentation`: iterate it for :class:`SegmentedFrame` s one at a time (memory stays flat), or
        ``result.collect()`` / ``result['masks']`` (``frames``, ``timestamps``, ``windows``, ``info``,
        ``audio_padded_seconds``) for everything in memory.

    Raises:
        ValueError: no audio track, or the video is shorter than one window (T / fps seconds).
    """
    return VideoSegmentation(model, video_path, fps, img_size, batch_size, progress)


def num_video_windows(video_path: str, num_frames: int, fps: int = 1) -> int:
    """Number of T-frame windows :func:`segment_video` will run for a video (for progress bars)."""
    info = video_info(video_path)
    return len(window_starts(int(math.floor(info['duration'] + 1e-6)) * fps, num_frames))


__all__ = [
    'init_avs_model',
    'inference_avs_model',
    'segment_video',
    'VideoSegmentation',
    'SegmentedFrame',
    'TorchClipSegmentor',
    'as_clip_segmentor',
    'audio_to_examples',
    'waveform_array',
    'num_video_windows',
    'get_num_frames',
]
