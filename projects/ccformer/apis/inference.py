"""Inference API: build a CCFormer from config + checkpoint and segment clips or whole video files.

* :func:`init_avs_model` - like ``mmseg.apis.init_model`` (no pretrained downloads, ``dataset_meta`` from the
  checkpoint, eval mode on the requested device).
* :func:`inference_avs_model` - one or more T-frame clips given in memory (frames as arrays or paths, audio as a
  waveform, log-mel examples or a file) -> per-frame masks ``(T, H, W)``.
* :func:`segment_video` - a whole video file cut into T-frame windows and segmented.

Video decoding / encoding (PyAV) lives in :mod:`projects.ccformer.datasets.video`.
"""

from __future__ import annotations

import math
import os.path as osp
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from ..datasets.video import (
    frame_audio_examples,
    frame_audio_samples,
    pad_with_silence,
    read_video_audio,
    read_video_frames,
    video_info,
    video_logmel_examples,
    window_starts,
)
from ..utils.config import strip_pretrained

if TYPE_CHECKING:  # mmseg is imported where a PyTorch model is built: the ONNX Runtime backend runs without it
    from mmseg.structures import SegDataSample

FrameType = Union[str, np.ndarray]
# (waveform, sample_rate) | log-mel examples (n, 96, 64) or (n, 1, 96, 64) | path to .wav / .pkl / video file
AudioType = Union[str, np.ndarray, Tuple[np.ndarray, int]]

LOADER_TYPES = ('LoadAVSFrames', 'LoadAVSMasks', 'LoadAVSAudio', 'LoadAnnotations', 'LoadImageFromFile')


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
        The model in eval mode with ``model.cfg`` and ``model.dataset_meta`` set.
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


def _num_frames(model: torch.nn.Module) -> int:
    """Frames per clip T: ``num_frames`` of the model / config / test dataset config, else the test dataset class's
    ``NUM_FRAMES`` (5 for S4/MS3, 10 for AVSS)."""
    if getattr(model, 'backend', None) == 'onnxruntime':  # deployment.ORTSegmentor
        return model.num_frames
    cfg = model.cfg
    for getter in (
        lambda: cfg.model.get('num_frames'),
        lambda: cfg.get('num_frames'),
        lambda: cfg.test_dataloader.dataset.get('num_frames'),
    ):
        try:
            value = getter()
        except (AttributeError, KeyError):
            value = None
        if value:
            return int(value)
    from mmseg.registry import DATASETS

    dataset_type = str(cfg.get('test_dataloader', {}).get('dataset', {}).get('type', ''))
    cls = DATASETS.get(dataset_type) if dataset_type else None
    if getattr(cls, 'NUM_FRAMES', None):
        return int(cls.NUM_FRAMES)
    return 10 if 'AVSS' in dataset_type else 5


def _build_pipeline(model: torch.nn.Module) -> Compose:
    """Test pipeline of the config without its file loaders (the clip is given in memory)."""
    cfg = model.cfg
    if 'test_dataloader' in cfg and 'pipeline' in cfg.test_dataloader.dataset:
        pipeline = cfg.test_dataloader.dataset.pipeline
    elif 'test_pipeline' in cfg:
        pipeline = cfg.test_pipeline
    else:
        raise ValueError('the config has neither test_dataloader.dataset.pipeline nor test_pipeline')
    kept = [t for t in pipeline if t['type'].split('.')[-1] not in LOADER_TYPES]
    return Compose(kept)


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


