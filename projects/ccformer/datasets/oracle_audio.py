"""Oracle audio: a control that replaces each second's log-mel by a fixed pattern per audible kind.

Given a toy data root whose ``clip_kinds.json`` says what is audible in every second (the generator writes it), the
log-mel of a second becomes the sum of the patterns of its audible kinds over a little noise: each kind is three mel
bands of random width and strength (:func:`kind_patterns`), heard at a random level of +-6 dB and 0.7-1.0 of it per
time step (:func:`oracle_logmel`). The same patterns serve every split, so the audio names exactly which kinds sound,
in training and in test alike; a model trained on such data is limited only by matching the sound to the right
object in the picture (docs/robustness.md, "What limits the recorded family").

:func:`write_oracle_root` writes a new data root: the log-mel pickles (``<layout>_data/audio_log_mel``) replaced,
frames and masks linked to the source's, the wav files left out, the top-level files copied.
"""

import os
import os.path as osp
import shutil
import zlib
from typing import Dict, Iterable, Sequence

import numpy as np

from ..utils.atomic import temp_name
from .audio import LOG_OFFSET, save_logmel_pkl
from .audio_conditions.clip_kinds import entry_kinds, load_kinds_file
from .toy import KINDS_FILE

#: Mel bins and frames of one VGGish example.
NUM_BINS, NUM_FRAMES = 64, 96


def kind_patterns(kinds: Iterable[str], rng: np.random.Generator, bands: int = 3) -> Dict[str, np.ndarray]:
    """A ``(64,)`` mel-magnitude pattern per kind (sorted, so the draws do not depend on the order given): ``bands``
    bands, each ``2h`` bins wide around a random bin ``c`` (bins ``c - h`` to ``c + h - 1``, h from 1 to 3, clipped at
    the edges), of strength uniform in [0.5, 2]."""
    out = {}
    for kind in sorted(set(kinds)):
        pattern = np.zeros(NUM_BINS)
        for _ in range(bands):
            centre, half = int(rng.integers(0, NUM_BINS)), int(rng.integers(1, 4))
            pattern[max(0, centre - half) : centre + half] += rng.uniform(0.5, 2.0)
        out[kind] = pattern
    return out


