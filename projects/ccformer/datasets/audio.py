"""Audio front end of AVSBench: the VGGish log-mel examples and safe loaders.

Everything here follows the official AVSBench / torchvggish preprocessing (``docs/data.md``, "Audio front
end"):

* :func:`load_wav` reads a wav like the official code (int16 PCM divided by 32768; float files
  are kept as floats).
* :func:`waveform_to_logmel` is the VGGish front end: mono mix, ``resampy`` resampling to 16 kHz,
  a 25 ms periodic Hann window with a 10 ms hop, the magnitude of a 512-point FFT, 64 HTK mel bands
  between 125 and 7500 Hz (the DC weight forced to 0), ``log(mel + 0.01)`` and non-overlapping
  96-frame (0.96 s) examples; an incomplete tail is dropped.
* :func:`pad_examples_repeat` / :func:`pad_examples_zeros` give the official S4/MS3 and AVSS padding.
* :func:`load_logmel_pkl` reads the official ``.pkl`` log-mels (plain ``pickle.dump`` of a torch
  tensor) with a restricted unpickler that refuses every global a tensor does not need.
* :func:`check_finite_audio`: NaN / inf samples or log-mel values stop with an error naming the file
  and where in it they are (they would otherwise give NaN logits that metrics score as background).
"""

import collections
import io
import os
import pickle
from typing import Optional, Tuple

import numpy as np

# VGGish front-end constants (torchvggish ``vggish_params``).
SAMPLE_RATE = 16000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_WINDOW_SECONDS = 0.96
EXAMPLE_HOP_SECONDS = 0.96

WINDOW_LENGTH = int(round(SAMPLE_RATE * STFT_WINDOW_SECONDS))  # 400 samples
HOP_LENGTH = int(round(SAMPLE_RATE * STFT_HOP_SECONDS))  # 160 samples
FFT_LENGTH = 2 ** int(np.ceil(np.log2(WINDOW_LENGTH)))  # 512
NUM_SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1  # 257
FEATURES_RATE = 1.0 / STFT_HOP_SECONDS  # 100 frames per second
EXAMPLE_FRAMES = int(round(EXAMPLE_WINDOW_SECONDS * FEATURES_RATE))  # 96
EXAMPLE_HOP_FRAMES = int(round(EXAMPLE_HOP_SECONDS * FEATURES_RATE))  # 96
EXAMPLE_SHAPE = (1, EXAMPLE_FRAMES, NUM_MEL_BINS)  # per example, as stored
# every log-mel value of a digitally silent example is log(0 + LOG_OFFSET); the margin absorbs float32 rounding
SILENT_LOGMEL = float(np.log(LOG_OFFSET)) + 1e-4


def silent_examples(examples):
    """Which log-mel examples are digital silence: at least half of their rows (10 ms each) are at the floor
    ``log(0 + LOG_OFFSET)`` in every mel bin. Examples do not align with the seconds of a video, so a silent second's
    example holds some of its neighbours' rows.

    The one rule for "nothing can be heard": :class:`~projects.ccformer.datasets.transforms.LoadAVSAudio` gives such
    frames the presence target 0, and ``CCFormer(empty_when_silent=True)`` empties their masks.

    Args:
        examples: ``(..., 96, 64)`` numpy array or torch tensor.

    Returns:
        ``(...)`` bool, of the input's kind (only comparisons and sums, so it also exports to ONNX).
    """
    rows = (examples > SILENT_LOGMEL).sum(-1) == 0  # (..., 96): no bin above the floor
    return rows.sum(-1) * 2 >= rows.shape[-1]


def hertz_to_mel(frequencies_hertz: np.ndarray) -> np.ndarray:
    """HTK mel scale: ``1127 * ln(1 + f / 700)``."""
    return 1127.0 * np.log(1.0 + np.asarray(frequencies_hertz, dtype=np.float64) / 700.0)


