"""Fake quantizers for quantization-aware training, with straight-through gradients.

Each returns float tensors holding exactly representable quantized values, so a
layer can use them in its usual float op; the backward pass treats the
rounding as the identity (straight-through estimator, STE).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bittts_tf.quant.bits import FLOAT_BITS, TERNARY_BITS, normalize_bits, uniform_levels

# A weight tensor of all zeros would give a zero scale and 0/0 in the rounding.
SCALE_EPSILON = 1e-8
LAYER_NORM_EPSILON = 1e-5


def ternary_scale(w):
    """beta = mean |W|, the paper's per-tensor weight scale."""
    return tf.reduce_mean(tf.abs(w)) + SCALE_EPSILON


def ternary_codes(w):
    """round-clip(W / beta) in {-1, 0, 1} (float dtype), and beta."""
    beta = ternary_scale(w)
    return tf.clip_by_value(tf.round(w / beta), -1.0, 1.0), beta


@tf.custom_gradient
def ternary_quantize(w):
    """W -> beta * round-clip(W / beta); gradient passed straight through."""
    codes, beta = ternary_codes(w)

    def grad(upstream):
        return upstream

    return codes * beta, grad


def uniform_scale(w, bits: float):
    return tf.reduce_max(tf.abs(w)) / uniform_levels(bits) + SCALE_EPSILON


def uniform_codes(w, bits: float):
    scale = uniform_scale(w, bits)
    levels = float(uniform_levels(bits))
    return tf.clip_by_value(tf.round(w / scale), -levels, levels), scale


def uniform_quantize(w, bits: float):
    """Symmetric absmax k-bit weight quantizer (2, 4, 8 bit baselines), STE gradient."""

    @tf.custom_gradient
    def _quantize(w):
        codes, scale = uniform_codes(w, bits)

        def grad(upstream):
            return upstream

        return codes * scale, grad

    return _quantize(w)


def quantize_weights(w, bits: float):
    """Dispatches on `bits`; float weights pass through unchanged."""
    bits = normalize_bits(bits)
    if bits == FLOAT_BITS:
        return w
    # Called eagerly on a Keras variable, a custom_gradient function raises a
    # TypeError (its grad would have to take `variables`): it gets a tensor.
    w = tf.convert_to_tensor(w)
    if bits == TERNARY_BITS:
        return ternary_quantize(w)
    return uniform_quantize(w, bits)


def layer_norm(x, epsilon: float = LAYER_NORM_EPSILON):
    """Parameter-free LayerNorm over the channel (last) axis."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon)


def activation_levels(bits: int = 8) -> int:
    """Qp = 2**(b-1): codes in [-Qp, Qp - 1]."""
    return 2 ** (int(bits) - 1)


def absmax_activation_quantize(x, bits: int = 8):
    """The paper's activation quantizer: gamma = max|x| per example, b-bit codes.

    Returns x_q * gamma / Qp (fake quantized), so y = conv(x_q, W_q) * beta*gamma/Qp
    is the same float op on dequantized inputs. STE gradient.
    """
    levels = float(activation_levels(bits))
    x = tf.convert_to_tensor(x)

    @tf.custom_gradient
    def _quantize(x):
        reduce_axes = list(range(1, len(x.shape))) if len(x.shape) > 1 else [0]
        gamma = tf.maximum(
            tf.reduce_max(tf.abs(x), axis=reduce_axes, keepdims=True), SCALE_EPSILON)
        codes = tf.clip_by_value(tf.round(x * (levels / gamma)), -levels, levels - 1.0)

        def grad(upstream):
            return upstream

        return codes * (gamma / levels), grad

    return _quantize(x)


# numpy references, used by tests and by the exporter to get exact codes.

def ternary_codes_np(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    w = np.asarray(w, np.float32)
    beta = np.float32(np.mean(np.abs(w), dtype=np.float32) + np.float32(SCALE_EPSILON))
    codes = np.clip(np.round(w / beta), -1, 1).astype(np.int8)
    return codes, beta


def absmax_activation_codes(x, bits: int = 8):
    """The integer codes (as floats) that `absmax_activation_quantize` rounds to.

    Same ops in the same order, so validation can compare them with the
    ROUND outputs of a converted model."""
    levels = float(activation_levels(bits))
    reduce_axes = list(range(1, len(x.shape))) if len(x.shape) > 1 else [0]
    gamma = tf.maximum(tf.reduce_max(tf.abs(x), axis=reduce_axes, keepdims=True), SCALE_EPSILON)
    return tf.round(x * (levels / gamma))
