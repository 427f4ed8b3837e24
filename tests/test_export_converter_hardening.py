"""The converter on the graphs that break a search for kernels by value: equal
kernels the TFLite converter shares, all-zero kernels, kernels the converter
folds a following scale into, layers missing from the graph. Each converts
to a model LiteRT runs like Keras, or fails with a ConversionError naming the
layer."""

import keras
import numpy as np
import pytest

from bittts_tf.export import (ConversionError, conversion_report, converter, graph_surgery, packer,
                              validate, weight_sites)
from bittts_tf.litert import native, tflite_file
from bittts_tf.quant import TernaryConv1D, TernaryConv1DTranspose, TernaryDense, spec


@pytest.fixture
def seeded(rng):
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    return rng


def litert_matches_keras(model, result, inputs):
    comparison = validate.compare_litert_keras(model, result.tflite, inputs)
    assert comparison.rel_err <= 1e-5, comparison


def decode_ops(tflite):
    """(packed tensor name, output tensor index) of every decode op."""
    model = tflite_file.parse_model(tflite)
    subgraph = model.subgraphs[0]
    found = []
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode == spec.OP_NAME.encode():
            packed = subgraph.tensors[int(op.inputs[0])]
            found.append((packed.buffer, int(op.outputs[0])))
    return found


def float_constants(tflite):
    """Every float32 constant left in the model, as arrays."""
    model = tflite_file.parse_model(tflite)
    arrays = []
    for tensor in model.subgraphs[0].tensors:
        data = graph_surgery.tensor_data(model, tensor)
        if data is not None:
            arrays.append(data)
    return arrays


def test_equal_kernels_shared_by_the_converter_are_packed_once(seeded):
    inputs = keras.Input((None, 8))
    first = TernaryConv1D(8, 3, padding="same", name="first")
    second = TernaryConv1D(8, 3, padding="same", activation="relu", name="second")
    outputs = second(first(inputs))
    second.set_weights(first.get_weights())
    model = keras.Model(inputs, outputs)
    result = converter.convert(model)

    ops = decode_ops(result.tflite)
    assert len(ops) == 2, "one decode op in front of each conv"
    assert ops[0][0] == ops[1][0], "both read one packed tensor"
    assert ops[0][1] != ops[1][1], "each conv reads its own decoded kernel"
    ternary = [t for t in result.tensors if t.format == "ternary-indexed"]
    assert len(ternary) == 1 and ternary[0].layer == "first, second"
    assert result.summary()["ternary_weights"] == 3 * 8 * 8
    assert not any(a.size == 3 * 8 * 8 for a in float_constants(result.tflite))
    litert_matches_keras(model, result, [seeded.standard_normal((2, 17, 8)).astype(np.float32)])


def test_equal_kernels_on_parallel_branches_and_a_layer_used_twice(seeded):
    # The converter merges the two equal convs of one input into one CONV_2D.
    inputs = keras.Input((None, 6))
    left = TernaryConv1D(6, 5, padding="same", name="left")
    right = TernaryConv1D(6, 5, padding="same", name="right")
    shared = TernaryConv1D(6, 3, padding="same", activation="tanh", name="shared")
    a, b = left(inputs), right(inputs)
    right.set_weights(left.get_weights())
    outputs = shared(a) - shared(b * 0.5)
    model = keras.Model(inputs, outputs)
    result = converter.convert(model)
    assert {frozenset(t.layer.split(", ")) for t in result.tensors
            if t.format == "ternary-indexed"} == {frozenset({"left", "right"}), frozenset({"shared"})}
    assert not any(a.size in (5 * 6 * 6, 3 * 6 * 6) for a in float_constants(result.tflite))
    litert_matches_keras(model, result, [seeded.standard_normal((1, 23, 6)).astype(np.float32)])


@pytest.mark.parametrize("layer_kind", ["conv", "transpose", "dense"])
def test_all_zero_kernel_converts(seeded, layer_kind):
    inputs = keras.Input((None, 5))
    zero = {"conv": lambda: TernaryConv1D(7, 3, padding="same", kernel_initializer="zeros",
                                          bias_initializer="ones", name="zero"),
            "transpose": lambda: TernaryConv1DTranspose(7, 4, strides=2, padding="same",
                                                        kernel_initializer="zeros", name="zero"),
            "dense": lambda: TernaryDense(7, kernel_initializer="zeros", name="zero")}[layer_kind]()
    outputs = TernaryDense(3, name="after")(zero(inputs))
    model = keras.Model(inputs, outputs)
    result = converter.convert(model)
    rows = {t.layer: t for t in result.tensors if t.format == "ternary-indexed"}
    assert set(rows) == {"zero", "after"}
    packed = {t.name: t for t in validate.packed_tensors(result.tflite)}
    zero_tensor = packed[rows["zero"].tensor]
    assert not native.numpy_decode_f32(zero_tensor.indices, zero_tensor.scale,
                                        zero_tensor.num_weights).any()
    litert_matches_keras(model, result, [seeded.standard_normal((2, 9, 5)).astype(np.float32)])


