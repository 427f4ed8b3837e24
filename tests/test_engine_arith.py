"""The engine's int8 arithmetic kernels (firmware_stub/bittts_engine_arith.c,
lowered by bittts_tf/engine/lower_arith.py) against TFLite Micro's reference
kernels: every ADD, SUB, MUL, SQUARED_DIFFERENCE, RSQRT, LOGISTIC and MEAN of
the shipped voice's two int8 graphs on fresh random inputs, exhaustive codes
for the one-input ops, extreme inputs, the fused activations and other
quantization parameters on shipped op shapes, and refusal of bad parameters.
Outputs must be equal, not close."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bittts_tf.engine import check, graph, lower_arith, native
from bittts_tf.litert import tflite_file
from engine_ops import assert_exact, shipped_ops

KINDS = ("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "RSQRT", "LOGISTIC", "MEAN")
_ops = shipped_ops


def _rsqrt_feed(op: graph.GraphOp, rng: np.random.Generator) -> dict:
    """RSQRT is defined (TFLM fails the invoke otherwise) for codes at or
    above the input zero point only."""
    zero_point = int(op.inputs[0].zero_point[0])
    return {0: rng.integers(zero_point, 128, size=op.inputs[0].shape).astype(np.int8)}


def _mean_feed(op: graph.GraphOp, rng: np.random.Generator) -> dict:
    """Codes about a centre whose mean the output can hold: uniform codes
    average near code 0, which some shipped MEANs (a layer norm's mean of an
    input far from its zero point) put outside their output's range, so
    every output saturated (seen on the voice shipped 2026-12-06, some
    seeds: outputs only -128 and 127). The centre is an output code drawn
    uniformly, taken back through both scales; a spread of a few codes keeps
    the rounding in play."""
    x, y = op.inputs[0], op.outputs[0]
    ratio = float(y.scale[0]) / float(x.scale[0])
    centre = int(x.zero_point[0]) + ratio * (rng.integers(-128, 128) - int(y.zero_point[0]))
    codes = np.rint(centre + rng.normal(0.0, 3.0, size=x.shape))
    return {0: np.clip(codes, -128, 127).astype(np.int8)}


def _feeds(kind: str, op: graph.GraphOp, rng: np.random.Generator) -> dict | None:
    if kind == "RSQRT":
        return _rsqrt_feed(op, rng)
    return _mean_feed(op, rng) if kind == "MEAN" else None


def _assert_exact(data: bytes, op_index: int, rng: np.random.Generator, feeds=None, what=""):
    (got,) = assert_exact(data, op_index, rng, feeds, what)
    assert got.dtype == np.int8
    return got


# Each comparison builds a TFLM interpreter (about 70 ms): MUL (130 ops) and
# ADD (76) alone took 22 s of a 55 s file.
_MAX_OPS_PER_RUN = 40


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_ops_are_bit_exact(kind, seed):
    rng = np.random.default_rng(seed)
    ops = _ops(kind)
    assert ops, f"no {kind} in the shipped graphs"
    if len(ops) > _MAX_OPS_PER_RUN:
        # A fresh sample per seed keeps the file fast; runs cover them all.
        ops = [ops[k] for k in sorted(rng.choice(len(ops), _MAX_OPS_PER_RUN, replace=False))]
    distinct = set()
    for data, op in ops:
        feeds = _feeds(kind, op, rng)
        out = _assert_exact(data, op.index, rng, feeds, kind)
        distinct.update(np.unique(out).tolist())
    # Random inputs must exercise the arithmetic, not just one saturated code.
    assert len(distinct) > 3, f"{kind}: outputs {sorted(distinct)}"


def _one_input_op_codes(op: graph.GraphOp, codes: np.ndarray) -> list[np.ndarray]:
    """`codes` tiled into feeds of the op's input shape, as many as cover them."""
    size = int(np.prod(op.inputs[0].shape))
    n = -(-codes.size // size)
    tiled = np.resize(codes, n * size).astype(np.int8)
    return [tiled[k * size:(k + 1) * size].reshape(op.inputs[0].shape) for k in range(n)]


def test_logistic_every_code(seed):
    rng = np.random.default_rng(seed)
    for data, op in _ops("LOGISTIC"):
        codes = rng.permutation(np.arange(-128, 128))
        for feed in _one_input_op_codes(op, codes):
            _assert_exact(data, op.index, rng, {0: feed}, "LOGISTIC")


def test_rsqrt_every_defined_code(seed):
    """All codes from the zero point up, on the text graph's RSQRTs (64 per
    call; the frames graph's take 4 at a time, covered by random feeds)."""
    rng = np.random.default_rng(seed)
    text = [(data, op) for data, op in _ops("RSQRT") if op.inputs[0].shape[-2] >= 64]
    assert text
    for data, op in text:
        codes = rng.permutation(np.arange(int(op.inputs[0].zero_point[0]), 128))
        for feed in _one_input_op_codes(op, codes):
            _assert_exact(data, op.index, rng, {0: feed}, "RSQRT")


def _spread(items, n):
    return [items[k] for k in np.linspace(0, len(items) - 1, min(n, len(items))).astype(int)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("code", [-128, 127])
def test_extreme_inputs(kind, code, seed):
    rng = np.random.default_rng(seed)
    for data, op in _spread(_ops(kind), 4):
        feeds = {}
        for position, info in enumerate(op.inputs):
            if info is None or info.is_const:
                continue
            value = code
            if kind == "RSQRT" and code == -128:
                value = int(info.zero_point[0])  # the smallest defined code
            feeds[position] = np.full(info.shape, value, np.int8)
        _assert_exact(data, op.index, rng, feeds, f"{kind} all {code}")


def _single_op_model(data: bytes, op_index: int):
    one = graph.single_op_model(data, op_index)
    return one, tflite_file.parse_model(one)


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("activation", [1, 2, 3])  # RELU, RELU_N1_TO_1, RELU6
def test_fused_activation(kind, activation, seed):
    """The shipped ops have none; the same ops with one set must clamp where
    TFLM's CalculateActivationRangeQuantized puts the bounds."""
    rng = np.random.default_rng(seed)
    candidates = _spread(_ops(kind), 3)
    data, op = candidates[int(rng.integers(len(candidates)))]
    _, model = _single_op_model(data, op.index)
    model.subgraphs[0].operators[0].builtinOptions.fusedActivationFunction = activation
    _assert_exact(tflite_file.serialize_model(model), 0, rng, None, f"{kind} act {activation}")


def _requantized(data: bytes, op: graph.GraphOp, rng: np.random.Generator) -> bytes:
    """The op alone with fresh random scales and zero points on its int8
    activations (LOGISTIC keeps TFLM's required output quantization)."""
    _, model = _single_op_model(data, op.index)
    sg = model.subgraphs[0]
    consts = {i for i, t in enumerate(sg.tensors)
              if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)}
    ops_tensors = list(sg.operators[0].inputs) + list(sg.operators[0].outputs)
    for position, index in enumerate(ops_tensors):
        t = sg.tensors[index]
        if index < 0 or index in consts or t.type != tflite_file.INT8:
            continue
        if op.name == "LOGISTIC" and position == len(ops_tensors) - 1:
            continue
        q = copy.deepcopy(t.quantization)
        q.scale = [float(np.float32(10.0 ** rng.uniform(-3, -1)))]
        q.zeroPoint = [int(rng.integers(-128, 128))]
        t.quantization = q
    return tflite_file.serialize_model(model)


@pytest.mark.parametrize("kind", KINDS)
def test_other_quantization_parameters(kind, seed):
    """Random scales and zero points on shipped op shapes: the lowering's
    float32 / double choices and rounding must hold beyond the shipped values
    (SUB's float32 ratios, for one, differ from double ones only for some)."""
    rng = np.random.default_rng(seed)
    tried = 0
    for data, op in _spread(_ops(kind), 3) * 3:
        model = _requantized(data, op, rng)
        one = graph.read_graph(model)[1][0]
        feeds = _rsqrt_feed(one, rng) if kind == "RSQRT" else None
        try:
            _assert_exact(model, 0, rng, feeds, f"{kind} requantized")
        except graph.GraphError:
            continue  # parameters TFLM would refuse (the lowering refuses first)
        tried += 1
    assert tried >= 6


def _lowered_arrays(kind: str, rng: np.random.Generator):
    data, op = _ops(kind)[0]
    model = graph.single_op_model(data, op.index)
    tensors, ops, _, _ = graph.read_graph(model)
    lowered = lower_arith.LOWER[kind](ops[0])
    inputs = []
    for ref in lowered.inputs:
        if isinstance(ref, graph.NewTensor):  # LOGISTIC's table
            inputs.append(np.asarray(ref.data).copy())
            continue
        info = tensors[ref]
        inputs.append(info.data.copy() if info.is_const else check.random_input(info, rng))
    outputs = [np.zeros(tensors[ref].shape, np.int8) for ref in lowered.outputs]
    return lowered, inputs, outputs


_SHIFT_WORD = {"ADD": "output_shift", "SUB": "input1_shift", "SQUARED_DIFFERENCE": "left_shift",
               "MUL": "output_shift", "RSQRT": "output_shift", "LOGISTIC": "input_left_shift",
               "MEAN": "output_shift"}


@pytest.mark.parametrize("kind", KINDS)
def test_bad_parameters_are_refused(kind, seed):
    rng = np.random.default_rng(seed)
    lowered, inputs, outputs = _lowered_arrays(kind, rng)
    names = lower_arith.PARAMS[kind]
    assert native.run_op(kind, inputs, outputs, lowered.params) == 0

    def refused(inputs_, outputs_, params_):
        before = [o.copy() for o in outputs_]
        status = native.run_op(kind, inputs_, outputs_, params_)
        # check runs before eval: a refusal writes nothing.
        assert all(np.array_equal(a, b) for a, b in zip(before, outputs_))
        return status != 0

    shift_at = names.index(_SHIFT_WORD[kind])
    for bad in (99, -99, 2**31 - 1, -2**31):
        params = list(lowered.params)
        params[shift_at] = bad
        assert refused(inputs, outputs, params), f"{kind} {names[shift_at]}={bad}"
    for offset_name in ("output_offset", "input1_offset", "input_zero_point"):
        if offset_name in names:
            params = list(lowered.params)
            params[names.index(offset_name)] = 1000
            assert refused(inputs, outputs, params), f"{kind} {offset_name}=1000"
    assert refused(inputs, outputs, lowered.params[:-1])
    assert refused(inputs, outputs, lowered.params + [0])
    # (LOGISTIC without its table is the arithmetic form, which runs.)
    assert refused(inputs[:-1], outputs, lowered.params) or len(inputs) == 1 or kind == "LOGISTIC"
    assert refused(inputs + [inputs[0]], outputs, lowered.params)
    # An output of the wrong shape, and of the wrong type.
    assert refused(inputs, [np.zeros(outputs[0].size + 1, np.int8)], lowered.params)
    assert refused(inputs, [np.zeros(outputs[0].shape, np.int32)], lowered.params)
    assert refused([x.astype(np.float32) for x in inputs], outputs, lowered.params)


def test_broadcast_mismatch_is_refused(seed):
    rng = np.random.default_rng(seed)
    for kind in ("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE"):
        lowered, inputs, outputs = _lowered_arrays(kind, rng)
        a, b = inputs
        # Shapes that do not broadcast, and an output that is not their broadcast.
        wrong = np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), np.int8)
        assert native.run_op(kind, [wrong, np.zeros(a.shape, np.int8)], outputs,
                             lowered.params) != 0
        longer = np.zeros((outputs[0].shape[0] + 1,) + outputs[0].shape[1:], np.int8)
        assert native.run_op(kind, [a, b], [longer], lowered.params) != 0


