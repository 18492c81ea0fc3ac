"""AVSBench datasets (S4, MS3, AVSS) reading the official layouts and CSVs.

One sample is one clip (``docs/design.md``, "One sample = one clip"). Layouts and CSV columns follow
``docs/data.md`` ("Layout under data/"); every path listed in a sample is checked at start-up (``check_files``)
so a missing frame, mask or audio file stops with an error naming it.
"""

import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .palette import AVSS_NUM_CLASSES, BINARY_CLASSES, BINARY_PALETTE, voc_palette
from .transforms.processing import seeded_rng

SPLITS = ('train', 'val', 'test')
AVSS_SUBSETS = ('v1s', 'v1m', 'v2')


def read_csv_rows(path: str) -> List[Dict[str, str]]:
    """Rows of a comma-separated file with a header line, as ``{column: value}`` plus ``_line``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty file, or a row with fewer fields than the header.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'annotation CSV not found: {path}. Download the dataset (see '
            f'docs/data.md) or generate toy data with '
            f'tools/dataset_converters/generate_toy_avsbench.py.'
        )
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f'{path}: empty CSV (no header line)')
        header = [h.strip() for h in header]
        rows = []
        for line, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) < len(header):
                raise ValueError(
                    f'{path}, line {line}: {len(values)} fields, expected {len(header)} ({",".join(header)})'
                )
            row = {h: v.strip() for h, v in zip(header, values)}
            row['_line'] = str(line)
            row['_values'] = [v.strip() for v in values]
            rows.append(row)
    return rows


def _require_columns(path: str, rows: List[dict], columns: Sequence[str]) -> None:
    if rows and any(c not in rows[0] for c in columns):
        missing = [c for c in columns if c not in rows[0]]
        raise ValueError(f'{path}: missing column(s) {missing}; found {[k for k in rows[0] if not k.startswith("_")]}')


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')


class _AVSBaseDataset(BaseSegDataset):
    """Common part: ``split`` selection, clip entries, file checks.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'`` (rows whose CSV ``split`` equals it are used).
        check_files: verify at start-up that every frame / mask / audio file of the split exists.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``, ``ann_file``,
            ``pipeline``, ``test_mode``, ``indices``, ...).
    """

    NUM_FRAMES = 5

    def __init__(self, split: str = 'train', check_files: bool = True, **kwargs) -> None:
        _check_split(split)
        self.split = split
        self.check_files = check_files
        super().__init__(**kwargs)

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``; a :class:`~.samplers.SeededIndex` (training with
        ``SeededSampler``) seeds the global RNGs for it, so its random augmentation depends only on the seed the
        sampler derived from (seed, epoch, index)."""
        seed = getattr(idx, 'seed', None)
        if seed is None:
            return super().prepare_data(idx)
        with seeded_rng(seed):
            return super().prepare_data(int(idx))

    def _path(self, *parts: str) -> str:
        return osp.join(self.data_root or '', *parts)

    def _entry(self, **fields) -> dict:
        """Fill the keys every clip entry has (design.md)."""
        fields.setdefault('frame_valid', [1] * len(fields['frame_paths']))
        fields.setdefault('gt_valid', [int(p is not None) for p in fields['mask_paths']])
        fields.update(split=self.split, num_frames=len(fields['frame_paths']), seg_fields=[], reduce_zero_label=False)
        return fields

    def _check_entries(self, entries: List[dict]) -> None:
        """Raise ``FileNotFoundError`` naming the first missing file (and how many are missing)."""
        if not self.check_files:
            return
        missing = []
        for e in entries:
            for p in [*e['frame_paths'], *e['mask_paths'], e['audio_path']]:
                if p is not None and not osp.isfile(p):
                    missing.append(p)
        if missing:
            raise FileNotFoundError(
                f'{self.__class__.__name__} ({self.split}): {len(missing)} file(s) listed by '
                f'{self.ann_file} are missing, first: {missing[0]}. Restore them, or remove the '
                f'video from the CSV.'
            )

    def _select(self, path: str, rows: List[dict]) -> List[dict]:
        _require_columns(path, rows, ['split'])
        bad = [r for r in rows if r['split'] not in SPLITS]
        if bad:
            raise ValueError(
                f'{path}, line {bad[0]["_line"]}: unknown split {bad[0]["split"]!r}; expected one of {SPLITS}'
            )
        chosen = [r for r in rows if r['split'] == self.split]
        if not chosen:
            raise ValueError(f'{path}: no rows with split == {self.split!r}')
        return chosen


