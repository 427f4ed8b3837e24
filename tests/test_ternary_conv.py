"""BitTTSTernaryConv, the 1-D convolution that reads the packed ternary
kernel itself (tflite/bittts_ternary_conv.c), and the rewrite that puts it in
place of BitTTSTernaryDecode -> CONV_2D (bittts_tf/export/fused_conv.py).

- the C kernel through ctypes: float32 against a numpy convolution, int8 bit
  for bit against the tflite-micro wheel's CONV_2D run on the decoded codes
  {-1, 0, 1} with per-channel filter scale beta; its multiplier against
  TFLite's QuantizeMultiplier spelled in Python; its options against spec;
- the op in LiteRT and in the wheel (one-op graphs): the same against
  CONV_2D, a resized input, corrupt bytes and options refused by name;
- the rewrite on random small Keras models (float32 and int8 graphs): the
  fused graphs give the decode graphs' outputs in LiteRT (float32 within
  1e-5 relative, int8 bit for bit on the reference kernels) and in the
  wheel, in a smaller arena.

Every random draw comes from the test's printed seed (the `rng` fixture)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import InterpreterWithCustomOps, OpResolverType

from bittts_tf.export import fused_conv, graph_surgery, packer, tflm, tts_graphs
from bittts_tf.litert import native, tflite_file
from bittts_tf.quant import TernaryConv1D, TernaryConv1DTranspose, TernaryDense, packing, spec

T = schema.TensorType
ACTIVATIONS = list(spec.CONV_ACTIVATIONS.values())


# --- one-op graphs ------------------------------------------------------------

def _quantization(scales, zero_points):
    q = schema.QuantizationParametersT()
    q.scale = np.asarray(scales, np.float32).ravel()
    q.zeroPoint = np.asarray(zero_points, np.int64).ravel()
    q.quantizedDimension = 0
    return q


def one_op_model(codes, beta, x_shape, out_length, *, int8=False, in_q=(1.0, 0), out_q=(1.0, 0),
                 bias=None, stride=1, dilation=1, padding=spec.CONV_PADDING_VALID,
                 activation=0, fused=False, options=None, packed=None):
    """A graph of one CONV_2D whose filter is `codes` [Cout, 1, K, Cin] times
    beta (int8: the codes with per-channel scale beta, bias scale input
    scale * beta), or of one BitTTSTernaryConv with the same kernel packed."""
    cout, _, k, cin = codes.shape
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    tensors = []

    def tensor(name, shape, tensor_type, data=None, quantization=None):
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), np.asarray(shape, np.int32), tensor_type
        t.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(bytes(data), np.uint8).copy()
            model.buffers.append(buffer)
            t.buffer = len(model.buffers) - 1
        t.quantization = quantization
        tensors.append(t)
        return len(tensors) - 1

    activation_type = T.INT8 if int8 else T.FLOAT32
    x = tensor("x", x_shape, activation_type, quantization=_quantization(*zip(in_q)) if int8
               else None)
    code, op = schema.OperatorCodeT(), schema.OperatorT()
    if fused:
        indices = packing.pack(codes.reshape(-1), beta).indices if packed is None else packed
        inputs = [x, tensor("packed", [indices.size], T.INT8, indices.tobytes()),
                  tensor("scale", [1], T.FLOAT32, np.float32([beta]).tobytes())]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode, code.version = spec.CONV_OP_NAME.encode(), spec.CONV_OP_VERSION
        op.customOptions = np.frombuffer(
            spec.conv_options(k, stride, dilation, padding, activation) if options is None
            else options, np.uint8).copy()
        op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    else:
        if int8:
            w = tensor("filter", codes.shape, T.INT8, codes.astype(np.int8).tobytes(),
                       _quantization(np.full(cout, beta), np.zeros(cout)))
        else:
            w = tensor("filter", codes.shape, T.FLOAT32,
                       (codes.astype(np.float32) * np.float32(beta)).tobytes())
        inputs = [x, w]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CONV_2D
        code.version = 3 if int8 else 1
        conv = schema.Conv2DOptionsT()
        conv.padding, conv.strideW, conv.strideH = padding, stride, 1
        conv.dilationWFactor, conv.dilationHFactor = dilation, 1
        conv.fusedActivationFunction = activation
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.Conv2DOptions, conv
        if bias is None:  # LiteRT's reference int8 CONV_2D wants a bias: a zero one
            bias = np.zeros(cout, np.int32 if int8 else np.float32)
    if bias is not None:
        if int8:
            step = np.float32(in_q[0]) * np.float32(beta)
            inputs.append(tensor("bias", [cout], T.INT32, np.asarray(bias, np.int32).tobytes(),
                                 _quantization(np.full(cout, step), np.zeros(cout))))
        else:
            inputs.append(tensor("bias", [cout], T.FLOAT32, np.asarray(bias, np.float32).tobytes()))
    y = tensor("y", [x_shape[0], 1, out_length, cout], activation_type,
               quantization=_quantization(*zip(out_q)) if int8 else None)
    op.opcodeIndex, op.inputs, op.outputs = 0, np.int32(inputs), np.int32([y])
    model.operatorCodes = [code]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs = tensors, np.int32([x]), np.int32([y])
    subgraph.operators = [op]
    model.subgraphs = [subgraph]
    return tflite_file.serialize_model(model)


def output_length(t, k, stride, dilation, padding):
    span = (k - 1) * dilation + 1
    return -(-t // stride) if padding == spec.CONV_PADDING_SAME else (t - span) // stride + 1


def random_case(rng, int8, big=False):
    """A random 1-D conv, its kernel, quantization, bias (or None) and input."""
    while True:
        n = int(rng.integers(1, 3))
        t = int(rng.integers(8, 80) if big else rng.integers(1, 30))
        cin = int(rng.integers(16, 130) if big else rng.integers(1, 10))
        cout = int(rng.integers(8, 40) if big else rng.integers(1, 10))
        k = int(rng.integers(1, 8))
        stride = int(rng.choice([1, 1, 2, 3]))
        dilation = int(rng.choice([1, 1, 2, 3]))
        padding = int(rng.choice([spec.CONV_PADDING_SAME, spec.CONV_PADDING_VALID]))
        if output_length(t, k, stride, dilation, padding) > 0:
            break
    zeros = rng.uniform(0, 0.9)  # some kernels mostly zero, some dense
    codes = (rng.integers(-1, 2, (cout, 1, k, cin)) * (rng.random((cout, 1, k, cin)) > zeros))
    case = dict(codes=codes.astype(np.int8), beta=float(np.float32(rng.uniform(0.005, 0.3))),
                x_shape=[n, 1, t, cin], stride=stride, dilation=dilation, padding=padding,
                activation=int(rng.choice(ACTIVATIONS)), int8=int8,
                out_length=output_length(t, k, stride, dilation, padding))
    if int8:
        case["in_q"] = (float(np.float32(rng.uniform(0.002, 0.1))), int(rng.integers(-128, 128)))
        case["out_q"] = (float(np.float32(rng.uniform(0.005, 2.0))), int(rng.integers(-128, 128)))
        case["bias"] = rng.integers(-40000, 40000, cout).astype(np.int32)
        x = rng.integers(-128, 128, case["x_shape"]).astype(np.int8)
    else:
        case["bias"] = rng.standard_normal(cout).astype(np.float32)
        x = (rng.standard_normal(case["x_shape"]) * rng.uniform(0.1, 10)).astype(np.float32)
    if rng.random() < 0.3:
        case["bias"] = None
    return case, x


def model_of(case, **extra):
    return one_op_model(case["codes"], case["beta"], case["x_shape"], case["out_length"],
                        int8=case["int8"], in_q=case.get("in_q", (1.0, 0)),
                        out_q=case.get("out_q", (1.0, 0)), bias=case["bias"],
                        stride=case["stride"], dilation=case["dilation"],
                        padding=case["padding"], activation=case["activation"], **extra)


def kernel_of(case, x):
    """The C kernel through ctypes on the case."""
    packed = packing.pack(case["codes"].reshape(-1), case["beta"]).indices
    cout, _, k, _ = case["codes"].shape
    common = dict(bias=case["bias"], stride=case["stride"], dilation=case["dilation"],
                  padding=case["padding"], activation=case["activation"])
    if case["int8"]:
        return fused_conv.c_conv_i8(x, packed, k, cout, *case["in_q"], case["beta"],
                                    *case["out_q"], **common)
    return fused_conv.c_conv_f32(x, packed, case["beta"], k, cout, **common)


def run_tflm(model, x, arena=1 << 20):
    interpreter = tflm.make_interpreter(model, arena)
    interpreter.set_input(x, 0)
    try:
        interpreter.invoke()
    except RuntimeError as error:  # the kernel's own message, as tflm.Graph reports it
        raise tflm.TFLMError(f"{error} ({tflm.kernel_message()})") from None
    return interpreter.get_output(0)


def run_litert(model, x, reference_kernels=False):
    if reference_kernels:
        interpreter = InterpreterWithCustomOps(
            model_content=model, custom_op_registerers=native.litert_registerers(),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    else:
        interpreter = native.make_interpreter(model)
    return native.run_interpreter(interpreter, [x])[0]


def numpy_conv(case, x, magnitudes=False):
    """float64 convolution of the decoded kernel, TFLite's padding; with
    `magnitudes`, the sum of |trit * x| * beta + |bias| of each output instead
    (what a float32 sum's rounding error is proportional to)."""
    codes = case["codes"][:, 0].astype(np.float64)  # [Cout, K, Cin]
    if magnitudes:
        codes, x = np.abs(codes), np.abs(x)
    cout, k, _ = codes.shape
    n, _, t, _ = x.shape
    span = (k - 1) * case["dilation"] + 1
    out = case["out_length"]
    pad = max((out - 1) * case["stride"] + span - t, 0) // 2
    padded = np.zeros((n, t + span + out * case["stride"], x.shape[3]))
    padded[:, pad:pad + t] = x[:, 0]
    y = np.zeros((n, out, cout))
    for tap in range(k):
        start = tap * case["dilation"]
        frames = padded[:, start:start + (out - 1) * case["stride"] + 1:case["stride"]]
        y += frames @ codes[:, tap].T
    bias = 0 if case["bias"] is None else case["bias"].astype(np.float64)
    if magnitudes:
        return (y * case["beta"] + np.abs(bias))[:, None]
    y = y * case["beta"] + bias
    low, high = {0: (-np.inf, np.inf), 1: (0, np.inf), 2: (-1, 1), 3: (0, 6)}[case["activation"]]
    return np.clip(y, low, high)[:, None]


# --- the kernel ------------------------------------------------------------------

def test_float_kernel_matches_a_numpy_convolution(rng):
    worst = 0.0
    for _ in range(60):
        case, x = random_case(rng, int8=False, big=rng.random() < 0.3)
        got, expected = kernel_of(case, x), numpy_conv(case, x)
        assert got.shape == expected.shape
        # A float32 sum of up to K * Cin = 910 terms: within 1e-5 of the sum of
        # their magnitudes (cancellation can leave a peak far below that sum;
        # 1e-5 of the peak failed once at 1.25e-5, seed 2121174911).
        bound = np.maximum(numpy_conv(case, x, magnitudes=True), 1e-6)
        error = float((np.abs(got - expected) / bound).max())
        worst = max(worst, error)
        assert error <= 1e-5, case
    print(f"float32 kernel: largest error {worst:.2e} of the sum of the terms' magnitudes")


def test_int8_kernel_is_bit_exact_with_tflm_conv2d(rng):
    """The wheel's reference int8 CONV_2D on the decoded codes with
    per-channel scale beta: every output equal, over strides, dilations,
    SAME / VALID, fused activations, biases up to +-40000 and none."""
    compared = 0
    for trial in range(50):
        case, x = random_case(rng, int8=True, big=trial % 2 == 1)
        expected = run_tflm(model_of(case), x)
        got = kernel_of(case, x)
        np.testing.assert_array_equal(got, expected, err_msg=str(case))
        compared += got.size
    print(f"int8 kernel: {compared} outputs equal to TFLM's CONV_2D")


def tflite_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier from its documented definition."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = math.floor(q * 2**31 + 0.5)  # q > 0: half away from zero
    if fixed == 2**31:
        fixed, shift = fixed // 2, shift + 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def test_multiplier_is_tflites(rng):
    scales = np.float32(rng.uniform(1e-4, 1.0, (2000, 3)) * 10.0 ** rng.integers(-3, 2, (2000, 3)))
    for a, b, c in scales:
        real = float(a) * float(b) / float(c)
        assert fused_conv.quantize_multiplier(real) == tflite_quantize_multiplier(real), real
    for real in (0.0, 0.5, 1.0, 2.0**-31, 2.0**-32, 1 - 2.0**-40, 3e-10):
        assert fused_conv.quantize_multiplier(real) == tflite_quantize_multiplier(real), real
    with pytest.raises(fused_conv.ConvError):
        fused_conv.quantize_multiplier(-1.0)


def test_options_written_by_spec_are_the_c_layout():
    lib = fused_conv.conv_library()
    import ctypes

    class Options(ctypes.Structure):
        _fields_ = [("kernel_size", ctypes.c_size_t), ("stride", ctypes.c_size_t),
                    ("dilation", ctypes.c_size_t), ("padding", ctypes.c_int),
                    ("activation", ctypes.c_int)]

    for values in ((5, 2, 3, spec.CONV_PADDING_SAME, 1), (1, 1, 1, spec.CONV_PADDING_VALID, 0),
                   (65535, 7, 300, spec.CONV_PADDING_VALID, 3)):
        data = spec.conv_options(*values)
        assert len(data) == spec.CONV_OPTIONS_BYTES
        parsed = Options()
        assert lib.bittts_conv_parse_options(data, len(data), ctypes.byref(parsed)) == 0
        assert (parsed.kernel_size, parsed.stride, parsed.dilation, parsed.padding,
                parsed.activation) == values
        written = ctypes.create_string_buffer(spec.CONV_OPTIONS_BYTES)
        assert lib.bittts_conv_write_options(ctypes.byref(parsed), written,
                                             spec.CONV_OPTIONS_BYTES) == 0
        assert written.raw == data
        import flatbuffers.flexbuffers as flexbuffers
        assert flexbuffers.Loads(data) == list(values)  # a FlexBuffer any reader can open
        assert spec.parse_conv_options(data) == dict(zip(spec.CONV_OPTION_NAMES, values))
    with pytest.raises(ValueError):
        spec.conv_options(0)


def test_kernel_refuses_invalid_bytes_and_sizes(rng):
    case, x = random_case(rng, int8=False)
    packed = packing.pack(case["codes"].reshape(-1), case["beta"]).indices.copy()
    cout, _, k, _ = case["codes"].shape
    at = int(rng.integers(packed.size))
    packed[at] = int(rng.choice([-128, -122, 122, 127]))
    # The case's own geometry: a default VALID conv may have no output frame.
    geometry = {name: case[name] for name in ("stride", "dilation", "padding")}
    outside = rf"packed byte outside -121\.\.121 \(byte {at}\)"
    with pytest.raises(fused_conv.ConvError, match=outside):
        fused_conv.c_conv_f32(x, packed, case["beta"], k, cout, **geometry)
    with pytest.raises(fused_conv.ConvError, match="does not fit"):
        fused_conv.c_conv_f32(x, packed[:-1], case["beta"], k, cout, **geometry)
    with pytest.raises(fused_conv.ConvError, match="out of range"):
        fused_conv.c_conv_f32(x, packing.pack(case["codes"].reshape(-1), 1.0).indices,
                              float("nan"), k, cout, **geometry)


# --- the op in LiteRT and in the wheel ---------------------------------------------

@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_op_equals_conv2d_in_litert_and_tflm(rng, int8):
    """One BitTTSTernaryConv against one CONV_2D on the decoded kernel: int8
    bit for bit (TFLM, LiteRT's reference kernels), float32 within 1e-5 of
    the sum of the terms' magnitudes (LiteRT default kernels, TFLM; a clipped
    output's peak says nothing of the sum's rounding: 3.1e-5 of a RELU_N1_TO_1
    peak once, seed 1796845706)."""
    for trial in range(16):
        case, x = random_case(rng, int8=int8, big=trial % 4 == 3)
        fused, conv = model_of(case, fused=True), model_of(case)
        for name, run in (("tflm", run_tflm), ("litert", run_litert)):
            got = run(fused, x)
            if int8:
                expected = (run_litert(conv, x, reference_kernels=True) if name == "litert"
                            else run_tflm(conv, x))
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} {case}")
            else:
                expected = run(conv, x)
                bound = np.maximum(numpy_conv(case, x, magnitudes=True), 1e-6)
                assert (np.abs(got - expected) / bound).max() <= 1e-5, (name, case)


