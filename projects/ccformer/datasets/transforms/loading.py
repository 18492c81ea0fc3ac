"""Loading transforms for AVS clips: frames, masks and audio (``docs/design.md``)."""

import os.path as osp
from typing import Optional

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..audio import LOG_OFFSET, load_logmel_pkl, pad_examples_repeat, pad_examples_zeros, wav_to_logmel
from ..palette import AVSS_NUM_CLASSES, rgb_to_index, voc_palette


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


@TRANSFORMS.register_module()
class LoadAVSFrames(BaseTransform):
    """Load the T frames of a clip as BGR uint8 arrays.

    Required keys: ``frame_paths`` (list of T paths; ``None`` = AVSS padding).
    Added keys: ``imgs`` (list of T ``(H, W, 3)`` uint8 BGR; padded frames are zeros of the real
    frames' size), ``img_shape``, ``ori_shape`` (``(H, W)``), ``img_path`` (first frame).

    Args:
        to_float32: return float32 frames instead of uint8.
        imdecode_backend: mmcv decode backend (``'cv2'``).
        backend_args: mmengine file backend arguments.

    Raises:
        FileNotFoundError / ValueError naming the frame when it is missing, unreadable, or of a
        different size from the clip's first frame.
    """

    def __init__(
        self, to_float32: bool = False, imdecode_backend: str = 'cv2', backend_args: Optional[dict] = None
    ) -> None:
        self.to_float32 = to_float32
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
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
        return f'{self.__class__.__name__}(to_float32={self.to_float32}, imdecode_backend=\'{self.imdecode_backend}\')'


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

    Frames whose ``mask_paths`` entry is ``None`` (S4 train frames 2..5, AVSS padding) get zeros.
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


# every log-mel value of a digitally silent example is log(0 + LOG_OFFSET); the margin absorbs float32 rounding
SILENT_LOGMEL = float(np.log(LOG_OFFSET)) + 1e-4


@TRANSFORMS.register_module()
class LoadAVSAudio(BaseTransform):
    """Load the clip's audio as T VGGish log-mel examples ``audio (T, 1, 96, 64) float32``.

    ``.pkl`` paths are read with the restricted unpickler (official log-mels); ``.wav`` paths go
    through :func:`~projects.ccformer.datasets.audio.waveform_to_logmel` (mono mix, resampling of
    other rates to 16 kHz). Then the examples are cut/padded to T = ``num_frames``:

    * ``pad_mode='repeat'`` (S4/MS3, official preprocessing): repeat the last example. Kept so the official
      files load exactly as the official loaders read them; audio of a video that is shorter than its picture is
      padded with silence where this project cuts videos (``videos_to_avsbench.py``, the demo and
      ``segment_video``), so files it writes are already full length;
    * ``pad_mode='zeros'`` (AVSS): zero examples; ``audio_valid`` (T,) flags the real ones.

    Silence loads fine (``log(0.01)`` everywhere). Audio shorter than one example (0.975 s) is an
    error with ``'repeat'`` and all zeros with ``'zeros'``. NaN / inf in a file stops with an error naming it.

    A digitally silent second makes nothing sound: where ``results`` holds per-frame ``sounding`` flags
    (presence targets, e.g. ``AVSBenchS4Dataset(sounding_unlabelled=True)``), the frames whose example is
    digital silence in at least half of its 96 rows (10 ms each; examples do not align with the seconds of
    the video, so a silent second's example holds some of its neighbours) get 0, and padded examples
    (``audio_valid`` 0) get -1 (unknown).

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
        else:
            raise ValueError(f'audio file {path}: unsupported extension {ext!r} (use .pkl or .wav)')
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
            silent = (audio <= SILENT_LOGMEL).all(-1).mean(-1) >= 0.5  # (T,): half its rows or more
            results['sounding'] = [
                -1 if not ok else 0 if mute else int(v) for v, mute, ok in zip(sounding, silent, valid.tolist())
            ]
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(pad_mode='{self.pad_mode}')"
