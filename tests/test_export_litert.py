"""The converted model in LiteRT with our C kernel: against Keras, the op on
its own (float32 and int8 outputs), corrupt, old-format and malformed models;
the registerer without TensorFlow."""

import ctypes
import importlib.metadata
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import converter, validate
from bittts_tf.litert import native, tflite_file
from bittts_tf.quant import (QuantConv1D, TernaryConv1D, TernaryConv1DTranspose, TernaryDense,
                             packing, spec)
from seeds import fresh_seed


def test_runtime_version_is_the_pinned_one():
    # A version pin, not a layout test: tflite/litert_abi.h mirrors this
    # version's records, and the kernel's run-time guards (planted wrong
    # layouts: tests/test_litert_layout_guards.py) name it when they refuse.
    # The registerer takes AddCustom from its interpreter library; re-check
    # both before bumping it. (TensorFlow's version no longer matters to the
    # runtime: nothing links it.)
    assert importlib.metadata.version("ai-edge-litert") == spec.LITERT_VERSION == "2.3.0"
    lock = (pathlib.Path(__file__).resolve().parents[1] / "requirements.lock").read_text()
    assert f"ai-edge-litert=={spec.LITERT_VERSION}" in lock


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
    keras.utils.set_random_seed(fresh_seed("test_export_litert converted model"))
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
    assert not any(t.weights == 3 * 24 * 24 for t in float_rows)  # the 4-bit conv: INT4
    int4_rows = [t for t in result.tensors if t.format == "int4"]
    assert [(t.weights, t.stored_bytes) for t in int4_rows] == [(3 * 24 * 24, 3 * 24 * 24 // 2 + 4)]
    assert result.summary()["tflite_bytes"] == len(result.tflite)


def test_the_4bit_kernel_is_an_int4_tensor_that_dequantizes_to_the_keras_kernel(converted):
    model, result = converted
    (layer,) = [l for l in model.layers if getattr(l, "weight_bits", None) == 4]
    parsed = tflite_file.parse_model(result.tflite)
    subgraph = parsed.subgraphs[0]
    (index,) = [i for i, t in enumerate(subgraph.tensors) if t.type == schema.TensorType.INT4]
    tensor = subgraph.tensors[index]
    raw = bytes(parsed.buffers[tensor.buffer].data)
    assert len(raw) == 3 * 24 * 24 // 2
    # TFLite's INT4 layout, read bit by bit: weight 2i in the low nibble.
    nibbles = [(byte >> shift) & 0xF for byte in raw for shift in (0, 4)]
    codes = np.array([n - 16 if n >= 8 else n for n in nibbles], np.float32)
    values = np.sort(codes * np.float32(tensor.quantization.scale[0]))
    assert np.allclose(values, np.sort(layer.effective_kernel().reshape(-1)), rtol=1e-6, atol=1e-7)
    (reader,) = [op for op in subgraph.operators if index in list(op.inputs)]
    assert tflite_file.builtin_names()[tflite_file.builtin_code(parsed, reader)] == "DEQUANTIZE"


def test_decode_at_load_turns_the_int4_kernel_into_its_float_constant(converted, rng):
    """The desktop runtime's load-time decode folds the DEQUANTIZE of the
    INT4 kernel into a float32 constant: the same outputs (to float32
    rounding: XNNPACK takes the convs whose filters are constants now)."""
    from bittts_tf.runtime.decode_at_load import decode_at_load
    _, result = converted
    loaded = decode_at_load(result.tflite)
    parsed = tflite_file.parse_model(loaded)
    names = tflite_file.builtin_names()
    subgraph = parsed.subgraphs[0]
    assert not any(subgraph.tensors[int(i)].type == schema.TensorType.INT4
                   for op in subgraph.operators for i in op.inputs if i >= 0)
    assert "DEQUANTIZE" not in [names.get(tflite_file.builtin_code(parsed, op))
                                for op in parsed.subgraphs[0].operators]
    x = rng.standard_normal((2, 16, 6)).astype(np.float32)
    outputs = []
    for model in (result.tflite, loaded):
        interpreter = native.make_interpreter(model)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0,
                               atol=1e-5 * float(np.abs(outputs[0]).max()))


def test_packed_tensors_decode_to_the_keras_kernels(converted):
    model, result = converted
    ternary_layers = [l for l in model.layers if getattr(l, "is_ternary", False)]
    decoded = [np.sort(native.numpy_decode_f32(t.indices, t.scale, t.num_weights))
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
    assert comparison.first_flips <= max(2, comparison.first_flipped_values // 1000), comparison
    assert comparison.largest_code_change <= 1
    assert not comparison.verdict()
    # a flip moves one activation by one step: a small error, not garbage
    assert comparison.rel_err < 0.05


# Seed 729595972 once failed here: one tie flip in the first layer's 360
# codes moved 27 and 52 codes of the layers after it, over the old bound on
# the whole graph's share (fixed: the bound is on the first layer that flips).
@pytest.mark.replay_seed(729595972)
def test_activation_flips_replayed_seed(rng):
    test_activation_quantization_error_and_flips_are_measured(rng)


INVALID_BYTES = [-128, -122, 122, 127]


@pytest.mark.parametrize("bad_byte", INVALID_BYTES)
def test_corrupt_index_fails_invoke_with_a_clear_error(converted, rng, bad_byte):
    model, result = converted
    corrupted = validate.corrupt_indices(result.tflite, value=bad_byte)
    interpreter = native.make_interpreter(corrupted)
    with pytest.raises(RuntimeError, match=f"is {bad_byte}, outside -121..121"):
        native.run_interpreter(interpreter, [rng.standard_normal((1, 8, 6)).astype(np.float32)])


def test_tensor_type_codes_are_the_schemas():
    """tflite_file spells the codes out so that reading a model needs no schema import."""
    types = schema.TensorType
    assert ((tflite_file.FLOAT32, tflite_file.INT32, tflite_file.UINT8, tflite_file.INT64,
             tflite_file.INT8) == (types.FLOAT32, types.INT32, types.UINT8, types.INT64, types.INT8))
    assert tflite_file.type_names()[types.INT8] == "int8"


def test_converted_index_tensors_are_int8_and_the_op_carries_the_format_version(converted):
    _, result = converted
    model = tflite_file.parse_model(result.tflite)
    codes = [c for c in model.operatorCodes if c.customCode == spec.OP_NAME.encode()]
    assert [c.version for c in codes] == [spec.FORMAT_VERSION] == [2]
    subgraph = model.subgraphs[0]
    decode_ops = [op for op in subgraph.operators
                  if model.operatorCodes[op.opcodeIndex].customCode == spec.OP_NAME.encode()]
    assert len(decode_ops) == 5
    for op in decode_ops:
        indices = subgraph.tensors[int(op.inputs[0])]
        assert indices.type == schema.TensorType.INT8
        data = np.frombuffer(bytes(model.buffers[indices.buffer].data), np.int8)
        assert np.abs(data.astype(int)).max() <= 121


def decode_only_model(indices, scale, out_shape, out_type=schema.TensorType.FLOAT32,
                      indices_type=schema.TensorType.INT8, version=spec.FORMAT_VERSION):
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
    code.customCode, code.version = spec.OP_NAME.encode(), version
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
    interpreter = native.make_interpreter(model_bytes)
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


def test_op_refuses_format_version_1_models(rng):
    indices = packing.encode(rng.integers(-1, 2, 20))
    as_uint8 = indices.view(np.uint8)
    old = decode_only_model(as_uint8, 1.0, (20,), indices_type=schema.TensorType.UINT8,
                            version=1)
    interpreter = native.make_interpreter(old)
    with pytest.raises(RuntimeError, match="packed format version 1 .*convert the model again"):
        interpreter.allocate_tensors()
    uint8_v2 = decode_only_model(as_uint8, 1.0, (20,), indices_type=schema.TensorType.UINT8)
    interpreter = native.make_interpreter(uint8_v2)
    with pytest.raises(RuntimeError, match="packed indices must be int8 \\(format version 2\\)"):
        interpreter.allocate_tensors()


def test_op_rejects_size_mismatch_at_prepare(rng):
    indices = packing.encode(rng.integers(-1, 2, 20))
    interpreter = native.make_interpreter(decode_only_model(indices, 1.0, (21,)))
    with pytest.raises(RuntimeError, match="21 weights need 5 packed bytes, tensor has 4"):
        interpreter.allocate_tensors()
    interpreter = native.make_interpreter(decode_only_model(indices, 1.0, (15,)))
    with pytest.raises(RuntimeError, match="15 weights need 3 packed bytes, tensor has 4"):
        interpreter.allocate_tensors()


def test_registerer_finds_add_custom_in_the_pinned_litert(rng):
    # The assumption behind linking nothing from TensorFlow: ai-edge-litert
    # 2.3.0's libpywrap_litert_common.so keeps MutableOpResolver::AddCustom in
    # its static symbol table. A wheel without it fails here, by name.
    indices = packing.encode(rng.integers(-1, 2, 10))
    native.make_interpreter(decode_only_model(indices, 1.0, (10,)))
    assert native.litert_register_error() == ""
    library = native.LITERT_LIBRARY.read_bytes()
    assert b"libtensorflow" not in library


def test_registerer_refuses_what_is_not_a_resolver():
    lib = native._load_litert_op_library()
    register = getattr(lib, spec.REGISTERER_SYMBOL)
    register.argtypes, register.restype = [ctypes.c_void_p], None
    not_loaded = (ctypes.c_void_p * 4)(8)  # a vtable pointer into no loaded object
    register(ctypes.addressof(not_loaded))
    assert "the resolver's vtable is in no loaded object" in native.litert_register_error()
    ours = ctypes.cast(lib.bittts_litert_register_error, ctypes.c_void_p).value
    foreign = (ctypes.c_void_p * 4)(ours)  # a pointer into our own library
    register(ctypes.addressof(foreign))
    error = native.litert_register_error()
    assert error.startswith(f"{spec.REGISTERER_SYMBOL}: cannot register {spec.OP_NAME}: ")
    assert "is not an OpResolver vtable in" in error and "libbittts_litert.so" in error


NO_TENSORFLOW = textwrap.dedent("""
    import ctypes, importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    library, model, expected = sys.argv[1:4]
    ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    interpreter = InterpreterWithCustomOps(model_content=open(model, "rb").read(),
                                           custom_op_registerers=["{symbol}"])
    interpreter.allocate_tensors()
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(out, np.load(expected))
    from bittts_tf.litert import native  # the project's helper, same library
    helper = native.make_interpreter(open(model, "rb").read())
    helper.allocate_tensors()
    helper.invoke()
    np.testing.assert_array_equal(
        helper.get_tensor(helper.get_output_details()[0]["index"]), np.load(expected))
    try:
        import tensorflow
        raise SystemExit("tensorflow was importable")
    except ImportError:
        pass
    loaded = [line for line in open("/proc/self/maps") if "tensorflow" in line]
    assert not loaded, loaded
    print("ran without tensorflow")
""").replace("{symbol}", spec.REGISTERER_SYMBOL)


def test_packed_model_runs_where_tensorflow_cannot_be_imported(rng, tmp_path):
    codes = rng.integers(-1, 2, (9, 1, 5, 7)).astype(np.int8)
    scale = float(rng.uniform(0.01, 2.0))
    model = tmp_path / "decode.tflite"
    model.write_bytes(decode_only_model(packing.encode(codes), scale, codes.shape))
    np.save(tmp_path / "expected.npy", codes.astype(np.float32) * np.float32(scale))
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, str(native.LITERT_LIBRARY), str(model),
         str(tmp_path / "expected.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ran without tensorflow" in result.stdout


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


def test_tflm_refuses_a_float_graphs_int4_kernels_and_budget_says_why(rng):
    """The pinned tflite-micro wheel's DEQUANTIZE takes no INT4 input: a
    float graph with a 4-bit kernel fails to allocate where the same graph
    with the kernel in float32 runs (if a later wheel runs it, this fails and
    tflm.unsupported_reason goes); the reason is named without trying."""
    from bittts_tf.export import tflm
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    inputs = keras.Input((16, 6), batch_size=1)
    model = keras.Model(inputs, QuantConv1D(8, 3, padding="same", weight_bits=4)(inputs))
    four_bit = converter.convert(model).tflite
    float32 = converter.float32_model(model)
    float_kernel = converter.convert_float(float32)
    reason = tflm.unsupported_reason(four_bit)
    assert reason is not None and "DEQUANTIZE takes no INT4" in reason
    assert tflm.unsupported_reason(float_kernel) is None
    with pytest.raises(tflm.TFLMError):
        tflm.make_interpreter(four_bit, 1 << 16, quiet=True)
    x = rng.standard_normal((1, 16, 6)).astype(np.float32)
    interpreter = tflm.make_interpreter(float_kernel, 1 << 16, quiet=True)
    interpreter.set_input(x, 0)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_output(0), np.asarray(float32(x)), atol=1e-5)
