"""Output scales calibrated below one accumulator step (a layer whose output
never varied during calibration) are raised to it, so LiteRT's default
delegate (XNNPACK) takes the graph; the values stay within one step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from bittts_tf.export import int8_scales, packer, tts_graphs
from bittts_tf.litert import tflite_file
from bittts_tf.quant import TernaryConv1D, TernaryDense

BUILTIN = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def constant_output_model(rng):
    """The failure's shape: a ternary conv whose kernel ended all zero gives
    its bias on every frame; the next layer's ternary columns sum to zero, so
    its output is zero on every input (calibrated range of no width)."""
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    inputs = keras.Input((10, 6))
    hidden = TernaryConv1D(6, 3, padding="same", kernel_initializer="zeros",
                           bias_initializer="ones", name="zero_conv")(inputs)
    dense = TernaryDense(3, name="dead")
    outputs = dense(hidden)
    magnitude = rng.uniform(0.1, 1.0)
    signs = np.where(np.arange(6)[:, None] % 2 == 0, 1.0, -1.0) * rng.choice([-1.0, 1.0], (1, 3))
    dense.kernel.assign((magnitude * signs).astype(np.float32))
    return keras.Model(inputs, outputs)


def convert(model, samples, floor: bool, monkeypatch) -> bytes:
    if not floor:
        monkeypatch.setattr(int8_scales, "floor_output_scales", lambda data: (data, []))
    signature = tf.TensorSpec((1, 10, 6), tf.float32, name="x")
    function = tf.function(lambda x: model(x), input_signature=[signature])
    model_bytes = tts_graphs.convert_int8_function(function, model, [{"x": x} for x in samples])
    monkeypatch.undo()
    return model_bytes


def run(model_bytes, x, resolver):
    interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    detail = interpreter.get_output_details()[0]
    return interpreter.get_tensor(detail["index"]), detail


def test_a_dead_layer_loads_in_the_default_delegate_within_one_step(rng, monkeypatch):
    model = constant_output_model(rng)
    samples = [rng.standard_normal((1, 10, 6)).astype(np.float32) for _ in range(16)]
    raw = convert(model, samples, floor=False, monkeypatch=monkeypatch)
    # The fault this repairs: the converter's own graph does not load.
    with pytest.raises(RuntimeError, match="XNNPACK"):
        run(raw, samples[0], OpResolverType.AUTO)
    fixed = convert(model, samples, floor=True, monkeypatch=monkeypatch)
    x = rng.standard_normal((1, 10, 6)).astype(np.float32)
    expected = model(x).numpy()
    for resolver in (OpResolverType.AUTO, BUILTIN):
        got, detail = run(fixed, x, resolver)
        step = float(detail["quantization"][0]) if detail["dtype"] != np.float32 else None
        # The float output dequantizes the dead layer's int8 codes: one step of
        # the raised scale at most.
        scale = max(float(t.quantization.scale[0]) for t in
                    tflite_file.parse_model(fixed).subgraphs[0].tensors
                    if t.quantization is not None and t.quantization.scale is not None
                    and len(t.quantization.scale) == 1 and t.type == 9
                    and b"dead" in t.name)
        assert step is None
        assert np.abs(got - expected).max() <= scale * 1.0001, resolver


def test_the_floor_is_one_accumulator_step_and_reaches_pass_through_tensors(rng, monkeypatch):
    model = constant_output_model(rng)
    samples = [rng.standard_normal((1, 10, 6)).astype(np.float32) for _ in range(16)]
    raw = convert(model, samples, floor=False, monkeypatch=monkeypatch)
    fixed, raised = int8_scales.floor_output_scales(raw)
    assert raised, "the dead layer's output scale was not raised"
    before = {t.name: t for t in tflite_file.parse_model(raw).subgraphs[0].tensors}
    parsed = tflite_file.parse_model(fixed)
    after = {t.name: t for t in parsed.subgraphs[0].tensors}
    names = tflite_file.builtin_names()
    for op in parsed.subgraphs[0].operators:
        name = names[tflite_file.builtin_code(parsed, op)]
        tensors = parsed.subgraphs[0].tensors
        if name in ("CONV_2D", "FULLY_CONNECTED"):
            x, w, y = (tensors[int(op.inputs[0])], tensors[int(op.inputs[1])],
                       tensors[int(op.outputs[0])])
            step = np.float32(float(x.quantization.scale[0]) * float(np.max(w.quantization.scale)))
            assert y.quantization.scale[0] >= step
        if name == "RESHAPE" and tensors[int(op.outputs[0])].type == 9:
            source, target = tensors[int(op.inputs[0])], tensors[int(op.outputs[0])]
            assert np.array_equal(source.quantization.scale, target.quantization.scale)
            assert np.array_equal(source.quantization.zeroPoint, target.quantization.zeroPoint)
    # Tensors not raised keep the converter's parameters.
    for name, tensor in after.items():
        if name.decode() not in raised and tensor.quantization is not None \
                and tensor.quantization.scale is not None:
            assert np.array_equal(tensor.quantization.scale, before[name].quantization.scale)


def test_graphs_without_a_degenerate_scale_are_returned_unchanged(rng):
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    inputs = keras.Input((10, 6))
    model = keras.Model(inputs, TernaryConv1D(5, 3, padding="same")(inputs))
    samples = [{"x": rng.standard_normal((1, 10, 6)).astype(np.float32)} for _ in range(8)]
    signature = tf.TensorSpec((1, 10, 6), tf.float32, name="x")
    function = tf.function(lambda x: model(x), input_signature=[signature])
    model_bytes = tts_graphs.convert_int8_function(function, model, samples)
    assert int8_scales.floor_output_scales(model_bytes) == (model_bytes, [])


def test_equal_channel_scales_collapse_filter_and_bias_together(rng):
    """A ternary conv's int8 filter has one scale on every channel and its
    bias one scale too: stored once each, the graph gives the same codes in
    LiteRT's default delegate (which refuses a per-tensor bias beside a
    per-channel filter: the planted half-collapse below) and its reference
    kernels."""
    from bittts_tf.runtime.decode_at_load import decode_at_load
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    inputs = keras.Input((12, 16))
    model = keras.Model(inputs, TernaryConv1D(24, 5, padding="same", name="conv")(inputs))
    samples = [{"x": rng.standard_normal((1, 12, 16)).astype(np.float32)} for _ in range(8)]
    signature = tf.TensorSpec((1, 12, 16), tf.float32, name="x")
    function = tf.function(lambda x: model(x), input_signature=[signature])
    unpacked = tts_graphs.convert_int8_function(function, model, samples)
    packed, _ = packer.pack_int8_ternary_weights(model, unpacked)
    collapsed, saved = int8_scales.collapse_equal_channel_scales(packed)
    assert saved == 12 * 23 * 2  # filter and bias, 24 channels each
    x = rng.standard_normal((1, 12, 16)).astype(np.float32)
    for resolver in (OpResolverType.AUTO, BUILTIN):
        expected, _ = run(decode_at_load(packed), x, resolver)
        got, _ = run(decode_at_load(collapsed), x, resolver)
        np.testing.assert_array_equal(got, expected)
    half = tflite_file.parse_model(packed)
    for tensor in half.subgraphs[0].tensors:
        q = tensor.quantization
        if tensor.type == 2 and q is not None and q.scale is not None and len(q.scale) > 1:
            q.scale, q.zeroPoint = q.scale[:1].copy(), q.zeroPoint[:1].copy()
    with pytest.raises(RuntimeError, match="delegate"):
        run(decode_at_load(tflite_file.serialize_model(half)), x, OpResolverType.AUTO)


def _centring_tensors(model_bytes, codes, ends):
    """The centring graph on LiteRT's reference kernels: the conv's output
    (dequantized), the mean's scale and range, the output (dequantized), and
    its scale and range."""
    interpreter = Interpreter(model_content=model_bytes,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], codes)
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def dequantized(index):
        scale, zero = details[index]["quantization"]
        return (interpreter.get_tensor(index).astype(np.float64) - zero) * scale

    def scale_and_range(index):
        scale, zero = details[index]["quantization"]
        return scale, (-128 - zero) * scale, (127 - zero) * scale

    return (dequantized(ends[0]), scale_and_range(ends[1]),
            dequantized(ends[2]), scale_and_range(ends[2]))


def _clipped(values, scale_and_range):
    """How far each value lies outside a tensor's int8 range."""
    _, low, high = scale_and_range
    return np.maximum(0.0, np.maximum(values - high, low - values))


