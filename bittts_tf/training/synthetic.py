"""A small synthetic corpus for tests and smoke runs: each phoneme is a
harmonic tone with its own pitch and spectral tilt, so mels, F0, energy and
durations are consistent with the audio and the task is learnable."""

from __future__ import annotations

import numpy as np

from bittts_tf.audio import features
from bittts_tf.audio.config import AudioConfig


def synthetic_corpus(n_utterances: int, audio: AudioConfig, n_symbols: int = 40, seed: int = 0,
                     tokens=(4, 10), frames_per_token=(2, 6)) -> list[dict]:
    rng = np.random.default_rng(seed)
    pitch_of = rng.uniform(100, 250, n_symbols)
    tilt_of = rng.uniform(0.3, 0.9, n_symbols)
    voiced_of = rng.random(n_symbols) > 0.2
    utterances = []
    for _ in range(n_utterances):
        n = int(rng.integers(tokens[0], tokens[1] + 1))
        phonemes = rng.integers(1, n_symbols, n).astype(np.int32)
        durations = rng.integers(frames_per_token[0], frames_per_token[1] + 1, n).astype(np.int32)
        n_frames = int(durations.sum())
        # 1 + len // hop == n_frames for this length (centred frames).
        n_samples = (n_frames - 1) * audio.hop_length + audio.hop_length // 2
        owner = np.repeat(np.arange(n), durations * audio.hop_length)[:n_samples]
        owner = np.pad(owner, (0, n_samples - len(owner)), mode="edge")
        f0 = pitch_of[phonemes][owner]
        phase = 2 * np.pi * np.cumsum(f0) / audio.sample_rate
        wave = sum(tilt_of[phonemes][owner] ** k * np.sin(k * phase) for k in range(1, 6))
        noise = rng.normal(0, 1, n_samples)
        wave = np.where(voiced_of[phonemes][owner], 0.2 * wave, 0.05 * noise).astype(np.float32)
        frame_f0 = np.repeat(np.where(voiced_of[phonemes], pitch_of[phonemes], 0.0), durations)
        magnitude = features.stft_magnitude(wave, audio)
        utterances.append({
            "phonemes": phonemes, "durations": durations, "speaker": np.int32(0),
            "mel": features.log_mel(wave, audio, magnitude),
            "energy": features.energy(wave, audio, magnitude),
            "f0": frame_f0.astype(np.float32), "audio": wave})
    return utterances
