"""Pack a loaded clip into model inputs (``docs/design.md``)."""

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample


@TRANSFORMS.register_module()
class PackAVSInputs(BaseTransform):
    """Pack a clip like mmdet's ``PackTrackInputs``, for segmentation.

    Returns ``dict(inputs=tensor (T, 3, H, W) (uint8 for uint8 frames, BGR), audio=float tensor
    (T, 1, 96, 64), data_samples=SegDataSample)``. The data sample holds
    ``gt_sem_seg = PixelData(data=LongTensor (T, H, W))`` when ``gt_masks`` is present, the audio tensor as its
    ``audio`` field too (``mmseg.apis.inference_model`` passes on only ``inputs`` and ``data_samples``; the data
    preprocessor takes it from there when the batch has no ``audio`` and removes it from the samples), and the
    ``meta_keys`` present in ``results`` as metainfo; ``img_path`` is the first frame and
    ``pad_shape`` defaults to ``img_shape``, ``flip`` to False, ``scale_factor`` to (1.0, 1.0).
    """

    DEFAULT_META_KEYS = (
        'video_id',
        'category',
        'category_index',
        'frame_paths',
        'img_path',
        'audio_path',
        'ori_shape',
        'frame_shape',
        'img_shape',
        'pad_shape',
        'num_frames',
        'frame_valid',
        'gt_valid',
        'sounding',
        'flip',
        'flip_direction',
        'scale_factor',
        'split',
        'reduce_zero_label',
        'sample_idx',
    )

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        imgs = np.stack(results['imgs'])  # (T, H, W, 3)
        inputs = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))
        packed = dict(inputs=inputs)
        sample = SegDataSample()
        if 'audio' in results:
            packed['audio'] = torch.from_numpy(np.asarray(results['audio'], np.float32))
            sample.audio = packed['audio']
        if 'gt_masks' in results:
            masks = torch.from_numpy(np.ascontiguousarray(results['gt_masks']).astype(np.int64))
            sample.gt_sem_seg = PixelData(data=masks)
        results.setdefault('img_path', next((p for p in results.get('frame_paths', []) if p), None))
        results.setdefault('pad_shape', results.get('img_shape'))
        results.setdefault('flip', False)
        results.setdefault('flip_direction', None)
        results.setdefault('scale_factor', (1.0, 1.0))
        results.setdefault('num_frames', len(results['imgs']))
        results.setdefault('frame_valid', [1] * len(results['imgs']))
        results.setdefault('gt_valid', [1] * len(results['imgs']))
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        packed['data_samples'] = sample
        return packed

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
