import os

import numpy as np
import pytest
import soundfile as sf

from bittts_tf.audio.io import AudioError, load_wav, probe, resample, save_wav


def test_save_and_load_round_trip(tmp_path, rng):
    audio = rng.uniform(-0.9, 0.9, 5000).astype(np.float32)
    path = str(tmp_path / "a.wav")
    save_wav(path, audio, 16000)
    loaded, sr = load_wav(path)
    assert sr == 16000 and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, audio, atol=1.0 / 32768 + 1e-6)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp")] == []
    assert probe(path) == (5000, 16000)


def test_stereo_becomes_mono(tmp_path, rng):
    stereo = rng.uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    path = str(tmp_path / "s.wav")
    sf.write(path, stereo, 8000, subtype="FLOAT")
    mono, _ = load_wav(path)
    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-6)


def test_resampling_keeps_the_frequency(rng):
    freq = float(rng.uniform(200, 3000))
    t = np.arange(32000) / 32000
    tone = np.sin(2 * np.pi * freq * t).astype(np.float32)
    out = resample(tone, 32000, 16000)
    assert abs(len(out) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - freq) < 2.0


def test_load_resamples_on_request(tmp_path, rng):
    path = str(tmp_path / "r.wav")
    save_wav(path, rng.uniform(-0.5, 0.5, 22050).astype(np.float32), 22050)
    audio, sr = load_wav(path, 16000)
    assert sr == 16000 and abs(len(audio) - 16000) <= 1


def test_bad_files_give_clear_errors(tmp_path, rng):
    good = str(tmp_path / "good.wav")
    save_wav(good, rng.uniform(-0.5, 0.5, 8000).astype(np.float32), 16000)
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioError, match="truncated.wav: truncated WAV"):
        load_wav(str(truncated))
    text = tmp_path / "text.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioError, match="text.wav: not readable audio"):
        load_wav(str(text))
    empty = str(tmp_path / "empty.wav")
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: contains no samples"):
        load_wav(empty)
    with pytest.raises(AudioError, match="no such file"):
        load_wav(str(tmp_path / "missing.wav"))
    with pytest.raises(AudioError, match="mono"):
        save_wav(str(tmp_path / "x.wav"), np.zeros((10, 2)), 16000)
