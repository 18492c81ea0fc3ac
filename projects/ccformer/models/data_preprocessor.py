"""Batch AVS clips: ``(N, T, 3, H, W)`` frames and ``(N, T, 1, 96, 64)`` audio (``docs/design.md``)."""

from numbers import Number
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS
from mmseg.utils import stack_batch


@MODELS.register_module()
class AVSDataPreprocessor(BaseDataPreprocessor):
    """Data preprocessor for clips, in the style of mmdet's ``TrackDataPreprocessor``.

    Steps on the collated dict (``inputs``: list of N ``(T, 3, H, W)`` tensors, ``audio``: list of N
    ``(T, 1, 96, 64)``, ``data_samples``: list of N ``SegDataSample``):

    1. move to the device and cast to float;
    2. BGR -> RGB (``bgr_to_rgb``) and ``(x - mean) / std`` per channel;
    3. frames whose ``frame_valid`` is 0 are set to 0 (the official AVSS padding);
    4. pad every clip at the bottom/right to a common size (the batch maximum rounded up to
       ``size_divisor``, or the fixed ``size``) with ``pad_val`` and the ``(T, H, W)``
       ``gt_sem_seg`` with ``seg_pad_val`` (mmseg's ``stack_batch``); ``img_shape``, ``pad_shape``,
       ``padding_size`` and ``batch_input_shape`` are written to the metainfo;
    5. stack to ``inputs (N, T, 3, H, W)`` and ``audio (N, T, 1, 96, 64)``. The audio comes from the batch's
       ``audio`` list, or, when the batch has none (``mmseg.apis.inference_model`` passes only ``inputs`` and
       ``data_samples``), from the ``audio`` field ``PackAVSInputs`` also puts on each data sample; the field is
       removed from the samples either way.

    Args:
        mean / std: per-channel RGB statistics in 0..255 (default ImageNet).
        size: fixed ``(H, W)`` to pad to (exclusive with ``size_divisor``).
        size_divisor: round the padded size up to a multiple of it.
        pad_val / seg_pad_val: padding values for frames (after normalisation) and masks.
        bgr_to_rgb: convert the loaded BGR frames to RGB.
        non_blocking: passed to ``cast_data``.
    """

    def __init__(
        self,
        mean: Sequence[Number] = (123.675, 116.28, 103.53),
        std: Sequence[Number] = (58.395, 57.12, 57.375),
        size: Optional[Sequence[int]] = None,
        size_divisor: Optional[int] = None,
        pad_val: Number = 0,
        seg_pad_val: Number = 255,
        bgr_to_rgb: bool = True,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(non_blocking)
        if size is not None and size_divisor is not None:
            raise ValueError('set only one of size and size_divisor')
        self.size = tuple(size) if size is not None else None
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val
        self.bgr_to_rgb = bgr_to_rgb
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), False)

    def _normalise(self, clip: torch.Tensor, frame_valid: Optional[List[int]]) -> torch.Tensor:
        """``(T, 3, H, W)`` -> normalised float, padded frames zeroed."""
        if clip.dim() != 4 or clip.shape[1] != 3:
            raise ValueError(f'expected a clip tensor (T, 3, H, W), got {tuple(clip.shape)}')
        clip = clip.float()
        if self.bgr_to_rgb:
            clip = clip[:, [2, 1, 0]]
        clip = (clip - self.mean) / self.std
        if frame_valid is not None:
            valid = torch.as_tensor(frame_valid, dtype=clip.dtype, device=clip.device)
            if valid.numel() != clip.shape[0]:
                raise ValueError(f'frame_valid has {valid.numel()} entries for {clip.shape[0]} frames')
            clip = clip * valid.view(-1, 1, 1, 1)
        return clip

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Batch a collated list of clips; see the class docstring."""
        data = self.cast_data(data)
        clips = data['inputs']
        samples = data.get('data_samples')
        if isinstance(clips, torch.Tensor):  # already stacked (N, T, 3, H, W)
            clips = list(clips)
        T = clips[0].shape[0]
        if any(c.shape[0] != T for c in clips):
            raise ValueError(f'clips in a batch have different lengths {[c.shape[0] for c in clips]}')
        valid = [
            s.metainfo.get('frame_valid') if samples is not None else None for s in (samples or [None] * len(clips))
        ]
        clips = [self._normalise(c, v) for c, v in zip(clips, valid)]
        h_w = [c.shape[-2:] for c in clips]
        flat = [c.flatten(0, 1) for c in clips]  # (T*3, H, W) for mmseg's stack_batch
        pad = dict(size=self.size) if self.size is not None else dict(size_divisor=self.size_divisor or 1)
        stacked, padded = stack_batch(flat, samples, pad_val=self.pad_val, seg_pad_val=self.seg_pad_val, **pad)
        inputs = stacked.view(len(clips), T, 3, *stacked.shape[-2:])
        batch_shape = tuple(inputs.shape[-2:])
        if samples is not None:
            for s, hw in zip(padded, h_w):
                s.set_metainfo(dict(img_shape=tuple(hw), pad_shape=batch_shape, batch_input_shape=batch_shape))
            samples = padded
        out = dict(inputs=inputs, data_samples=samples)
        audio = data.get('audio')
        sample_audio = [s.audio if 'audio' in s else None for s in samples or []]
        for s in samples or []:
            if 'audio' in s:
                del s.audio
        if audio is None and sample_audio and all(a is not None for a in sample_audio):
            audio = sample_audio
        if audio is not None:
            out['audio'] = (audio if isinstance(audio, torch.Tensor) else torch.stack(list(audio))).float()
        return out
