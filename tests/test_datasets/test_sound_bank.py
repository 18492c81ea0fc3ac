"""``SoundBank``: a folder of real recordings drawn as seeded windows (waveforms and VGGish log-mel examples)."""

import os
import os.path as osp

import numpy as np
import pytest
import soundfile as sf

from projects.ccformer.datasets.audio import SAMPLE_RATE, waveform_to_logmel
from projects.ccformer.datasets.sound_bank import EXAMPLE_SAMPLES, SoundBank


def _tone(freq: float, seconds: float, rate: int = SAMPLE_RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def _write(path, data, rate=SAMPLE_RATE, subtype=None) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return str(path)


@pytest.fixture
def bank_root(tmp_path):
    """kinds 'birds' (wav), 'thunder' (flac), 'waves' (ogg, in a nested folder) and one file of unknown kind."""
    root = tmp_path / 'bank'
    _write(root / 'birds' / 'a.wav', _tone(3000, 2.0))
    _write(root / 'birds' / 'b.wav', _tone(2500, 1.5))
    _write(root / 'thunder' / 'take1.flac', _tone(200, 3.0))
    _write(root / 'waves' / 'coast' / 'w.ogg', _tone(500, 2.0))
    _write(root / 'loose.wav', _tone(1000, 1.2))
    (root / 'birds' / 'LICENSE.txt').write_text('CC0')  # not audio: ignored
    return str(root)


def test_scan_kinds_and_sorted_files(bank_root):
    bank = SoundBank(bank_root)
    assert bank.kinds == ('', 'birds', 'thunder', 'waves')
    assert list(bank.files) == [
        osp.join('birds', 'a.wav'),
        osp.join('birds', 'b.wav'),
        'loose.wav',
        osp.join('thunder', 'take1.flac'),
        osp.join('waves', 'coast', 'w.ogg'),
    ]
    assert bank.file_kinds == ('birds', 'birds', '', 'thunder', 'waves')
    assert bank.durations[0] == pytest.approx(2.0)


def test_draws_shapes_and_determinism(bank_root):
    bank = SoundBank(bank_root)
    wave = bank.draw_waveform(np.random.default_rng(0), seconds=0.5)
    assert wave.shape == (8000,) and wave.dtype == np.float32
    a = bank.draw_logmel(np.random.default_rng(3), 6)
    b = SoundBank(bank_root).draw_logmel(np.random.default_rng(3), 6)  # a fresh bank: nothing cached
    assert a.shape == (6, 1, 96, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    c = bank.draw_logmel(np.random.default_rng(4), 6)
    assert not np.array_equal(a, c)
    # each example is the front end's log-mel of the drawn window
    examples, draws = bank.draw_logmel_with_sources(np.random.default_rng(3), 6)
    np.testing.assert_array_equal(examples, a)
    for example, d in zip(examples, draws):
        assert len(d.waveform) == EXAMPLE_SAMPLES
        np.testing.assert_array_equal(example[0], waveform_to_logmel(d.waveform, SAMPLE_RATE)[0])
        full = bank.load(bank.files.index(d.path))
        np.testing.assert_array_equal(d.waveform, full[d.start : d.start + EXAMPLE_SAMPLES])


def test_kinds_and_exclusion(bank_root):
    bank = SoundBank(bank_root)
    rng = np.random.default_rng(0)
    drawn = {bank.draw(rng).kind for _ in range(200)}
    assert drawn == set(bank.kinds)  # every kind is drawn (kinds first, uniformly)
    left = {bank.draw(rng, exclude=('birds', 'thunder')).kind for _ in range(100)}
    assert left == {'', 'waves'}
    only = {bank.draw(rng, kinds=['thunder']).path for _ in range(20)}
    assert only == {osp.join('thunder', 'take1.flac')}
    with pytest.raises(ValueError, match=r"no recording left.*exclude=\['', 'birds', 'thunder', 'waves'\]"):
        bank.draw(rng, exclude=bank.kinds)
    with pytest.raises(ValueError, match='bank has kinds'):
        bank.draw_logmel(rng, 2, kinds=['dog'])


def test_resamples_a_44k_stereo_int16_file(tmp_path):
    """int16 PCM scaled by 32768, the channels averaged, 44.1 kHz resampled to 16 kHz (a 1 kHz tone stays 1 kHz)."""
    rate = 44100
    left = _tone(1000, 2.0, rate, amp=0.5)
    stereo = np.stack([left, 0.5 * left], axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)
    _write(tmp_path / 'b' / 'hum' / 'x.wav', pcm, rate, subtype='PCM_16')
    bank = SoundBank(str(tmp_path / 'b'))
    wave = bank.load(0)
    assert wave.dtype == np.float32 and len(wave) == 32000
    middle = wave[4000:-4000]  # away from the resampling filter's edges
    rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.75 * 0.5 / np.sqrt(2), rel=0.01)  # mono mix of 0.5 and 0.25 amplitudes
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(1000, abs=1)


def test_quiet_windows_are_skipped_and_short_files_looped(tmp_path):
    root = tmp_path / 'b'
    # 3 s of digital silence, then 1 s of sound, then 3 s of silence: only windows over the sound are drawn
    wave = np.concatenate([np.zeros(3 * SAMPLE_RATE), _tone(800, 1.0), np.zeros(3 * SAMPLE_RATE)])
    _write(root / 'x' / 'sparse.wav', wave)
    _write(root / 'y' / 'short.wav', _tone(800, 0.3))
    bank = SoundBank(str(root))
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = bank.draw(rng, kinds=['x'])
        rms = float(np.sqrt(np.mean(d.waveform.astype(np.float64) ** 2)))
        assert rms >= 0.3 / np.sqrt(2) * 10 ** (-10 / 20) - 1e-6, d.start  # within 10 dB of the loudest window
        assert not d.looped
    starts = bank.window_starts(0, EXAMPLE_SAMPLES)
    assert starts.min() >= 3 * SAMPLE_RATE - EXAMPLE_SAMPLES and starts.max() <= 4 * SAMPLE_RATE
    short = bank.draw(rng, kinds=['y'])
    assert short.looped and len(short.waveform) == EXAMPLE_SAMPLES
    n = int(0.3 * SAMPLE_RATE)
    np.testing.assert_array_equal(short.waveform[n : 2 * n], short.waveform[:n])  # the file repeated


def test_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        SoundBank(str(tmp_path / 'nowhere'))
    empty = tmp_path / 'empty'
    (empty / 'dogs').mkdir(parents=True)
    (empty / 'dogs' / 'notes.txt').write_text('no audio here')
    with pytest.raises(ValueError, match=f'{empty}.*holds no audio file'):
        SoundBank(str(empty))
    broken = tmp_path / 'broken'
    _write(broken / 'a' / 'ok.wav', _tone(440, 1.0))
    (broken / 'a' / 'bad.wav').write_bytes(b'RIFF not really a wav')
    with pytest.raises(ValueError, match=r'cannot read .*bad\.wav'):
        SoundBank(str(broken))
    silent = tmp_path / 'silent'
    _write(silent / 'a' / 'zero.wav', np.zeros(SAMPLE_RATE * 2))
    bank = SoundBank(str(silent))
    with pytest.raises(ValueError, match=r'zero\.wav is silent'):
        bank.draw(np.random.default_rng(0))
