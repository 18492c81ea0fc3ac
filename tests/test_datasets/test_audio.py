"""VGGish front end, wav reading and the restricted log-mel unpickler, against known values."""

import io
import math
import os
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from projects.ccformer.datasets import audio as A

SR = 16000


def _sine(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(round(seconds * sr))) / sr)


def _mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


def test_constants():
    assert (A.WINDOW_LENGTH, A.HOP_LENGTH, A.FFT_LENGTH) == (400, 160, 512)
    assert (A.EXAMPLE_FRAMES, A.NUM_MEL_BINS, A.NUM_SPECTROGRAM_BINS) == (96, 64, 257)


def test_periodic_hann():
    w = A.periodic_hann(400)
    assert w[0] == 0.0 and w[200] == pytest.approx(1.0)
    # periodic (not symmetric): w[n] == w[400 - n]
    np.testing.assert_allclose(w[1:200], w[399:200:-1], atol=1e-12)


def test_mel_filterbank_matches_scalar_computation():
    """Scalar loops over bins and bands, written from the definition, give the same matrix."""
    weights = A.mel_filterbank()
    assert weights.shape == (257, 64)
    lo, hi = _mel(125.0), _mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    for k in range(257):
        m = _mel(8000.0 * k / 256)
        for b in range(64):
            up = (m - edges[b]) / (edges[b + 1] - edges[b])
            down = (edges[b + 2] - m) / (edges[b + 2] - edges[b + 1])
            expected = 0.0 if k == 0 else max(0.0, min(up, down))
            assert weights[k, b] == pytest.approx(expected, abs=1e-12), (k, b)
    # triangles are peak-normalised (no area normalisation): no weight above 1
    assert weights.max() <= 1.0 and weights[0].sum() == 0.0


def test_mel_filterbank_hand_value():
    """Band 0 spans mel(125 Hz) .. +2 steps of (mel(7500) - mel(125)) / 65 ~= 39.818 mel.

    Bin 4 (125 Hz) is its lower edge (weight 0); bin 5 (156.25 Hz, mel 227.07) lies 1.0523 steps
    above it, just past the peak, so its weight is 2 - 1.0523 = 0.9477.
    """
    weights = A.mel_filterbank()
    assert weights[4, 0] == pytest.approx(0.0, abs=1e-12)
    lo, hi = _mel(125.0), _mel(7500.0)
    assert (hi - lo) / 65 == pytest.approx(39.8179, abs=1e-4)
    assert weights[5, 0] == pytest.approx(0.94769046, abs=1e-7)
    assert weights[6, 0] == pytest.approx(0.0, abs=1e-12)  # 187.5 Hz is past the upper edge


def test_first_frame_equals_explicit_dft():
    """The first log-mel frame equals log(W^T |DFT(x * hann)| + 0.01) with an explicit DFT sum."""
    x = _sine(1000.0, 2.0) + 0.1 * _sine(3100.0, 2.0)
    out = A.waveform_to_logmel(x, SR)
    n = np.arange(400)
    seg = x[:400] * (0.5 - 0.5 * np.cos(2 * np.pi * n / 400))
    k = np.arange(257)[:, None]
    spectrum = np.abs((seg[None, :] * np.exp(-2j * np.pi * k * n[None, :] / 512)).sum(1))
    expected = np.log(spectrum @ A.mel_filterbank() + 0.01)
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-5, atol=1e-5)
    # frame 7 of example 1 starts at sample (96 + 7) * 160
    seg = x[103 * 160 : 103 * 160 + 400] * (0.5 - 0.5 * np.cos(2 * np.pi * n / 400))
    spectrum = np.abs((seg[None, :] * np.exp(-2j * np.pi * k * n[None, :] / 512)).sum(1))
    np.testing.assert_allclose(out[1, 7], np.log(spectrum @ A.mel_filterbank() + 0.01), rtol=1e-5, atol=1e-5)


def test_sine_peaks_in_band_containing_1khz():
    out = A.waveform_to_logmel(_sine(1000.0, 2.0), SR)
    expected_band = int(np.argmax(A.mel_filterbank()[32]))  # bin 32 is exactly 1000 Hz
    assert np.all(out.argmax(-1) == expected_band)
    # that band's centre frequency brackets 1 kHz
    lo, hi = _mel(125.0), _mel(7500.0)
    centres = [700 * (math.exp((lo + (hi - lo) * (b + 1) / 65) / 1127) - 1) for b in range(64)]
    assert centres[expected_band - 1] < 1000.0 < centres[expected_band + 1]