def test_litert_op_follows_a_resized_input(rng):
    case, _ = random_case(rng, int8=False)
    case.update(stride=1, dilation=1, padding=spec.CONV_PADDING_SAME)
    case["out_length"] = case["x_shape"][2]
    interpreter = native.make_interpreter(model_of(case, fused=True))
    for length in (case["x_shape"][2] + 7, 3):
        x = rng.standard_normal(case["x_shape"][:2] + [length, case["x_shape"][3]])
        got = native.run_interpreter(interpreter, [x.astype(np.float32)])[0]
        resized = {**case, "out_length": length}
        expected = numpy_conv(resized, x.astype(np.float32))
        assert got.shape == expected.shape
        bound = np.maximum(numpy_conv(resized, x, magnitudes=True), 1e-6)
        assert (np.abs(got - expected) / bound).max() <= 1e-5


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_corrupt_byte_fails_invoke_naming_the_op(rng, int8):
    case, x = random_case(rng, int8=int8)
    packed = packing.pack(case["codes"].reshape(-1), case["beta"]).indices.copy()
    at = int(rng.integers(packed.size))
    packed[at] = int(rng.choice([-128, -122, 122, 127]))
    model = model_of(case, fused=True, packed=packed)
    message = rf"{spec.CONV_OP_NAME}: .*packed byte {at} is {int(packed[at])}, outside -121\.\.121"
    with pytest.raises(RuntimeError, match=message):
        run_litert(model, x)
    with pytest.raises(tflm.TFLMError, match=message):
        run_tflm(model, x)


