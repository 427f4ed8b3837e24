import dataclasses

import librosa
import numpy as np
import pytest

from bittts_tf.audio.config import AudioConfig, preset
from bittts_tf.audio.features import (durations_to_frames, energy, frame_features, log_mel,
                                      phone_average, pitch)

CFG = preset("tiny")


def reference_stft_magnitude(audio, cfg):
    """Plain numpy: reflect-pad by n_fft/2, periodic Hann, rfft of every hop."""
    padded = np.pad(audio.astype(np.float64), cfg.n_fft // 2, mode="reflect")
    n = np.arange(cfg.win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)
    left = (cfg.n_fft - cfg.win_length) // 2
    full_window = np.zeros(cfg.n_fft)
    full_window[left:left + cfg.win_length] = window
    frames = [padded[i * cfg.hop_length:i * cfg.hop_length + cfg.n_fft] * full_window
              for i in range(1 + len(audio) // cfg.hop_length)]
    return np.abs(np.fft.rfft(np.stack(frames), axis=1))


def test_log_mel_and_energy_match_a_numpy_reference(rng):
    audio = (rng.standard_normal(rng.integers(4000, 20000)) * 0.1).astype(np.float32)
    mag = reference_stft_magnitude(audio, CFG)
    basis = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels,
                                fmin=CFG.fmin, fmax=CFG.fmax)
    expected_mel = np.log(np.maximum(mag @ basis.T, CFG.log_floor))
    np.testing.assert_allclose(log_mel(audio, CFG), expected_mel, atol=2e-4)
    np.testing.assert_allclose(energy(audio, CFG), np.sqrt((mag ** 2).sum(axis=1)), rtol=1e-4)


def test_all_frame_features_have_one_frame_per_hop(rng):
    n = int(rng.integers(3000, 30000))
    audio = (rng.standard_normal(n) * 0.05).astype(np.float32)
    feats = frame_features(audio, CFG)
    assert feats["mel"].shape == (1 + n // CFG.hop_length, CFG.n_mels)
    assert len(feats["f0"]) == len(feats["energy"]) == len(feats["mel"])


def test_pitch_of_a_harmonic_tone(rng):
    f0 = float(rng.uniform(90, 400))
    t = np.arange(int(1.0 * CFG.sample_rate)) / CFG.sample_rate
    audio = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 5))
    est = pitch(audio.astype(np.float32), CFG)
    middle = est[5:-5]
    assert np.mean(middle > 0) > 0.9, "a steady tone must be voiced"
    voiced = middle[middle > 0]
    assert np.median(np.abs(1200 * np.log2(voiced / f0))) < 25  # cents


def test_pitch_of_noise_is_mostly_unvoiced(rng):
    audio = (rng.standard_normal(CFG.sample_rate) * 0.1).astype(np.float32)
    assert np.mean(pitch(audio, CFG) > 0) < 0.2


def test_durations_to_frames_matches_per_frame_assignment(rng):
    for _ in range(20):
        n_frames = int(rng.integers(20, 400))
        seconds = (n_frames - 1) * CFG.hop_length / CFG.sample_rate
        ends = np.sort(rng.uniform(0, seconds, int(rng.integers(1, 40))))
        ends[-1] = seconds
        durations = durations_to_frames(ends, n_frames, CFG)
        assert durations.sum() == n_frames and np.all(durations >= 0)
        # Brute force: frame i (centred at i * hop) belongs to the first phone ending after it.
        owner = [min(int(np.searchsorted(ends, i * CFG.hop_length / CFG.sample_rate, side="right")),
                     len(ends) - 1) for i in range(n_frames)]
        np.testing.assert_array_equal(np.bincount(owner, minlength=len(ends)), durations)


def test_phone_average_matches_a_loop(rng):
    durations = rng.integers(0, 6, 30)
    values = rng.uniform(50, 300, durations.sum())
    values[rng.random(len(values)) < 0.3] = 0.0
    for ignore_zeros in (False, True):
        expected, pos = [], 0
        for d in durations:
            chunk = values[pos:pos + d]
            pos += d
            if ignore_zeros:
                chunk = chunk[chunk != 0]
            expected.append(chunk.mean() if len(chunk) else 0.0)
        np.testing.assert_allclose(phone_average(values, durations, ignore_zeros), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="sum to"):
        phone_average(values, durations + 1)


def test_config_round_trip_and_validation():
    cfg = preset("libritts")
    assert AudioConfig.from_json(cfg.to_json()) == cfg
    assert cfg.fingerprint() != CFG.fingerprint()
    assert dataclasses.replace(CFG, hop_length=200).fingerprint() != CFG.fingerprint()
    with pytest.raises(ValueError, match="fmax"):
        AudioConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="unknown AudioConfig fields"):
        AudioConfig.from_dict({**CFG.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="unknown audio preset"):
        preset("huge")
