"""Quantizers against numpy references; straight-through gradients."""

import numpy as np
import pytest
import tensorflow as tf

from bittts_tf.quant import bits, quantizers


def numpy_ternary(w):
    beta = np.mean(np.abs(w)) + quantizers.SCALE_EPSILON
    return np.clip(np.round(w / beta), -1, 1) * beta


def numpy_uniform(w, bits):
    levels = 2 ** (bits - 1) - 1
    scale = np.max(np.abs(w)) / levels + quantizers.SCALE_EPSILON
    return np.clip(np.round(w / scale), -levels, levels) * scale


def numpy_activation(x, bits=8):
    levels = 2 ** (bits - 1)
    gamma = np.maximum(np.max(np.abs(x), axis=tuple(range(1, x.ndim)), keepdims=True),
                       quantizers.SCALE_EPSILON)
    return np.clip(np.round(x * levels / gamma), -levels, levels - 1) * gamma / levels


def numpy_layer_norm(x, eps=quantizers.LAYER_NORM_EPSILON):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_ternary_matches_numpy_and_takes_three_values(rng):
    w = rng.standard_normal((5, 7, 11)).astype(np.float32)
    q = quantizers.ternary_quantize(tf.constant(w)).numpy()
    np.testing.assert_allclose(q, numpy_ternary(w), rtol=1e-6)
    beta = np.mean(np.abs(w))
    assert set(np.round(np.unique(q) / beta, 5)) == {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_uniform_matches_numpy(rng, bits):
    w = rng.standard_normal((64, 9)).astype(np.float32)
    q = quantizers.quantize_weights(tf.constant(w), bits).numpy()
    np.testing.assert_allclose(q, numpy_uniform(w, bits), rtol=1e-5, atol=1e-7)
    assert np.unique(q).size <= 2 ** bits - 1


def test_activation_quantizer_matches_numpy(rng):
    x = rng.standard_normal((3, 17, 8)).astype(np.float32) * 3
    np.testing.assert_allclose(quantizers.absmax_activation_quantize(tf.constant(x)).numpy(),
                               numpy_activation(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(quantizers.layer_norm(tf.constant(x)).numpy(),
                               numpy_layer_norm(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bits", [1.58, 2, 4, 8])
def test_weight_gradient_is_the_upstream_gradient(rng, bits):
    w = tf.Variable(rng.standard_normal((4, 6, 5)).astype(np.float32))
    upstream = rng.standard_normal((4, 6, 5)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantizers.quantize_weights(w, bits) * upstream)
    np.testing.assert_array_equal(tape.gradient(loss, w).numpy(), upstream)


def test_activation_gradient_is_the_upstream_gradient(rng):
    x = tf.constant(rng.standard_normal((2, 9, 4)).astype(np.float32))
    upstream = rng.standard_normal((2, 9, 4)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(quantizers.absmax_activation_quantize(x) * upstream)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), upstream)


def test_gradient_inside_tf_function(rng):
    w = tf.Variable(rng.standard_normal((8, 3)).astype(np.float32))
    upstream = tf.constant(rng.standard_normal((8, 3)).astype(np.float32))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(quantizers.quantize_weights(w, 1.58) * upstream)
        return tape.gradient(loss, w)

    np.testing.assert_array_equal(grad().numpy(), upstream.numpy())


def test_all_zero_weights_do_not_divide_by_zero():
    q = quantizers.ternary_quantize(tf.zeros((3, 3))).numpy()
    assert np.all(np.isfinite(q)) and not q.any()


@pytest.mark.parametrize("spelling,expected", [("1.58", 1.58), (1.58, 1.58), ("4", 4), (8, 8),
                                               (None, 32), ("32", 32)])
def test_normalize_bits(spelling, expected):
    assert bits.normalize_bits(spelling) == expected


@pytest.mark.parametrize("bad", [3, "1.5", 16, "ternary"])
def test_normalize_bits_rejects_unsupported(bad):
    with pytest.raises(ValueError):
        bits.normalize_bits(bad)
