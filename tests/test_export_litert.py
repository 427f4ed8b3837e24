"""The converted model in LiteRT with our C kernel: against Keras, the op on
its own (float32 and int8 outputs), corrupt and malformed models."""

import importlib.metadata

import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import converter, runtime, tflite_file, validate
from bittts_tf.quant import (QuantConv1D, TernaryConv1D, TernaryConv1DTranspose, TernaryDense,
                             packing, spec)


def test_runtime_versions_match_the_declared_abi():
    # tflite/litert_abi.h mirrors these exact versions; re-check it before bumping them.
    assert importlib.metadata.version("ai-edge-litert") == "2.3.0"
    assert importlib.metadata.version("tensorflow") == "2.21.0"


def mixed_model(quantize_activations=False, width=24):
    inputs = keras.Input((None, 6))
    x = TernaryConv1D(width, 5, padding="same", activation="relu",
                      quantize_activations=quantize_activations)(inputs)
    x = TernaryConv1D(width, 3, padding="causal", dilation_rate=2, activation="tanh",
                      quantize_activations=quantize_activations)(x)
    x = QuantConv1D(width, 3, padding="same", weight_bits=4)(x)
    x = TernaryConv1D(width, 4, strides=2, padding="valid")(x)
    x = TernaryConv1DTranspose(width, 4, strides=2, padding="same",
                               quantize_activations=quantize_activations)(x)
    outputs = TernaryDense(5)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def converted():
    keras.utils.set_random_seed(int(np.random.default_rng().integers(2**31)))
    model = mixed_model()
    return model, converter.convert(model)


def test_litert_equals_keras_within_1e_5(converted, rng):
    model, result = converted
    for length in (16, 41):
        inputs = [rng.standard_normal((2, length, 6)).astype(np.float32)]
        comparison = validate.compare_litert_keras(model, result.tflite, inputs)
        assert comparison.rel_err <= 1e-5, comparison


def test_every_ternary_kernel_is_packed(converted):
    model, result = converted
    packed = validate.packed_tensors(result.tflite)
    assert len(packed) == 5  # four ternary convs/transposes and the dense layer
    summary = result.summary()
    assert summary["custom_op"] == spec.OP_NAME
    assert summary["ternary_weights"] == sum(t.num_weights for t in packed)
    float_rows = [t for t in result.tensors if t.format == "float32"]
    assert any(t.weights == 3 * 24 * 24 for t in float_rows)  # the 4-bit conv stays float32
    assert result.summary()["tflite_bytes"] == len(result.tflite)


def test_packed_tensors_decode_to_the_keras_kernels(converted):
    model, result = converted
    ternary_layers = [l for l in model.layers if getattr(l, "is_ternary", False)]
    decoded = [np.sort(runtime.numpy_decode_f32(t.indices, t.scale, t.num_weights))
               for t in validate.packed_tensors(result.tflite)]
    for layer in ternary_layers:
        kernel = np.sort(layer.effective_kernel().reshape(-1))
        matches = [d for d in decoded if d.shape == kernel.shape and
                   np.allclose(d, kernel, rtol=1e-6, atol=0)]
        assert len(matches) == 1, layer.name


def test_activation_quantization_error_and_flips_are_measured(rng):
    model = mixed_model(quantize_activations=True)
    result = converter.convert(model)
    inputs = [rng.standard_normal((2, 30, 6)).astype(np.float32)]
    comparison = validate.compare_litert_keras(model, result.tflite, inputs)
    assert comparison.quantized_activations
    assert comparison.rounded_values == 2 * 30 * 6 + 2 * 30 * 24 + 2 * 14 * 24
    assert comparison.rounding_flip_share < 1e-3
    # a flip moves one activation by one step: a small error, not garbage
    assert comparison.rel_err < 0.05


@pytest.mark.parametrize("bad_byte", [243, 249, 255])
def test_corrupt_index_fails_invoke_with_a_clear_error(converted, rng, bad_byte):
    model, result = converted
    corrupted = validate.corrupt_indices(result.tflite, value=bad_byte)
    interpreter = runtime.make_interpreter(corrupted)
    with pytest.raises(RuntimeError, match=f"is {bad_byte}, above the largest index 242"):
        runtime.run_interpreter(interpreter, [rng.standard_normal((1, 8, 6)).astype(np.float32)])


def decode_only_model(indices, scale, out_shape, out_type=schema.TensorType.FLOAT32,
                      indices_type=schema.TensorType.UINT8):
    """A model whose only op is BitTTSTernaryDecode, its output the graph output."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]

    def tensor(name, shape, tensor_type, data=None):
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), np.asarray(shape, np.int32), tensor_type
        t.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(data, np.uint8).copy()
            model.buffers.append(buffer)
            t.buffer = len(model.buffers) - 1
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = spec.OP_NAME.encode(), 1
    model.operatorCodes = [code]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.int32([0, 1]), np.int32([2])
    subgraph = schema.SubGraphT()
    subgraph.tensors = [tensor("indices", [len(indices)], indices_type, bytes(indices)),
                        tensor("scale", [1], schema.TensorType.FLOAT32, np.float32([scale]).tobytes()),
                        tensor("weights", out_shape, out_type)]
    subgraph.inputs, subgraph.outputs, subgraph.operators = np.int32([]), np.int32([2]), [op]
    model.subgraphs = [subgraph]
    return tflite_file.serialize_model(model)


def run_decode_only(model_bytes):
    interpreter = runtime.make_interpreter(model_bytes)
    interpreter.allocate_tensors()
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("shape", [(7,), (3, 1, 5, 4), (13, 11), (1, 1, 1, 1)])
def test_op_alone_float32_and_int8(rng, shape):
    codes = rng.integers(-1, 2, shape).astype(np.int8)
    indices = packing.encode(codes)
    scale = float(rng.uniform(0.01, 2.0))
    weights = run_decode_only(decode_only_model(indices, scale, shape))
    np.testing.assert_array_equal(weights, codes.astype(np.float32) * np.float32(scale))
    trits = run_decode_only(decode_only_model(indices, scale, shape, schema.TensorType.INT8))
    np.testing.assert_array_equal(trits, codes)
    as_int8 = run_decode_only(decode_only_model(indices.view(np.int8), scale, shape,
                                                indices_type=schema.TensorType.INT8))
    np.testing.assert_array_equal(as_int8, weights)


def test_op_rejects_size_mismatch_at_prepare(rng):
    indices = packing.encode(rng.integers(-1, 2, 20))
    interpreter = runtime.make_interpreter(decode_only_model(indices, 1.0, (21,)))
    with pytest.raises(RuntimeError, match="21 weights need 5 packed bytes, tensor has 4"):
        interpreter.allocate_tensors()


def test_truncated_and_foreign_files_are_named(converted, tmp_path):
    _, result = converted
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(result.tflite[: len(result.tflite) // 3])
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model\n")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    for path in (truncated, text, empty):
        with pytest.raises(tflite_file.TFLiteFileError, match=str(path)) as error:
            tflite_file.read_tflite(path)
        assert "\n" not in str(error.value)
    with pytest.raises(tflite_file.TFLiteFileError, match="cannot read"):
        tflite_file.read_tflite(tmp_path / "missing.tflite")


def test_truncation_at_every_tenth_is_caught(converted, tmp_path):
    _, result = converted
    for fraction in np.linspace(0.05, 0.95, 10):
        data = result.tflite[: int(len(result.tflite) * fraction)]
        with pytest.raises(tflite_file.TFLiteFileError):
            tflite_file.parse_model(data, "cut.tflite")