class _AVSBenchObjectDataset(_AVSBaseDataset):
    """S4 / MS3: audio from the official log-mel ``.pkl`` files or from the ``.wav`` files.

    Args:
        audio_source: ``'pkl'`` (``<subset>/audio_log_mel/...pkl``) or ``'wav'`` (``<subset>/audio_wav/...wav``).
    """

    def __init__(self, audio_source: str = 'pkl', **kwargs) -> None:
        if audio_source not in ('pkl', 'wav'):
            raise ValueError(f"audio_source must be 'pkl' or 'wav', got {audio_source!r}")
        self.audio_source = audio_source
        super().__init__(**kwargs)

    def _audio_path(self, subset: str, *rel: str, name: str) -> str:
        sub = 'audio_log_mel' if self.audio_source == 'pkl' else 'audio_wav'
        return self._path(subset, sub, *rel, f'{name}.{self.audio_source}')


@DATASETS.register_module()
class AVSBenchS4Dataset(_AVSBenchObjectDataset):
    """AVSBench-object Single-source (S4).

    Layout under ``data_root`` (``data/AVSBench/Single-source``)::

        s4_meta_data.csv    name,start_time,category,split (name/category by header, else
                            by position 0/2 as official; split by header)
        s4_data/visual_frames/<split>/<category>/<name>/<name>_<k>.png   k = 1..5
        s4_data/gt_masks/<split>/<category>/<name>/<name>_<k>.png        train: k = 1 only
        s4_data/audio_log_mel/<split>/<category>/<name>.pkl              [5, 1, 96, 64]
        s4_data/audio_wav/<split>/<category>/<name>.wav                  (audio_source='wav')

    Args:
        audio_source: ``'pkl'`` (official log-mels) or ``'wav'`` (computed on the fly).
        sounding_unlabelled (bool): give every frame the metainfo ``sounding`` 1 (the benchmark's
            premise: one source that sounds all clip long), the presence target of the robust recipe
            on frames without a mask (labelled frames use their mask; ``LoadAVSAudio`` sets silent
            seconds to 0). Default False (unknown).

    Each clip's ``category_index`` is the place of its category among the CSV's categories of all splits, sorted
    (the official CSV: 23), so train, val and test number them alike; the dataset's metainfo ``categories`` lists
    them. ``CategoryBridge`` learns from it.
    """

    METAINFO = dict(classes=BINARY_CLASSES, palette=BINARY_PALETTE)

    def __init__(
        self, ann_file: str = 's4_meta_data.csv', audio_source: str = 'pkl', sounding_unlabelled: bool = False, **kwargs
    ) -> None:
        self.sounding_unlabelled = bool(sounding_unlabelled)
        super().__init__(ann_file=ann_file, audio_source=audio_source, **kwargs)

    def load_data_list(self) -> List[dict]:
        all_rows = read_csv_rows(self.ann_file)
        rows = self._select(self.ann_file, all_rows)
        for r in all_rows:
            if len(r['_values']) < 4:
                raise ValueError(f'{self.ann_file}, line {r["_line"]}: expected name, start_time, category, split')
        # official: name and category by position (0, 2); by header name when present
        categories = sorted({r.get('category', r['_values'][2]) for r in all_rows})
        self._metainfo['categories'] = tuple(categories)
        category_index = {c: i for i, c in enumerate(categories)}
        entries = []
        for r in rows:
            vals = r['_values']
            name, category = r.get('name', vals[0]), r.get('category', vals[2])
            rel = (self.split, category)
            frames = [self._path('s4_data', 'visual_frames', *rel, name, f'{name}_{k}.png') for k in range(1, 6)]
            n_masks = 1 if self.split == 'train' else 5
            masks = [
                self._path('s4_data', 'gt_masks', *rel, name, f'{name}_{k}.png') if k <= n_masks else None
                for k in range(1, 6)
            ]
            audio = self._audio_path('s4_data', *rel, name=name)
            extra = dict(sounding=[1] * 5) if self.sounding_unlabelled else {}
            entries.append(
                self._entry(
                    video_id=name,
                    category=category,
                    category_index=category_index[category],
                    frame_paths=frames,
                    mask_paths=masks,
                    audio_path=audio,
                    **extra,
                )
            )
        self._check_entries(entries)
        return entries


