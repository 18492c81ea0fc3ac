"""Toy AVSBench generator: tiny datasets in the exact official S4, MS3 and AVSS layouts.

Every frame shows several objects of different kinds (shape + colour); only the kinds whose sound
plays in that second are the segmentation target, and every kind has its own sound (a distinct
tone / harmonic / modulation pattern), so the task cannot be solved without the audio. Some seconds
are digitally silent and some play the sound of a kind that is not on screen ("off-screen"): both
give empty ground truth, which exercises the empty-GT branches of the metrics.

Layouts written (see ``docs/data.md``, "Layout under data/")::

    s4:   s4_meta_data.csv (name,start_time,category,split)
          s4_data/{visual_frames,gt_masks}/<split>/<category>/<name>/<name>_<k>.png  (train: mask k=1 only)
          s4_data/audio_wav/<split>/<category>/<name>.wav, s4_data/audio_log_mel/.../<name>.pkl
    ms3:  ms3_meta_data.csv (video_id,split)
          ms3_data/visual_frames/<name>/<name>.mp4_<k>.png, ms3_data/gt_masks/<split>/<name>/<name>_<k>.png
          ms3_data/audio_wav/<split>/<name>.wav, ms3_data/audio_log_mel/<split>/<name>.pkl
    avss: metadata.csv (vid,uid,s_min,s_sec,a_obj,split,label), label2idx.json (71 classes, 1-based)
          <v1s|v1m|v2>/<uid>/frames/<i>.jpg, labels_rgb/<i>.png (VOC palette colours),
          labels_semantic/<i>.png (class indices), audio.wav

Every layout also gets ``clip_kinds.json`` in its root, ``{video id: {"visible": [kind names],
"audible": [[kind names heard in second 1], ...]}}``, which off-screen sound
(``audio_conditions.py``) reads to pick donor seconds.

The ``.pkl`` files are written like the official preprocessing: ``pickle.dump`` (protocol 4) of a
``torch.Tensor [5, 1, 96, 64]`` with ``requires_grad=True``, computed from the written 16 kHz wav.
Everything is deterministic from ``seed``.
"""

import csv
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .audio import SAMPLE_RATE, pad_examples_repeat, save_logmel_pkl, wav_to_logmel
from .palette import AVSS_NUM_CLASSES, voc_palette
from .toy_clip import ToyClip

ImgSize = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class ObjectKind:
    """A toy object kind: how it looks and how it sounds."""

    name: str
    shape: str  # 'circle' | 'square' | 'triangle' | 'cross'
    color_bgr: Tuple[int, int, int]
    partials_hz: Tuple[float, ...]  # sine partials, amplitude 1/(i+1)
    am_hz: float = 0.0  # amplitude modulation rate (0 = none)


OBJECT_KINDS: Tuple[ObjectKind, ...] = (
    ObjectKind('red_circle', 'circle', (40, 40, 220), (330.0, 660.0, 990.0)),
    ObjectKind('green_square', 'square', (60, 200, 40), (880.0,)),
    ObjectKind('blue_triangle', 'triangle', (220, 90, 30), (2200.0, 4400.0)),
    ObjectKind('yellow_cross', 'cross', (30, 210, 230), (5000.0,), 6.0),
)
#: AVSS class index of each kind (index 0 is background); the other classes stay unused.
KIND_CLASS = {kind.name: i + 1 for i, kind in enumerate(OBJECT_KINDS)}
SPLITS = ('train', 'val', 'test')
#: File in a dataset's root naming what each clip shows and sounds (read for off-screen sound donors).
KINDS_FILE = 'clip_kinds.json'
DEFAULT_NUM_VIDEOS = {'train': 6, 'val': 3, 'test': 3}
_ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-'


def avss_class_names() -> List[str]:
    """The 71 toy class names in index order (0 = background, then the kinds, then fillers)."""
    names = ['background'] + [k.name for k in OBJECT_KINDS]
    names += [f'toy_class_{i:02d}' for i in range(len(names), AVSS_NUM_CLASSES)]
    return names


# ----------------------------------------------------------------------------------------------
# drawing and sound


