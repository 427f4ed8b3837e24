"""The engine's data-movement and conversion ops against TFLite Micro: every
RESHAPE, STRIDED_SLICE, CONCATENATION, GATHER, QUANTIZE, DEQUANTIZE, NEG,
CAST and LESS of the shipped int8 voice, one op at a time on fresh random
inputs, must give the TFLM wheel's outputs bit for bit (float32 outputs
compared as bits); slices with random begin / end / strides / masks too;
bad indices, shapes and parameters are refused with a status."""

from __future__ import annotations

import copy
import platform

import numpy as np
import pytest

from bittts_tf.engine import check, graph, native, spec
from bittts_tf.litert import tflite_file
from engine_ops import STATUS, assert_exact, bits, shipped_ops

OK, ERR_INDEX, ERR_PARAM, ERR_SIZE = (STATUS[s] for s in ("OK", "ERR_INDEX", "ERR_PARAM",
                                                          "ERR_SIZE"))
_ops, _bits = shipped_ops, bits


def _assert_exact(data: bytes, index: int, rng, feeds=None) -> None:
    assert_exact(data, index, rng, feeds)


def _feeds(op: graph.GraphOp, rng: np.random.Generator):
    """Valid positions for GATHER; LESS lengths around the compared range."""
    if op.name == "GATHER":
        rows = op.inputs[0].shape[0]
        return {1: rng.integers(0, rows, size=op.inputs[1].shape).astype(np.int32)}
    if op.name == "LESS":
        return {k: rng.integers(-80, 80, size=t.shape).astype(np.int32)
                for k, t in enumerate(op.inputs) if not t.is_const}
    return None


@pytest.mark.parametrize("name, least", [
    ("RESHAPE", 32), ("STRIDED_SLICE", 48), ("CONCATENATION", 15), ("GATHER", 1),
    ("QUANTIZE", 12), ("DEQUANTIZE", 12), ("NEG", 10), ("CAST", 1), ("LESS", 1)])
def test_every_shipped_op_is_bit_exact(name, least, seed):
    rng = np.random.default_rng(seed)
    ops = _ops(name)
    assert len(ops) >= least
    for data, op in ops:
        _assert_exact(data, op.index, rng, _feeds(op, rng))


def test_quantize_covers_both_paths():
    kinds = {op.inputs[0].type for _, op in _ops("QUANTIZE")}
    assert kinds == {"float32", "int8"}


def test_float_ops_on_edge_values(seed):
    """Halfway quotients (ties away from zero), values far outside int8, signed
    zeros; NaN and infinities where the wheel's conversion is the x86 one
    (it is undefined behaviour in C++: the engine copies the host build)."""
    rng = np.random.default_rng(seed)
    data, quantize = next((d, op) for d, op in _ops("QUANTIZE") if op.inputs[0].type == "float32")
    scale = np.float32(quantize.outputs[0].scale[0])
    shape = quantize.inputs[0].shape
    ties = (rng.integers(-300, 300, size=shape) + 0.5).astype(np.float32) * scale
    edges = np.array([0.0, -0.0, 1e6, -1e6, 3e9, -3e9, 1e30, -1e30], np.float32)
    if platform.machine() in ("x86_64", "AMD64"):
        edges = np.concatenate([edges, np.array([np.nan, -np.nan, np.inf, -np.inf], np.float32)])
    mixed = ties.reshape(-1).copy()
    mixed[:edges.size] = edges
    for values in (ties, mixed.reshape(shape)):
        _assert_exact(data, quantize.index, rng, {0: values})
    data, neg = _ops("NEG")[0]
    values = rng.standard_normal(neg.inputs[0].shape).astype(np.float32).reshape(-1)
    values[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45]
    _assert_exact(data, neg.index, rng, {0: values.reshape(neg.inputs[0].shape)})


# --- random slices of a rank-4 tensor --------------------------------------------

def _slice_model(data: bytes, index: int, in_shape, begin, end, strides, begin_mask, end_mask,
                 shrink_mask, out_shape) -> bytes:
    model = tflite_file.parse_model(graph.single_op_model(data, index))
    sg = model.subgraphs[0]
    op = sg.operators[0]
    sg.tensors[op.inputs[0]].shape = list(in_shape)
    sg.tensors[op.outputs[0]].shape = list(out_shape)
    for position, values in ((1, begin), (2, end), (3, strides)):
        tensor = sg.tensors[op.inputs[position]]
        buffer = copy.deepcopy(model.buffers[tensor.buffer])
        buffer.data = np.asarray(values, "<i4").view(np.uint8).copy()
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
    opts = op.builtinOptions
    opts.beginMask, opts.endMask, opts.shrinkAxisMask = begin_mask, end_mask, shrink_mask
    return tflite_file.serialize_model(model)


