"""What each clip shows and sounds, and the donor seconds of off-screen sound drawn from it.

A clip's *kinds* are ``(visible kinds, audible kinds of each second)`` (:data:`Kinds`), read by
:func:`dataset_clip_kinds` from ``clip_kinds.json`` (:data:`KINDS_FILE`), the S4 CSV or the AVSS label maps.
:class:`OffscreenPool` groups the seconds of all clips by what is audible in them, so that a clip can be given a
second of another clip whose sounds are not visible in it.
"""

import json
import os.path as osp
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from ..toy import KINDS_FILE

Kinds = Tuple[FrozenSet[str], Tuple[FrozenSet[str], ...]]  # (visible, audible in each second)


def base_dataset(dataset):
    """The innermost dataset of wrappers such as :class:`NegativeAudioDataset` (the one that loads the clips)."""
    while hasattr(dataset, 'dataset') and not hasattr(dataset, 'load_data_list'):
        dataset = dataset.dataset
    return dataset


def _is_names(value) -> bool:
    """A list of kind names (no nested lists or objects)."""
    return isinstance(value, list) and not any(isinstance(k, (list, dict)) for k in value)


def _is_audible(value) -> bool:
    """``audible`` of a kinds entry: one list of names for the clip, or one per second."""
    return _is_names(value) or (isinstance(value, list) and all(_is_names(a) for a in value))


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
            isinstance(entry, dict) and isinstance(entry.get('visible'), list) and _is_audible(entry.get('audible'))
        ):
            raise ValueError(
                f'{path}: entry {vid!r} must be {{"visible": [kinds], "audible": [kinds] or '
                f'[[kinds of second 1], ...]}}, got {entry!r}'
            )
    return raw


def entry_kinds(visible, audible, num_frames: int) -> Kinds:
    """``(visible set, audible set per second)``; ``audible`` is one list for the whole clip or one per second
    (seconds a per-second list does not cover hear nothing)."""
    if audible and all(isinstance(a, (list, tuple, set, frozenset)) for a in audible):
        per_second = [frozenset(map(str, a)) for a in audible][:num_frames]
        per_second += [frozenset()] * (num_frames - len(per_second))
    else:
        per_second = [frozenset(map(str, audible))] * num_frames
    return frozenset(map(str, visible)), tuple(per_second)


def _avss_kinds(info: dict) -> Kinds:
    """AVSS: the classes of each label map are what sounds in that second; unlabelled seconds of a clip (v1s
    train) take the classes of its labelled ones (one source all clip long)."""
    from ..transforms.loading import LoadAVSMasks

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
    from ..avsbench import AVSBenchS4Dataset, AVSSDataset

    base = base_dataset(dataset)
    root = getattr(base, 'data_root', None)
    path = osp.join(root, KINDS_FILE) if root else None
    table = load_kinds_file(path) if path and osp.isfile(path) else None
    out: List[Optional[Kinds]] = []
    for idx in range(len(base)):
        info = base.get_data_info(idx)
        num = int(info.get('num_frames', len(info['frame_paths'])))
        if table is not None:
            entry = table.get(info['video_id'])
            out.append(None if entry is None else entry_kinds(entry['visible'], entry['audible'], num))
        elif isinstance(base, AVSBenchS4Dataset) and info.get('category'):
            out.append(entry_kinds([info['category']], [info['category']], num))
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


def kind_key(name: str) -> str:
    """How kind names are compared between a dataset and a sound bank: lower case, spaces and hyphens as ``_``."""
    return str(name).strip().lower().replace(' ', '_').replace('-', '_')


def visible_bank_kinds(
    bank, kinds: Optional[Kinds], classes: Optional[Sequence[str]] = None
) -> Optional[FrozenSet[str]]:
    """The kinds of sound bank ``bank`` that are visible in a clip of ``kinds`` (names compared by
    :func:`kind_key`; AVSS class indices through ``classes``), or None when what the clip shows is unknown."""
    if kinds is None:
        return None
    names = set()
    for k in kinds[0]:
        names.add(kind_key(k))
        if classes and str(k).isdigit() and int(k) < len(classes):  # AVSS: class indices
            names.add(kind_key(classes[int(k)]))
    return frozenset(b for b in bank.kinds if b and kind_key(b) in names)
