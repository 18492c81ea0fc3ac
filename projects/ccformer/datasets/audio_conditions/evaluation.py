"""Evaluation under one audio condition: :class:`AudioConditionDataset` and :class:`AudioSwapDataset`.

``tools/test.py --audio-condition`` and ``tools/analysis_tools/robustness.py`` wrap the test set in them; the
conditions are described in :mod:`projects.ccformer.datasets.audio_conditions`.
"""

import logging
from typing import FrozenSet, List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from ..sound_bank import SoundBank, build_sound_bank
from .base import AUDIO_CONDITIONS, EMPTY_GT_CONDITIONS, RECORDED_CONDITION, _AudioWrapper
from .clip_kinds import OffscreenPool, _kinds_error, base_dataset, dataset_clip_kinds, visible_bank_kinds
from .synthesis import noise_logmel, silence_logmel

EVAL_NOISE_DBFS = -20.0


def derangement(n: int, seed: int = 0) -> List[int]:
    """Return a seeded permutation ``p`` of ``range(n)`` with ``p[i] != i`` for every ``i`` (``n >= 2``).

    A random permutation is drawn and each fixed point is swapped with its successor; a swap never creates a new
    fixed point, so the result is a derangement.
    """
    if n < 2:
        raise ValueError(f'derangement needs at least 2 items to swap audio between clips, got {n}')
    perm = np.random.RandomState(seed).permutation(n)
    for i in range(n):
        if perm[i] == i:
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    assert all(int(p) != i for i, p in enumerate(perm))
    return [int(p) for p in perm]