def _size_hw(img_size: ImgSize) -> Tuple[int, int]:
    """``int`` -> square; ``(w, h)`` -> ``(h, w)``."""
    if isinstance(img_size, int):
        return img_size, img_size
    w, h = img_size
    return int(h), int(w)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour gradient with mild noise, uint8 ``(h, w, 3)`` BGR."""
    c0, c1 = rng.uniform(40, 160, 3), rng.uniform(40, 160, 3)
    ramp = np.linspace(0.0, 1.0, w)[None, :, None]
    img = c0 * (1 - ramp) + c1 * ramp + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8).copy()


def _draw(canvas: np.ndarray, shape: str, cx: int, cy: int, r: int, value) -> None:
    """Draw a filled shape of half-size ``r`` centred at ``(cx, cy)`` with colour/label ``value``."""
    if shape == 'circle':
        cv2.circle(canvas, (cx, cy), r, value, -1)
    elif shape == 'square':
        cv2.rectangle(canvas, (cx - r, cy - r), (cx + r, cy + r), value, -1)
    elif shape == 'triangle':
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(canvas, [pts], value)
    elif shape == 'cross':
        t = max(r // 3, 1)
        cv2.rectangle(canvas, (cx - r, cy - t), (cx + r, cy + t), value, -1)
        cv2.rectangle(canvas, (cx - t, cy - r), (cx + t, cy + r), value, -1)
    else:
        raise ValueError(f'unknown shape {shape}')


def _place(rng: np.random.Generator, kinds: Sequence[int], h: int, w: int) -> List[Tuple[int, int, int, int, int]]:
    """Non-overlapping placements ``(kind, cx, cy, r, (dx, dy) packed)`` in distinct quadrants."""
    cells = rng.permutation(4)[: len(kinds)]
    r = max(int(min(h, w) * 0.16), 3)
    out = []
    for kind, cell in zip(kinds, cells):
        qy, qx = divmod(int(cell), 2)
        cx = int((qx + 0.5) * w / 2 + rng.integers(-w // 16, w // 16 + 1))
        cy = int((qy + 0.5) * h / 2 + rng.integers(-h // 16, h // 16 + 1))
        out.append((int(kind), cx, cy, r, int(rng.integers(-1, 2))))
    return out


def _render(
    rng: np.random.Generator, objects, frame: int, h: int, w: int, sounding: Sequence[int]
) -> Tuple[np.ndarray, np.ndarray]:
    """One frame (BGR uint8) and its label map (0 = background, else ``KIND_CLASS``)."""
    img = _background(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    for kind, cx, cy, r, drift in objects:
        x = cx + drift * frame * max(w // 64, 1)  # slow drift so frames differ
        obj = OBJECT_KINDS[kind]
        _draw(img, obj.shape, x, cy, r, obj.color_bgr)
        value = KIND_CLASS[obj.name] if kind in sounding else 0
        _draw(label, obj.shape, x, cy, r, int(value))
    return img, label


def _kind_sound(kind: ObjectKind, t: np.ndarray) -> np.ndarray:
    """The waveform of one kind over times ``t`` (peak about 1)."""
    wave = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate(kind.partials_hz))
    wave = wave / sum(1.0 / (i + 1) for i in range(len(kind.partials_hz)))
    if kind.am_hz:
        wave = wave * (0.5 + 0.5 * np.sin(2 * np.pi * kind.am_hz * t))
    return wave


def _soundtrack(rng: np.random.Generator, schedule: Sequence[Sequence[int]], silent: Sequence[bool]) -> np.ndarray:
    """16 kHz waveform: second s plays the kinds in ``schedule[s]`` (zeros where ``silent``)."""
    n = SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * n))
    t = np.arange(n) / SAMPLE_RATE
    chunks = []
    for kinds, mute in zip(schedule, silent):
        if mute:
            chunks.append(np.zeros(n))
            continue
        wave = rng.normal(0, 0.003, n)
        for k in kinds:
            wave += 0.4 / max(len(kinds), 1) * _kind_sound(OBJECT_KINDS[k], t) * fade
        chunks.append(wave)
    return np.clip(np.concatenate(chunks), -1, 1)


class SyntheticFamily:
    """The synthetic data family: four kinds (a coloured shape each), each heard as its own tone pattern."""

    name = 'synthetic'

    @staticmethod
    def class_names() -> List[str]:
        """The 71 AVSS class names in index order (0 = background)."""
        return avss_class_names()

    @staticmethod
    def make_clip(
        rng: np.random.Generator, num_frames: int, h: int, w: int, multi: bool, allow_empty: bool, split: str
    ) -> ToyClip:
        """A clip (:func:`_make_clip`); the same for every split."""
        return _make_clip(rng, num_frames, h, w, multi, allow_empty)


def _make_clip(rng: np.random.Generator, num_frames: int, h: int, w: int, multi: bool, allow_empty: bool) -> ToyClip:
    """Build a clip with 2-3 visible kinds.

    ``multi=False`` (S4, v1s): one visible kind sounds all clip long. ``multi=True`` (MS3, v1m, v2):
    each second 1-2 visible kinds sound (the sources switch from second to second), and in about one
    second in five an off-screen kind sounds with them (a mixture whose target is the visible kinds
    only). With ``allow_empty`` some seconds are silent or play an off-screen kind alone (empty
    ground truth).
    """
    n_vis = int(rng.integers(2, 4))
    kinds = rng.permutation(len(OBJECT_KINDS))
    visible, hidden = [int(k) for k in kinds[:n_vis]], [int(k) for k in kinds[n_vis:]]
    objects = _place(rng, visible, h, w)
    target = visible[int(rng.integers(len(visible)))]
    schedule, silent, on_screen = [], [], []
    for s in range(num_frames):
        if multi:
            size = int(rng.integers(1, 3))
            now = [int(k) for k in rng.choice(visible, size=size, replace=False)]
            if hidden and rng.random() < 0.2:
                now.append(hidden[int(rng.integers(len(hidden)))])  # on- and off-screen mixture
        else:
            now = [target]
        mute = False
        if allow_empty and s > 0 and rng.random() < 0.25:
            if hidden and rng.random() < 0.5:
                now = [hidden[int(rng.integers(len(hidden)))]]  # off-screen sound
            else:
                now, mute = [], True
        schedule.append(now)
        silent.append(mute)
        on_screen.append([k for k in now if k in visible])
    frames, labels = [], []
    for s in range(num_frames):
        img, lab = _render(rng, objects, s, h, w, on_screen[s])
        frames.append(img)
        labels.append(lab)
    audio = _soundtrack(rng, schedule, silent)
    name = [k.name for k in OBJECT_KINDS]
    return ToyClip(
        frames,
        labels,
        audio,
        [name[k] for k in sorted({k for now in on_screen for k in now})],
        [name[k] for k in sorted(visible)],
        [[] if mute else [name[k] for k in sorted(now)] for now, mute in zip(schedule, silent)],
    )


# ----------------------------------------------------------------------------------------------
# writers


def _video_id(rng: np.random.Generator) -> str:
    """An 11-character YouTube-like id (never starting with '-')."""
    chars = [_ID_CHARS[int(i)] for i in rng.integers(0, len(_ID_CHARS) - 2, 1)]
    chars += [_ID_CHARS[int(i)] for i in rng.integers(0, len(_ID_CHARS), 10)]
    return ''.join(chars)


def _write_png(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, img):
        raise OSError(f'could not write {path}')


def _write_wav(path: str, audio: np.ndarray) -> None:
    import soundfile as sf

    os.makedirs(osp.dirname(path), exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype='PCM_16')


def _write_pkl(path: str, wav_path: str, num: int = 5) -> None:
    """Official-style log-mel pickle of a written wav (:func:`~.audio.save_logmel_pkl`)."""
    save_logmel_pkl(path, pad_examples_repeat(wav_to_logmel(wav_path), num, wav_path)[:, None])


def _binary(label: np.ndarray) -> np.ndarray:
    return np.where(label > 0, 255, 0).astype(np.uint8)


def _write_s4(
    root: str, rng: np.random.Generator, num_videos: Dict[str, int], size_hw: Tuple[int, int], family
) -> List[dict]:
    base = osp.join(root, 's4_data')
    rows, kinds = [], {}
    for split in SPLITS:
        for _ in range(num_videos.get(split, 0)):
            clip = family.make_clip(rng, 5, *size_hw, multi=False, allow_empty=True, split=split)
            category = clip.target_kinds[0] if clip.target_kinds else 'silence'
            start = int(rng.integers(0, 6))
            name = f'{_video_id(rng)}_{start * 1000}'
            rel = osp.join(split, category)
            for k in range(1, 6):
                _write_png(osp.join(base, 'visual_frames', rel, name, f'{name}_{k}.png'), clip.frames[k - 1])
                if split != 'train' or k == 1:
                    _write_png(osp.join(base, 'gt_masks', rel, name, f'{name}_{k}.png'), _binary(clip.labels[k - 1]))
            wav = osp.join(base, 'audio_wav', rel, f'{name}.wav')
            _write_wav(wav, clip.audio)
            _write_pkl(osp.join(base, 'audio_log_mel', rel, f'{name}.pkl'), wav)
            rows.append(dict(name=name, start_time=start, category=category, split=split))
            kinds[name] = clip.kinds_entry()
    _write_csv(osp.join(root, 's4_meta_data.csv'), ['name', 'start_time', 'category', 'split'], rows)
    _write_kinds(root, kinds)
    return rows


def _write_ms3(
    root: str, rng: np.random.Generator, num_videos: Dict[str, int], size_hw: Tuple[int, int], family
) -> List[dict]:
    base = osp.join(root, 'ms3_data')
    rows, kinds = [], {}
    for split in SPLITS:
        for _ in range(num_videos.get(split, 0)):
            clip = family.make_clip(rng, 5, *size_hw, multi=True, allow_empty=True, split=split)
            name = _video_id(rng)
            for k in range(1, 6):
                _write_png(osp.join(base, 'visual_frames', name, f'{name}.mp4_{k}.png'), clip.frames[k - 1])
                _write_png(osp.join(base, 'gt_masks', split, name, f'{name}_{k}.png'), _binary(clip.labels[k - 1]))
            wav = osp.join(base, 'audio_wav', split, f'{name}.wav')
            _write_wav(wav, clip.audio)
            _write_pkl(osp.join(base, 'audio_log_mel', split, f'{name}.pkl'), wav)
            rows.append(dict(video_id=name, split=split))
            kinds[name] = clip.kinds_entry()
    _write_csv(osp.join(root, 'ms3_meta_data.csv'), ['video_id', 'split'], rows)
    _write_kinds(root, kinds)
    return rows


def _write_avss(
    root: str,
    rng: np.random.Generator,
    num_videos: Dict[str, int],
    size_hw: Tuple[int, int],
    subsets: Sequence[str],
    family,
) -> List[dict]:
    palette = np.array(voc_palette(AVSS_NUM_CLASSES), np.uint8)
    rows, kinds = [], {}
    for subset in subsets:
        if subset not in ('v1s', 'v1m', 'v2'):
            raise ValueError(f'unknown AVSS subset {subset!r}; use v1s, v1m or v2')
        num_frames = 10 if subset == 'v2' else 5
        for split in SPLITS:
            for _ in range(num_videos.get(split, 0)):
                clip = family.make_clip(rng, num_frames, *size_hw, multi=subset != 'v1s', allow_empty=True, split=split)
                vid = _video_id(rng)
                start = int(rng.integers(0, 3)) * 10000 if subset == 'v2' else 0
                uid = f'{vid}_{start}_{start + num_frames * 1000}'
                vdir = osp.join(root, subset, uid)
                n_labels = 1 if (subset == 'v1s' and split == 'train') else num_frames
                for i in range(num_frames):
                    frame_path = osp.join(vdir, 'frames', f'{i}.jpg')
                    os.makedirs(osp.dirname(frame_path), exist_ok=True)
                    if not cv2.imwrite(frame_path, clip.frames[i], [cv2.IMWRITE_JPEG_QUALITY, 95]):
                        raise OSError(f'could not write {frame_path}')
                    if i < n_labels:
                        rgb = palette[clip.labels[i]]
                        _write_png(osp.join(vdir, 'labels_rgb', f'{i}.png'), rgb[..., ::-1].copy())
                        _write_png(osp.join(vdir, 'labels_semantic', f'{i}.png'), clip.labels[i])
                _write_wav(osp.join(vdir, 'audio.wav'), clip.audio)
                a_obj = '_'.join(clip.target_kinds) or 'silence'
                rows.append(
                    dict(
                        vid=vid,
                        uid=uid,
                        s_min=start // 60000,
                        s_sec=(start // 1000) % 60,
                        a_obj=a_obj,
                        split=split,
                        label=subset,
                    )
                )
                kinds[uid] = clip.kinds_entry()
    _write_kinds(root, kinds)
    _write_csv(osp.join(root, 'metadata.csv'), ['vid', 'uid', 's_min', 's_sec', 'a_obj', 'split', 'label'], rows)
    names = family.class_names()
    with open(osp.join(root, 'label2idx.json'), 'w') as f:
        json.dump({name: i + 1 for i, name in enumerate(names)}, f, indent=1)
    return rows


def _write_kinds(root: str, kinds: Dict[str, dict]) -> None:
    """``clip_kinds.json``: the kinds each clip shows and plays (read for off-screen sound donors)."""
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, KINDS_FILE), 'w') as f:
        json.dump(kinds, f, indent=1, sort_keys=True)


def _write_csv(path: str, fields: List[str], rows: List[dict]) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def build_family(family: Union[str, dict, object] = 'synthetic'):
    """The clip maker of a data family: ``'synthetic'`` (:class:`SyntheticFamily`), ``'recorded'``
    (:class:`~projects.ccformer.datasets.toy_recorded.RecordedFamily`, real recordings and pictures), a dict
    ``dict(type='recorded', **options)``, or an object with ``make_clip`` and ``class_names``."""
    if hasattr(family, 'make_clip'):
        return family
    options = dict(family) if isinstance(family, dict) else dict(type=family)
    kind = options.pop('type', 'synthetic')
    if kind == 'synthetic':
        if options:
            raise ValueError(f'the synthetic family takes no options, got {sorted(options)}')
        return SyntheticFamily()
    if kind == 'recorded':
        from .toy_recorded import RecordedFamily

        return RecordedFamily(**options)
    raise ValueError(f'unknown data family {kind!r}; use {FAMILIES}')


#: Data families of :func:`generate_toy_avsbench`.
FAMILIES = ('synthetic', 'recorded')


def generate_toy_avsbench(
    root: str,
    layout: str = 's4',
    num_videos: Optional[Dict[str, int]] = None,
    seed: int = 0,
    img_size: Optional[ImgSize] = None,
    subsets: Sequence[str] = ('v1s', 'v1m', 'v2'),
    family: Union[str, dict, object] = 'synthetic',
) -> List[dict]:
    """Write a toy dataset in the official layout under ``root``.

    Args:
        root: dataset root, e.g. ``data/AVSBench/Single-source`` (``s4``), ``.../Multi-sources``
            (``ms3``) or ``.../AVSS`` (``avss``).
        layout: ``'s4'``, ``'ms3'`` or ``'avss'``.
        num_videos: videos per split (per subset for AVSS), default ``{'train': 6, 'val': 3,
            'test': 3}``.
        seed: everything is a deterministic function of it.
        img_size: frame size, an int (square) or ``(w, h)``; default 224 for S4/MS3 (the official
            frames are 224x224) and ``(320, 240)`` for AVSS (original-resolution frames).
        subsets: AVSS subsets to write.
        family: what the clips show and sound (:func:`build_family`): ``'synthetic'`` (shapes and tones, the
            default) or ``'recorded'`` (pictures and real recordings of animals).

    Returns:
        The CSV rows written.
    """
    counts = dict(DEFAULT_NUM_VIDEOS if num_videos is None else num_videos)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f'num_videos has unknown splits {sorted(unknown)}; use {SPLITS}')
    maker = build_family(family)
    rng = np.random.default_rng(seed)
    if layout == 's4':
        return _write_s4(root, rng, counts, _size_hw(img_size or 224), maker)
    if layout == 'ms3':
        return _write_ms3(root, rng, counts, _size_hw(img_size or 224), maker)
    if layout == 'avss':
        return _write_avss(root, rng, counts, _size_hw(img_size or (320, 240)), subsets, maker)
    raise ValueError(f'unknown layout {layout!r}; use s4, ms3 or avss')