def audio_to_examples(audio: AudioType, num_frames: int) -> np.ndarray:
    """Any accepted audio input -> ``(T, 1, 96, 64)`` float32 log-mel examples (official S4 padding).

    Args:
        audio: ``(waveform, sample_rate)`` (waveform ``[samples]`` or ``[samples, channels]`` in [-1, 1]);
            log-mel examples ``(n, 96, 64)`` / ``(n, 1, 96, 64)``; or a path to a ``.wav``, an official ``.pkl``
            or a video/audio file decoded with PyAV.
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
        check_finite_audio(audio[0], 'audio waveform', int(audio[1]))
        examples = waveform_to_logmel(np.asarray(audio[0]), int(audio[1]))
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


def _prepare_clip(
    frames: Sequence[FrameType],
    audio: Union[AudioType, np.ndarray],
    num_frames: int,
    channel_order: str,
    img_size: Optional[Tuple[int, int]],
    video_id: str,
) -> dict:
    """The loader output for one clip: BGR frames, ``(T, 1, 96, 64)`` audio and the clip metainfo."""
    if len(frames) != num_frames:
        raise ValueError(f'{video_id}: the model takes clips of T={num_frames} frames, got {len(frames)}')
    imgs = [_load_frame(f, channel_order) for f in frames]
    ori_shape = imgs[0].shape[:2]
    if any(img.shape[:2] != ori_shape for img in imgs):
        raise ValueError(f'{video_id}: all frames of a clip must have the same size')
    if img_size is not None:
        imgs = [cv2.resize(img, (img_size[1], img_size[0]), interpolation=cv2.INTER_LINEAR) for img in imgs]
    examples = audio_to_examples(audio, num_frames)
    frame_paths = [str(f) if isinstance(f, (str, Path)) else None for f in frames]
    return dict(
        imgs=imgs,
        img=imgs[0],
        audio=examples.astype(np.float32),
        img_shape=imgs[0].shape[:2],
        ori_shape=imgs[0].shape[:2],
        orig_frame_shape=ori_shape,
        video_id=video_id,
        category='',
        split='test',
        frame_paths=frame_paths,
        img_path=frame_paths[0],
        mask_paths=[None] * num_frames,
        audio_path=audio if isinstance(audio, str) else None,
        audio_valid=[1] * num_frames,
        frame_valid=[1] * num_frames,
        gt_valid=[0] * num_frames,
        num_frames=num_frames,
        seg_fields=[],
        reduce_zero_label=False,
    )


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


@torch.no_grad()
def inference_avs_model(
    model: torch.nn.Module,
    frames: Union[Sequence[FrameType], Sequence[Sequence[FrameType]]],
    audio: Union[AudioType, Sequence[AudioType]],
    channel_order: str = 'rgb',
    img_size: Optional[Tuple[int, int]] = None,
    return_datasample: bool = False,
) -> Union[np.ndarray, List[np.ndarray], SegDataSample, List[SegDataSample]]:
    """Segment one clip (or a batch of clips) given in memory.

    Args:
        model: from :func:`init_avs_model`.
        frames: T frames, each an ``(H, W, 3)`` uint8 array or an image path; or a list of such clips.
        audio: the clip's audio (see :func:`audio_to_examples`); a list (one per clip) for a batch.
        channel_order (str): ``'rgb'`` (PIL / PyAV / imageio arrays) or ``'bgr'`` (OpenCV arrays). Paths are
            always read correctly.
        img_size (tuple, optional): ``(h, w)``: resize the frames (bilinear, as the official preprocessing) before
            the test pipeline, e.g. ``(224, 224)`` for AVSBench-trained models; masks are resized back to the frame
            size. None: the frames go to the pipeline as they are.
        return_datasample (bool): return the ``SegDataSample`` (``pred_sem_seg`` (T, H', W'), ``seg_logits``)
            instead of the masks.

    Returns:
        ``(T, H, W)`` uint8 masks (0/1 for S4/MS3, class indices for AVSS) at the input frame size; a list for a
        batch.
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    batched = len(frames) > 0 and isinstance(frames[0], (list, tuple))
    clips = list(frames) if batched else [frames]
    audios = list(audio) if batched else [audio]
    if len(audios) != len(clips):
        raise ValueError(f'got {len(clips)} clips but {len(audios)} audio inputs')
    num_frames = _num_frames(model)
    if getattr(model, 'backend', None) == 'onnxruntime':  # deployment.ORTSegmentor: numpy pre-/post-processing
        if return_datasample:
            raise ValueError(
                'return_datasample needs a PyTorch model; ORTSegmentor.predict(..., '
                'return_logits=True) returns the logits'
            )
        size = model.resolve_img_size(img_size)
        prepared = [
            _prepare_clip(c, a, num_frames, channel_order, size, f'clip_{i}')
            for i, (c, a) in enumerate(zip(clips, audios))
        ]
        masks = model.predict(
            [p['imgs'] for p in prepared],
            [p['audio'] for p in prepared],
            channel_order='bgr',
            out_shapes=[p['orig_frame_shape'] for p in prepared],
        )
        return masks if batched else masks[0]
    pipeline = _build_pipeline(model)
    data = []
    orig_shapes = []
    for i, (clip, aud) in enumerate(zip(clips, audios)):
        results = _prepare_clip(clip, aud, num_frames, channel_order, img_size, f'clip_{i}')
        orig_shapes.append(results.pop('orig_frame_shape'))
        data.append(pipeline(results))
    samples = model.test_step(pseudo_collate(data))
    if return_datasample:
        return samples if batched else samples[0]
    logit_threshold = float(getattr(model, 'logit_threshold', 0.0))
    masks = [_resize_prediction(s, shape, logit_threshold) for s, shape in zip(samples, orig_shapes)]
    return masks if batched else masks[0]


