"""Log-mel examples of synthetic negative audio: digital silence and Gaussian (white or pink) noise.

Both go through the project's VGGish front end (:func:`~projects.ccformer.datasets.audio.waveform_to_logmel`), so
they are what a wav of silence or noise would give: ``(num, 1, 96, 64)`` float32 examples of 0.96 s each.
"""

import functools

import numpy as np

from ..audio import EXAMPLE_FRAMES, HOP_LENGTH, SAMPLE_RATE, WINDOW_LENGTH, waveform_to_logmel


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