@DATASETS.register_module()
class AVSBenchMS3Dataset(_AVSBenchObjectDataset):
    """AVSBench-object Multi-sources (MS3); all five frames are labelled in every split.

    Layout under ``data_root`` (``data/AVSBench/Multi-sources``)::

        ms3_meta_data.csv   video_id,split (name read by position 0)
        ms3_data/visual_frames/<name>/<name>.mp4_<k>.png     (no split directory)
        ms3_data/gt_masks/<split>/<name>/<name>_<k>.png
        ms3_data/audio_log_mel/<split>/<name>.pkl, ms3_data/audio_wav/<split>/<name>.wav
    """

    METAINFO = dict(classes=BINARY_CLASSES, palette=BINARY_PALETTE)

    def __init__(self, ann_file: str = 'ms3_meta_data.csv', audio_source: str = 'pkl', **kwargs) -> None:
        super().__init__(ann_file=ann_file, audio_source=audio_source, **kwargs)

    def load_data_list(self) -> List[dict]:
        rows = self._select(self.ann_file, read_csv_rows(self.ann_file))
        entries = []
        for r in rows:
            name = r['_values'][0]
            frames = [self._path('ms3_data', 'visual_frames', name, f'{name}.mp4_{k}.png') for k in range(1, 6)]
            masks = [self._path('ms3_data', 'gt_masks', self.split, name, f'{name}_{k}.png') for k in range(1, 6)]
            audio = self._audio_path('ms3_data', self.split, name=name)
            entries.append(
                self._entry(video_id=name, category='', frame_paths=frames, mask_paths=masks, audio_path=audio)
            )
        self._check_entries(entries)
        return entries


def avss_class_names_from_json(path: str) -> Optional[List[str]]:
    """Class names in index order from ``label2idx.json`` (``index = value - 1``), or None if absent.

    Raises:
        ValueError: not 71 entries, or the values are not a permutation of 1..71 (or 0..70).
    """
    if not osp.isfile(path):
        return None
    with open(path) as f:
        mapping = json.load(f)
    if not isinstance(mapping, dict) or len(mapping) != AVSS_NUM_CLASSES:
        raise ValueError(
            f'{path}: expected a JSON object with {AVSS_NUM_CLASSES} entries '
            f'(70 classes + background), got {len(mapping)}'
        )
    values = sorted(int(v) for v in mapping.values())
    offset = values[0]
    if values != list(range(offset, offset + AVSS_NUM_CLASSES)) or offset not in (0, 1):
        raise ValueError(f'{path}: values must be 1..{AVSS_NUM_CLASSES} (or 0..70)')
    names = [''] * AVSS_NUM_CLASSES
    for name, v in mapping.items():
        names[int(v) - offset] = name
    return names