def _multipliers(s1: float, s2: float, so: float, precision) -> list[int]:
    """SUB's three requantization multipliers (31-bit mantissas) as a runtime
    derives them from the scales: TFLite Micro's Prepare divides in float32,
    LiteRT's in float64 (the left shift is 20 for int8 in both)."""
    def quantized(x: float) -> int:
        mantissa, _ = np.frexp(x)
        return int(np.round(mantissa * 2.0**31))
    s1, s2, so = (precision(s) for s in (s1, s2, so))
    twice = precision(2) * max(s1, s2)
    return [quantized(float(precision(s1 / twice))), quantized(float(precision(s2 / twice))),
            quantized(float(precision(twice / (precision(2**20) * so))))]


def centring_model(rng):
    """A layer norm's first half as the exported graphs write it: a conv, then
    x - mean(x) over channels (an int8 SUB with a broadcast second input)."""
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    inputs = keras.Input((10, 6))
    hidden = keras.layers.Conv1D(8, 3, name="conv")(inputs)
    return keras.Model(inputs, hidden - keras.ops.mean(hidden, axis=-1, keepdims=True))


def test_sub_scales_tie_so_tflite_micro_and_litert_requantize_alike(rng, monkeypatch):
    from bittts_tf.export import tflm
    model = centring_model(rng)
    samples = [(rng.standard_normal((1, 10, 6)) * rng.uniform(0.5, 3)).astype(np.float32)
               for _ in range(16)]
    monkeypatch.setattr(int8_scales, "tie_sub_scales", lambda data: (data, []))
    signature = tf.TensorSpec((1, 10, 6), tf.float32, name="x")
    function = tf.function(lambda x: model(x), input_signature=[signature])
    untied = tts_graphs.convert_int8_function(function, model, [{"x": x} for x in samples],
                                              integer_io=True)
    monkeypatch.undo()
    tied, changed = int8_scales.tie_sub_scales(untied)
    assert changed, "no SUB scale was tied"

    parsed = tflite_file.parse_model(tied)
    names = tflite_file.builtin_names()
    subs = [op for op in parsed.subgraphs[0].operators
            if names[tflite_file.builtin_code(parsed, op)] == "SUB"]
    assert len(subs) == 1
    ends = [int(i) for i in (*subs[0].inputs, subs[0].outputs[0])]
    tensors = parsed.subgraphs[0].tensors
    before = tflite_file.parse_model(untied).subgraphs[0].tensors
    s1, s2, so = (float(tensors[i].quantization.scale[0]) for i in ends)
    for ratio in (s2 / s1, so / s1):
        assert np.log2(ratio) == np.round(np.log2(ratio)), (s1, s2, so)
    assert _multipliers(s1, s2, so, np.float32) == _multipliers(s1, s2, so, np.float64)
    print("untied multipliers float32 / float64:",
          *(_multipliers(*(float(before[i].quantization.scale[0]) for i in ends), p)
            for p in (np.float32, np.float64)))

    # The two runtimes' reference kernels give the same codes (on VALID convs,
    # as the streaming graphs have them). Tied and untied graphs hold the
    # same conv codes; after them each graph is within its own rounding of
    # x - mean(x): of the mean, of the output, and what its ranges clip. Each requantization
    # (MultiplyByQuantizedMultiplier) rounds twice: the doubling high
    # multiply, then the right shift; MEAN folds 1/count into its shift, so
    # its right shift can be 1 and the two roundings reach 3/4 of an output
    # step (seen at seed 458196024): bounded here by one step. SUB's output
    # shift is about 20 bits, so its first rounding is below 1/32 step.
    micro = tflm.make_interpreter(tied, tflm.smallest_arena(tied))
    scale_in, zero_in = Interpreter(model_content=tied).get_input_details()[0]["quantization"]
    noisy = [x + rng.normal(0, 0.3, x.shape) for x in samples[:8]]
    for k, x in enumerate(samples + noisy):
        codes = np.clip(np.round(x / scale_in + zero_in), -128, 127).astype(np.int8)
        micro.set_input(codes, 0)
        micro.invoke()
        expected, _ = run(tied, codes, OpResolverType.BUILTIN_REF)
        np.testing.assert_array_equal(micro.get_output(0), expected)
        if k >= len(samples):
            continue
        graphs = [_centring_tensors(graph, codes, ends) for graph in (tied, untied)]
        np.testing.assert_array_equal(graphs[0][0], graphs[1][0])
        for name, (hidden, mean_range, output, out_range) in zip(("tied", "untied"), graphs):
            exact = hidden - hidden.mean(axis=-1, keepdims=True)
            bound = (mean_range[0] + _clipped(hidden.mean(axis=-1, keepdims=True), mean_range)
                     + out_range[0] * (0.5 + 1 / 32) + _clipped(exact, out_range))
            assert np.all(np.abs(output - exact) <= bound), (name, k)