@pytest.mark.parametrize('seconds,num', [(5, 5), (10, 10), (0.97, 0), (0.975, 1), (2.5, 2)])
def test_number_of_examples(seconds, num):
    out = A.waveform_to_logmel(np.zeros(int(round(seconds * SR))), SR)
    assert out.shape == (num, 96, 64) and out.dtype == np.float32


def test_silence_is_log_offset():
    out = A.waveform_to_logmel(np.zeros(3 * SR), SR)
    np.testing.assert_allclose(out, math.log(0.01), rtol=1e-6)
    assert math.log(0.01) == pytest.approx(-4.605170186)


def test_stereo_is_mixed_to_mono():
    x = _sine(440.0, 1.5)
    mono = A.waveform_to_logmel(x, SR)
    np.testing.assert_allclose(A.waveform_to_logmel(np.stack([x, x], 1), SR), mono, atol=1e-5)
    np.testing.assert_allclose(
        A.waveform_to_logmel(np.stack([x, -x], 1), SR), math.log(0.01), rtol=1e-6
    )  # channels cancel: the mean is silence
    with pytest.raises(ValueError, match='samples, channels'):
        A.waveform_to_logmel(np.zeros((2, 2, 2)), SR)


@pytest.mark.parametrize('rate', [8000, 44100, 48000])
def test_other_rates_are_resampled(rate):
    ref = A.waveform_to_logmel(_sine(1000.0, 5.0), SR)
    out = A.waveform_to_logmel(_sine(1000.0, 5.0, sr=rate), rate)
    assert out.shape == (5, 96, 64)
    band = int(np.argmax(A.mel_filterbank()[32]))
    assert np.all(out.argmax(-1) == band)
    # the bands carrying the tone agree closely with the native 16 kHz computation
    loud = ref.mean((0, 1)) > 0.0
    np.testing.assert_allclose(out[..., loud], ref[..., loud], atol=0.05)


