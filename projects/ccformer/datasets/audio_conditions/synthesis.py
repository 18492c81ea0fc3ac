"""Log-mel examples of synthetic negative audio: digital silence, and white, pink or ambient noise.

All go through the project's VGGish front end (:func:`~projects.ccformer.datasets.audio.waveform_to_logmel`), so
they are what a wav of silence or noise would give: ``(num, 1, 96, 64)`` float32 examples of 0.96 s each.
"""

import functools

import numpy as np

from ..audio import EXAMPLE_FRAMES, HOP_LENGTH, SAMPLE_RATE, WINDOW_LENGTH, waveform_to_logmel

NOISE_COLORS = ('white', 'pink', 'ambient')


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
    """``(num, 1, 96, 64)`` float32 log-mel examples of noise with RMS ``10 ** (dbfs / 20)``, clipped at full scale.

    ``color``: ``'white'`` (Gaussian, flat spectrum), ``'pink'`` (Gaussian, power falling as 1/f, shaped in the
    Fourier domain) or ``'ambient'`` (:func:`ambient_wave`: a random colour, spectral shape, level contour and hum,
    drawn anew per call).
    """
    if color not in NOISE_COLORS:
        raise ValueError(f'noise color must be one of {NOISE_COLORS}, got {color!r}')
    n = _samples_for(num)
    wave = ambient_wave(rng, n) if color == 'ambient' else rng.standard_normal(n)
    if color == 'pink':
        spec = np.fft.rfft(wave)
        freqs = np.fft.rfftfreq(n)
        spec[1:] /= np.sqrt(freqs[1:] / freqs[1])
        wave = np.fft.irfft(spec, n)
    wave *= 10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(wave**2))), 1e-12)
    examples = waveform_to_logmel(np.clip(wave, -1.0, 1.0), SAMPLE_RATE)
    return examples[:num, None].astype(np.float32)


def ambient_wave(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples (16 kHz, RMS 1) of random ambience: what a scene sounds like when nothing in it calls.

    Gaussian noise whose power falls as ``f ** -alpha`` (``alpha`` uniform in [0, 2.5]: white to darker than
    brown), times a smooth random spectral shape (0-3 bumps or dips of +-15 dB, Gaussian in log frequency, and with
    probability 0.5 a low- or high-pass edge of 24 dB per octave), times a slow level contour (a random walk with a
    step every 50-400 ms, linear in between, spanning 0-12 dB: gusts, swells, passing traffic); with probability 1/3
    a hum (50 or 60 Hz, 1-4 partials from the fundamental up, of random levels) 0-20 dB under the noise.
    """
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    logf = np.log(np.maximum(freqs, 20.0))
    gain_db = -10.0 * rng.uniform(0.0, 2.5) * (logf - logf[0]) / np.log(10)
    for _ in range(int(rng.integers(0, 4))):
        centre = rng.uniform(np.log(60.0), np.log(7000.0))
        gain_db += rng.uniform(-15.0, 15.0) * np.exp(-0.5 * ((logf - centre) / rng.uniform(0.2, 1.0)) ** 2)
    if rng.random() < 0.5:
        edge = np.log(rng.uniform(200.0, 6000.0))
        side = 1.0 if rng.random() < 0.5 else -1.0  # 1: low-pass, -1: high-pass
        gain_db -= 24.0 * np.maximum(side * (logf - edge), 0.0) / np.log(2)
    spec = np.fft.rfft(rng.standard_normal(n)) * 10 ** (gain_db / 20)
    spec[0] = 0
    wave = np.fft.irfft(spec, n)
    wave /= max(float(np.sqrt(np.mean(wave**2))), 1e-12)
    depth_db = rng.uniform(0.0, 12.0)
    step = max(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), 1)
    walk = np.cumsum(rng.standard_normal(n // step + 2))
    walk = np.interp(np.arange(n) / step, np.arange(len(walk)), walk)
    walk = (walk - walk.min()) / max(float(np.ptp(walk)), 1e-12)
    wave *= 10 ** (depth_db * (walk - 1.0) / 20)
    if rng.random() < 1 / 3:
        t = np.arange(n) / SAMPLE_RATE
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(
            rng.uniform(0.1, 1.0) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
            for k in range(1, int(rng.integers(2, 6)))
        )
        hum /= max(float(np.sqrt(np.mean(hum**2))), 1e-12)
        wave = wave + hum * 10 ** (-rng.uniform(0.0, 20.0) / 20) * float(np.sqrt(np.mean(wave**2)))
    return wave / max(float(np.sqrt(np.mean(wave**2))), 1e-12)
