"""Clip-level processing: the official AVSS resize and clip-consistent augmentation."""

import contextlib
import random
from typing import Callable, Dict, Iterator, List, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmcv.transforms.utils import cache_random_params
from mmseg.registry import TRANSFORMS
from PIL import Image


def _pil_resize(arr: np.ndarray, size_wh, resample) -> np.ndarray:
    """Resize a uint8 ``(H, W[, 3])`` array with PIL (channel order is irrelevant)."""
    return np.asarray(Image.fromarray(arr).resize(tuple(size_wh), resample))


@TRANSFORMS.register_module()
class AVSSResize(BaseTransform):
    """The official AVSS frame/label geometry (AVSBench ``color_dataloader.py``; ``docs/data.md``), on a whole clip.

    * ``mode='short_side_crop'`` (train): resize so the short side is ``size`` (long side
      ``int(long * size / short)``), then a deterministic centre crop ``size x size`` at offsets
      ``round((w - size) / 2)``, ``round((h - size) / 2)``.
    * ``mode='resize'`` (val/test): resize to ``size x size`` ignoring the aspect ratio.

    Frames use PIL bilinear and masks PIL nearest, as torchvision's ``Resize`` on PIL images does in
    the official loader (masks are index maps here; nearest picks the same pixels as resizing the
    colour label first).

    The official AVSS metrics are computed at 224x224 on the resized labels, so ``ori_shape`` (the
    shape predictions are restored to) is set to the output shape as well; the size of the frame
    files is kept in ``frame_shape``.

    Modified keys: ``imgs`` (list of T ``(H, W, 3)``), ``gt_masks`` (T, H, W), ``img_shape``,
    ``ori_shape``. Added keys: ``frame_shape``, ``scale_factor`` ``(w_scale, h_scale)`` of the
    resize (before cropping).
    """

    def __init__(self, size: int = 224, mode: str = 'resize') -> None:
        if mode not in ('short_side_crop', 'resize'):
            raise ValueError(f"mode must be 'short_side_crop' or 'resize', got {mode!r}")
        self.size = int(size)
        self.mode = mode

    def _geometry(self, h: int, w: int):
        """``(new_w, new_h)`` of the resize and the ``(x0, y0)`` crop offset."""
        s = self.size
        if self.mode == 'resize':
            return (s, s), (0, 0)
        if w <= h:
            new_w, new_h = s, int(h * s / w)
        else:
            new_w, new_h = int(w * s / h), s
        return (new_w, new_h), (int(round((new_w - s) / 2.0)), int(round((new_h - s) / 2.0)))

    def transform(self, results: dict) -> dict:
        h, w = results['imgs'][0].shape[:2]
        (new_w, new_h), (x0, y0) = self._geometry(h, w)
        s = self.size

        def crop(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a[y0 : y0 + s, x0 : x0 + s])

        dtype = results['imgs'][0].dtype
        imgs = []
        for img in results['imgs']:
            img8 = img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
            imgs.append(crop(_pil_resize(img8, (new_w, new_h), Image.BILINEAR)).astype(dtype))
        results['imgs'] = imgs
        if 'gt_masks' in results:
            results['gt_masks'] = np.stack(
                [crop(_pil_resize(m, (new_w, new_h), Image.NEAREST)) for m in results['gt_masks']]
            )
        results['frame_shape'] = results.get('ori_shape', (h, w))
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = imgs[0].shape[:2]
        results['scale_factor'] = (new_w / w, new_h / h)
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(size={self.size}, mode='{self.mode}')"


def _rng_state() -> tuple:
    """Global numpy, Python and torch RNG states."""
    return np.random.get_state(), random.getstate(), torch.random.get_rng_state()


def _set_rng_state(state: tuple) -> None:
    np.random.set_state(state[0])
    random.setstate(state[1])
    torch.random.set_rng_state(state[2])