def test_bad_options_fail_prepare_naming_the_op(rng):
    case, x = random_case(rng, int8=False)
    for options in (b"", spec.conv_options(3)[:-1], bytes(spec.CONV_OPTIONS_BYTES)):
        model = model_of(case, fused=True, options=options)
        with pytest.raises(RuntimeError, match=rf"{spec.CONV_OP_NAME}: custom options"):
            run_litert(model, x)
        with pytest.raises(tflm.TFLMError, match="custom options"):
            run_tflm(model, x)
    # K + 5 needs Cout x Cin more packed bytes (K + 1 may need none more when
    # Cout x Cin < 5, and LiteRT would only resize the output).
    wrong_k = spec.conv_options(case["codes"].shape[2] + 5, case["stride"], case["dilation"],
                                case["padding"], case["activation"])
    with pytest.raises(RuntimeError, match=rf"{spec.CONV_OP_NAME}: "):
        run_litert(model_of(case, fused=True, options=wrong_k), x)


# --- the rewrite on Keras models -------------------------------------------------

def random_keras_model(rng, length, channels):
    """Ternary convs of random kernel size, stride or dilation, padding,
    activation and bias, a ternary Dense (a 1x1 CONV_2D), a transposed conv
    (whose decode op stays)."""
    inputs = keras.Input((length, channels))
    x = inputs
    for i in range(int(rng.integers(2, 4))):
        stride, dilation = (int(rng.integers(1, 3)), 1) if rng.random() < 0.5 else \
            (1, int(rng.integers(1, 3)))
        x = TernaryConv1D(int(rng.integers(3, 12)), int(rng.integers(1, 6)), strides=stride,
                          dilation_rate=dilation,
                          padding=str(rng.choice(["same", "valid", "causal"])),
                          activation=str(rng.choice(["relu", "linear", "tanh"])),
                          use_bias=bool(rng.random() < 0.7), name=f"conv{i}")(x)
    x = TernaryConv1DTranspose(int(rng.integers(2, 8)), 3, strides=2, padding="same",
                               name="transpose")(x)
    outputs = TernaryDense(int(rng.integers(2, 6)), name="dense")(x)
    return keras.Model(inputs, outputs)


