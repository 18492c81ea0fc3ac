"""Oracle audio: a control that replaces each second's log-mel by a fixed pattern per audible kind.

Given a toy data root whose ``clip_kinds.json`` says what is audible in every second (the generator writes it), the
log-mel of a second becomes the sum of the patterns of its audible kinds over a little noise: each kind is three mel
bands of random width and strength (:func:`kind_patterns`), heard at a random level of +-6 dB and 0.7-1.0 of it per
time step (:func:`oracle_logmel`). The same patterns serve every split, so the audio names exactly which kinds sound,
in training and in test alike; a model trained on such data is limited only by matching the sound to the right
object in the picture (docs/robustness.md, "What limits the recorded family").

:func:`write_oracle_root` writes a new data root: the log-mel pickles (``<layout>_data/audio_log_mel``) replaced,
frames, masks and wav files linked to the source's, the top-level files copied.
"""

import json
import os
import os.path as osp
import pickle
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from .audio import LOG_OFFSET
from .toy import KINDS_FILE

#: Mel bins and frames of one VGGish example.
NUM_BINS, NUM_FRAMES = 64, 96


def kind_patterns(kinds: Iterable[str], rng: np.random.Generator, bands: int = 3) -> Dict[str, np.ndarray]:
    """A ``(64,)`` mel-magnitude pattern per kind (sorted, so the draws do not depend on the order given): ``bands``
    bands, each centred on a random bin, 1-3 bins either side, of strength uniform in [0.5, 2]."""
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
    ``log(mel + 0.01)`` follows. A kind without a pattern is an error naming it.
    """
    out = np.zeros((len(audible), 1, NUM_FRAMES, NUM_BINS), np.float32)
    for t, kinds in enumerate(audible):
        mel = 0.002 * rng.random((NUM_FRAMES, NUM_BINS))
        for kind in kinds:
            if kind not in patterns:
                raise KeyError(f'kind {kind!r} has no oracle pattern; known: {sorted(patterns)}')
            level = 10 ** (rng.uniform(-6, 6) / 20) * (0.7 + 0.3 * rng.random((NUM_FRAMES, 1)))
            mel = mel + patterns[kind][None] * level
        out[t, 0] = np.log(mel + LOG_OFFSET)
    return out


def _per_second(audible: list, num: int) -> List[List[str]]:
    """``clip_kinds.json``'s ``audible``: one list for the clip or one per second; ``num`` seconds."""
    if audible and all(isinstance(a, list) for a in audible):
        seconds = [list(a) for a in audible][:num]
        return seconds + [[] for _ in range(num - len(seconds))]
    return [list(audible)] * num


def _layout_dir(src: str) -> str:
    found = [d for d in ('s4_data', 'ms3_data') if osp.isdir(osp.join(src, d))]
    if len(found) != 1:
        raise FileNotFoundError(
            f'{src}: expected one of s4_data/ or ms3_data/ (an S4 or MS3 data root written by '
            'tools/dataset_converters/generate_toy_avsbench.py)'
        )
    return found[0]


def write_oracle_root(src: str, dst: str, seed: int = 0, num_seconds: int = 5) -> int:
    """Write the oracle-audio copy of the S4 / MS3 data root ``src`` to the new folder ``dst``.

    ``dst`` must not exist; the copy is made in a new temporary folder beside it and renamed when complete, so an
    interrupted run leaves no half-written root under the name asked for. Returns the number of log-mel files
    written.
    """
    if osp.lexists(dst):
        raise FileExistsError(f'{dst} exists: oracle_audio writes a new data root; choose another folder')
    kinds_path = osp.join(src, KINDS_FILE)
    if not osp.isfile(kinds_path):
        raise FileNotFoundError(
            f'{kinds_path} not found: the oracle needs what is audible in each second (written by '
            'tools/dataset_converters/generate_toy_avsbench.py, or {video_id: {"visible": [...], "audible": '
            '[[kinds of second 1], ...]}} for your own clips)'
        )
    with open(kinds_path) as f:
        table = json.load(f)
    layout = _layout_dir(src)
    rng = np.random.default_rng(seed)
    named = [k for v in table.values() for k in v['visible']]  # every kind gets a pattern, seen or heard
    named += [k for v in table.values() for second in _per_second(v['audible'], num_seconds) for k in second]
    patterns = kind_patterns(named, rng)
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(dst)}.', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private; the data root gets the usual mode
    try:
        written = _write(src, tmp, layout, table, patterns, rng, num_seconds, kinds_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.rename(tmp, dst)
    return written


def _write(src, tmp, layout, table, patterns, rng, num_seconds, kinds_path) -> int:
    os.makedirs(osp.join(tmp, layout))
    for name in sorted(os.listdir(src)):
        if name != layout:
            (shutil.copytree if osp.isdir(osp.join(src, name)) else shutil.copy2)(
                osp.join(src, name), osp.join(tmp, name)
            )
    for name in sorted(os.listdir(osp.join(src, layout))):
        if name != 'audio_log_mel':
            os.symlink(osp.abspath(osp.join(src, layout, name)), osp.join(tmp, layout, name))
    written = 0
    mel_root = osp.join(src, layout, 'audio_log_mel')
    for dirpath, _, files in sorted(os.walk(mel_root)):
        for fname in sorted(f for f in files if f.endswith('.pkl')):
            video_id = fname[: -len('.pkl')]
            entry: Optional[dict] = table.get(video_id)
            if entry is None:
                raise KeyError(f'{osp.join(dirpath, fname)}: video {video_id!r} is not in {kinds_path}')
            logmel = oracle_logmel(_per_second(entry['audible'], num_seconds), patterns, rng)
            out_dir = osp.join(tmp, layout, 'audio_log_mel', osp.relpath(dirpath, mel_root))
            os.makedirs(out_dir, exist_ok=True)
            with open(osp.join(out_dir, fname), 'wb') as f:
                pickle.dump(torch.from_numpy(logmel), f, protocol=4)
            written += 1
    return written