@contextlib.contextmanager
def kept_rng_state() -> Iterator[None]:
    """Run the body and restore the numpy, Python and torch (CPU) global RNG states it leaves behind."""
    saved = _rng_state()
    try:
        yield
    finally:
        _set_rng_state(saved)


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run the body with the numpy, Python and torch (CPU) global RNGs seeded by ``seed``; restore them after.

    Transforms that draw from the global RNGs (mmcv / mmseg random transforms) then draw a function of ``seed``
    only, whatever ran before in the process or data-loader worker.
    """
    with kept_rng_state():
        seed = int(seed) % 2**32
        np.random.seed(seed)
        random.seed(seed)
        torch.random.default_generator.manual_seed(seed)
        yield


def _same_rng_state(a: tuple, b: tuple) -> bool:
    return a[0][2] == b[0][2] and np.array_equal(a[0][1], b[0][1]) and a[1] == b[1] and torch.equal(a[2], b[2])


@TRANSFORMS.register_module()
class ClipConsistentTransform(BaseTransform):
    """Apply per-image mmseg/mmcv transforms to every frame of a clip with identical randomness.

    Each frame ``t`` is presented to the wrapped transforms as an ordinary mmseg sample
    (``img = imgs[t]``, ``gt_seg_map = gt_masks[t]``, ``seg_fields = ['gt_seg_map']``). The wrapped
    transforms run one at a time over all frames, and each draws its random parameters once per
    clip:

    * methods decorated with mmcv's ``cache_randomness`` (flip direction, random scale, crop box,
      ...) are cached after the first frame with :func:`cache_random_params`, which is what
      ``TransformBroadcaster(share_random_params=True)`` does; this also makes data-dependent
      draws (``RandomCrop(cat_max_ratio=...)``) follow the first frame;
    * the numpy, Python and torch global RNG states are restored before each frame, so transforms
      drawing without that decorator (e.g. mmseg's ``PhotoMetricDistortion``) draw the same
      numbers for every frame.

    After each frame the RNG state is checked: it must be unchanged (all draws cached) or equal to
    the first frame's (same draws); anything else means a transform mixes cached and uncached or
    data-dependent draws, and raises ``RuntimeError`` instead of silently desynchronising frames.

    ``TransformBroadcaster`` itself is not used because it drops the non-mapped keys a transform
    writes (``img_shape``, ``flip``, ``scale_factor``...), cannot scatter the ``(T, H, W)`` mask
    array, and shares only ``cache_randomness`` draws.

    Example::

        dict(type='ClipConsistentTransform', transforms=[
            dict(type='RandomResize', scale=(448, 224), ratio_range=(0.5, 2.0), keep_ratio=True),
            dict(type='RandomCrop', crop_size=(224, 224), cat_max_ratio=0.75),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PhotoMetricDistortion')])

    Modified keys: ``imgs``, ``gt_masks``, ``img_shape`` and whatever scalar keys the wrapped
    transforms set (``scale``, ``scale_factor``, ``keep_ratio``, ``flip``, ``flip_direction``...),
    taken from the first frame.
    """

    def __init__(self, transforms: Sequence[Union[Dict, Callable]]) -> None:
        self.transforms = Compose(list(transforms))

    def _frame_input(self, results: dict, t: int) -> dict:
        inp = {k: v for k, v in results.items() if k not in ('imgs', 'gt_masks')}
        inp['img'] = results['imgs'][t]
        inp['img_shape'] = results['imgs'][t].shape[:2]
        if 'gt_masks' in results:
            inp['gt_seg_map'] = results['gt_masks'][t]
            inp['seg_fields'] = ['gt_seg_map']
        else:
            inp['seg_fields'] = []
        return inp

    @staticmethod
    def _apply_shared(transform: Callable, frames: List[dict]) -> Union[List[dict], None]:
        """Run one transform on every frame with one set of random parameters."""
        start = _rng_state()
        outputs = []
        with cache_random_params(transform):
            for t, frame in enumerate(frames):
                _set_rng_state(start)
                out = transform(frame)
                if out is None:
                    return None
                outputs.append(out)
                if t == 0:
                    after_first = _rng_state()
                elif not (_same_rng_state(_rng_state(), after_first) or _same_rng_state(_rng_state(), start)):
                    raise RuntimeError(
                        f'{transform} drew different random numbers for frame {t} than for '
                        f'frame 0 (data-dependent or partly cached randomness); it cannot be '
                        f'used in ClipConsistentTransform.'
                    )
        _set_rng_state(after_first)
        return outputs

    def transform(self, results: dict) -> Union[dict, None]:
        frames = [self._frame_input(results, t) for t in range(len(results['imgs']))]
        for transform in self.transforms.transforms:
            frames = self._apply_shared(transform, frames)
            if frames is None:
                return None
        shapes = {o['img'].shape for o in frames}
        if len(shapes) != 1:
            raise RuntimeError(
                f'clip {results.get("video_id")}: frames got different shapes {sorted(shapes)} from {self.transforms}.'
            )
        first = frames[0]
        for key, value in first.items():
            if key not in ('img', 'gt_seg_map', 'seg_fields'):
                results[key] = value
        results['imgs'] = [o['img'] for o in frames]
        results['img_shape'] = first['img'].shape[:2]
        if 'gt_masks' in results:
            results['gt_masks'] = np.stack([o['gt_seg_map'] for o in frames])
        results['seg_fields'] = ['gt_masks'] if 'gt_masks' in results else []
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms})'
