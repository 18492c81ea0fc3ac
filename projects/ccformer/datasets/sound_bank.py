"""A bank of real recordings: seeded windows of them as 16 kHz waveforms or VGGish log-mel examples.

Layout of a bank folder (scanned recursively, files sorted by path so draws depend on the seed only)::

    root/
        aircraft/take1.wav, take2.flac, field/take3.ogg     kind 'aircraft'
        thunder/....wav                                     kind 'thunder'
        misc.wav                                            kind '' (unknown)

The kind of a file is its first-level sub-folder under ``root``; files directly in ``root`` have kind ``''``
(unknown). Off-screen evaluation (``AudioConditionDataset(condition='offscreen_recorded')``) leaves out the kinds
visible in a clip, so sub-folders should be named like the dataset's kinds (S4 categories, AVSS class names, the
kinds of ``clip_kinds.json``).

Decoding (:meth:`SoundBank.load`): soundfile, integer PCM scaled to [-1, 1] by its sample width, channels averaged
to mono, other rates resampled to 16 kHz with ``scipy.signal.resample_poly``. Files are decoded on first use and the
``cache_size`` most recently used are kept.

Windows (:meth:`SoundBank.draw`): a kind is drawn uniformly among the allowed kinds, then a file of that kind, then
a window start on a 10 ms grid among the windows that are not mostly silent: a window whose mean power is more than
``max_quiet_db`` below the file's loudest window of the same length is never drawn. A file shorter than the window
is looped (repeated end to end) to the window's length.
"""

import collections
import os
import os.path as osp
from math import gcd
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .audio import (
    EXAMPLE_FRAMES,
    HOP_LENGTH,
    NUM_MEL_BINS,
    SAMPLE_RATE,
    WINDOW_LENGTH,
    check_finite_audio,
    waveform_to_logmel,
)

#: File name endings the bank reads (what libsndfile decodes); others (licences, credits, ...) are ignored.
AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.aif', '.aiff', '.au', '.caf', '.w64')
#: Samples of a window that gives exactly one 0.96 s VGGish example (0.975 s at 16 kHz).
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP_LENGTH + WINDOW_LENGTH
#: Grid of window starts (10 ms at 16 kHz).
START_STEP = HOP_LENGTH
#: A file whose loudest window is below this RMS (dB re full scale) is silent: an error, not a sound.
SILENT_DBFS = -90.0


class BankDraw(NamedTuple):
    """One drawn window: ``waveform`` ``(samples,)`` float32 at 16 kHz, the file (``path`` relative to the
    bank's root), its ``kind`` and the ``start`` sample of the window (in the looped file when ``looped``)."""

    waveform: np.ndarray
    path: str
    kind: str
    start: int
    looped: bool


