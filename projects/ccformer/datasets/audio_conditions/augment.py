"""Training-time changes of VGGish log-mel examples that keep what sounds: colouring, level, background, masks.

The front end gives ``log(mel + 0.01)`` (:mod:`..audio`), so a change of level or an added sound is computed on the
mel magnitudes ``exp(x) - 0.01`` and taken back to the log domain; magnitudes of independent sounds are added,
which is what their mixture gives on average. Used by :class:`~.training.NegativeAudioDataset` (``audio_augment``).
"""

from typing import Optional, Sequence, Tuple

import numpy as np

from ..audio import LOG_OFFSET


def logmel_to_magnitude(logmel: np.ndarray) -> np.ndarray:
    """Mel magnitudes of log-mel examples (inverse of the front end's ``log(mel + 0.01)``; >= 0)."""
    return np.maximum(np.exp(logmel) - LOG_OFFSET, 0.0)


def magnitude_to_logmel(mel: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(mel, 0.0) + LOG_OFFSET).astype(np.float32)


def _rms(mel: np.ndarray) -> float:
    return float(np.sqrt(np.mean(mel**2)))


class LogmelAugment:
    """Random colouring, level, background sound and time / frequency masks for ``(1, 96, 64)`` log-mel examples.

    Each example, independently (``__call__``):

    0. with ``eq_db`` or ``tilt_db`` > 0, its spectrum is coloured as another microphone, distance or room would
       colour it: each mel bin's magnitude is scaled by ``10 ** (c(b) / 20)``, where ``c`` (dB over the bins
       ``b``) is a straight tilt from ``-t`` dB at the lowest bin to ``+t`` at the highest, ``t`` drawn uniformly in
       ``[-tilt_db, tilt_db]``, plus a smooth random curve (three cosines over the bins with normal weights and
       uniform phases) scaled to a peak drawn uniformly in ``[0, eq_db]`` (:meth:`colouring`);
    1. its level changes by a gain drawn uniformly in ``gain_db`` (dB, on the magnitudes);
    2. with probability ``mix_prob`` a background example (from ``backgrounds``, e.g. windows of a
       :class:`~..sound_bank.SoundBank`) is added under it at a signal-to-background ratio drawn in ``mix_snr_db``
       (dB, RMS of magnitudes), so the sound is still the loudest thing heard;
    3. with probability ``mask_prob`` one band of up to ``freq_mask`` mel bins and one span of up to ``time_mask``
       frames are set to the example's quietest value (SpecAugment-style).

    An example whose magnitudes are all (near) zero - digital silence - is left as it is: silence stays silence.

    Args:
        gain_db (tuple[float, float]): gain range in dB. Defaults to (-12, 6).
        mix_prob (float): share of examples that get a background. Defaults to 0.5.
        mix_snr_db (tuple[float, float]): signal-to-background range in dB. Defaults to (6, 24).
        mask_prob (float): share of examples that get the masks. Defaults to 0.5.
        freq_mask (int): widest frequency mask in mel bins. Defaults to 8.
        time_mask (int): widest time mask in frames (10 ms each). Defaults to 16.
        eq_db (float): largest peak of the smooth random colouring curve, dB. Defaults to 0 (off).
        tilt_db (float): largest spectral tilt, dB from the middle to either end of the mel range. Defaults to 0
            (off). With both 0 the example is not coloured and draws nothing for it, so the other changes draw as
            they do without the option.
    """

    def __init__(
        self,
        gain_db: Sequence[float] = (-12.0, 6.0),
        mix_prob: float = 0.5,
        mix_snr_db: Sequence[float] = (6.0, 24.0),
        mask_prob: float = 0.5,
        freq_mask: int = 8,
        time_mask: int = 16,
        eq_db: float = 0.0,
        tilt_db: float = 0.0,
    ) -> None:
        for name, value in (('mix_prob', mix_prob), ('mask_prob', mask_prob)):
            if not 0 <= value <= 1:
                raise ValueError(f'LogmelAugment: {name}={value} must be in [0, 1]')
        for name, pair in (('gain_db', gain_db), ('mix_snr_db', mix_snr_db)):
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ValueError(f'LogmelAugment: {name}={pair!r} must be a range (low, high) with low <= high')
        if freq_mask < 0 or time_mask < 0:
            raise ValueError(f'LogmelAugment: freq_mask={freq_mask} and time_mask={time_mask} must be >= 0')
        if eq_db < 0 or tilt_db < 0:
            raise ValueError(f'LogmelAugment: eq_db={eq_db} and tilt_db={tilt_db} must be >= 0 (dB; 0 is off)')
        self.gain_db: Tuple[float, float] = (float(gain_db[0]), float(gain_db[1]))
        self.mix_prob, self.mask_prob = float(mix_prob), float(mask_prob)
        self.mix_snr_db: Tuple[float, float] = (float(mix_snr_db[0]), float(mix_snr_db[1]))
        self.freq_mask, self.time_mask = int(freq_mask), int(time_mask)
        self.eq_db, self.tilt_db = float(eq_db), float(tilt_db)

    def __repr__(self) -> str:
        return (
            f'LogmelAugment(gain_db={self.gain_db}, mix_prob={self.mix_prob}, mix_snr_db={self.mix_snr_db}, '
            f'mask_prob={self.mask_prob}, freq_mask={self.freq_mask}, time_mask={self.time_mask}, '
            f'eq_db={self.eq_db}, tilt_db={self.tilt_db})'
        )

    def colouring(self, rng: np.random.Generator, bins: int) -> np.ndarray:
        """A random colouring curve in dB over ``bins`` mel bins (step 0 of the class docstring); zeros when the
        option is off (then nothing is drawn)."""
        if self.eq_db <= 0 and self.tilt_db <= 0:
            return np.zeros(bins)
        weights, phases = rng.normal(size=3), rng.uniform(0.0, 2 * np.pi, size=3)
        peak, tilt = rng.uniform(0.0, self.eq_db), rng.uniform(-self.tilt_db, self.tilt_db)
        b = np.linspace(0.0, 1.0, bins)
        curve = sum(w * np.cos(np.pi * k * b + ph) for k, w, ph in zip((1, 2, 3), weights, phases))
        curve = curve * (peak / max(float(np.abs(curve).max()), 1e-9))
        return curve + tilt * (2.0 * b - 1.0)

    def __call__(
        self, rng: np.random.Generator, example: np.ndarray, background: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """One changed example (same shape, float32). ``background``: a log-mel example of the same shape to mix
        in (drawn only when ``rng`` says so; None: no mixing)."""
        mel = logmel_to_magnitude(np.asarray(example, dtype=np.float64))
        level = _rms(mel)
        draws = rng.random(3)  # fixed number of draws: the rng stream does not depend on the example
        gain = rng.uniform(*self.gain_db)
        snr = rng.uniform(*self.mix_snr_db)
        colour = self.colouring(rng, mel.shape[-1])
        if level < 1e-6:
            return np.asarray(example, dtype=np.float32).copy()
        mel = mel * 10 ** ((gain + colour) / 20)
        if background is not None and draws[0] < self.mix_prob:
            bg = logmel_to_magnitude(np.asarray(background, dtype=np.float64))
            bg_level = _rms(bg)
            if bg_level > 1e-6:
                mel = mel + bg * (_rms(mel) / bg_level) * 10 ** (-snr / 20)
        out = magnitude_to_logmel(mel)
        if draws[1] < self.mask_prob:
            floor = out.min()
            bins, frames = out.shape[-1], out.shape[-2]
            fw = int(rng.integers(0, self.freq_mask + 1)) if self.freq_mask else 0
            tw = int(rng.integers(0, self.time_mask + 1)) if self.time_mask else 0
            if fw:
                f0 = int(rng.integers(0, bins - fw + 1))
                out[..., f0 : f0 + fw] = floor
            if tw:
                t0 = int(rng.integers(0, frames - tw + 1))
                out[..., t0 : t0 + tw, :] = floor
        return out