@DATASETS.register_module()
class AudioConditionDataset(_AudioWrapper):
    """Evaluate under one audio condition (module docstring): every clip of ``dataset`` is heard with it.

    ``original`` and ``shuffled`` keep the ground truth; ``silence``, ``noise``, ``offscreen`` and
    ``offscreen_recorded`` replace the audio of every real frame and empty every frame's ground truth.
    ``offscreen`` takes each second from a second of another clip in which only kinds not visible in this clip are
    audible (:class:`OffscreenPool`). ``offscreen_recorded`` takes each second from a window of a recording of
    ``sound_bank`` (:meth:`SoundBank.draw_logmel`); where the clip's visible kinds are known
    (:func:`dataset_clip_kinds`) and the bank's recordings have kinds (sub-folders), recordings of a kind visible in
    the clip are left out (names compared by :func:`kind_key`; AVSS class indices through the dataset's class
    names), and a clip for which nothing is left is skipped with a warning. Donors, noise and recordings are seeded
    by ``(seed, index)``. Added metainfo: ``audio_condition`` (T names), ``audio_replaced`` (T flags),
    ``audio_sources`` (``offscreen_recorded``: the bank file of each frame, ``''`` for padded frames); for
    ``shuffled`` the data info's ``audio_video_id`` names the donor clip.

    Args:
        dataset (BaseDataset | dict): the wrapped dataset (config or instance).
        condition (str): one of ``AUDIO_CONDITIONS``.
        seed (int): seed of donors and noise. Defaults to 0.
        noise_dbfs (float): RMS level of the ``noise`` condition in dB re full scale. Defaults to -20.
        sound_bank (str | dict | SoundBank, optional): the recordings of ``offscreen_recorded`` (a folder, a dict
            of :class:`SoundBank` arguments, or a bank); needed by that condition only.
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(
        self,
        dataset: Union[BaseDataset, dict],
        condition: str = 'original',
        seed: int = 0,
        noise_dbfs: float = EVAL_NOISE_DBFS,
        sound_bank: Optional[Union[str, dict, SoundBank]] = None,
        lazy_init: bool = False,
    ) -> None:
        if condition not in AUDIO_CONDITIONS:
            raise ValueError(f'audio condition {condition!r} is unknown; use one of {AUDIO_CONDITIONS}')
        if (condition == RECORDED_CONDITION) != (sound_bank is not None):
            raise ValueError(
                f'AudioConditionDataset: condition {RECORDED_CONDITION!r} needs sound_bank (a folder of recordings, '
                f'tools: --offscreen-audio DIR) and the other conditions take none; got condition {condition!r}, '
                f'sound_bank={sound_bank!r}'
            )
        self.condition, self.seed, self.noise_dbfs = condition, seed, float(noise_dbfs)
        self.sound_bank = None if sound_bank is None else build_sound_bank(sound_bank)
        self._perm: List[int] = []
        self._indices: List[int] = []  # offscreen(_recorded): the clips that have donor seconds / recordings
        self._exclude: List[FrozenSet[str]] = []  # offscreen_recorded: bank kinds left out, per clip
        super().__init__(dataset, lazy_init=lazy_init)

    def _skips_clips(self) -> bool:
        return self.condition in ('offscreen', RECORDED_CONDITION)

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices) if self._skips_clips() else len(self.dataset)

    def _clip(self, idx: int) -> int:
        return self._indices[idx] if self._skips_clips() else int(idx)

    def _init(self) -> None:
        n = len(self.dataset)
        if self.condition == 'shuffled':
            self._perm = derangement(n, self.seed)
        elif self.condition == 'offscreen':
            self._pool = OffscreenPool(dataset_clip_kinds(self.dataset))
            skipped = []
            for idx in range(n):
                vid = self.dataset.get_data_info(idx)['video_id']
                if self._pool.kinds[idx] is None:
                    raise _kinds_error(base_dataset(self.dataset), f'what clip {vid!r} shows is unknown')
                if self._pool.has_donor(idx):
                    self._indices.append(idx)
                else:
                    skipped.append(vid)
            if not self._indices:
                raise _kinds_error(
                    base_dataset(self.dataset), 'no second of any other clip sounds only off screen for any clip'
                )
            if skipped:
                print_log(
                    f'AudioConditionDataset: off-screen sound leaves out {len(skipped)} of {n} clips whose '
                    f'visible kinds cover every sound of the other clips (first: {skipped[0]!r})',
                    logger='current',
                    level=logging.WARNING,
                )
        elif self.condition == RECORDED_CONDITION:
            self._init_recorded(n)

    def _init_recorded(self, n: int) -> None:
        bank = self.sound_bank
        named = [k for k in bank.kinds if k]
        kinds = dataset_clip_kinds(self.dataset) if named else [None] * n
        classes = self.dataset.metainfo.get('classes')
        unknown, skipped = 0, []
        for idx in range(n):
            exclude = visible_bank_kinds(bank, kinds[idx], classes)
            unknown += exclude is None
            exclude = exclude or frozenset()
            if set(bank.kinds) <= exclude:
                skipped.append(self.dataset.get_data_info(idx)['video_id'])
                continue
            self._indices.append(idx)
            self._exclude.append(exclude)
        if not self._indices:
            raise ValueError(
                f'AudioConditionDataset: every recording of {bank.root!r} (kinds {named}) is of a kind visible in '
                f'every clip; give recordings of things that are not on screen'
            )
        if not named:
            print_log(
                f'AudioConditionDataset: the recordings of {bank.root!r} have no kinds (no sub-folders), so none '
                f'can be left out where its kind is visible; make sure they are of things not on screen',
                logger='current',
                level=logging.WARNING,
            )
        elif unknown:
            print_log(
                f'AudioConditionDataset: what {unknown} of {n} clips show is unknown (no clip_kinds.json, S4 '
                f'category or AVSS labels), so no recording is left out there; make sure {bank.root!r} holds only '
                f'things not on screen',
                logger='current',
                level=logging.WARNING,
            )
        if skipped:
            print_log(
                f'AudioConditionDataset: off-screen recordings leave out {len(skipped)} of {n} clips that show '
                f'every kind of {bank.root!r} (first: {skipped[0]!r})',
                logger='current',
                level=logging.WARNING,
            )

    def get_data_info(self, idx: int) -> dict:
        """Data info of clip ``idx``; ``audio_path`` is the donor's for ``shuffled``."""
        self.full_init()
        idx = self._clip(idx)
        info = super().get_data_info(idx)
        if self._perm:
            donor = self.dataset.get_data_info(self._perm[idx])
            info['audio_path'] = donor['audio_path']
            info['audio_video_id'] = donor.get('video_id')
        return info

    def __getitem__(self, idx: int) -> dict:
        packed = self.dataset.pipeline(self.get_data_info(idx))
        if self.condition not in EMPTY_GT_CONDITIONS:
            return packed
        num = packed['audio'].shape[0]
        rng = np.random.default_rng([self.seed, idx])
        sources = None
        if self.condition == 'silence':
            replacement = dict(enumerate(silence_logmel(num)))
        elif self.condition == 'noise':
            replacement = dict(enumerate(noise_logmel(rng, num, self.noise_dbfs)))
        elif self.condition == RECORDED_CONDITION:
            examples, draws = self.sound_bank.draw_logmel_with_sources(rng, num, exclude=self._exclude[idx])
            replacement = dict(enumerate(examples))
            sources = [d.path for d in draws]
        else:
            replacement = self._offscreen_audio(rng, self._clip(idx), range(num), num)
        packed = self._apply(packed, replacement, [self.condition] * num, supervise=False)
        if sources is not None:
            replaced = packed['data_samples'].metainfo['audio_replaced']
            packed['data_samples'].set_metainfo(dict(audio_sources=[s if r else '' for s, r in zip(sources, replaced)]))
        return packed


@DATASETS.register_module()
class AudioSwapDataset(AudioConditionDataset):
    """Clip ``i`` is heard with the audio of clip ``perm[i]`` (a seeded derangement); the ground truth is kept.

    ``AudioConditionDataset(condition='shuffled')``; used by ``tools/test.py --shuffle-audio SEED``.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], seed: int = 0, lazy_init: bool = False) -> None:
        super().__init__(dataset, condition='shuffled', seed=seed, lazy_init=lazy_init)