def fixed_function(model):
    signature = tf.TensorSpec((1,) + model.input_shape[1:], tf.float32, name="x")
    return tf.function(lambda x: model(x), input_signature=[signature])


def decode_graphs(rng, int8):
    """(Keras model, packed graph with decode ops, fresh inputs)."""
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    length, channels = int(rng.integers(24, 40)), int(rng.integers(2, 9))
    model = random_keras_model(rng, length, channels)
    inputs = [rng.standard_normal((1, length, channels)).astype(np.float32) for _ in range(4)]
    if int8:
        samples = [{"x": rng.standard_normal((1, length, channels)).astype(np.float32)}
                   for _ in range(16)]
        graph = tts_graphs.convert_int8_function(fixed_function(model), model, samples)
        packed, _ = packer.pack_int8_ternary_weights(model, graph)
    else:
        graph = tts_graphs.convert_function(fixed_function(model), model)
        packed, _ = packer.pack_ternary_weights(model, graph)
    return model, packed, inputs


def ops_of(model_bytes):
    model = tflite_file.parse_model(model_bytes)
    return tflite_file.graph_ops(model)


def quantize_input(model_bytes, x):
    tensor = tflite_file.parse_model(model_bytes).subgraphs[0]
    detail = tensor.tensors[int(tensor.inputs[0])]
    if detail.type != T.INT8:
        return x
    scale, zero = float(detail.quantization.scale[0]), int(detail.quantization.zeroPoint[0])
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_fused_graphs_give_the_decode_graphs_outputs(rng, int8):
    _, packed, inputs = decode_graphs(rng, int8)
    result = fused_conv.fuse_ternary_convs(packed)
    fused = result.tflite
    print(f"{'int8' if int8 else 'float32'}: {result.summary()}, left {result.left}")
    builtins, customs = ops_of(fused)
    assert spec.CONV_OP_NAME in customs and "CONV_2D" not in builtins
    # The transposed conv keeps its decode op; the convs and the Dense have none left.
    parsed = tflite_file.parse_model(fused)
    subgraph, names = parsed.subgraphs[0], tflite_file.builtin_names()
    decode_readers = []
    for op in subgraph.operators:
        code = parsed.operatorCodes[op.opcodeIndex]
        if code.customCode is not None and bytes(code.customCode).decode() == spec.OP_NAME:
            decode_readers += [names[tflite_file.builtin_code(parsed, r)]
                               for r in subgraph.operators
                               if int(op.outputs[0]) in [int(i) for i in r.inputs]]
    assert decode_readers == ["TRANSPOSE_CONV"]
    assert len(result.fused) >= 3 and not result.left
    for x in inputs:
        x = quantize_input(packed, x)
        if int8:
            a, b = (run_litert(m, x, reference_kernels=True) for m in (packed, fused))
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(run_tflm(packed, x), run_tflm(fused, x))
        else:
            for run in (run_litert, run_tflm):
                a, b = run(packed, x), run(fused, x)
                assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-6), run.__name__


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_fused_graph_runs_in_a_smaller_arena(rng, int8):
    _, packed, _ = decode_graphs(rng, int8)
    result = fused_conv.fuse_ternary_convs(packed)
    before, after = tflm.smallest_arena(packed), tflm.smallest_arena(result.tflite)
    print(f"{'int8' if int8 else 'float32'}: smallest arena {before} -> {after} bytes; "
          f"decoded kernels removed {result.summary()['decoded_bytes_removed']} bytes, "
          f"largest {result.summary()['largest_decoded_kernel_removed']}; "
          f"file {len(packed)} -> {len(result.tflite)} bytes")
    assert after < before


