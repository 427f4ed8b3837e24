"""Inverse STFT from ops every TFLite runtime has: matmuls, elementwise
arithmetic, transposes, pads and reshapes.

The inverse real DFT of n_fft = n1 * n2 points is done in two stages
(Cooley-Tukey): n2 DFTs of n1 points, a twiddle multiply, n1 DFTs of n2
points. For n_fft 1024 (32 x 32) that needs 8 k constants and about 0.2 M MACs
a frame, where a dense inverse-DFT matrix would need 1.05 M of each (4.2 MB of
float32 in every exported graph, more than the whole ternary model).

Frames are centred (frame t covers samples t * hop - n_fft / 2 ...) as in
bittts_tf.audio.features, and the overlap-added signal is divided by the
overlap-added squared window of the frames that exist (`mask`), so an
utterance cut into chunks with enough context frames gives the same samples
as the whole utterance.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# The floor and the window are the C implementation's too (one source).
from bittts_tf.audio.istft_spec import ENVELOPE_FLOOR, hann_window


def split_factors(n: int) -> tuple[int, int]:
    """n = n1 * n2 with n1, n2 as close as possible (n1 <= n2)."""
    n1 = int(math.isqrt(n))
    while n % n1:
        n1 -= 1
    return n1, n // n1


def irfft_constants(n_fft: int) -> dict[str, np.ndarray]:
    """The float32 matrices of the two-stage inverse real DFT."""
    n1, n2 = split_factors(n_fft)
    k1 = np.arange(n1)
    angle1 = 2.0 * np.pi * np.outer(k1, k1) / n1            # [k1, m1]
    stage1 = np.block([[np.cos(angle1), np.sin(angle1)],
                       [-np.sin(angle1), np.cos(angle1)]])    # [re | im] @ -> [re | im]
    twiddle = 2.0 * np.pi * np.outer(np.arange(n2), k1) / n_fft  # [k2, m1]
    angle2 = 2.0 * np.pi * np.outer(np.arange(n2), np.arange(n2)) / n2  # [k2, m2]
    stage2 = np.concatenate([np.cos(angle2), -np.sin(angle2)], axis=0)  # -> real part only
    # Hermitian symmetry: the real part of a full-length inverse DFT of the
    # half spectrum with interior bins doubled equals the real inverse DFT.
    bin_weights = np.full(n_fft // 2 + 1, 2.0)
    bin_weights[0] = bin_weights[-1] = 1.0
    return {"stage1": stage1.astype(np.float32), "twiddle_cos": np.cos(twiddle).astype(np.float32),
            "twiddle_sin": np.sin(twiddle).astype(np.float32),
            "stage2": stage2.astype(np.float32),
            "bin_weights": (bin_weights / n_fft).astype(np.float32)}


def irfft(real, imag, n_fft: int, constants: dict | None = None):
    """Inverse real DFT of the last axis: [..., n_fft // 2 + 1] x 2 -> [..., n_fft]."""
    c = constants or irfft_constants(n_fft)
    n1, n2 = split_factors(n_fft)
    lead = tf.shape(real)[:-1]
    pad = [[0, 0], [0, n_fft - (n_fft // 2 + 1)]]
    real = tf.pad(tf.reshape(real * c["bin_weights"], [-1, n_fft // 2 + 1]), pad)
    imag = tf.pad(tf.reshape(imag * c["bin_weights"], [-1, n_fft // 2 + 1]), pad)
    # Bin k = n2 * k1 + k2: [M, k1, k2] -> [M, k2, k1], DFT over k1.
    spectrum = tf.concat([tf.reshape(real, [-1, n1, n2]), tf.reshape(imag, [-1, n1, n2])], axis=1)
    spectrum = tf.reshape(tf.transpose(spectrum, [0, 2, 1]), [-1, 2 * n1])
    stage1 = tf.reshape(tf.matmul(spectrum, c["stage1"]), [-1, n2, 2 * n1])
    a_real, a_imag = stage1[..., :n1], stage1[..., n1:]
    b_real = a_real * c["twiddle_cos"] - a_imag * c["twiddle_sin"]
    b_imag = a_real * c["twiddle_sin"] + a_imag * c["twiddle_cos"]
    # [M, k2, m1] -> [M, m1, k2], DFT over k2; sample n = m1 + n1 * m2.
    b = tf.transpose(tf.concat([b_real, b_imag], axis=1), [0, 2, 1])
    samples = tf.matmul(tf.reshape(b, [-1, 2 * n2]), c["stage2"])
    samples = tf.transpose(tf.reshape(samples, [-1, n1, n2]), [0, 2, 1])
    return tf.reshape(samples, tf.concat([lead, [n_fft]], axis=0))


def overlap_add(frames, hop: int):
    """[B, T, n_fft] -> [B, (T + n_fft / hop - 1) * hop], frame t starting at t * hop."""
    n_fft = frames.shape[-1]
    overlap = n_fft // hop
    parts = tf.reshape(frames, [tf.shape(frames)[0], tf.shape(frames)[1], overlap, hop])
    total = 0.0
    for j in range(overlap):
        total += tf.pad(parts[:, :, j, :], [[0, 0], [j, overlap - 1 - j], [0, 0]])
    return tf.reshape(total, [tf.shape(frames)[0], -1])


def istft(real, imag, mask, n_fft: int, hop: int, constants: dict | None = None):
    """Centred inverse STFT: spectra [B, T, n_fft // 2 + 1] (x2), mask [B, T, 1]
    -> samples [B, T * hop], normalized by the squared window of the frames the
    mask keeps."""
    if n_fft % hop:
        raise ValueError(f"n_fft={n_fft} must be a multiple of hop={hop}")
    window = hann_window(n_fft)
    frames = irfft(real, imag, n_fft, constants) * window * mask
    signal = overlap_add(frames, hop)
    envelope = overlap_add(mask * (window**2), hop)
    n_samples = tf.shape(real)[1] * hop
    signal = signal[:, n_fft // 2:n_fft // 2 + n_samples]
    envelope = envelope[:, n_fft // 2:n_fft // 2 + n_samples]
    return signal / tf.maximum(envelope, ENVELOPE_FLOOR)


def context_frames(n_fft: int, hop: int) -> tuple[int, int]:
    """(left, right): frames outside a chunk whose windows reach its samples.

    Frame t covers samples t * hop - n_fft / 2 + k, k = 0 .. n_fft - 1, so the
    chunk of frames [c0, c1), samples [c0 * hop, c1 * hop), also hears frames
    c0 - left .. c1 - 1 + right."""
    reach = (n_fft // 2 - 1) // hop
    return reach, reach + 1