def test_load_wav_int16_and_float(tmp_path):
    x = np.array([0, 16384, -32768, 32767, 1], np.int16)
    p = str(tmp_path / 'a.wav')
    sf.write(p, x, SR, subtype='PCM_16')
    data, rate = A.load_wav(p)
    assert rate == SR
    np.testing.assert_array_equal(data, x / 32768.0)
    pf = str(tmp_path / 'f.wav')
    sf.write(pf, np.array([0.25, -0.125, 0.3], np.float32), 8000, subtype='FLOAT')
    data, rate = A.load_wav(pf)
    assert rate == 8000
    np.testing.assert_allclose(data, [0.25, -0.125, 0.3], rtol=1e-7)
    ps = str(tmp_path / 's.wav')
    sf.write(ps, np.stack([x, x // 2], 1), SR, subtype='PCM_16')
    data, _ = A.load_wav(ps)
    assert data.shape == (5, 2)


def test_load_wav_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.wav'):
        A.load_wav(str(tmp_path / 'missing.wav'))
    bad = tmp_path / 'bad.wav'
    bad.write_bytes(b'RIFF not really a wav file at all')
    with pytest.raises(ValueError, match='bad.wav'):
        A.load_wav(str(bad))


def test_padding_helpers():
    ex = np.arange(2 * 3, dtype=np.float32).reshape(2, 3)
    rep = A.pad_examples_repeat(ex, 5)
    np.testing.assert_array_equal(rep, [ex[0], ex[1], ex[1], ex[1], ex[1]])
    np.testing.assert_array_equal(A.pad_examples_repeat(np.tile(ex, (4, 1)), 5), np.tile(ex, (4, 1))[:5])
    with pytest.raises(ValueError, match='clip.wav'):
        A.pad_examples_repeat(ex[:0], 5, 'clip.wav')
    zer, valid = A.pad_examples_zeros(ex, 4)
    np.testing.assert_array_equal(zer, [ex[0], ex[1], np.zeros(3), np.zeros(3)])
    assert valid.tolist() == [1, 1, 0, 0]
    zer, valid = A.pad_examples_zeros(np.ones((12, 3)), 10)
    assert zer.shape == (10, 3) and valid.sum() == 10


# -------------------------------------------------------------------------------------------
# restricted unpickler


def _dump(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=4)
    return str(path)


def test_official_style_pkl_roundtrip(tmp_path):
    t = torch.randn(5, 1, 96, 64, requires_grad=True)
    out = A.load_logmel_pkl(_dump(tmp_path / 'x.pkl', t))
    assert out.dtype == np.float32 and out.shape == (5, 1, 96, 64)
    np.testing.assert_array_equal(out, t.detach().numpy())
    # torch's own safe loader refuses these files; that is why the restricted unpickler exists
    with pytest.raises(Exception):
        torch.load(str(tmp_path / 'x.pkl'), weights_only=True)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pkl_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = _dump(tmp_path / 'evil.pkl', _Evil(marker))
    with pytest.raises(pickle.UnpicklingError, match='evil.pkl.*system'):
        A.load_logmel_pkl(path)
    assert not marker.exists()


class _EvilStorage:
    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


def test_malicious_inner_storage_is_refused(tmp_path):
    marker = tmp_path / 'pwned_inner'
    buf = io.BytesIO()
    torch.save(_Evil(marker), buf, _use_new_zipfile_serialization=False)
    path = _dump(tmp_path / 'inner.pkl', _EvilStorage(buf.getvalue()))
    with pytest.raises(pickle.UnpicklingError, match='inner.pkl'):
        A.load_logmel_pkl(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    'obj,err,msg',
    [
        (torch.zeros(5, 96, 64), ValueError, 'shape'),
        (torch.zeros(5, 1, 64, 96), ValueError, 'shape'),
        (torch.zeros(0, 1, 96, 64), ValueError, 'shape'),
        (torch.zeros(5, 1, 96, 64, dtype=torch.int32), ValueError, 'dtype'),
        ({'logmel': [1, 2]}, ValueError, 'not|expected a pickled torch tensor'),
        ([1.0, 2.0], ValueError, 'expected a pickled torch tensor'),
        (np.zeros((5, 1, 96, 64), np.float32), pickle.UnpicklingError, 'numpy'),
    ],
)
def test_bad_pkl_contents(tmp_path, obj, err, msg):
    path = _dump(tmp_path / 'bad.pkl', obj)
    with pytest.raises(err, match=msg) as info:
        A.load_logmel_pkl(path)
    assert 'bad.pkl' in str(info.value)


def test_corrupt_and_missing_pkl(tmp_path):
    p = tmp_path / 'garbage.pkl'
    p.write_bytes(os.urandom(64))
    with pytest.raises(pickle.UnpicklingError, match='garbage.pkl'):
        A.load_logmel_pkl(str(p))
    with pytest.raises(FileNotFoundError, match='nothere.pkl'):
        A.load_logmel_pkl(str(tmp_path / 'nothere.pkl'))


# -------------------------------------------------------------------------------------------
# non-finite audio


def test_non_finite_wav_names_file_and_time_span(tmp_path):
    x = _sine(440, 3.0).astype(np.float32)
    x[int(1.5 * SR) : int(1.75 * SR)] = np.nan
    x[int(2.0 * SR)] = np.inf
    p = str(tmp_path / 'nan.wav')
    sf.write(p, x, SR, subtype='FLOAT')
    with pytest.raises(
        ValueError,
        match=r'nan.wav: 4001 non-finite \(NaN / inf\) audio values between 1.50 s and '
        r'2.00 s',
    ):
        A.load_wav(p)
    with pytest.raises(ValueError, match='nan.wav'):
        A.wav_to_logmel(p)


def test_non_finite_pkl_names_file(tmp_path):
    t = torch.zeros(5, 1, 96, 64)
    t[3, 0, 10, 5] = float('nan')
    with pytest.raises(ValueError, match=r'x.pkl: 1 non-finite .* in log-mel examples 3..3 \(seconds 2.88 to 3.84\)'):
        A.load_logmel_pkl(_dump(tmp_path / 'x.pkl', t))


def test_finite_audio_passes_check():
    A.check_finite_audio(_sine(440, 1.0), 'x', SR)
    A.check_finite_audio(np.zeros((0, 2)), 'empty', SR)