def share_buffer(tflite, from_name, to_name):
    """The model with tensor `to_name` pointing at the bytes of `from_name`, as
    the TFLite converter does for constants with equal bytes."""
    model = tflite_file.parse_model(tflite)
    tensors = {t.name.decode(): t for t in model.subgraphs[0].tensors}
    tensors[to_name].buffer = tensors[from_name].buffer
    return tflite_file.serialize_model(model)


def test_zero_kernel_sharing_its_bytes_with_a_zero_bias(seeded):
    # A [7, 1, 1, 1] zero kernel and a [7] zero bias are the same 28 bytes,
    # which the converter may store once; the bias then reads decoded zeros.
    inputs = keras.Input((None, 1))
    narrow = TernaryConv1D(7, 1, kernel_initializer="zeros", use_bias=False, name="narrow")
    plain = keras.layers.Dense(7, name="plain")
    model = keras.Model(inputs, plain(narrow(inputs)))
    plain.set_weights([plain.get_weights()[0], np.zeros(7, np.float32)])
    folded = converter.convert_float(model)
    names = {}
    for site in weight_sites.find(tflite_file.parse_model(folded)):
        names[site.data.size] = site.names[0]
    parsed = tflite_file.parse_model(folded)
    (bias,) = [t.name.decode() for t in parsed.subgraphs[0].tensors
               if list(t.shape) == [7] and graph_surgery.tensor_data(parsed, t) is not None]
    shared = share_buffer(folded, names[7], bias)
    packed, rows = packer.pack_ternary_weights(model, shared)
    assert [t.layer for t in rows] == ["narrow"]
    assert len(decode_ops(packed)) == 2, "the kernel's and the bias's readers each decode"
    result = conversion_report.ConversionResult(packed, len(folded), rows)
    litert_matches_keras(model, result, [seeded.standard_normal((2, 4, 1)).astype(np.float32)])


def randomize_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(size=n),
                               rng.normal(size=n), rng.uniform(0.5, 2.0, n)])


@pytest.mark.parametrize("shape, make", [
    ((8,), lambda x: keras.layers.BatchNormalization(name="bn")(TernaryDense(8, name="folded")(x))),
    ((8,), lambda x: TernaryDense(8, name="folded")(x) * np.linspace(0.5, 2.0, 8, dtype="float32")),
    ((16, 8), lambda x: keras.layers.BatchNormalization(name="bn")(
        TernaryConv1D(8, 3, padding="same", name="folded")(x))),
])
def test_folded_per_channel_factor_is_refused_naming_the_layer(seeded, shape, make):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, make(inputs))
    randomize_batch_norm(model, seeded)
    with pytest.raises(ConversionError) as error:
        converter.convert(model)
    message = str(error.value)
    assert message.startswith("layer 'folded': the TFLite converter folded a per-channel factor")
    assert "no longer ternary" in message and "\n" not in message


def test_folded_scalar_factor_stays_ternary_and_exact(seeded):
    inputs = keras.Input((8,))
    outputs = TernaryDense(6, name="tripled")(inputs) * 3.0
    model = keras.Model(inputs, outputs)
    result = converter.convert(model)
    rows = [t for t in result.tensors if t.format == "ternary-indexed"]
    assert [t.layer for t in rows] == ["tripled"]
    (packed,) = validate.packed_tensors(result.tflite)
    beta = model.get_layer("tripled").ternary_codes()[1]
    np.testing.assert_allclose(packed.scale, 3.0 * beta, rtol=1e-6)
    litert_matches_keras(model, result, [seeded.standard_normal((3, 8)).astype(np.float32)])


def test_layer_missing_from_the_graph_is_named(seeded):
    inputs = keras.Input((None, 4))
    used = TernaryConv1D(4, 3, padding="same", name="used")
    model = keras.Model(inputs, used(inputs))
    unused = TernaryConv1D(5, 3, padding="same", name="unused")
    unused.build((None, None, 4))

    class Group(keras.layers.Layer):
        def __init__(self, members):
            super().__init__()
            self.members = members

    with pytest.raises(ConversionError, match=r"^layer 'unused': no CONV_2D"):
        packer.pack_ternary_weights(Group([used, unused]), converter.convert_float(model))


def test_each_report_row_names_the_layer_whose_kernel_it_holds(seeded):
    inputs = keras.Input((None, 6))
    x = inputs
    layers = [TernaryConv1D(6, 3, padding="same", activation="relu", name=f"conv_{i}")
              for i in range(4)]
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x)
    result = converter.convert(model)
    packed = {t.name: t for t in validate.packed_tensors(result.tflite)}
    rows = [t for t in result.tensors if t.format == "ternary-indexed"]
    assert sorted(t.layer for t in rows) == [f"conv_{i}" for i in range(4)]
    for row in rows:
        tensor = packed[row.tensor]
        decoded = native.numpy_decode_f32(tensor.indices, tensor.scale, tensor.num_weights)
        kernel = model.get_layer(row.layer).effective_kernel()  # [taps, in, out]
        np.testing.assert_allclose(decoded.reshape(6, 3, 6), kernel.transpose(2, 0, 1), rtol=1e-6)
