"""QAT layers: outputs against stock Keras layers fed the numpy-quantized
kernel and against a numpy convolution; training, saving, precision reports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bittts_tf.quant import (QuantConv1D, QuantDense, TernaryConv1D, TernaryConv1DTranspose,
                             TernaryDense, quantized_layers)
from tests.test_quant_quantizers import numpy_ternary, numpy_uniform


def numpy_conv1d(x, kernel, stride, dilation, padding):
    """Direct loops over the definition: y[t] = sum_k x[t*s + k*d] W[k]."""
    taps = kernel.shape[0]
    span = (taps - 1) * dilation + 1
    length = x.shape[1]
    if padding == "causal":
        x = np.pad(x, ((0, 0), (span - 1, 0), (0, 0)))
    elif padding == "same":
        out_len = -(-length // stride)
        total = max((out_len - 1) * stride + span - length, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    out_len = (x.shape[1] - span) // stride + 1
    y = np.zeros((x.shape[0], out_len, kernel.shape[2]), np.float64)
    for t in range(out_len):
        for k in range(taps):
            y[:, t] += x[:, t * stride + k * dilation] @ kernel[k]
    return y


def reference_quantize(kernel, bits):
    return numpy_ternary(kernel) if bits == 1.58 else numpy_uniform(kernel, int(bits))


@pytest.mark.parametrize("padding,strides,dilation", [
    ("same", 1, 1), ("causal", 1, 2), ("valid", 2, 1), ("same", 2, 1), ("causal", 1, 3)])
@pytest.mark.parametrize("bits", [1.58, 4])
def test_conv1d_matches_numpy(rng, padding, strides, dilation, bits):
    layer = QuantConv1D(6, 5, weight_bits=bits, padding=padding, strides=strides,
                        dilation_rate=dilation, use_bias=True)
    x = rng.standard_normal((2, 23, 4)).astype(np.float32)
    layer.build(x.shape)
    layer.bias.assign(rng.standard_normal(6).astype(np.float32))
    y = layer(x).numpy()
    kernel = layer.kernel.numpy()
    expected = numpy_conv1d(x, reference_quantize(kernel, bits), strides, dilation, padding)
    np.testing.assert_allclose(y, expected + layer.bias.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv1d_transpose_matches_stock_keras(rng, padding):
    layer = TernaryConv1DTranspose(5, 8, strides=4, padding=padding)
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    y = layer(x).numpy()
    stock = keras.layers.Conv1DTranspose(5, 8, strides=4, padding=padding)
    stock.build(x.shape)
    stock.set_weights([numpy_ternary(layer.kernel.numpy()), layer.bias.numpy()])
    np.testing.assert_allclose(y, stock(x).numpy(), rtol=1e-5, atol=1e-5)


def test_conv1d_transpose_valid_matches_numpy_scatter(rng):
    stride, taps = 3, 5
    layer = TernaryConv1DTranspose(4, taps, strides=stride, padding="valid", use_bias=False)
    x = rng.standard_normal((1, 6, 2)).astype(np.float32)
    y = layer(x).numpy()
    w = numpy_ternary(layer.kernel.numpy())  # [taps, out, in]
    expected = np.zeros((1, (6 - 1) * stride + taps, 4))
    for t in range(6):
        for k in range(taps):
            expected[0, t * stride + k] += w[k] @ x[0, t]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_dense_matches_numpy(rng):
    layer = TernaryDense(7)
    x = rng.standard_normal((3, 5, 10)).astype(np.float32)
    y = layer(x).numpy()
    np.testing.assert_allclose(y, x @ numpy_ternary(layer.kernel.numpy()) + layer.bias.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_float_bits_is_the_plain_layer(rng):
    layer = QuantConv1D(3, 3, weight_bits=None, padding="same")
    x = rng.standard_normal((1, 8, 2)).astype(np.float32)
    layer.build(x.shape)
    expected = numpy_conv1d(x, layer.kernel.numpy(), 1, 1, "same")
    np.testing.assert_allclose(layer(x).numpy(), expected + layer.bias.numpy(), rtol=1e-5, atol=1e-5)
    assert not layer.is_quantized


def small_model(quantize_activations=False):
    inputs = keras.Input((None, 4))
    x = TernaryConv1D(8, 5, padding="causal", dilation_rate=2, activation="relu",
                      quantize_activations=quantize_activations)(inputs)
    x = QuantConv1D(8, 3, padding="same", weight_bits=4)(x)
    x = TernaryConv1DTranspose(6, 4, strides=2, padding="same")(x)
    outputs = TernaryDense(3)(x)
    return keras.Model(inputs, outputs)


def test_fit_leaves_exactly_three_values_per_ternary_layer(rng):
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = rng.standard_normal((32, 16, 4)).astype(np.float32)
    y = rng.standard_normal((32, 32, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    for layer in quantized_layers(model):
        values = np.unique(layer.effective_kernel())
        if layer.is_ternary:
            codes, beta = layer.ternary_codes()
            assert values.size == 3, (layer.name, values)
            np.testing.assert_allclose(values, [-beta, 0.0, beta], rtol=1e-6)
            np.testing.assert_array_equal(np.unique(codes), [-1, 0, 1])
        else:
            assert values.size <= 15


def test_eager_graph_and_saved_model_agree(rng, tmp_path):
    model = small_model(quantize_activations=True)
    x = rng.standard_normal((2, 12, 4)).astype(np.float32)
    eager = model(x).numpy()
    graph = tf.function(lambda t: model(t))(tf.constant(x)).numpy()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    # graph mode may pick other float kernels: agreement to rounding, not bits
    np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded(x).numpy(), eager)
    assert [type(l).__name__ for l in quantized_layers(loaded)] == \
        ["TernaryConv1D", "QuantConv1D", "TernaryConv1DTranspose", "TernaryDense"]
    assert quantized_layers(loaded)[0].quantize_activations


def test_weight_precision_report(rng):
    model = small_model()
    rows = [row for layer in quantized_layers(model) for row in layer.weight_precisions()]
    kernels = {(r.layer, r.weight): (r.count, r.bits) for r in rows}
    layers = quantized_layers(model)
    assert kernels[(layers[0].name, "kernel")] == (5 * 4 * 8, 1.58)
    assert kernels[(layers[1].name, "kernel")] == (3 * 8 * 8, 4)
    assert kernels[(layers[2].name, "kernel")] == (4 * 6 * 8, 1.58)
    assert kernels[(layers[3].name, "kernel")] == (6 * 3, 1.58)
    assert all(bits == 32 for (name, weight), (_, bits) in kernels.items() if weight == "bias")
    assert sum(count for count, _ in kernels.values()) == model.count_params()


def test_ternary_classes_fix_the_bits():
    assert TernaryConv1D(4, 3, weight_bits=8).weight_bits == 1.58
    assert TernaryConv1D.from_config(TernaryConv1D(4, 3).get_config()).is_ternary
    with pytest.raises(ValueError):
        QuantDense(3, weight_bits=3)