# ------------------------------------------------------------------------------------------------ whole videos
@torch.no_grad()
def segment_video(
    model: torch.nn.Module,
    video_path: str,
    fps: int = 1,
    img_size: Optional[Tuple[int, int]] = (224, 224),
    batch_size: int = 1,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict:
    """Segment a whole video file: PyAV decoding, AVSBench sampling, T-frame windows, per-frame masks.

    Args:
        model: from :func:`init_avs_model`.
        video_path: any container PyAV/FFmpeg reads (mp4, mkv, webm, ...) with an audio track.
        fps (int): frames sampled per second (1 = AVSBench; 2, 5, ... give denser masks).
        img_size (tuple, optional): ``(h, w)`` the frames are resized to before the model (AVSBench: 224x224);
            masks are returned at the video's resolution.
        batch_size (int): windows per forward pass.
        progress (callable, optional): called with the number of windows done after each batch (e.g.
            ``tqdm.update``); ``segment_video.num_windows`` can be read from the returned dict.

    Returns:
        dict with ``frames`` (RGB uint8 list), ``masks`` (list of ``(H, W)`` uint8), ``timestamps`` (s),
        ``windows`` (start index of each window), ``info`` (:func:`video_info`), ``audio_padded_seconds`` (audio
        shorter than the picture is padded with that much silence, :func:`pad_with_silence`; 0.0 if none).

    Raises:
        ValueError: no audio track, or the video is shorter than one window (T / fps seconds).
    """
    if fps < 1:
        raise ValueError(f'fps must be a positive integer, got {fps}')
    num_frames = _num_frames(model)
    info = video_info(video_path)
    if not info['has_audio']:
        read_video_audio(video_path)  # raises the no-audio error with the hint
    if info['duration'] * fps < num_frames:
        raise ValueError(
            f'{video_path} is shorter than one window: {info["duration"]:.2f} s at {fps} frame(s) per second '
            f'gives {int(info["duration"] * fps)} frames, fewer than the T={num_frames} frames the model takes. '
            f'Use a video of at least {num_frames / fps:g} s or a higher --fps.'
        )
    frames, timestamps, info = read_video_frames(video_path, fps)
    starts = window_starts(len(frames), num_frames)
    if not starts:
        raise ValueError(
            f'{video_path}: only {len(frames)} frames could be sampled, fewer than one window of '
            f'T={num_frames} frames; use a longer video or a higher --fps'
        )
    waveform, padded = pad_with_silence(read_video_audio(video_path), frame_audio_samples(timestamps, fps), video_path)
    examples = frame_audio_examples(waveform, timestamps, fps)
    masks: List[Optional[np.ndarray]] = [None] * len(frames)
    for b in range(0, len(starts), batch_size):
        batch = starts[b : b + batch_size]
        clips = [frames[s : s + num_frames] for s in batch]
        audios = [examples[s : s + num_frames] for s in batch]
        outs = inference_avs_model(model, clips, audios, channel_order='rgb', img_size=img_size)
        for s, out in zip(batch, outs):
            for t in range(num_frames):
                if masks[s + t] is None:
                    masks[s + t] = out[t]
        if progress is not None:
            progress(len(batch))
    return dict(
        frames=frames, masks=masks, timestamps=timestamps, windows=starts, info=info, audio_padded_seconds=padded
    )


def num_video_windows(video_path: str, num_frames: int, fps: int = 1) -> int:
    """Number of T-frame windows :func:`segment_video` will run for a video (for progress bars)."""
    info = video_info(video_path)
    return len(window_starts(int(math.floor(info['duration'] + 1e-6)) * fps, num_frames))


def get_num_frames(model: torch.nn.Module) -> int:
    """Public accessor of the clip length T a model was configured with."""
    return _num_frames(model)


__all__ = [
    'init_avs_model',
    'inference_avs_model',
    'segment_video',
    'audio_to_examples',
    'num_video_windows',
    'get_num_frames',
]