def test_mean_and_clamp_words_are_checked(seed):
    rng = np.random.default_rng(seed)
    lowered, inputs, outputs = _lowered_arrays("MEAN", rng)
    names = lower_arith.PARAMS["MEAN"]
    for name, value in (("axis", len(outputs[0].shape)), ("axis", -1),
                        ("reduced_count", lowered.params[names.index("reduced_count")] + 1)):
        params = list(lowered.params)
        params[names.index(name)] = value
        assert native.run_op("MEAN", inputs, outputs, params) != 0, (name, value)
    lowered, inputs, outputs = _lowered_arrays("ADD", rng)
    names = lower_arith.PARAMS["ADD"]
    for act_min, act_max in ((10, -10), (-129, 127), (-128, 128)):
        params = list(lowered.params)
        params[names.index("act_min")], params[names.index("act_max")] = act_min, act_max
        assert native.run_op("ADD", inputs, outputs, params) != 0, (act_min, act_max)


def test_rsqrt_of_a_negative_code_is_an_error(seed):
    """TFLM fails the invoke when an RSQRT input is below its zero point; the
    engine returns a status instead of a made-up value."""
    rng = np.random.default_rng(seed)
    lowered, inputs, outputs = _lowered_arrays("RSQRT", rng)
    # The shipped RSQRTs have zero point -128 (no code below it): move it up.
    params = list(lowered.params)
    zero_point = int(rng.integers(-127, 128))
    params[lower_arith.PARAMS["RSQRT"].index("input_zero_point")] = zero_point
    x = np.full_like(inputs[0], zero_point)
    assert native.run_op("RSQRT", [x], outputs, params) == 0
    x.flat[int(rng.integers(0, x.size))] = zero_point - 1
    assert native.run_op("RSQRT", [x], outputs, params) != 0