class SoundBank:
    """Real recordings from a folder, drawn as seeded windows (module docstring).

    Args:
        root (str): the folder; scanned recursively for ``extensions``.
        extensions (Sequence[str]): file name endings to read (case-insensitive). Defaults to
            :data:`AUDIO_EXTENSIONS`.
        max_quiet_db (float): windows more than this many dB below the file's loudest window are not drawn.
            Defaults to 10 (a window holds at least a tenth of the loudest window's energy).
        cache_size (int): decoded files kept in memory. Defaults to 256.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: ``root`` holds no audio file, or soundfile cannot read one of them (the file is named).
    """

    def __init__(
        self,
        root: str,
        extensions: Sequence[str] = AUDIO_EXTENSIONS,
        max_quiet_db: float = 10.0,
        cache_size: int = 256,
    ) -> None:
        import soundfile as sf

        if not osp.isdir(root):
            raise FileNotFoundError(f'sound bank folder {root!r} does not exist or is not a folder')
        if max_quiet_db <= 0:
            raise ValueError(f'SoundBank: max_quiet_db must be > 0 dB, got {max_quiet_db}')
        self.root = root
        self.max_quiet_db = float(max_quiet_db)
        self.cache_size = max(int(cache_size), 1)
        ends = tuple(e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions)
        files: List[str] = []
        for folder, dirs, names in os.walk(root, followlinks=True):
            dirs.sort()
            files += [osp.relpath(osp.join(folder, n), root) for n in names if n.lower().endswith(ends)]
        files.sort(key=lambda p: p.split(os.sep))
        if not files:
            raise ValueError(
                f'sound bank folder {root!r} holds no audio file ({", ".join(ends)}); put recordings in it, one '
                f'sub-folder per kind (e.g. {osp.join(root, "thunder", "take1.wav")})'
            )
        self.files: Tuple[str, ...] = tuple(files)
        self.file_kinds: Tuple[str, ...] = tuple(p.split(os.sep)[0] if os.sep in p else '' for p in files)
        self.durations: Tuple[float, ...] = tuple(self._info(sf, p) for p in files)
        self._by_kind: Dict[str, List[int]] = {}
        for i, kind in enumerate(self.file_kinds):
            self._by_kind.setdefault(kind, []).append(i)
        self._cache: 'collections.OrderedDict[int, np.ndarray]' = collections.OrderedDict()
        self._starts: Dict[Tuple[int, int], np.ndarray] = {}

    def _info(self, sf, path: str) -> float:
        full = osp.join(self.root, path)
        try:
            info = sf.info(full)
        except (RuntimeError, sf.LibsndfileError) as err:  # LibsndfileError subclasses RuntimeError
            raise ValueError(
                f'sound bank {self.root!r}: soundfile cannot read {full} ({err}); convert it to wav or flac '
                f'(e.g. `ffmpeg -i in.mp3 out.flac`) or remove it'
            ) from err
        if info.frames <= 0 or info.samplerate <= 0:
            raise ValueError(f'sound bank {self.root!r}: {full} holds no audio samples; remove it')
        return info.frames / info.samplerate

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(root={self.root!r}, files={len(self)}, kinds={list(self.kinds)})'

    @property
    def kinds(self) -> Tuple[str, ...]:
        """The kinds of the bank's files, sorted (``''`` for files directly in the root)."""
        return tuple(sorted(self._by_kind))

    def load(self, index: int) -> np.ndarray:
        """File ``index`` as a ``(samples,)`` float32 mono waveform at 16 kHz (cached)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        import soundfile as sf
        from scipy.signal import resample_poly

        path = osp.join(self.root, self.files[index])
        try:
            data, rate = sf.read(path, dtype='float32', always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise ValueError(f'sound bank {self.root!r}: soundfile cannot decode {path} ({err})') from err
        check_finite_audio(data, path, int(rate))
        wave = data.mean(axis=1, dtype=np.float64)
        if rate != SAMPLE_RATE:
            g = gcd(int(rate), SAMPLE_RATE)
            wave = resample_poly(wave, SAMPLE_RATE // g, int(rate) // g)
        wave = wave.astype(np.float32)
        wave.setflags(write=False)
        self._cache[index] = wave
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return wave

    def window_starts(self, index: int, length: int) -> np.ndarray:
        """Starts (samples, on a 10 ms grid) of the ``length``-sample windows of file ``index`` that may be drawn:
        those within ``max_quiet_db`` of its loudest window. ``[0]`` for a file shorter than ``length`` (looped).

        Raises:
            ValueError: the file is silent (its loudest window is below :data:`SILENT_DBFS`).
        """
        key = (index, int(length))
        if key in self._starts:
            return self._starts[key]
        wave = self._window_source(index, length)
        starts = np.arange(0, len(wave) - length + 1, START_STEP)
        energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
        power = (energy[starts + length] - energy[starts]) / length
        loudest = float(power.max())
        if loudest <= 10 ** (SILENT_DBFS / 10):
            raise ValueError(
                f'sound bank {self.root!r}: {osp.join(self.root, self.files[index])} is silent (RMS below '
                f'{SILENT_DBFS:.0f} dBFS in every {length / SAMPLE_RATE:.2f} s window); remove it'
            )
        starts = starts[power >= loudest * 10 ** (-self.max_quiet_db / 10)]
        self._starts[key] = starts
        return starts

    def _window_source(self, index: int, length: int) -> np.ndarray:
        """The file's waveform, looped to ``length`` samples when it is shorter."""
        wave = self.load(index)
        if len(wave) >= length:
            return wave
        return np.resize(wave, length)  # repeats the file end to end

    def indices(self, kinds: Optional[Iterable[str]] = None, exclude: Iterable[str] = ()) -> Dict[str, List[int]]:
        """``{kind: file indices}`` of the files of ``kinds`` (None = all) but not of ``exclude``.

        Raises:
            ValueError: no file is left (the message names the folder, the bank's kinds and the selection).
        """
        exclude = set(exclude)
        wanted = None if kinds is None else set(kinds)
        out = {k: idx for k, idx in self._by_kind.items() if k not in exclude and (wanted is None or k in wanted)}
        if not out:
            raise ValueError(
                f'sound bank {self.root!r}: no recording left with kinds={sorted(wanted) if wanted else "all"} '
                f'and exclude={sorted(exclude)}; the bank has kinds {list(self.kinds)} (sub-folders of the root; '
                f"'' = files directly in it)"
            )
        return out

    def draw(
        self,
        rng: np.random.Generator,
        kinds: Optional[Iterable[str]] = None,
        exclude: Iterable[str] = (),
        seconds: float = EXAMPLE_SAMPLES / SAMPLE_RATE,
        samples: Optional[int] = None,
    ) -> BankDraw:
        """A random window of a random recording (module docstring), seeded by ``rng`` alone.

        Args:
            rng: the generator of the draw.
            kinds: kinds to draw from (None = all); exclude: kinds never drawn.
            seconds: window length; ``samples`` (at 16 kHz) overrides it. Defaults to 0.975 s, one VGGish example.
        """
        length = int(samples) if samples is not None else int(round(seconds * SAMPLE_RATE))
        if length <= 0:
            raise ValueError(f'SoundBank.draw: the window must be longer than 0 samples, got {length}')
        groups = self.indices(kinds, exclude)
        names = sorted(groups)
        kind = names[int(rng.integers(len(names)))]
        index = groups[kind][int(rng.integers(len(groups[kind])))]
        return self.window(rng, index, length)

    def window(self, rng: np.random.Generator, index: int, length: int) -> BankDraw:
        """A random ``length``-sample window of file ``index`` among :meth:`window_starts`, seeded by ``rng``."""
        starts = self.window_starts(index, length)
        start = int(starts[int(rng.integers(len(starts)))])
        source = self._window_source(index, length)
        return BankDraw(
            waveform=np.array(source[start : start + length], dtype=np.float32),
            path=self.files[index],
            kind=self.file_kinds[index],
            start=start,
            looped=len(self.load(index)) < length,
        )

    def draw_waveform(
        self,
        rng: np.random.Generator,
        kinds: Optional[Iterable[str]] = None,
        exclude: Iterable[str] = (),
        seconds: float = EXAMPLE_SAMPLES / SAMPLE_RATE,
    ) -> np.ndarray:
        """``(round(seconds * 16000),)`` float32: :meth:`draw`'s waveform."""
        return self.draw(rng, kinds, exclude, seconds).waveform

    def draw_logmel(
        self,
        rng: np.random.Generator,
        num: int,
        kinds: Optional[Iterable[str]] = None,
        exclude: Iterable[str] = (),
    ) -> np.ndarray:
        """``(num, 1, 96, 64)`` float32 VGGish log-mel examples, each of its own drawn window (0.975 s)."""
        return self.draw_logmel_with_sources(rng, num, kinds, exclude)[0]

    def draw_logmel_with_sources(
        self,
        rng: np.random.Generator,
        num: int,
        kinds: Optional[Iterable[str]] = None,
        exclude: Iterable[str] = (),
    ) -> Tuple[np.ndarray, List[BankDraw]]:
        """:meth:`draw_logmel` and the :class:`BankDraw` of each example (same draws for the same ``rng``)."""
        exclude = tuple(exclude)
        kinds = None if kinds is None else tuple(kinds)
        draws = [self.draw(rng, kinds, exclude, samples=EXAMPLE_SAMPLES) for _ in range(int(num))]
        examples = np.zeros((len(draws), 1, EXAMPLE_FRAMES, NUM_MEL_BINS), dtype=np.float32)
        for i, d in enumerate(draws):
            examples[i, 0] = waveform_to_logmel(d.waveform, SAMPLE_RATE)[0]
        return examples, draws


