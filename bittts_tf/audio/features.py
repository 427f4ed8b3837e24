"""Frame-level features (log-mel, F0, energy) and their per-phone averages."""

from __future__ import annotations

import functools

import numpy as np

from bittts_tf.audio.config import AudioConfig


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def stft_magnitude(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """|STFT| as [frames, n_fft // 2 + 1]."""
    import librosa
    spec = librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=cfg.n_fft,
                        hop_length=cfg.hop_length, win_length=cfg.win_length,
                        window=cfg.window, center=True, pad_mode="reflect")
    return np.abs(spec).T


def log_mel(audio: np.ndarray, cfg: AudioConfig, magnitude: np.ndarray | None = None) -> np.ndarray:
    """Natural-log mel spectrogram [frames, n_mels], float32."""
    if magnitude is None:
        magnitude = stft_magnitude(audio, cfg)
    basis = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    mel = magnitude @ basis.T
    return np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32)


def energy(audio: np.ndarray, cfg: AudioConfig, magnitude: np.ndarray | None = None) -> np.ndarray:
    """L2 norm of each STFT magnitude frame [frames], as in FastSpeech2."""
    if magnitude is None:
        magnitude = stft_magnitude(audio, cfg)
    return np.linalg.norm(magnitude, axis=1).astype(np.float32)


def pitch(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """F0 in Hz per frame [frames] by pYIN; 0 where the frame is unvoiced."""
    import librosa
    audio = np.asarray(audio, dtype=np.float32)
    n_frames = cfg.n_frames(len(audio))
    if len(audio) < cfg.f0_frame_length // 2 + 1:
        return np.zeros(n_frames, np.float32)  # too short to hold one pitch period
    f0, voiced, _ = librosa.pyin(audio, fmin=cfg.f0_min, fmax=cfg.f0_max, sr=cfg.sample_rate,
                                 frame_length=cfg.f0_frame_length, hop_length=cfg.hop_length,
                                 resolution=cfg.f0_resolution, center=True)
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0).astype(np.float32)
    return _fit_length(f0, n_frames)


def compile_pitch_tracker(cfg: AudioConfig) -> None:
    """Runs pYIN once, so that librosa's numba kernels are compiled and cached
    by this process alone. Processes that compile the same guvectorize kernel
    at once can pair cache files written by different compilers and crash on
    loading them (numba issue 10128); call this before starting workers."""
    t = np.arange(4 * cfg.f0_frame_length, dtype=np.float32) / cfg.sample_rate
    pitch(0.1 * np.sin(2 * np.pi * 2 * cfg.f0_min * t), cfg)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def frame_features(audio: np.ndarray, cfg: AudioConfig) -> dict[str, np.ndarray]:
    """mel [T, n_mels], f0 [T], energy [T] for one utterance, all with the same T."""
    magnitude = stft_magnitude(audio, cfg)
    features = {
        "mel": log_mel(audio, cfg, magnitude),
        "energy": energy(audio, cfg, magnitude),
        "f0": pitch(audio, cfg),
    }
    n = cfg.n_frames(len(audio))
    for name, value in features.items():
        if len(value) != n:
            raise AssertionError(f"{name} has {len(value)} frames, expected {n}")
    return features


def durations_to_frames(end_times: np.ndarray, n_frames: int, cfg: AudioConfig) -> np.ndarray:
    """Phone end times in seconds -> whole frames per phone, summing to n_frames.

    Frame i is centred at i * hop / sample_rate and belongs to the phone whose
    interval [start, end) contains that instant. The last phone absorbs any
    frames past its end time (the tail of the final pause).
    """
    end_times = np.asarray(end_times, dtype=np.float64)
    if end_times.ndim != 1 or len(end_times) == 0:
        raise ValueError(f"end_times must be a non-empty 1-D array, got shape {end_times.shape}")
    if np.any(np.diff(end_times) < 0) or end_times[0] < 0:
        raise ValueError("phone end times must be non-negative and non-decreasing")
    boundaries = np.ceil(end_times * cfg.sample_rate / cfg.hop_length - 1e-6).astype(np.int64)
    boundaries = np.clip(boundaries, 0, n_frames)
    boundaries[-1] = n_frames
    return np.diff(np.concatenate([[0], boundaries])).astype(np.int32)


def phone_average(values: np.ndarray, durations: np.ndarray, ignore_zeros: bool = False) -> np.ndarray:
    """Mean of frame values over each phone's frames [N]; 0 for empty phones.

    With ignore_zeros (used for F0) unvoiced frames do not drag a phone's
    pitch towards 0; a phone with no voiced frame gets 0.
    """
    values = np.asarray(values, dtype=np.float64)
    durations = np.asarray(durations, dtype=np.int64)
    if durations.sum() != len(values):
        raise ValueError(f"durations sum to {durations.sum()} frames but there are {len(values)}")
    ends = np.cumsum(durations)
    starts = ends - durations
    mask = (values != 0) if ignore_zeros else np.ones_like(values, dtype=bool)
    csum = np.concatenate([[0.0], np.cumsum(np.where(mask, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(mask)])
    total = csum[ends] - csum[starts]
    count = ccount[ends] - ccount[starts]
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
