"""Audio conditions: play a clip with its own sound, another clip's sound, silence, noise or off-screen sound.

Evaluation (:class:`AudioConditionDataset`, ``tools/test.py --audio-condition``) and training
(:class:`NegativeAudioDataset`) wrap an AVS dataset and change only the audio a clip is heard with, and the ground
truth where nothing on screen can be heard any more.

Conditions (``AUDIO_CONDITIONS``):

* ``original``: the clip's own audio.
* ``shuffled``: the audio of another clip (seeded derangement); the ground truth is kept. Measures how much the
  model listens (its sounding objects may be visible here too).
* ``silence``: what a digitally silent wav gives through the VGGish front end (``log(0 + 0.01)`` in every bin).
* ``noise``: Gaussian white noise at ``noise_dbfs`` RMS relative to full scale (evaluation default
  ``EVAL_NOISE_DBFS`` = -20 dBFS, i.e. RMS 0.1 on the [-1, 1] scale), through the same front end.
* ``offscreen``: the audio of another clip none of whose audible kinds is visible in this clip (see
  :func:`dataset_clip_kinds` for where the kinds come from).

``silence``, ``noise`` and ``offscreen`` are *negative* conditions: nothing on screen makes the sound, so every
frame's ground truth becomes empty (AVSS: background) and the metrics' empty-ground-truth false-positive rates are
the figures to read.
"""

import copy
import functools
import json
import logging
import os.path as osp
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from .audio import EXAMPLE_FRAMES, HOP_LENGTH, SAMPLE_RATE, WINDOW_LENGTH, waveform_to_logmel
from .toy import KINDS_FILE  # noqa: F401 (re-exported: the file name)

AUDIO_CONDITIONS = ('original', 'shuffled', 'silence', 'noise', 'offscreen')
NEGATIVE_CONDITIONS = ('silence', 'noise', 'offscreen')
EVAL_NOISE_DBFS = -20.0

Kinds = Tuple[FrozenSet[str], Tuple[FrozenSet[str], ...]]  # (visible, audible in each second)


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


# ----------------------------------------------------------------------------------------------------------------
# log-mel examples of silence and noise


def _samples_for(num: int) -> int:
    """Waveform length whose VGGish framing gives exactly ``num`` 0.96 s examples."""
    return (num * EXAMPLE_FRAMES - 1) * HOP_LENGTH + WINDOW_LENGTH


def silence_logmel(num: int) -> np.ndarray:
    """``(num, 1, 96, 64)`` float32: the front end's log-mel examples of a digitally silent wav."""
    return np.repeat(_silent_example()[None], num, axis=0)


@functools.lru_cache(maxsize=1)
def _silent_example() -> np.ndarray:
    example = waveform_to_logmel(np.zeros(_samples_for(1)), SAMPLE_RATE)[0, None].astype(np.float32)
    example.setflags(write=False)
    return example


def noise_logmel(rng: np.random.Generator, num: int, dbfs: float, color: str = 'white') -> np.ndarray:
    """``(num, 1, 96, 64)`` float32 log-mel examples of Gaussian noise with RMS ``10 ** (dbfs / 20)``.

    ``color='white'`` (flat spectrum) or ``'pink'`` (power falling as 1/f, shaped in the Fourier domain).
    """
    n = _samples_for(num)
    wave = rng.standard_normal(n)
    if color == 'pink':
        spec = np.fft.rfft(wave)
        freqs = np.fft.rfftfreq(n)
        spec[1:] /= np.sqrt(freqs[1:] / freqs[1])
        wave = np.fft.irfft(spec, n)
    elif color != 'white':
        raise ValueError(f"noise color must be 'white' or 'pink', got {color!r}")
    wave *= 10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(wave**2))), 1e-12)
    examples = waveform_to_logmel(np.clip(wave, -1.0, 1.0), SAMPLE_RATE)
    return examples[:num, None].astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# what each clip shows and sounds (for off-screen donors)


def _base_dataset(dataset):
    while hasattr(dataset, 'dataset') and not hasattr(dataset, 'load_data_list'):
        dataset = dataset.dataset
    return dataset