def decoded_kernel_also_an_output(rng):
    """A decode graph whose decoded kernel is also a graph output: the conv
    is fused, the decode op stays for the output."""
    case, x = random_case(rng, int8=False)
    model = tflite_file.parse_model(model_of(case))
    subgraph = model.subgraphs[0]
    conv = subgraph.operators[0]
    filter_index = int(conv.inputs[1])
    filter_tensor = subgraph.tensors[filter_index]
    indices = packing.pack(case["codes"].reshape(-1), case["beta"]).indices
    opcode = graph_surgery.decode_opcode_index(model)
    packed_index = graph_surgery.add_tensor(subgraph, "packed", [indices.size], T.INT8,
                                         graph_surgery.add_buffer(model, indices.tobytes()))
    scale_index = graph_surgery.add_tensor(subgraph, "scale", [1], T.FLOAT32,
                                        graph_surgery.add_buffer(
                                            model, np.float32([case["beta"]]).tobytes()))
    model.buffers[filter_tensor.buffer].data = None
    filter_tensor.buffer = 0
    subgraph.operators = [graph_surgery.decode_op(opcode, [packed_index, scale_index], filter_index),
                          conv]
    subgraph.outputs = np.int32([int(conv.outputs[0]), filter_index])
    return case, x, tflite_file.serialize_model(model)