def mel_filterbank(
    num_mel_bins: int = NUM_MEL_BINS,
    num_spectrogram_bins: int = NUM_SPECTROGRAM_BINS,
    sample_rate: int = SAMPLE_RATE,
    lower_edge_hertz: float = MEL_MIN_HZ,
    upper_edge_hertz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """Triangular HTK mel weights as in VGGish, shape ``[num_spectrogram_bins, num_mel_bins]``.

    Band edges are equally spaced in mel between the two edge frequencies; each filter rises
    linearly (in mel) from its lower edge to its centre and falls to its upper edge, peak 1, with
    no area normalisation. The weight on the DC bin is forced to 0.
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= nyquist:
        raise ValueError(
            f'mel band edges must satisfy 0 <= {lower_edge_hertz} < {upper_edge_hertz} <= nyquist {nyquist}'
        )
    bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def periodic_hann(window_length: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)``, n = 0..N-1 (as TF / VGGish)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window_length) / window_length)


def _frame(data: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Non-padded framing of the first axis: ``[1 + (N - window) // hop, window, ...]``."""
    num = 0 if data.shape[0] < window else 1 + (data.shape[0] - window) // hop
    if num == 0:
        return np.zeros((0, window) + data.shape[1:], dtype=data.dtype)
    idx = np.arange(window)[None, :] + hop * np.arange(num)[:, None]
    return data[idx]


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """Average channels of a ``[samples, channels]`` array (soundfile layout) to ``[samples]``."""
    waveform = np.asarray(waveform)
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim != 2:
        raise ValueError(f'waveform must be [samples] or [samples, channels], got shape {waveform.shape}')
    return waveform.mean(axis=1)


def resample(waveform: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono waveform with ``resampy`` (its default ``kaiser_best`` filter), as official."""
    if sample_rate == target_rate:
        return waveform
    if sample_rate <= 0:
        raise ValueError(f'sample rate must be positive, got {sample_rate}')
    import resampy

    return resampy.resample(waveform, sample_rate, target_rate)


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
    """Log-mel frames of a 16 kHz mono waveform, ``[1 + (N - 400) // 160, 64]`` (0 rows if N < 400)."""
    frames = _frame(waveform.astype(np.float64), WINDOW_LENGTH, HOP_LENGTH)
    spectrum = np.abs(np.fft.rfft(frames * periodic_hann(WINDOW_LENGTH), FFT_LENGTH))
    mel = spectrum @ mel_filterbank()
    return np.log(mel + LOG_OFFSET)


def waveform_to_logmel(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """VGGish log-mel examples of a waveform (torchvggish ``waveform_to_examples``).

    Args:
        waveform: ``[samples]`` mono or ``[samples, channels]`` (soundfile layout), floats in
            [-1, 1] (int16 PCM divided by 32768, as :func:`load_wav` returns).
        sample_rate: rate of ``waveform`` in Hz; other rates than 16 kHz are resampled with resampy.

    Returns:
        float32 ``[n, 96, 64]`` (time x mel): n = number of complete 0.96 s examples, starting at
        0, 0.96, 1.92, ... s (5 s -> 5, 10 s -> 10; shorter than 0.975 s -> 0).
        Digital silence gives ``log(0.01)`` everywhere.
    """
    waveform = resample(to_mono(np.asarray(waveform, dtype=np.float64)), int(sample_rate))
    log_mel = log_mel_spectrogram(waveform)
    examples = _frame(log_mel, EXAMPLE_FRAMES, EXAMPLE_HOP_FRAMES)
    return examples.reshape(-1, EXAMPLE_FRAMES, NUM_MEL_BINS).astype(np.float32)


def check_finite_audio(values: np.ndarray, source: str, sample_rate: Optional[int] = None) -> None:
    """Raise ``ValueError`` if ``values`` holds NaN or inf, naming ``source`` and where the bad values are.

    Args:
        values: a waveform ``[samples(, channels)]`` (give ``sample_rate``: the span is reported in seconds) or
            log-mel examples ``[n, ...]`` (the span is reported as example indices, 0.96 s each).
        source: the file (or other origin) named in the message.
        sample_rate: rate of a waveform in Hz.
    """
    values = np.asarray(values)
    if values.size == 0 or np.isfinite(values).all():
        return
    rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    raise non_finite_error(source, int((~np.isfinite(values)).sum()), int(rows[0]), int(rows[-1]), sample_rate)


def non_finite_error(source: str, count: int, first: int, last: int, sample_rate: Optional[int] = None) -> ValueError:
    """The error of :func:`check_finite_audio`: ``count`` non-finite values in rows ``first..last`` (samples of a
    waveform at ``sample_rate``, else log-mel examples)."""
    if sample_rate:
        where = f'between {first / sample_rate:.2f} s and {(last + 1) / sample_rate:.2f} s'
    else:
        where = (
            f'in log-mel examples {first}..{last} (seconds {first * EXAMPLE_HOP_SECONDS:.2f} to '
            f'{(last + 1) * EXAMPLE_HOP_SECONDS:.2f})'
        )
    return ValueError(
        f'{source}: {count} non-finite (NaN / inf) audio values {where}. The model cannot use such '
        f'sound (its masks would be meaningless); re-extract or regenerate the audio of this file.'
    )


def load_wav(path: str) -> Tuple[np.ndarray, int]:
    """Read a wav file like the official loader.

    Integer PCM is read as int16 and divided by 32768; float files (``FLOAT``/``DOUBLE``) are
    returned as their float values. Multi-channel files keep ``[samples, channels]``.

    Returns:
        ``(waveform float64, sample_rate)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: soundfile cannot decode it, or a float file holds NaN / inf samples.
    """
    import soundfile as sf

    if not os.path.isfile(path):
        raise FileNotFoundError(f'audio file not found: {path}')
    try:
        subtype = sf.info(path).subtype
        if subtype in ('FLOAT', 'DOUBLE'):
            data, rate = sf.read(path, dtype='float64')
        else:
            data, rate = sf.read(path, dtype='int16')
            data = data / 32768.0
    except (RuntimeError, sf.LibsndfileError) as err:  # LibsndfileError subclasses RuntimeError
        raise ValueError(
            f'cannot decode audio file {path}: {err}. Re-extract it as a 16 kHz '
            f'PCM wav (e.g. `ffmpeg -i video.mp4 -ar 16000 {path}`).'
        ) from err
    check_finite_audio(data, path, int(rate))
    return np.asarray(data, dtype=np.float64), int(rate)


def wav_to_logmel(path: str) -> np.ndarray:
    """:func:`load_wav` then :func:`waveform_to_logmel`: ``[n, 96, 64]`` float32."""
    waveform, rate = load_wav(path)
    return waveform_to_logmel(waveform, rate)


def pad_examples_repeat(examples: np.ndarray, num: int, path: str = '') -> np.ndarray:
    """S4/MS3 padding: keep the first ``num`` examples, repeating the last one if fewer.

    Args:
        examples: ``[n, ...]``; ``n`` must be >= 1.
        num: T, the clip length.
        path: file name used in the error message.
    """
    if len(examples) == 0:
        raise ValueError(
            f'{path or "audio"}: no complete 0.96 s log-mel example (the audio is '
            f'shorter than 0.975 s); cannot pad to {num} by repeating the last '
            f'example. Provide at least 1 s of audio.'
        )
    if len(examples) >= num:
        return examples[:num]
    reps = np.repeat(examples[-1:], num - len(examples), axis=0)
    return np.concatenate([examples, reps], axis=0)


def pad_examples_zeros(examples: np.ndarray, num: int) -> Tuple[np.ndarray, np.ndarray]:
    """AVSS padding: first ``num`` examples, zero-filled to ``num``.

    Returns:
        ``(padded [num, ...], valid [num] int flags)`` with 1 for real examples.
    """
    out = np.zeros((num,) + examples.shape[1:], dtype=examples.dtype)
    n = min(len(examples), num)
    out[:n] = examples[:n]
    valid = np.zeros(num, dtype=np.int64)
    valid[:n] = 1
    return out, valid


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only the globals a pickled ``torch.Tensor`` needs."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        import torch

        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ('torch.storage', '_load_from_bytes'):
            return self._load_storage
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        raise pickle.UnpicklingError(
            f'{self.path}: refusing to load global "{module}.{name}"; a log-mel .pkl may only '
            f'contain a plain torch tensor. Never unpickle untrusted files; regenerate it '
            f'from the wav (audio_source="wav").'
        )

    def _load_storage(self, data: bytes):
        """Inner storage bytes (legacy ``torch.save``), read with ``weights_only=True``."""
        import torch

        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
        except Exception as err:
            raise pickle.UnpicklingError(f'{self.path}: refusing the tensor storage inside: {err}') from err


def save_logmel_pkl(path: str, examples: np.ndarray) -> None:
    """Write ``[n, 1, 96, 64]`` log-mel examples as the official preprocessing does: ``pickle.dump`` (protocol 4) of
    a float32 torch tensor with ``requires_grad=True`` (what :func:`load_logmel_pkl` reads). The write is atomic and
    creates the folder."""
    import torch

    from ..utils.atomic import atomic_open

    tensor = torch.from_numpy(np.ascontiguousarray(examples, dtype=np.float32)).requires_grad_(True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, 'wb') as f:
        pickle.dump(tensor, f, protocol=4)


def load_logmel_pkl(path: str) -> np.ndarray:
    """Read an official AVSBench log-mel ``.pkl`` without executing arbitrary pickles.

    The files are ``pickle.dump`` of a torch tensor ``[5, 1, 96, 64]`` (``requires_grad=True``),
    which ``torch.load(weights_only=True)`` refuses; this restricted unpickler admits only
    ``torch._utils._rebuild_tensor_v2``, ``torch.storage._load_from_bytes`` (itself read with
    ``torch.load(weights_only=True)``) and ``collections.OrderedDict``.

    Returns:
        float32 numpy ``[n, 1, 96, 64]`` (detached).

    Raises:
        FileNotFoundError: missing file.
        pickle.UnpicklingError: any other global (e.g. ``os.system``) or a corrupt pickle.
        ValueError: the object is not a tensor, its shape is not ``[n, 1, 96, 64]``, or it holds NaN / inf.
    """
    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f'log-mel file not found: {path}')
    with open(path, 'rb') as f:
        try:
            obj = _RestrictedUnpickler(f, path).load()
        except pickle.UnpicklingError as err:
            if path in str(err):
                raise
            raise pickle.UnpicklingError(f'{path}: not a readable log-mel pickle: {err}') from err
        except Exception as err:
            raise pickle.UnpicklingError(f'{path}: not a readable log-mel pickle: {err!r}') from err
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f'{path}: expected a pickled torch tensor [n, 1, 96, 64], got {type(obj).__name__}')
    if obj.ndim != 4 or tuple(obj.shape[1:]) != EXAMPLE_SHAPE or obj.shape[0] < 1:
        raise ValueError(
            f'{path}: log-mel tensor has shape {tuple(obj.shape)}, expected '
            f'[n, 1, 96, 64] (VGGish examples); regenerate it from the wav.'
        )
    if not obj.is_floating_point():
        raise ValueError(f'{path}: log-mel tensor has dtype {obj.dtype}, expected a float type')
    examples = obj.detach().to(torch.float32).cpu().numpy()
    check_finite_audio(examples, path)
    return examples