def test_logistic_table_is_the_arithmetic(seed):
    """Every shipped LOGISTIC lowers to a lookup table (its second input),
    which must equal the kernel's arithmetic on all 256 codes; check refuses
    a table that differs anywhere or has the wrong size, and the table form
    runs only what check accepted."""
    rng = np.random.default_rng(seed)
    codes = np.arange(-128, 128, dtype=np.int8)
    for data, op in _ops("LOGISTIC"):
        lowered = lower_arith.lower_logistic(op)
        assert len(lowered.inputs) == 2 and isinstance(lowered.inputs[1], graph.NewTensor)
        table = np.asarray(lowered.inputs[1].data, np.int8)
        assert table.shape == (256,)
        arithmetic = np.zeros(256, np.int8)
        assert native.run_op("LOGISTIC", [codes], [arithmetic], lowered.params) == 0
        assert np.array_equal(table, arithmetic)
        assert len(np.unique(table)) > 50  # a real sigmoid, not a constant
        # The lookup on shuffled codes, against the arithmetic.
        x = rng.permutation(codes)
        looked_up = np.zeros(256, np.int8)
        assert native.run_op("LOGISTIC", [x, table], [looked_up], lowered.params) == 0
        assert np.array_equal(looked_up, arithmetic[x.astype(np.int32) + 128])
        # One wrong entry anywhere, or a short table: refused, output untouched.
        bad = table.copy()
        k = int(rng.integers(256))
        bad[k] = np.int8(int(bad[k]) + 1 if bad[k] < 127 else 126)
        out = np.full(256, 7, np.int8)
        assert native.run_op("LOGISTIC", [x, bad], [out], lowered.params) != 0
        assert native.run_op("LOGISTIC", [x, table[:255].copy()], [out], lowered.params) != 0
        assert np.all(out == 7)