def test_random_strided_slices_are_bit_exact(seed):
    """TFLM resolves negative and out-of-range indices, masks and shrunk axes
    twice (Prepare and Eval, in different orders); numpy's slicing gives the
    output shape TFLM's Prepare expects."""
    rng = np.random.default_rng(seed)
    data, op = next((d, o) for d, o in _ops("STRIDED_SLICE") if len(o.inputs[0].shape) == 4)
    done = 0
    while done < 40:
        in_shape = tuple(int(d) for d in rng.integers(1, 6, size=4))
        begin = [int(v) for v in rng.integers(-7, 7, size=4)]
        end = [int(v) for v in rng.integers(-7, 7, size=4)]
        strides = [int(v) for v in rng.choice([-3, -2, -1, 1, 2, 3], size=4)]
        begin_mask, end_mask = int(rng.integers(16)), int(rng.integers(16))
        shrink_mask = int(rng.integers(16)) & int(rng.integers(16))
        index = []
        for axis in range(4):
            if shrink_mask >> axis & 1:
                begin[axis] = int(rng.integers(-in_shape[axis], in_shape[axis]))
                begin_mask &= ~(1 << axis)
                # TFLM's Eval walks a shrunk axis from begin to begin + 1 by
                # the stride: a negative one writes nothing (the lowering
                # refuses that; see the test below)
                strides[axis] = abs(strides[axis])
                index.append(begin[axis])
            else:
                index.append(slice(None if begin_mask >> axis & 1 else begin[axis],
                                   None if end_mask >> axis & 1 else end[axis], strides[axis]))
        out_shape = np.empty(in_shape)[tuple(index)].shape
        if 0 in out_shape:
            continue  # the engine's tensors have no empty dims
        model = _slice_model(data, op.index, in_shape, begin, end, strides, begin_mask, end_mask,
                             shrink_mask, out_shape)
        _assert_exact(model, 0, rng)
        done += 1


def test_shrunk_axis_with_a_negative_stride_is_refused():
    data, op = next((d, o) for d, o in _ops("STRIDED_SLICE") if len(o.inputs[0].shape) == 4)
    model = _slice_model(data, op.index, (2, 3, 4, 5), [0, 0, 1, 0], [2, 3, 2, 5],
                         [1, 1, -1, 1], 0, 0, 4, (2, 3, 5))
    with pytest.raises(graph.GraphError, match="Eval would write 0"):
        check.compare_op(model, 0, np.random.default_rng(0))


# --- refusals -----------------------------------------------------------------------

def _lowered_arrays(name: str, which: int = 0, seed: int = 0):
    data, op = _ops(name)[which]
    tensors, ops, _, _ = graph.read_graph(graph.single_op_model(data, op.index))
    lowered = spec.lowerings()[name](ops[0])
    rng = np.random.default_rng(seed)
    feeds = {i: check.random_input(tensors[i], rng) for i in lowered.inputs
             if isinstance(i, int) and not tensors[i].is_const}
    inputs = [native._array(ref, tensors, feeds) for ref in lowered.inputs]
    dtypes = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bool": np.bool_}
    outputs = [np.zeros(tensors[ref].shape, dtypes[tensors[ref].type]) for ref in lowered.outputs]
    return lowered, inputs, outputs


def _run(lowered, inputs, outputs, params=None) -> int:
    return native.run_op(lowered.opcode, inputs, outputs,
                         lowered.params if params is None else params)


def test_gather_index_out_of_range_is_err_index(seed):
    lowered, inputs, outputs = _lowered_arrays("GATHER")
    rows = inputs[0].shape[0]
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, rows, size=inputs[1].shape).astype(np.int32)
    assert _run(lowered, [inputs[0], positions], outputs) == OK
    for bad in (rows, -1, 2**31 - 1, -2**31):
        broken = positions.copy()
        broken.reshape(-1)[rng.integers(broken.size)] = bad
        assert _run(lowered, [inputs[0], broken], outputs) == ERR_INDEX