def oracle_logmel(
    audible: Sequence[Sequence[str]], patterns: Dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """``(T, 1, 96, 64)`` float32 log-mels, one example per second, from the kinds audible in each second.

    A second's mel magnitudes are a noise floor (uniform in [0, 0.002]) plus, per audible kind, its pattern at a
    level of 10^(g / 20), g uniform in [-6, 6] dB, times 0.7-1.0 per time step; the front end's
    ``log(mel + 0.01)`` follows. The kinds of a second are drawn in sorted order (a set's order depends on the
    process). A kind without a pattern is an error naming it.
    """
    out = np.zeros((len(audible), 1, NUM_FRAMES, NUM_BINS), np.float32)
    for t, kinds in enumerate(audible):
        mel = 0.002 * rng.random((NUM_FRAMES, NUM_BINS))
        for kind in sorted(kinds):
            if kind not in patterns:
                raise KeyError(f'kind {kind!r} has no oracle pattern; known: {sorted(patterns)}')
            level = 10 ** (rng.uniform(-6, 6) / 20) * (0.7 + 0.3 * rng.random((NUM_FRAMES, 1)))
            mel = mel + patterns[kind][None] * level
        out[t, 0] = np.log(mel + LOG_OFFSET)
    return out


def _layout_dir(src: str) -> str:
    found = [d for d in ('s4_data', 'ms3_data') if osp.isdir(osp.join(src, d))]
    if len(found) != 1:
        raise FileNotFoundError(
            f'{src}: expected one of s4_data/ or ms3_data/ (an S4 or MS3 data root written by '
            'tools/dataset_converters/generate_toy_avsbench.py)'
        )
    return found[0]


def clip_rng(seed: int, video_id: str) -> np.random.Generator:
    """The generator of one clip's levels and noise: seeded by ``(seed, crc32(video_id))``, so a clip's oracle audio
    does not depend on the other clips of the root."""
    return np.random.default_rng([seed, zlib.crc32(video_id.encode('utf-8'))])


def write_oracle_root(src: str, dst: str, seed: int = 0, num_seconds: int = 5) -> int:
    """Write the oracle-audio copy of the S4 / MS3 data root ``src`` to the new folder ``dst``.

    ``dst`` gets the log-mel pickles of every clip (``<layout>_data/audio_log_mel``, the same relative paths) from
    the kinds ``clip_kinds.json`` says are audible in each second; the other folders of ``<layout>_data`` (frames,
    masks) and of ``src`` are linked, its files copied. ``audio_wav`` is left out: the wav files are the real sound,
    so a config that reads them (``audio_source='wav'``) fails instead of training on it. The copy is made in a
    temporary folder beside ``dst`` and renamed when complete; a failure removes it.

    Args:
        src (str): an S4 or MS3 data root with ``clip_kinds.json`` (left unchanged).
        dst (str): the new data root; must not exist nor lie inside ``src``.
        seed (int): seed of the patterns (:func:`kind_patterns` with ``default_rng(seed)``, over every kind the
            file names) and of each clip's levels and noise (:func:`clip_rng`).
        num_seconds (int): seconds (VGGish examples) per clip. Defaults to 5.

    Returns:
        int: the number of log-mel files written.

    Raises:
        FileExistsError: ``dst`` exists, or appeared while the copy was written.
        FileNotFoundError: no ``clip_kinds.json``, no single layout folder, no log-mel pickles in ``src``.
        ValueError: ``dst`` inside ``src``; a malformed ``clip_kinds.json``; a clip missing from it.
    """
    src_abs, dst_abs = osp.abspath(src), osp.abspath(dst)
    if osp.lexists(dst):
        raise FileExistsError(f'{dst} exists: oracle_audio writes a new data root; choose another folder')
    if osp.commonpath([src_abs, dst_abs]) == src_abs:
        raise ValueError(f'{dst} lies inside the source {src}: write the oracle root beside it, not in it')
    kinds_path = osp.join(src, KINDS_FILE)
    if not osp.isfile(kinds_path):
        raise FileNotFoundError(
            f'{kinds_path} not found: the oracle needs what is audible in each second (written by '
            'tools/dataset_converters/generate_toy_avsbench.py, or {video_id: {"visible": [...], "audible": '
            '[[kinds of second 1], ...]}} for your own clips)'
        )
    table = {
        vid: entry_kinds(e['visible'], e['audible'], num_seconds) for vid, e in load_kinds_file(kinds_path).items()
    }
    layout = _layout_dir(src)
    mel_root = osp.join(src, layout, 'audio_log_mel')
    files = {  # log-mel file -> its video id
        osp.join(dirpath, f): f[: -len('.pkl')]
        for dirpath, _, names in os.walk(mel_root)
        for f in names
        if f.endswith('.pkl')
    }
    if not files:
        raise FileNotFoundError(f'{mel_root}: no log-mel .pkl files to replace (is {src} a data root with its audio?)')
    for path, video_id in sorted(files.items()):
        if video_id not in table:
            raise ValueError(f'{path}: video {video_id!r} is not in {kinds_path}')
    named = set().union(*[visible.union(*audible) for visible, audible in table.values()])
    patterns = kind_patterns(named, np.random.default_rng(seed))
    tmp = temp_name(dst)
    os.makedirs(osp.dirname(tmp), exist_ok=True)
    os.mkdir(tmp)
    try:
        _write_tree(src, tmp, layout)
        for path, video_id in sorted(files.items()):
            logmel = oracle_logmel(table[video_id][1], patterns, clip_rng(seed, video_id))
            save_logmel_pkl(osp.join(tmp, layout, 'audio_log_mel', osp.relpath(path, mel_root)), logmel)
        if osp.lexists(dst):
            raise FileExistsError(f'{dst} appeared while the oracle root was written; nothing was written there')
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(files)


def _write_tree(src: str, tmp: str, layout: str) -> None:
    """Everything of ``src`` but the audio into ``tmp``: top-level files copied, folders linked (hidden entries
    left out); in ``<layout>_data`` every folder but ``audio_log_mel`` (written by the caller) and ``audio_wav``
    linked."""
    os.makedirs(osp.join(tmp, layout))
    for name in sorted(os.listdir(src)):
        path = osp.join(src, name)
        if name == layout or name.startswith('.'):
            continue
        if osp.isdir(path):
            os.symlink(osp.abspath(path), osp.join(tmp, name))
        else:
            shutil.copy2(path, osp.join(tmp, name))
    for name in sorted(os.listdir(osp.join(src, layout))):
        if name not in ('audio_log_mel', 'audio_wav') and not name.startswith('.'):
            os.symlink(osp.abspath(osp.join(src, layout, name)), osp.join(tmp, layout, name))