@DATASETS.register_module()
class AVSSDataset(_AVSBaseDataset):
    """AVSBench-semantic (AVSS), 71 classes, every clip padded to T = 10 frames.

    Layout under ``data_root`` (``data/AVSBench/AVSS``)::

        metadata.csv        columns by name: uid, label (v1s | v1m | v2), split
        label2idx.json      71 names -> 1-based index (optional here; gives the class names)
        <label>/<uid>/frames/<i>.jpg          i = 0..n-1 (n = 5 for v1s/v1m, 10 for v2)
        <label>/<uid>/labels_rgb/<i>.png      i = 0..m-1 (v1s train: m = 1; else m = n)
        <label>/<uid>/audio.wav

    Padded frames have ``frame_paths``/``mask_paths`` ``None`` and ``frame_valid`` 0. ``gt_valid`` is
    the official ``gt_temporal_mask_flag`` (a loss flag: v1s ``[1, 0, ...]`` in every split, even
    though v1s val/test have five real masks, which the metric uses).

    Args:
        subsets: which of ``('v1s', 'v1m', 'v2')`` to use.
    """

    NUM_FRAMES = 10
    METAINFO = dict(
        classes=tuple(['background'] + [f'class_{i}' for i in range(1, AVSS_NUM_CLASSES)]),
        palette=voc_palette(AVSS_NUM_CLASSES),
    )

    def __init__(
        self,
        ann_file: str = 'metadata.csv',
        subsets: Sequence[str] = AVSS_SUBSETS,
        metainfo: Optional[dict] = None,
        **kwargs,
    ) -> None:
        subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
        bad = [s for s in subsets if s not in AVSS_SUBSETS]
        if bad or not subsets:
            raise ValueError(f'subsets must be a non-empty subset of {AVSS_SUBSETS}, got {subsets}')
        self.subsets = subsets
        names = avss_class_names_from_json(osp.join(kwargs.get('data_root') or '', 'label2idx.json'))
        metainfo = dict(metainfo or {})
        if names is not None and 'classes' not in metainfo:
            metainfo['classes'] = tuple(names)
        super().__init__(ann_file=ann_file, metainfo=metainfo, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes=None):
        """Class names from ``label2idx.json`` rename classes; labels are never remapped."""
        return None

    def _count(self, folder: str, ext: str) -> int:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'folder not found: {folder}')
        return sum(1 for f in os.listdir(folder) if f.endswith(ext))

    def load_data_list(self) -> List[dict]:
        rows = self._select(self.ann_file, read_csv_rows(self.ann_file))
        _require_columns(self.ann_file, rows, ['uid', 'label'])
        entries = []
        for r in rows:
            subset, uid = r['label'], r['uid']
            if subset not in AVSS_SUBSETS:
                raise ValueError(
                    f'{self.ann_file}, line {r["_line"]}: unknown label {subset!r}; expected one of {AVSS_SUBSETS}'
                )
            if subset in self.subsets:
                entries.append(self._avss_entry(subset, uid))
        if not entries:
            raise ValueError(f'{self.ann_file}: no {self.split} rows for subsets {self.subsets}')
        self._check_entries(entries)
        return entries

    def _avss_entry(self, subset: str, uid: str) -> dict:
        vdir = self._path(subset, uid)
        n = 10 if subset == 'v2' else 5
        if self.check_files:
            found = self._count(osp.join(vdir, 'frames'), '.jpg')
            if found != n:
                raise ValueError(f'{osp.join(vdir, "frames")}: {found} .jpg frames, expected {n} for subset {subset}')
            m = self._count(osp.join(vdir, 'labels_rgb'), '.png')
        else:
            m = 1 if (subset == 'v1s' and self.split == 'train') else n
        expected_m = 1 if (subset == 'v1s' and self.split == 'train') else n
        if self.split != 'train' and m != n:
            raise ValueError(f'{osp.join(vdir, "labels_rgb")}: {m} label PNGs, expected {n} for {subset} {self.split}')
        if m < 1:
            raise FileNotFoundError(f'{osp.join(vdir, "labels_rgb")}: no label PNG (expected {expected_m})')
        m = min(m, n)
        T = self.NUM_FRAMES
        frames = [osp.join(vdir, 'frames', f'{i}.jpg') if i < n else None for i in range(T)]
        masks = [osp.join(vdir, 'labels_rgb', f'{i}.png') if i < m else None for i in range(T)]
        frame_valid = [1] * n + [0] * (T - n)
        if subset == 'v1s':
            gt_valid = [1] + [0] * (T - 1)
        else:
            gt_valid = list(frame_valid)
        return self._entry(
            video_id=uid,
            category=subset,
            frame_paths=frames,
            mask_paths=masks,
            audio_path=osp.join(vdir, 'audio.wav'),
            frame_valid=frame_valid,
            gt_valid=gt_valid,
        )