def test_bad_shapes_and_params_are_refused():
    # RESHAPE: element counts differ; types differ
    lowered, inputs, outputs = _lowered_arrays("RESHAPE", 1)
    assert _run(lowered, inputs, outputs) == OK
    assert _run(lowered, inputs, [np.zeros(outputs[0].size + 1, outputs[0].dtype)]) == ERR_SIZE
    assert _run(lowered, inputs, [outputs[0].astype(np.float32)]) != OK
    # STRIDED_SLICE: a start past the axis, a stop that walks off it, stride 0
    lowered, inputs, outputs = _lowered_arrays("STRIDED_SLICE", 10)
    names = spec.params()["STRIDED_SLICE"]
    assert _run(lowered, inputs, outputs) == OK
    for word, value in (("start_3", inputs[0].shape[-1]), ("stop_2", 10**6), ("stride_1", 0),
                        ("start_2", -1), ("stride_3", -2**31)):
        params = list(lowered.params)
        params[names.index(word)] = value
        assert _run(lowered, inputs, outputs, params) != OK, word
    assert _run(lowered, inputs, [np.zeros(outputs[0].size * 2, outputs[0].dtype)]) == ERR_SIZE
    # CONCATENATION: axis out of range, an input of the wrong length, wrong type
    lowered, inputs, outputs = _lowered_arrays("CONCATENATION")
    assert _run(lowered, inputs, outputs) == OK
    assert _run(lowered, inputs, outputs, [4]) == ERR_PARAM
    assert _run(lowered, inputs, outputs, [-1]) == ERR_PARAM
    assert _run(lowered, inputs, outputs, [1]) == ERR_SIZE
    assert _run(lowered, [inputs[0], inputs[1][:, :, :-1].copy()], outputs) == ERR_SIZE
    assert _run(lowered, [inputs[0], inputs[1].astype(np.float32)], outputs) != OK
    # GATHER: an output of the wrong shape, batch_dims above the axis
    lowered, inputs, outputs = _lowered_arrays("GATHER")
    inputs[1] = np.zeros_like(inputs[1])
    assert _run(lowered, inputs, outputs) == OK
    assert _run(lowered, inputs, [outputs[0][..., :-1].copy()]) == ERR_SIZE
    assert _run(lowered, inputs, outputs, [0, 1]) == ERR_PARAM
    assert _run(lowered, inputs, outputs, [2, 0]) == ERR_PARAM
    # QUANTIZE: zero / NaN scale, zero point and shift out of range
    for which in range(len(_ops("QUANTIZE"))):
        lowered, inputs, outputs = _lowered_arrays("QUANTIZE", which)
        names = spec.params()["QUANTIZE"]
        assert _run(lowered, inputs, outputs) == OK
        bad_words = [("output_zero_point", 128)]
        if inputs[0].dtype == np.float32:
            bad_words += [("output_scale", spec.float_word(0.0)),
                          ("output_scale", spec.float_word(float("nan")))]
        else:
            bad_words += [("shift", 31), ("multiplier", -1), ("input_zero_point", -129)]
        for word, value in bad_words:
            params = list(lowered.params)
            params[names.index(word)] = value
            assert _run(lowered, inputs, outputs, params) == ERR_PARAM, word
        assert _run(lowered, inputs, [np.zeros(outputs[0].size - 1, np.int8)]) == ERR_SIZE
    # DEQUANTIZE, NEG, CAST: sizes and types
    for name in ("DEQUANTIZE", "NEG", "CAST"):
        lowered, inputs, outputs = _lowered_arrays(name)
        assert _run(lowered, inputs, outputs) == OK
        assert _run(lowered, inputs, [np.zeros(outputs[0].size + 1, np.float32)]) == ERR_SIZE
        assert _run(lowered, inputs, [outputs[0].astype(np.int32)]) != OK
        assert _run(lowered, inputs, outputs, lowered.params + [0]) == ERR_PARAM
    lowered, inputs, outputs = _lowered_arrays("DEQUANTIZE")
    assert _run(lowered, inputs, outputs, [spec.float_word(float("inf")), 0]) == ERR_PARAM
    assert _run(lowered, inputs, outputs, [lowered.params[0], 200]) == ERR_PARAM
    # LESS: shapes that do not broadcast to the output
    lowered, inputs, outputs = _lowered_arrays("LESS")
    assert _run(lowered, inputs, outputs) == OK
    assert _run(lowered, [inputs[0][:-1].copy(), inputs[1]], outputs) == ERR_SIZE
    assert _run(lowered, inputs, [np.zeros((2, 64), np.bool_)]) == ERR_SIZE
    assert _run(lowered, [inputs[0].astype(np.float32), inputs[1]], outputs) != OK
    # any op: a missing tensor
    assert _run(lowered, inputs[:1], outputs) != OK