def test_decode_op_stays_for_its_other_readers(rng):
    case, x, packed = decoded_kernel_also_an_output(rng)
    result = fused_conv.fuse_ternary_convs(packed)
    builtins, customs = ops_of(result.tflite)
    assert customs == [spec.CONV_OP_NAME, spec.OP_NAME] and "CONV_2D" not in builtins
    expected = run_litert(packed, x)
    interpreter = native.make_interpreter(result.tflite)
    outputs = native.run_interpreter(interpreter, [x])
    bound = np.maximum(numpy_conv(case, x, magnitudes=True), 1e-6)
    assert (np.abs(outputs[0] - expected) / bound).max() <= 1e-5
    np.testing.assert_array_equal(outputs[1], case["codes"] * np.float32(case["beta"]))


def test_graph_without_decode_ops_is_left_alone(rng):
    case, _ = random_case(rng, int8=False)
    plain = model_of(case)
    result = fused_conv.fuse_ternary_convs(plain)
    assert result.fused == [] and result.left == {}
    assert ops_of(result.tflite) == ops_of(plain)


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_decode_at_load_turns_fused_convs_back_into_constant_filter_convs(rng, int8):
    """A desktop runtime loads a fused graph as it loads the decode graph:
    every BitTTSTernaryConv a CONV_2D with the decoded filter as a constant
    (XNNPACK takes only those). Both loaded forms give the same outputs."""
    from bittts_tf.runtime.decode_at_load import decode_at_load
    _, packed, inputs = decode_graphs(rng, int8)
    fused = fused_conv.fuse_ternary_convs(packed).tflite
    loaded = decode_at_load(fused)
    builtins, customs = ops_of(loaded)
    assert customs == [] and "CONV_2D" in builtins, (builtins, customs)
    reference = decode_at_load(packed)
    for x in inputs:
        x = quantize_input(packed, x)
        a, b = run_litert(reference, x), run_litert(loaded, x)
        if int8:
            np.testing.assert_array_equal(a, b)
        else:
            assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-6)