# Seed 458196024 once failed here: the tied graph's MEAN rounded 3/4 of an
# output step (two roundings of one requantization) and the converter's
# MEAN clipped a mean its calibration never reached; the old bound allowed
# half a step and no clipping of the mean.
@pytest.mark.replay_seed(458196024)
def test_sub_scales_tie_replayed_seed(rng, monkeypatch):
    test_sub_scales_tie_so_tflite_micro_and_litert_requantize_alike(rng, monkeypatch)


def test_mul_output_scale_moves_to_one_both_precisions_requantize_alike(rng):
    """TFLite Micro derives MUL's multiplier in float64, LiteRT's reference
    kernel in float32 (here emulated apart from int8_scales' own check): the
    moved scale gives both the same 31-bit multiplier, within 5e-4 of the
    calibrated scale. The first triple is test_tflm seed 1368705874's
    layer-norm MUL (41 units apart, one output code of 512 one step off)."""
    triples = [(0.00498643, 0.03651769, 0.03745554)]
    triples += [tuple(rng.uniform(1e-3, 0.1, 3)) for _ in range(100)]
    disagree, tied = 0, 0
    for k, (s1, s2, so) in enumerate(tuple(np.float32(v) for v in t) for t in triples):
        if _mul_multiplier(s1, s2, so, np.float32) == _mul_multiplier(s1, s2, so, np.float64):
            continue
        disagree += 1
        scale = int8_scales._nearest_agreeing_scale(s1, s2, so)
        assert scale is not None or k > 0, "the seed-1368705874 MUL was not tied"
        if scale is None:
            continue   # the product's float32 rounding outweighs any quotient's: see tie_mul_scales
        tied += 1
        assert abs(float(scale) / float(so) - 1) <= 5e-4
        assert _mul_multiplier(s1, s2, scale, np.float32) == _mul_multiplier(s1, s2, scale, np.float64)
    print(f"{disagree} of {len(triples)} scale triples disagree; {tied} tied")
    assert disagree > 50 and tied >= 0.8 * disagree


def _mul_multiplier(s1, s2, so, precision) -> int:
    mantissa, exponent = np.frexp(float(precision(precision(s1) * precision(s2)) / precision(so)))
    return int(np.round(mantissa * 2.0**31)), int(exponent)