#: Prefix of a shipped sound bank in ``sound_bank`` arguments: ``'assets:recorded/bank'`` is the folder
#: ``projects/ccformer/datasets/assets/recorded/bank`` of the installed package, wherever it is installed.
ASSETS_PREFIX = 'assets:'


def resolve_bank_root(root: str) -> str:
    """The folder of a sound bank argument: ``assets:<path>`` under the package's shipped assets, else ``root``."""
    if isinstance(root, str) and root.startswith(ASSETS_PREFIX):
        return osp.join(osp.dirname(osp.abspath(__file__)), 'assets', root[len(ASSETS_PREFIX) :])
    return root


def build_sound_bank(sound_bank) -> 'SoundBank':
    """A :class:`SoundBank` from a folder (``assets:<path>`` for a shipped one, :func:`resolve_bank_root`), a dict of
    its arguments, or the bank itself."""
    if isinstance(sound_bank, SoundBank):
        return sound_bank
    if isinstance(sound_bank, str):
        return SoundBank(resolve_bank_root(sound_bank))
    if isinstance(sound_bank, dict):
        args = dict(sound_bank)
        if 'root' in args:
            args['root'] = resolve_bank_root(args['root'])
        return SoundBank(**args)
    raise TypeError(f'sound_bank must be a folder, a dict of SoundBank arguments or a SoundBank, got {sound_bank!r}')
