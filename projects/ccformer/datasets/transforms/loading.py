"""Loading transforms for AVS clips: frames, masks and audio (``docs/design.md``).

Besides dataset clips (``frame_paths`` / ``mask_paths`` / ``audio_path`` from a dataset's ``data_list``), the loaders
take a clip given only by ``img_path``, as ``mmseg.apis.inference_model`` passes it: a video file (AVSBench's frame
sampling and VGGish front end, :mod:`projects.ccformer.datasets.video`) or a clip folder (T frame images and a
``.wav``).
"""

import logging
import os
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from ..audio import load_logmel_pkl, pad_examples_repeat, pad_examples_zeros, silent_examples, wav_to_logmel
from ..palette import AVSS_NUM_CLASSES, rgb_to_index, voc_palette
from ..video import read_video_frames, video_info, video_logmel_examples


def _read_bytes(path: str, backend_args: Optional[dict], what: str) -> bytes:
    """File bytes, or ``FileNotFoundError`` naming the file."""
    if backend_args is None and not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        return fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{what} not found: {path}') from err


def _decode(content: bytes, path: str, flag: str, backend: str, what: str) -> np.ndarray:
    """Decode image bytes; an unreadable file raises ``ValueError`` naming it."""
    try:
        img = mmcv.imfrombytes(content, flag=flag, backend=backend)
    except Exception as err:  # cv2 / PIL errors on corrupt data
        raise ValueError(f'cannot decode {what} {path}: {err}') from err
    if img is None or img.size == 0:
        raise ValueError(
            f'cannot decode {what} {path}: the file is empty or not an image '
            f'(corrupt or truncated?). Re-extract it from the video.'
        )
    return img


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def _natural_key(path: str) -> list:
    """Sort key ordering frame files by the numbers in their names (``v_2.png`` before ``v_10.png``)."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r'(\d+)', osp.basename(path))]


def _images_in(folder: str) -> List[str]:
    names = [f for f in os.listdir(folder) if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return sorted((osp.join(folder, f) for f in names), key=_natural_key)


def clip_folder_files(folder: str, num_frames: int) -> Tuple[List[str], str]:
    """The T frame images and the sound of a clip folder.

    Frames: the image files of ``folder`` (or of ``folder/frames``, the AVSS layout ``<uid>/frames/0.jpg`` next to
    ``<uid>/audio.wav``) in the order of the numbers in their names; the first T are used (a warning says so when
    there are more). Sound: ``folder/audio.wav``, else the folder's only ``.wav``.

    Raises:
        ValueError: naming the folder, when it holds fewer than T frame images, no ``.wav`` or several.
    """
    frames = _images_in(folder)
    if not frames and osp.isdir(osp.join(folder, 'frames')):
        frames = _images_in(osp.join(folder, 'frames'))
    if len(frames) < num_frames:
        raise ValueError(
            f'clip folder {folder} holds {len(frames)} frame images ({"/".join(IMAGE_EXTENSIONS)}, in the folder or '
            f'its frames/ subfolder); the model takes clips of T={num_frames} frames. Put the clip\'s {num_frames} '
            f'frames there (numbered in time order), or pass a video file.'
        )
    if len(frames) > num_frames:
        print_log(
            f'clip folder {folder} holds {len(frames)} frame images; the model takes T={num_frames}: using the first '
            f'{num_frames} ({osp.basename(frames[0])} .. {osp.basename(frames[num_frames - 1])})',
            logger='current',
            level=logging.WARNING,
        )
    wavs = sorted(f for f in os.listdir(folder) if f.lower().endswith('.wav'))
    if 'audio.wav' in wavs:
        wavs = ['audio.wav']
    if len(wavs) != 1:
        found = f'several ({", ".join(wavs)})' if wavs else 'none'
        raise ValueError(
            f'clip folder {folder}: the clip\'s sound must be one .wav file next to the frames (audio.wav, or the '
            f'only .wav), found {found}'
        )
    return frames[:num_frames], osp.join(folder, wavs[0])


def _video_frames(path: str, num_frames: int) -> List[np.ndarray]:
    """The first T frames AVSBench samples from a video (one per second), BGR; errors name the file."""
    try:
        info = video_info(path)
    except ValueError as err:
        raise ValueError(
            f'img_path {path} is neither a video file nor a clip folder ({err}). Give a video with sound (mp4, mkv, '
            f'webm, ...) or a folder holding the clip\'s T={num_frames} frame images and a .wav.'
        ) from err
    seconds = int(np.floor(info['duration'] + 1e-6))
    if seconds < num_frames:
        raise ValueError(
            f'video {path} lasts {info["duration"]:.2f} s; the model takes clips of T={num_frames} frames sampled '
            f'once a second (AVSBench), so it needs at least {num_frames} s. For shorter videos sample more frames '
            f'a second with projects.ccformer.apis.segment_video(model, path, fps=N) or demo/video_demo.py --fps N.'
        )
    if seconds > num_frames:
        print_log(
            f'video {path} lasts {info["duration"]:.1f} s: this segments its first {num_frames} s (one clip of '
            f'T={num_frames} frames); projects.ccformer.apis.segment_video segments a whole video',
            logger='current',
            level=logging.WARNING,
        )
    frames, _, _ = read_video_frames(path, 1, num_seconds=num_frames)
    return [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # RGB -> BGR (mmcv convention)


@TRANSFORMS.register_module()
class LoadAVSFrames(BaseTransform):
    """Load the T frames of a clip as BGR uint8 arrays.

    A dataset clip comes as ``frame_paths`` (list of T paths; ``None`` = AVSS padding); its frames keep their
    stored size. A clip given only by ``img_path`` (``mmseg.apis.inference_model(model, path)``) is
    loaded from

    * a video file: the first ``num_frames`` seconds, one frame a second as AVSBench samples them
      (:func:`~projects.ccformer.datasets.video.read_video_frames`); its sound is read by :class:`LoadAVSAudio`
      (``audio_path`` is set to the video);
    * a clip folder (:func:`clip_folder_files`): ``num_frames`` frame images and a ``.wav`` (``audio_path``);

    and resized to ``input_size`` (bilinear, as AVSBench's preprocessing), while ``ori_shape`` keeps the source size
    so predictions come back at it. Such a clip has no ground truth (:class:`LoadAVSMasks` loads nothing) and gets
    ``video_id`` (the file or folder name), ``num_frames``, ``frame_valid`` (all 1) and ``gt_valid`` (all 0).

    Required keys: ``frame_paths``, or ``img_path``.
    Added keys: ``imgs`` (list of T ``(H, W, 3)`` uint8 BGR; padded frames are zeros of the real
    frames' size), ``img_shape``, ``ori_shape`` (``(H, W)``), ``img_path`` (first frame of a dataset clip).

    Args:
        to_float32: return float32 frames instead of uint8.
        imdecode_backend: mmcv decode backend (``'cv2'``).
        backend_args: mmengine file backend arguments.
        num_frames (int, optional): T of a clip loaded from ``img_path`` (the model's clip length: 5 for S4 / MS3,
            10 for AVSS). Dataset clips have their own.
        input_size (tuple, optional): ``(h, w)`` a clip loaded from ``img_path`` is resized to (the size the model
            was trained at); None keeps the source size (a later transform such as ``AVSSResize`` resizes).

    Raises:
        FileNotFoundError / ValueError naming the frame when it is missing, unreadable, or of a
        different size from the clip's first frame; naming ``img_path`` when it is neither a video nor a clip
        folder, is too short, or the folder lacks frames or its ``.wav``.
    """

    def __init__(
        self,
        to_float32: bool = False,
        imdecode_backend: str = 'cv2',
        backend_args: Optional[dict] = None,
        num_frames: Optional[int] = None,
        input_size: Optional[Sequence[int]] = None,
    ) -> None:
        self.to_float32 = to_float32
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args
        self.num_frames = None if num_frames is None else int(num_frames)
        if input_size is not None and (len(input_size) != 2 or min(input_size) < 1):
            raise ValueError(f'LoadAVSFrames: input_size must be (h, w), got {input_size!r}')
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))

    def transform(self, results: dict) -> dict:
        if results.get('frame_paths') is None:
            return self._load_from_path(results)
        return self._load_frames(results)

    def _load_from_path(self, results: dict) -> dict:
        """A clip given by ``img_path``: a video file or a clip folder (see the class docstring)."""
        path = results.get('img_path')
        if path is None:
            raise KeyError(
                'LoadAVSFrames needs frame_paths (a dataset clip) or img_path (a video file or a clip folder)'
            )
        path = str(path)
        if self.num_frames is None:
            raise ValueError(
                f'LoadAVSFrames cannot load img_path={path}: set num_frames (the clip length T of the model, 5 for '
                f'S4 / MS3, 10 for AVSS) in the config\'s test_pipeline'
            )
        if not osp.exists(path):
            raise FileNotFoundError(f'img_path {path} does not exist (give a video file or a clip folder)')
        if osp.isdir(path):
            results['frame_paths'], results['audio_path'] = clip_folder_files(path, self.num_frames)
            results = self._load_frames(results)
            imgs = results['imgs']
        elif osp.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
            raise ValueError(
                f'img_path {path} is a single image; CCFormer segments clips of T={self.num_frames} frames with '
                f'their sound: give a video file or a clip folder (T frame images and a .wav)'
            )
        else:
            imgs = _video_frames(path, self.num_frames)
            results['audio_path'] = path
            if self.to_float32:
                imgs = [img.astype(np.float32) for img in imgs]
        ori_shape = imgs[0].shape[:2]
        if self.input_size is not None and tuple(ori_shape) != self.input_size:
            h, w = self.input_size
            imgs = [cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) for img in imgs]
        results.update(
            imgs=imgs,
            img_path=path,
            img_shape=imgs[0].shape[:2],
            ori_shape=ori_shape,
            scale_factor=(imgs[0].shape[1] / ori_shape[1], imgs[0].shape[0] / ori_shape[0]),
            video_id=osp.splitext(osp.basename(path.rstrip('/\\')))[0],
            num_frames=self.num_frames,
            frame_valid=[1] * self.num_frames,
            gt_valid=[0] * self.num_frames,
        )
        return results

    def _load_frames(self, results: dict) -> dict:
        paths = results['frame_paths']
        imgs = [None] * len(paths)
        shape = None
        for t, path in enumerate(paths):
            if path is None:
                continue
            img = _decode(_read_bytes(path, self.backend_args, 'frame'), path, 'color', self.imdecode_backend, 'frame')
            if shape is None:
                shape, first = img.shape, path
            elif img.shape != shape:
                raise ValueError(
                    f'frame {path} has shape {img.shape[:2]} but {first} has '
                    f'{shape[:2]}; all frames of a clip must have one size.'
                )
            imgs[t] = img
        if shape is None:
            raise ValueError(f'clip {results.get("video_id")} has no real frame')
        dtype = np.float32 if self.to_float32 else np.uint8
        imgs = [np.zeros(shape, dtype) if im is None else im.astype(dtype, copy=False) for im in imgs]
        results['imgs'] = imgs
        results['img_path'] = next(p for p in paths if p is not None)
        results['img_shape'] = shape[:2]
        results['ori_shape'] = shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(to_float32={self.to_float32}, imdecode_backend=\'{self.imdecode_backend}\', '
            f'num_frames={self.num_frames}, input_size={self.input_size})'
        )


@TRANSFORMS.register_module()
class LoadAVSMasks(BaseTransform):
    """Load the per-frame ground truth of a clip into ``gt_masks (T, H, W) uint8``.

    * ``label_type='binary'`` (S4/MS3): single-channel 0/255 PNGs (colour PNGs are converted to
      grey first) -> 1 where value > 127 (> half range for 16-bit files), else 0.
    * ``label_type='palette'`` (AVSS ``labels_rgb``): colour PNG -> class index by exact match to the
      71 VOC palette colours. A colour outside the palette is an error naming the file and the colours (a
      class-index PNG read as colours would otherwise score every frame as background);
    * ``label_type='index'``: single-channel PNGs holding the class index (0..``num_classes - 1``) per pixel,
      e.g. AVSS labels converted to indices.

    Frames whose ``mask_paths`` entry is ``None`` (S4 train frames 2..5, AVSS padding) get zeros. Without
    ``mask_paths`` (a clip :class:`LoadAVSFrames` loaded from ``img_path``) nothing is loaded.
    Masks are loaded at their stored size; they must match the frames (``imgs``) when those are
    loaded. Resizing is done later, nearest only.

    Required keys: ``mask_paths``; optional ``imgs``/``img_shape`` for the size of empty masks.
    Added keys: ``gt_masks``, ``seg_fields`` (appends ``'gt_masks'``).
    """

    def __init__(
        self,
        label_type: str = 'binary',
        num_classes: int = AVSS_NUM_CLASSES,
        imdecode_backend: str = 'cv2',
        backend_args: Optional[dict] = None,
    ) -> None:
        if label_type not in ('binary', 'palette', 'index'):
            raise ValueError(f"label_type must be 'binary', 'palette' or 'index', got {label_type!r}")
        self.label_type = label_type
        self.num_classes = num_classes
        self.palette = voc_palette(num_classes)
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def _load_one(self, path: str) -> np.ndarray:
        content = _read_bytes(path, self.backend_args, 'mask')
        if self.label_type == 'palette':
            rgb = _decode(content, path, 'color', self.imdecode_backend, 'label image')[..., ::-1]
            labels = rgb_to_index(rgb, self.palette)
            unmatched = (labels == 0) & (rgb != np.asarray(self.palette[0], np.uint8)).any(-1)
            if unmatched.any():
                raise ValueError(self._palette_error(path, rgb[unmatched]))
            return labels
        if self.label_type == 'index':
            labels = _decode(content, path, 'unchanged', self.imdecode_backend, 'label image')
            if labels.ndim == 3:
                raise ValueError(
                    f'label image {path} has {labels.shape[2]} channels; label_type=\'index\' reads single-channel '
                    'PNGs of class indices (colour labels: label_type=\'palette\')'
                )
            if labels.max(initial=0) >= self.num_classes:
                found = np.unique(labels[labels >= self.num_classes])
                raise ValueError(
                    f'label image {path} holds class indices {found[:8].tolist()} outside 0..{self.num_classes - 1}'
                )
            return labels.astype(np.uint8)
        img = _decode(content, path, 'unchanged', self.imdecode_backend, 'mask')
        if img.ndim == 3:
            if img.shape[2] == 4:
                img = img[..., :3]
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[..., 0]
        half = (
            127
            if img.dtype == np.uint8
            else np.iinfo(img.dtype).max // 2
            if np.issubdtype(img.dtype, np.integer)
            else 0.5
        )
        return (img > half).astype(np.uint8)

    def _palette_error(self, path: str, colours: np.ndarray) -> str:
        """The message for a colour label image with ``colours`` (``(n, 3)`` RGB) outside the palette."""
        found, counts = np.unique(colours.reshape(-1, 3), axis=0, return_counts=True)
        order = np.argsort(-counts)
        listed = ', '.join(f'{tuple(int(v) for v in found[i])} ({counts[i]} px)' for i in order[:6])
        more = f' and {len(found) - 6} more' if len(found) > 6 else ''
        grey = bool((found[:, 0] == found[:, 1]).all() and (found[:, 1] == found[:, 2]).all())
        hint = (
            ' The colours are grey levels: this looks like a class-index PNG; read such labels with '
            "LoadAVSMasks(label_type='index')."
            if grey and found.max() < self.num_classes
            else ' Re-export the label with the AVSS palette (projects/ccformer/datasets/palette.py voc_palette).'
        )
        return (
            f'label image {path}: {len(colours)} pixels have colours outside the {self.num_classes}-class AVSS '
            f'palette: {listed}{more}. They would be scored as background.{hint}'
        )

    def transform(self, results: dict) -> dict:
        if 'mask_paths' not in results:  # a clip loaded from img_path (a video / clip folder): no ground truth
            return results
        paths = results['mask_paths']
        masks = [None if p is None else self._load_one(p) for p in paths]
        if 'img_shape' in results:
            shape = tuple(results['img_shape'][:2])
        else:
            real = [m for m in masks if m is not None]
            if not real:
                raise ValueError(
                    f'clip {results.get("video_id")}: no mask and no frames to '
                    f'size empty masks; put LoadAVSFrames before LoadAVSMasks'
                )
            shape = real[0].shape
        for path, m in zip(paths, masks):
            if m is not None and m.shape != shape:
                raise ValueError(
                    f'mask {path} has shape {m.shape} but the frames have {shape}; '
                    f'masks must be stored at the frame size.'
                )
        results['gt_masks'] = np.stack([np.zeros(shape, np.uint8) if m is None else m for m in masks])
        fields = list(results.get('seg_fields', []))
        if 'gt_masks' not in fields:
            fields.append('gt_masks')
        results['seg_fields'] = fields
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(label_type='{self.label_type}')"


@TRANSFORMS.register_module()
class LoadAVSAudio(BaseTransform):
    """Load the clip's audio as T VGGish log-mel examples ``audio (T, 1, 96, 64) float32``.

    ``.pkl`` paths are read with the restricted unpickler (official log-mels); ``.wav`` paths go
    through :func:`~projects.ccformer.datasets.audio.waveform_to_logmel` (mono mix, resampling of
    other rates to 16 kHz); any other file (a video, as :class:`LoadAVSFrames` sets for a clip loaded from
    ``img_path``) through :func:`~projects.ccformer.datasets.video.video_logmel_examples` (its first sound track,
    silence where it ends early). Then the examples are cut/padded to T = ``num_frames``:

    * ``pad_mode='repeat'`` (S4/MS3, official preprocessing): repeat the last example. Kept so the official
      files load exactly as the official loaders read them; audio of a video that is shorter than its picture is
      padded with silence where this project cuts videos (``videos_to_avsbench.py``, the demo and
      ``segment_video``), so files it writes are already full length;
    * ``pad_mode='zeros'`` (AVSS): zero examples; ``audio_valid`` (T,) flags the real ones.

    Silence loads fine (``log(0.01)`` everywhere). Audio shorter than one example (0.975 s) is an
    error with ``'repeat'`` and all zeros with ``'zeros'``. NaN / inf in a file stops with an error naming it.

    A digitally silent second makes nothing sound: where ``results`` holds per-frame ``sounding`` flags
    (presence targets, e.g. ``AVSBenchS4Dataset(sounding_unlabelled=True)``), the frames whose example is
    digital silence (:func:`~projects.ccformer.datasets.audio.silent_examples`: at least half of its 96 rows at
    the floor) get 0, and padded examples (``audio_valid`` 0) get -1 (unknown).

    Required keys: ``audio_path``, ``num_frames``. Added keys: ``audio``, ``audio_valid``. Modified key:
    ``sounding`` (where present).
    """

    def __init__(self, pad_mode: str = 'repeat') -> None:
        if pad_mode not in ('repeat', 'zeros'):
            raise ValueError(f"pad_mode must be 'repeat' or 'zeros', got {pad_mode!r}")
        self.pad_mode = pad_mode

    def transform(self, results: dict) -> dict:
        path = results['audio_path']
        num = int(results.get('num_frames', 5))
        ext = osp.splitext(path)[1].lower()
        if ext == '.pkl':
            examples = load_logmel_pkl(path)[:, 0]
        elif ext == '.wav':
            examples = wav_to_logmel(path)
        else:  # a video (or other audio container): its first sound track, decoded with PyAV
            if not osp.isfile(path):
                raise FileNotFoundError(f'audio file not found: {path}')
            examples = video_logmel_examples(path, num)
        if self.pad_mode == 'repeat':
            audio = pad_examples_repeat(examples, num, path)
            valid = np.ones(num, np.int64)
        else:
            audio, valid = pad_examples_zeros(examples, num)
        results['audio'] = np.ascontiguousarray(audio[:, None], dtype=np.float32)
        results['audio_valid'] = valid.tolist()
        if results.get('sounding') is not None:
            sounding = list(results['sounding'])
            if len(sounding) != num:
                raise ValueError(
                    f'{path}: the clip lists {len(sounding)} sounding flags for {num} frames; the dataset must give '
                    f'one flag per frame (1 sounding, 0 silent, -1 unknown)'
                )
            silent = silent_examples(audio)  # (T, 1): half its rows or more
            results['sounding'] = [
                -1 if not ok else 0 if mute else int(v) for v, mute, ok in zip(sounding, silent, valid.tolist())
            ]
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(pad_mode='{self.pad_mode}')"