def test_decode_at_load_refuses_a_fused_op_with_a_bad_index_naming_the_op(rng):
    from bittts_tf.runtime.decode_at_load import decode_at_load
    _, packed, _ = decode_graphs(rng, False)
    model = tflite_file.parse_model(fused_conv.fuse_ternary_convs(packed).tflite)
    subgraph = model.subgraphs[0]
    op = next(op for op in subgraph.operators
              if model.operatorCodes[op.opcodeIndex].customCode == spec.CONV_OP_NAME.encode())
    buffer = model.buffers[subgraph.tensors[int(op.inputs[1])].buffer]
    data = np.asarray(buffer.data, np.uint8).copy()
    data[int(rng.integers(data.size))] = spec.MAX_INDEX + 1  # no trit pattern has this index
    buffer.data = data
    with pytest.raises(tflite_file.TFLiteFileError, match=spec.CONV_OP_NAME):
        decode_at_load(tflite_file.serialize_model(model))


def test_stripped_names_leave_inputs_outputs_and_results(rng):
    _, packed, inputs = decode_graphs(rng, True)
    stripped = tflite_file.strip_tensor_names(packed)
    assert len(stripped) < len(packed)
    before, after = (tflite_file.parse_model(m).subgraphs[0] for m in (packed, stripped))
    ends = {int(i) for i in list(after.inputs) + list(after.outputs)}
    for index, (old, new) in enumerate(zip(before.tensors, after.tensors)):
        assert new.name == (old.name if index in ends else b""), index
    for x in inputs:
        x = quantize_input(packed, x)
        np.testing.assert_array_equal(run_litert(packed, x), run_litert(stripped, x))
