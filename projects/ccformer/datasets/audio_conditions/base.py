"""The audio conditions' names and what the audio wrappers share: replacing a packed clip's audio.

A wrapper (:class:`_AudioWrapper`) wraps an AVS dataset and changes only the audio a clip is heard with, and the
ground truth of the frames where nothing on screen can be heard any more.
"""

import copy
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from .clip_kinds import OffscreenPool

#: Negative audio made from the dataset itself or synthesised (what negative-audio training draws).
NEGATIVE_CONDITIONS = ('silence', 'noise', 'offscreen')
#: Negative audio from real recordings given by the user (a :class:`~projects.ccformer.datasets.SoundBank`).
RECORDED_CONDITION = 'offscreen_recorded'
#: Every condition whose ground truth is empty.
EMPTY_GT_CONDITIONS = NEGATIVE_CONDITIONS + (RECORDED_CONDITION,)
AUDIO_CONDITIONS = ('original', 'shuffled') + EMPTY_GT_CONDITIONS


class _AudioWrapper:
    """Shared part of the audio wrappers: lazy init, metainfo, pipeline, off-screen donors, replacing audio."""

    def __init__(self, dataset: Union[BaseDataset, dict], lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self._metainfo = self.dataset.metainfo
        self._fully_initialized = False
        self._pool: Optional[OffscreenPool] = None
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    @property
    def pipeline(self):
        return self.dataset.pipeline

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self._init()
        self._fully_initialized = True

    def _init(self) -> None:
        """Wrapper-specific initialisation after the wrapped dataset is loaded."""

    def __len__(self) -> int:
        self.full_init()
        return len(self.dataset)

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        return self.dataset.get_data_info(idx)

    def _load_audio(self, idx: int, num: int) -> np.ndarray:
        """``(num, 1, 96, 64)`` audio of clip ``idx`` through the pipeline's ``LoadAVSAudio``."""
        from ..transforms.loading import LoadAVSAudio

        loader = (
            next((t for t in getattr(self.pipeline, 'transforms', []) if isinstance(t, LoadAVSAudio)), None)
            or LoadAVSAudio()
        )
        path = self.dataset.get_data_info(idx)['audio_path']
        return loader.transform(dict(audio_path=path, num_frames=num))['audio']

    def _offscreen_audio(
        self, rng: np.random.Generator, idx: int, seconds: Sequence[int], num: int
    ) -> Dict[int, np.ndarray]:
        """Off-screen examples ``{t: (1, 96, 64)}`` for the given seconds of clip ``idx`` (donors drawn by rng)."""
        donors = OffscreenPool.draw(rng, self._pool.candidates(idx), len(seconds))
        cache: Dict[int, np.ndarray] = {}
        out = {}
        for t, (j, s) in zip(seconds, donors):
            if j not in cache:
                cache[j] = self._load_audio(j, num)
            out[t] = cache[j][s]
        return out

    @staticmethod
    def _apply(packed: dict, replacement: Dict[int, np.ndarray], condition: Sequence[str], supervise: bool) -> dict:
        """Put the ``replacement`` audio ``{t: (1, 96, 64)}`` into a packed clip and empty those frames' targets.

        Padded frames (``frame_valid`` 0) are left alone. Replaced frames get metainfo ``sounding`` 0 (nothing
        visible sounds: the presence target, also where the mask is not supervised). ``supervise``: replaced frames
        without a label (``gt_valid`` 0, e.g. S4 training frames 2-5) get their mask supervised too, since their
        target, empty, is known.
        """
        sample = packed['data_samples']
        meta = sample.metainfo
        num = packed['audio'].shape[0]
        frame_valid = list(meta.get('frame_valid', [1] * num))
        replaced = [0] * num
        audio = packed['audio'].clone()
        gt = sample.gt_sem_seg.data.clone() if 'gt_sem_seg' in sample else None
        gt_valid = list(meta.get('gt_valid', [1] * num))
        sounding = list(meta.get('sounding', [-1] * num))
        for t, example in replacement.items():
            if not frame_valid[t]:
                continue
            audio[t] = torch.as_tensor(example, dtype=audio.dtype)
            replaced[t] = 1
            sounding[t] = 0
            if gt is not None:
                gt[t] = 0
                if supervise:
                    gt_valid[t] = 1
        packed['audio'] = audio
        if gt is not None:
            sample.gt_sem_seg.data = gt
        sample.set_metainfo(
            dict(audio_condition=list(condition), audio_replaced=replaced, gt_valid=gt_valid, sounding=sounding)
        )
        return packed