def load_kinds_file(path: str) -> Dict[str, dict]:
    """Read a ``clip_kinds.json``: ``{video_id: {"visible": [kinds], "audible": [kinds] | [[kinds] per second]}}``."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(
            f'{path}: not valid JSON ({err}); expected {{video_id: {{"visible": [...], "audible": [...]}}}}'
        ) from err
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: expected a JSON object {{video_id: {{"visible": [...], "audible": [...]}}}}')
    for vid, entry in raw.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get('visible'), list)
            and isinstance(entry.get('audible'), list)
        ):
            raise ValueError(
                f'{path}: entry {vid!r} must be {{"visible": [kinds], "audible": [kinds] or '
                f'[[kinds of second 1], ...]}}, got {entry!r}'
            )
    return raw


def _kinds(visible, audible, num_frames: int) -> Kinds:
    """``(visible set, audible set per second)``; ``audible`` is one list for the whole clip or one per second."""
    if audible and all(isinstance(a, (list, tuple, set, frozenset)) for a in audible):
        per_second = [frozenset(map(str, a)) for a in audible][:num_frames]
        per_second += [frozenset()] * (num_frames - len(per_second))
    else:
        per_second = [frozenset(map(str, audible))] * num_frames
    return frozenset(map(str, visible)), tuple(per_second)


def _avss_kinds(info: dict) -> Kinds:
    """AVSS: the classes of each label map are what sounds in that second; unlabelled seconds of a clip (v1s
    train) take the classes of its labelled ones (one source all clip long)."""
    from .transforms.loading import LoadAVSMasks

    loader = LoadAVSMasks(label_type='palette')
    per_second = []
    for path in info['mask_paths']:
        per_second.append(
            None if path is None else frozenset(str(int(c)) for c in np.unique(loader._load_one(path)) if c != 0)
        )
    labelled = frozenset().union(*[c for c in per_second if c is not None])
    frame_valid = info.get('frame_valid', [1] * len(per_second))
    per_second = [frozenset() if not v else (labelled if c is None else c) for c, v in zip(per_second, frame_valid)]
    return labelled, tuple(per_second)


def dataset_clip_kinds(dataset) -> List[Optional[Kinds]]:
    """``(visible kinds, audible kinds of each second)`` of every clip of ``dataset`` (None where unknown).

    Sources, first match wins:

    1. ``<data_root>/clip_kinds.json`` (written by the toy generator; write one for your own data);
    2. S4: the CSV ``category`` is what is seen and what is heard in every second (one sounding category per
       video);
    3. AVSS: the classes present in each label map (the sounding objects of that second) are heard, and all of
       the clip's labelled classes are seen;
    4. otherwise (MS3, whose CSV has no categories): unknown.
    """
    from .avsbench import AVSBenchS4Dataset, AVSSDataset

    base = _base_dataset(dataset)
    root = getattr(base, 'data_root', None)
    path = osp.join(root, KINDS_FILE) if root else None
    table = load_kinds_file(path) if path and osp.isfile(path) else None
    out: List[Optional[Kinds]] = []
    for idx in range(len(base)):
        info = base.get_data_info(idx)
        num = int(info.get('num_frames', len(info['frame_paths'])))
        if table is not None:
            entry = table.get(info['video_id'])
            out.append(None if entry is None else _kinds(entry['visible'], entry['audible'], num))
        elif isinstance(base, AVSBenchS4Dataset) and info.get('category'):
            out.append(_kinds([info['category']], [info['category']], num))
        elif isinstance(base, AVSSDataset):
            out.append(_avss_kinds(info))
        else:
            out.append(None)
    return out


class OffscreenPool:
    """Donor seconds for off-screen sound: ``(clip, second)`` pairs grouped by the kinds audible in them.

    A donor second for clip i is a second of another clip in which something is audible and none of the audible
    kinds is visible in clip i. Grouping by audible set keeps the search cheap for large datasets.
    """

    def __init__(self, kinds: Sequence[Optional[Kinds]]) -> None:
        self.kinds = list(kinds)
        groups: Dict[FrozenSet[str], List[Tuple[int, int]]] = {}
        for j, k in enumerate(self.kinds):
            if k is None:
                continue
            for s, audible in enumerate(k[1]):
                if audible:
                    groups.setdefault(audible, []).append((j, s))
        self.groups = groups
        self._clips = {audible: {j for j, _ in members} for audible, members in groups.items()}

    def has_donor(self, idx: int) -> bool:
        """Whether clip ``idx`` has any donor second; O(number of groups), not of donor seconds."""
        if self.kinds[idx] is None:
            return False
        visible = self.kinds[idx][0]
        return any(
            not (audible & visible) and (len(clips) > 1 or idx not in clips) for audible, clips in self._clips.items()
        )

    def candidates(self, idx: int) -> List[List[Tuple[int, int]]]:
        """Groups of donor seconds for clip ``idx`` (empty when its kinds are unknown or nothing qualifies)."""
        if self.kinds[idx] is None:
            return []
        visible = self.kinds[idx][0]
        return [
            [(j, s) for j, s in members if j != idx]
            for audible, members in self.groups.items()
            if not (audible & visible)
        ]

    @staticmethod
    def draw(rng: np.random.Generator, groups: List[List[Tuple[int, int]]], num: int) -> List[Tuple[int, int]]:
        """``num`` donor seconds drawn uniformly over all candidate seconds."""
        flat = [m for g in groups for m in g]
        return [flat[int(i)] for i in rng.integers(len(flat), size=num)]


def _kinds_error(base, what: str) -> ValueError:
    return ValueError(
        f'{type(base).__name__} ({getattr(base, "data_root", "")}): {what}. Off-screen sound needs to know what '
        f'each clip shows and sounds: S4 reads the CSV category, AVSS the label maps; for other data write '
        f'{KINDS_FILE} in the data root as {{video_id: {{"visible": [kinds], "audible": [kinds]}}}} '
        f'(the toy generator writes one).'
    )


# ----------------------------------------------------------------------------------------------------------------
# dataset wrappers


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
        from .transforms.loading import LoadAVSAudio

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


@DATASETS.register_module()
class AudioConditionDataset(_AudioWrapper):
    """Evaluate under one audio condition (module docstring): every clip of ``dataset`` is heard with it.

    ``original`` and ``shuffled`` keep the ground truth; ``silence``, ``noise`` and ``offscreen`` replace the audio
    of every real frame and empty every frame's ground truth. ``offscreen`` takes each second from a second of
    another clip in which only kinds not visible in this clip are audible (:class:`OffscreenPool`). Donors and
    noise are seeded by ``(seed, index)``. Added metainfo: ``audio_condition`` (T names), ``audio_replaced``
    (T flags); for ``shuffled`` the data info's ``audio_video_id`` names the donor clip.

    Args:
        dataset (BaseDataset | dict): the wrapped dataset (config or instance).
        condition (str): one of ``AUDIO_CONDITIONS``.
        seed (int): seed of donors and noise. Defaults to 0.
        noise_dbfs (float): RMS level of the ``noise`` condition in dB re full scale. Defaults to -20.
        lazy_init (bool): defer loading the annotations. Defaults to False.
    """

    def __init__(
        self,
        dataset: Union[BaseDataset, dict],
        condition: str = 'original',
        seed: int = 0,
        noise_dbfs: float = EVAL_NOISE_DBFS,
        lazy_init: bool = False,
    ) -> None:
        if condition not in AUDIO_CONDITIONS:
            raise ValueError(f'audio condition {condition!r} is unknown; use one of {AUDIO_CONDITIONS}')
        self.condition, self.seed, self.noise_dbfs = condition, seed, float(noise_dbfs)
        self._perm: List[int] = []
        self._indices: List[int] = []  # offscreen: the clips that have donor seconds
        super().__init__(dataset, lazy_init=lazy_init)

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices) if self.condition == 'offscreen' else len(self.dataset)

    def _clip(self, idx: int) -> int:
        return self._indices[idx] if self.condition == 'offscreen' else int(idx)

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
                    raise _kinds_error(_base_dataset(self.dataset), f'what clip {vid!r} shows is unknown')
                if self._pool.has_donor(idx):
                    self._indices.append(idx)
                else:
                    skipped.append(vid)
            if not self._indices:
                raise _kinds_error(
                    _base_dataset(self.dataset), 'no second of any other clip sounds only off screen for any clip'
                )
            if skipped:
                print_log(
                    f'AudioConditionDataset: off-screen sound leaves out {len(skipped)} of {n} clips whose '
                    f'visible kinds cover every sound of the other clips (first: {skipped[0]!r})',
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
        if self.condition not in NEGATIVE_CONDITIONS:
            return packed
        num = packed['audio'].shape[0]
        rng = np.random.default_rng([self.seed, idx])
        if self.condition == 'silence':
            replacement = dict(enumerate(silence_logmel(num)))
        elif self.condition == 'noise':
            replacement = dict(enumerate(noise_logmel(rng, num, self.noise_dbfs)))
        else:
            replacement = self._offscreen_audio(rng, self._clip(idx), range(num), num)
        return self._apply(packed, replacement, [self.condition] * num, supervise=False)


@DATASETS.register_module()
class AudioSwapDataset(AudioConditionDataset):
    """Clip ``i`` is heard with the audio of clip ``perm[i]`` (a seeded derangement); the ground truth is kept.

    ``AudioConditionDataset(condition='shuffled')``; used by ``tools/test.py --shuffle-audio SEED``.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], seed: int = 0, lazy_init: bool = False) -> None:
        super().__init__(dataset, condition='shuffled', seed=seed, lazy_init=lazy_init)


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
    * each replaced second draws its condition from ``conditions`` (relative weights): silence; noise (white or
      pink, RMS uniform in ``noise_dbfs`` dB re full scale); or off-screen sound, a second of another clip in which
      only kinds not visible in this clip are audible (:class:`OffscreenPool`). Off-screen is dropped (with a
      warning) when the kinds are unknown (:func:`dataset_clip_kinds`), and for a clip without any donor second.

    The replaced frames are flagged in the metainfo ``audio_replaced`` (T flags); ``CCFormer`` leaves them out of
    BCL (their audio does not belong to their frame). The wrapped dataset loads the clip (``dataset[idx]``, so its
    own seeded augmentation applies) before the audio is replaced.

    Args:
        dataset (BaseDataset | dict): the wrapped training dataset.
        prob (float): share of clips that get negative audio. Defaults to 0.5.
        whole_clip_prob (float): share of those whose every second is replaced. Defaults to 0.5.
        conditions (dict): relative weights of ``silence``, ``noise``, ``offscreen``. Defaults to equal weights.
        noise_dbfs (tuple[float, float]): range of the noise RMS level. Defaults to (-45, -10).
        supervise_unlabelled (bool): also supervise replaced frames that have no label (S4 training labels frame 1
            only). Off by default: on S4 the empty targets of frames 2-5 would outnumber the labelled positives
            about 3 to 1 and the model learns to predict nothing (docs/robustness.md).
        spare_labelled (bool): in clips with unlabelled real frames, replace only those (see above). Defaults to
            True.
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
        supervise_unlabelled: bool = False,
        spare_labelled: bool = True,
        seed: int = 0,
        lazy_init: bool = False,
    ) -> None:
        conditions = dict(silence=1.0, noise=1.0, offscreen=1.0) if conditions is None else dict(conditions)
        unknown = set(conditions) - set(NEGATIVE_CONDITIONS)
        if unknown:
            raise ValueError(f'NegativeAudioDataset: unknown condition(s) {sorted(unknown)}; use {NEGATIVE_CONDITIONS}')
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
        self.supervise_unlabelled = bool(supervise_unlabelled)
        self.spare_labelled = bool(spare_labelled)
        self._has_donor: List[bool] = []
        super().__init__(dataset, lazy_init=lazy_init)

    def _init(self) -> None:
        n = len(self.dataset)
        self._has_donor = [False] * n
        if self.conditions.get('offscreen', 0) > 0:
            kinds = dataset_clip_kinds(self.dataset)
            if all(k is None for k in kinds):
                print_log(
                    f'NegativeAudioDataset: {_kinds_error(_base_dataset(self.dataset), "no clip has kinds")}'
                    f' Training without off-screen sound.',
                    logger='current',
                    level=logging.WARNING,
                )
            else:
                self._pool = OffscreenPool(kinds)
                self._has_donor = [self._pool.has_donor(i) for i in range(n)]

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
            for c in NEGATIVE_CONDITIONS
            if self.conditions.get(c, 0) > 0 and (c != 'offscreen' or self._has_donor[int(idx)])
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
        if not any(plan):
            return packed
        rng = np.random.default_rng(self._entropy(idx) + [1])
        replacement = {}
        for t, cond in enumerate(plan):
            if cond == 'silence':
                replacement[t] = silence_logmel(1)[0]
            elif cond == 'noise':
                color = 'white' if rng.random() < 0.5 else 'pink'
                replacement[t] = noise_logmel(rng, 1, rng.uniform(*self.noise_dbfs), color)[0]
        offscreen = [t for t, cond in enumerate(plan) if cond == 'offscreen']
        if offscreen:
            replacement.update(self._offscreen_audio(rng, int(idx), offscreen, num))
        return self._apply(packed, replacement, [c or 'original' for c in plan], supervise=self.supervise_unlabelled)
