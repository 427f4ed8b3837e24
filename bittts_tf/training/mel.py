"""Log-mel spectrogram in TensorFlow, identical to bittts_tf.audio.features.log_mel
(librosa's centred, reflect-padded STFT), so that the vocoder's mel loss is
differentiable and measured in the features' own units."""

from __future__ import annotations

import librosa
import numpy as np
import tensorflow as tf

from bittts_tf.audio.config import AudioConfig


class LogMel:
    def __init__(self, config: AudioConfig):
        self.config = config
        window = librosa.filters.get_window(config.window, config.win_length, fftbins=True)
        self.window = tf.constant(librosa.util.pad_center(window, size=config.n_fft), tf.float32)
        basis = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                    n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        self.basis = tf.constant(basis.T, tf.float32)  # [n_fft // 2 + 1, n_mels]

    def __call__(self, audio):
        """audio [B, n] -> log-mel [B, 1 + n // hop, n_mels]."""
        c = self.config
        pad = c.n_fft // 2
        audio = tf.pad(audio, [[0, 0], [pad, pad]], mode="REFLECT")
        frames = tf.signal.frame(audio, c.n_fft, c.hop_length) * self.window
        magnitude = tf.abs(tf.signal.rfft(frames))
        mel = tf.tensordot(magnitude, self.basis, axes=1)
        return tf.math.log(tf.maximum(mel, c.log_floor))


def reference_log_mel(audio: np.ndarray, config: AudioConfig) -> np.ndarray:
    from bittts_tf.audio.features import log_mel
    return log_mel(audio, config)
