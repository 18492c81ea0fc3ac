"""Negative-audio training: :class:`NegativeAudioDataset` wraps the train set and replaces some seconds' audio
with silence, noise, off-screen sound or real recordings of things not on screen, emptying their targets; it can
also change the level and background of every second (:class:`~.augment.LogmelAugment`)."""

import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from ..sound_bank import SoundBank, build_sound_bank
from .augment import LogmelAugment
from .base import NEGATIVE_CONDITIONS, RECORDED_CONDITION, _AudioWrapper
from .clip_kinds import OffscreenPool, _kinds_error, base_dataset, dataset_clip_kinds, visible_bank_kinds
from .synthesis import NOISE_COLORS, noise_logmel, silence_logmel


@DATASETS.register_module()
class NegativeAudioDataset(_AudioWrapper):
    """Negative-audio training: some clips, or some seconds of them, are heard with silence, noise or off-screen
    sound, and those frames' targets become empty (AVSS: background).

    Each draw is seeded by ``(seed, s)``, where ``s`` is the sample seed that
    :class:`~projects.ccformer.datasets.samplers.SeededSampler` (the configs' train sampler) derives from (sampler
    seed, epoch, index): new draws every epoch, the same draws after a resume, in any worker. With a sampler that
    yields plain indices the draw is seeded by ``(seed, idx)`` and repeats every epoch.

    * with probability ``prob`` the clip is changed, else it is left as it is;
    * a changed clip has all its real frames replaced with probability ``whole_clip_prob``, else a random
      non-empty proper subset of its seconds (1 to T - 1 of them);
    * with ``spare_labelled`` (default), a clip that has unlabelled real frames (S4 and AVSS v1s training: one
      label per clip) keeps the audio of its labelled frames, whose masks are its only segmentation supervision;
      the drawn plan is applied to its unlabelled frames only. Clips labelled in every frame (MS3) are unaffected;
    * replaced frames get empty targets and the presence target "nothing sounds" (metainfo ``sounding`` 0); those
      that had a label stay supervised, the masks of unlabelled ones only with ``supervise_unlabelled``;
    * each replaced second draws its condition from ``conditions`` (relative weights): silence; noise (one of
      ``noise_colors``, white or pink by default, RMS uniform in ``noise_dbfs`` dB re full scale); off-screen sound,
      a second of another clip in which only kinds not visible in this clip are audible (:class:`OffscreenPool`);
      or ``offscreen_recorded``, a window of a real recording of ``sound_bank`` (:class:`~..sound_bank.SoundBank`:
      one sub-folder per kind of things never on screen, e.g. ESC-50 / AudioSet clips sorted by class; recordings
      whose kind is visible in the clip are left out). Off-screen is dropped (with a warning) when the kinds are unknown
      (:func:`dataset_clip_kinds`), and for a clip without any donor second;
    * with ``audio_augment`` every real second, replaced or not, then gets a random level, a background window
      of ``sound_bank`` mixed in under it, time / frequency masks and, when ``eq_db`` / ``tilt_db`` are set, a
      random spectral colouring (:class:`~.augment.LogmelAugment`), so the model hears each kind through more than
      the recordings it was given.

    The replaced frames are flagged in the metainfo ``audio_replaced`` (T flags); ``CCFormer`` leaves them out of
    BCL (their audio does not belong to their frame). The wrapped dataset loads the clip (``dataset[idx]``, so its
    own seeded augmentation applies) before the audio is replaced.

    Args:
        dataset (BaseDataset | dict): the wrapped training dataset.
        prob (float): share of clips that get negative audio. Defaults to 0.5.
        whole_clip_prob (float): share of those whose every second is replaced. Defaults to 0.5.
        conditions (dict): relative weights of ``silence``, ``noise``, ``offscreen`` and ``offscreen_recorded``.
            Defaults to equal weights (``offscreen_recorded`` only with a ``sound_bank``).
        noise_dbfs (tuple[float, float]): range of the noise RMS level. Defaults to (-45, -10).
        noise_colors (Sequence[str]): the kinds of noise, drawn in equal parts: ``'white'``, ``'pink'`` and
            ``'ambient'`` (random colour, spectral shape, level contour and hum: what a scene sounds like when
            nothing in it calls; :func:`~.synthesis.ambient_wave`). Defaults to ('white', 'pink').
        supervise_unlabelled (bool): also supervise replaced frames that have no label (S4 training labels frame 1
            only). Off by default: on S4 the empty targets of frames 2-5 would outnumber the labelled positives
            about 3 to 1 and the model learns to predict nothing (docs/robustness.md).
        spare_labelled (bool): in clips with unlabelled real frames, replace only those (see above). Defaults to
            True.
        sound_bank (str | dict | SoundBank, optional): real recordings of things never on screen, for
            ``offscreen_recorded`` and the background of ``audio_augment``: a folder (``assets:recorded/bank``:
            the one shipped with the package), a dict of :class:`SoundBank` arguments or a bank. Defaults to None.
        audio_augment (dict, optional): arguments of :class:`~.augment.LogmelAugment`; None (default) leaves the
            audio as it is.
        seed (int): seed of all draws. Defaults to 0.
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(
        self,
        dataset: Union[BaseDataset, dict],
        prob: float = 0.5,
        whole_clip_prob: float = 0.5,
        conditions: Optional[Dict[str, float]] = None,
        noise_dbfs: Tuple[float, float] = (-45.0, -10.0),
        noise_colors: Sequence[str] = ('white', 'pink'),
        supervise_unlabelled: bool = False,
        spare_labelled: bool = True,
        sound_bank: Optional[Union[str, dict, SoundBank]] = None,
        audio_augment: Optional[dict] = None,
        seed: int = 0,
        lazy_init: bool = False,
    ) -> None:
        if conditions is None:
            conditions = dict(silence=1.0, noise=1.0, offscreen=1.0)
            if sound_bank is not None:
                conditions[RECORDED_CONDITION] = 1.0
        conditions = dict(conditions)
        known = NEGATIVE_CONDITIONS + (RECORDED_CONDITION,)
        unknown = set(conditions) - set(known)
        if unknown:
            raise ValueError(f'NegativeAudioDataset: unknown condition(s) {sorted(unknown)}; use {known}')
        if conditions.get(RECORDED_CONDITION, 0) > 0 and sound_bank is None:
            raise ValueError(
                f'NegativeAudioDataset: condition {RECORDED_CONDITION} needs recordings of things never on screen: '
                f'set sound_bank to a folder with one sub-folder per kind (e.g. ESC-50 clips sorted by class, or '
                f"'assets:recorded/bank', the one shipped with the package)"
            )
        if not 0 <= prob <= 1 or not 0 <= whole_clip_prob <= 1:
            raise ValueError(
                f'NegativeAudioDataset: prob={prob} and whole_clip_prob={whole_clip_prob} must be in [0, 1]'
            )
        if any(w < 0 for w in conditions.values()) or sum(conditions.values()) <= 0:
            raise ValueError(
                f'NegativeAudioDataset: condition weights must be >= 0 with a positive sum, got {conditions}'
            )
        self.prob, self.whole_clip_prob, self.seed = float(prob), float(whole_clip_prob), int(seed)
        self.conditions = conditions
        self.noise_dbfs = (float(noise_dbfs[0]), float(noise_dbfs[1]))
        if isinstance(noise_colors, str) or not noise_colors or set(noise_colors) - set(NOISE_COLORS):
            raise ValueError(
                f'NegativeAudioDataset: noise_colors must be a non-empty list of {NOISE_COLORS} (e.g. '
                f"['white', 'pink', 'ambient']; a single colour as a list: ['ambient']), got {noise_colors!r}"
            )
        self.noise_colors = tuple(str(c) for c in noise_colors)
        self.supervise_unlabelled = bool(supervise_unlabelled)
        self.spare_labelled = bool(spare_labelled)
        self.sound_bank = None if sound_bank is None else build_sound_bank(sound_bank)
        self.audio_augment = None if audio_augment is None else LogmelAugment(**audio_augment)
        self._has_donor: List[bool] = []
        self._bank_exclude: List[Optional[frozenset]] = []
        super().__init__(dataset, lazy_init=lazy_init)

    def _init(self) -> None:
        n = len(self.dataset)
        self._has_donor = [False] * n
        if self.conditions.get('offscreen', 0) > 0:
            kinds = dataset_clip_kinds(self.dataset)
            if all(k is None for k in kinds):
                print_log(
                    f'NegativeAudioDataset: {_kinds_error(base_dataset(self.dataset), "no clip has kinds")}'
                    f' Training without off-screen sound.',
                    logger='current',
                    level=logging.WARNING,
                )
            else:
                self._pool = OffscreenPool(kinds)
                self._has_donor = [self._pool.has_donor(i) for i in range(n)]
        if self.sound_bank is not None:
            self._init_bank(n)

    def _init_bank(self, n: int) -> None:
        """Per clip, the bank kinds to leave out (visible in it; None: every kind is visible, no recording fits)."""
        bank = self.sound_bank
        named = [k for k in bank.kinds if k]
        kinds = dataset_clip_kinds(self.dataset) if named else [None] * n
        classes = self.dataset.metainfo.get('classes')
        self._bank_exclude = []
        unknown = 0
        for idx in range(n):
            exclude = visible_bank_kinds(bank, kinds[idx], classes)
            unknown += exclude is None and bool(named)
            exclude = exclude or frozenset()
            self._bank_exclude.append(None if set(bank.kinds) <= exclude else exclude)
        if not named or unknown:
            print_log(
                f'NegativeAudioDataset: what {unknown if named else n} of {n} clips show is unknown to the sound bank '
                f'{bank.root!r} ({"no kind sub-folders" if not named else "no clip kinds"}), so none of its '
                f'recordings can be left out there; it must hold only things that are never on screen',
                logger='current',
                level=logging.WARNING,
            )

    def _entropy(self, idx: int) -> List[int]:
        """Seed material of sample ``idx``: the sampler's per-sample seed when it gives one."""
        seed = getattr(idx, 'seed', None)
        return [self.seed, 1, int(seed)] if seed is not None else [self.seed, 0, int(idx)]

    def plan(self, idx: int, num_frames: int) -> List[Optional[str]]:
        """Condition of each second of clip ``idx`` (None = its own audio); a function of the seeds only."""
        rng = np.random.default_rng(self._entropy(idx))
        if rng.random() >= self.prob:
            return [None] * num_frames
        if num_frames == 1 or rng.random() < self.whole_clip_prob:
            seconds = list(range(num_frames))
        else:
            size = int(rng.integers(1, num_frames))
            seconds = sorted(int(s) for s in rng.choice(num_frames, size=size, replace=False))
        names = [
            c
            for c in NEGATIVE_CONDITIONS + (RECORDED_CONDITION,)
            if self.conditions.get(c, 0) > 0
            and (c != 'offscreen' or self._has_donor[int(idx)])
            and (c != RECORDED_CONDITION or self._bank_exclude[int(idx)] is not None)
        ] or ['silence']
        weights = np.array([self.conditions.get(c, 1.0) for c in names], dtype=np.float64)
        drawn = rng.choice(len(names), size=len(seconds), p=weights / weights.sum())
        out: List[Optional[str]] = [None] * num_frames
        for s, k in zip(seconds, drawn):
            out[s] = names[int(k)]
        return out

    @staticmethod
    def _spare_labelled(plan: List[Optional[str]], meta: dict) -> List[Optional[str]]:
        """``plan`` without its labelled frames when the clip has an unlabelled real frame."""
        num = len(plan)
        gt_valid = meta.get('gt_valid', [1] * num)
        frame_valid = meta.get('frame_valid', [1] * num)
        if all(g or not f for g, f in zip(gt_valid, frame_valid)):
            return plan
        return [None if g else c for c, g in zip(plan, gt_valid)]

    def __getitem__(self, idx: int) -> dict:
        self.full_init()
        packed = self.dataset[idx]
        num = packed['audio'].shape[0]
        plan = self.plan(idx, num)
        if self.spare_labelled:
            plan = self._spare_labelled(plan, packed['data_samples'].metainfo)
        if any(plan):
            rng = np.random.default_rng(self._entropy(idx) + [1])
            replacement = {}
            for t, cond in enumerate(plan):
                if cond == 'silence':
                    replacement[t] = silence_logmel(1)[0]
                elif cond == 'noise':
                    color = self.noise_colors[int(rng.random() * len(self.noise_colors))]
                    replacement[t] = noise_logmel(rng, 1, rng.uniform(*self.noise_dbfs), color)[0]
                elif cond == RECORDED_CONDITION:
                    replacement[t] = self.sound_bank.draw_logmel(rng, 1, exclude=self._bank_exclude[int(idx)])[0]
            offscreen = [t for t, cond in enumerate(plan) if cond == 'offscreen']
            if offscreen:
                replacement.update(self._offscreen_audio(rng, int(idx), offscreen, num))
            packed = self._apply(
                packed, replacement, [c or 'original' for c in plan], supervise=self.supervise_unlabelled
            )
        if self.audio_augment is not None:
            self._augment(packed, int(idx), self._entropy(idx) + [2])
        return packed

    def _augment(self, packed: dict, idx: int, entropy: List[int]) -> None:
        """:class:`~.augment.LogmelAugment` on every real second of a packed clip (in place)."""
        rng = np.random.default_rng(entropy)
        audio = packed['audio']
        frame_valid = packed['data_samples'].metainfo.get('frame_valid', [1] * audio.shape[0])
        exclude = self._bank_exclude[idx] if self.sound_bank is not None else None
        out = audio.clone()
        for t in range(audio.shape[0]):
            if not frame_valid[t]:
                continue
            background = None
            if exclude is not None and self.audio_augment.mix_prob > 0:
                background = self.sound_bank.draw_logmel(rng, 1, exclude=exclude)[0]
            example = self.audio_augment(rng, audio[t].numpy(), background)
            out[t] = torch.as_tensor(example, dtype=audio.dtype)
        packed['audio'] = out