_BROADCASTS = (  # (input 1, input 2) shapes: every row kind and a general 4-D walk
    ((2, 1, 3, 4), (1, 5, 1, 4)), ((1, 5, 1, 4), (2, 1, 3, 4)), ((3, 1), (1, 7)),
    ((), (2, 9)), ((2, 9), ()), ((4, 6), (4, 1)), ((4, 1), (4, 6)), ((6,), (3, 2, 6)),
    ((3, 2, 6), (6,)), ((2, 3, 1, 5), (2, 3, 4, 5)), ((1,), (1,)))


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL", "SQUARED_DIFFERENCE"])
def test_broadcast_shapes_and_swapped_inputs(kind, seed):
    """The row walk (bittts_engine_arith.c) on shapes the shipped graphs do not
    have: inputs repeating along the row on either side, outer products, a
    4-D walk, scalars; shipped quantization and random quantization (which
    takes the general requantization path where the fast one does not
    apply), both operand orders."""
    rng = np.random.default_rng(seed)
    data, op = _spread(_ops(kind), 3)[int(rng.integers(min(3, len(_ops(kind)))))]
    for shape1, shape2 in _BROADCASTS:
        for requantize in (False, True):
            one = graph.single_op_model(data, op.index)
            if requantize:
                one = _requantized(one, graph.read_graph(one)[1][0], rng)
            model = tflite_file.parse_model(one)
            sg = model.subgraphs[0]
            operator = sg.operators[0]
            if rng.integers(2):
                operator.inputs = list(operator.inputs)[::-1]
            out_shape = np.broadcast_shapes(shape1, shape2)
            consts = []
            for index, shape in zip(list(operator.inputs) + list(operator.outputs),
                                    (shape1, shape2, out_shape)):
                t = sg.tensors[index]
                t.shape = list(shape)
                buffer = model.buffers[t.buffer]
                if buffer.data is not None and len(buffer.data):
                    # A constant operand: fresh codes of the new shape.
                    buffer.data = rng.integers(-128, 128, size=int(np.prod(shape)),
                                               dtype=np.int8).tobytes()
                    consts.append(index)
            sg.inputs = [i for i in operator.inputs if i not in consts]
            if not requantize:
                # The shipped quantization: every broadcast must lower and agree.
                _assert_exact(tflite_file.serialize_model(model), 0, rng, None,
                              f"{kind} {shape1} x {shape2}")
                continue
            try:
                _assert_exact(tflite_file.serialize_model(model), 0, rng, None,
                              f"{kind} {shape1} x {shape2} requantized")
            except graph.GraphError:
                continue  # quantization TFLM would refuse (the lowering refuses first)
