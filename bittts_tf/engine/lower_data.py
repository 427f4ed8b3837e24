"""Lowering of the data-movement and conversion ops: RESHAPE, STRIDED_SLICE,
CONCATENATION, GATHER, QUANTIZE (float32 -> int8 and int8 -> int8),
DEQUANTIZE (int8 -> float32), NEG (float32), CAST (bool -> float32) and
LESS (int32).

Shapes are static in the voice's graphs, so everything TFLite Micro resolves
in Prepare (a slice's clamped begin / end per axis, a positive axis, a
requantization multiplier) is resolved here into parameter words; the C
side re-checks each word against the tensor views before it trusts it.
"""

from __future__ import annotations

import math

import numpy as np

from bittts_tf.engine import spec
from bittts_tf.engine.graph import GraphError, GraphOp, Lowered
from bittts_tf.engine.lower_conv import per_tensor_quant, quantize_multiplier

MAX_RANK = spec.MAX_RANK
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

PARAMS = {
    "RESHAPE": (),
    "STRIDED_SLICE": tuple(f"{what}_{axis}" for what in ("start", "stop", "stride")
                           for axis in range(MAX_RANK)),
    "CONCATENATION": ("axis",),
    "GATHER": ("axis", "batch_dims"),
    "QUANTIZE": ("output_scale", "output_zero_point", "input_zero_point", "multiplier", "shift"),
    "DEQUANTIZE": ("scale", "zero_point"),
    "NEG": (),
    "CAST": (),
    "LESS": (),
}


def _fail(op: GraphOp, message: str) -> GraphError:
    return GraphError(f"op {op.index} ({op.name}): {message}")


def _count(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _arity(op: GraphOp, inputs: int, outputs: int = 1) -> None:
    if len(op.inputs) != inputs or len(op.outputs) != outputs or any(t is None for t in op.inputs):
        raise _fail(op, f"expects {inputs} inputs and {outputs} output")


def lower_reshape(op: GraphOp) -> Lowered:
    """RESHAPE: with static shapes a copy of the bytes (the shape operand, if
    any, only restates the output's dims, which TFLM's Prepare checks
    against the element count)."""
    if len(op.inputs) not in (1, 2) or len(op.outputs) != 1 or op.inputs[0] is None:
        raise _fail(op, "expects the data (and an optional shape) and one output")
    x, y = op.inputs[0], op.outputs[0]
    if x.type != y.type or _count(x.shape) != _count(y.shape):
        raise _fail(op, f"{x.type} {x.shape} cannot become {y.type} {y.shape}")
    if len(y.shape) > MAX_RANK or len(x.shape) > MAX_RANK:
        raise _fail(op, f"rank above {MAX_RANK}")
    return Lowered("RESHAPE", [x.index], [y.index], [])


# --- STRIDED_SLICE --------------------------------------------------------------

def _clamp(value: int, low: int, high: int) -> int:
    return high if value > high else (low if value < low else value)


def _prepare_start(start: int, stride: int, size: int, masked: bool) -> int:
    # The begin TFLM's Prepare uses to size the output: the mask first.
    if masked:
        start = INT32_MIN if stride > 0 else INT32_MAX
    if start < 0:
        start += size
    return _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)


def _prepare_stop(stop: int, stride: int, size: int, masked: bool, shrink: bool,
                  start: int) -> int:
    if shrink:
        return start + 1
    if masked:
        stop = INT32_MAX if stride > 0 else INT32_MIN
    if stop < 0:
        stop += size
    return _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)


def _eval_start(start: int, stride: int, size: int, masked: bool) -> int:
    # The begin TFLM's Eval iterates from: clamped first, the mask after.
    if start < 0:
        start += size
    start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
    if masked:
        start = 0 if stride > 0 else size - 1
    return start


def _eval_stop(stop: int, stride: int, size: int, masked: bool, shrink: bool,
               start: int) -> int:
    if shrink:
        return start if start >= size else start + 1
    if stop < 0:
        stop += size
    stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
    if masked:
        stop = size if stride > 0 else -1
    return stop


def _steps(start: int, stop: int, stride: int) -> int:
    if stride > 0:
        return max(0, -(-(stop - start) // stride))
    return max(0, -(-(start - stop) // -stride))


def lower_strided_slice(op: GraphOp) -> Lowered:
    """STRIDED_SLICE (rank <= 4, constant begin / end / strides): TFLM's
    Prepare checks the output's dims with one resolution of begin and end
    (mask, then negative indices, then clamping; ceil of the float32
    quotient); its Eval pads the indices to full rank (leading axes 0..1
    step 1) and resolves them again (negative indices, clamping, the masks
    last; a shrunk axis runs one step unless its begin is past the end).
    The words are Eval's per-axis start, stop and stride, padded to rank 4;
    ellipsis and new-axis masks and `offset` (which TFLM ignores) are
    refused."""
    _arity(op, 4)
    x, begin, end, strides = op.inputs
    y = op.outputs[0]
    opts = op.options
    rank = len(x.shape)
    if opts is None or not 1 <= rank <= MAX_RANK:
        raise _fail(op, f"needs options and an input of rank 1..{MAX_RANK}")
    if x.type != y.type:
        raise _fail(op, "output type differs from the input's")
    if int(opts.ellipsisMask) or int(opts.newAxisMask) or bool(getattr(opts, "offset", False)):
        raise _fail(op, "ellipsis / new-axis masks and offset are not supported")
    for name, info in (("begin", begin), ("end", end), ("strides", strides)):
        if not info.is_const or info.type != "int32" or info.data.size != rank:
            raise _fail(op, f"{name} must be a constant int32 of {rank} values")
    begins = [int(v) for v in begin.data.reshape(-1)]
    ends = [int(v) for v in end.data.reshape(-1)]
    steps = [int(v) for v in strides.data.reshape(-1)]
    begin_mask, end_mask = int(opts.beginMask), int(opts.endMask)
    shrink_mask = int(opts.shrinkAxisMask)

    expected = []
    for axis in range(rank):
        stride, size = steps[axis], x.shape[axis]
        if stride == 0:
            raise _fail(op, "a stride is 0")
        shrink = bool(shrink_mask >> axis & 1)
        start = _prepare_start(begins[axis], stride, size, bool(begin_mask >> axis & 1))
        stop = _prepare_stop(ends[axis], stride, size, bool(end_mask >> axis & 1), shrink, start)
        length = max(0, int(math.ceil(np.float32(stop - start) / np.float32(stride))))
        if not shrink:
            expected.append(length)
    if tuple(expected) != tuple(y.shape):
        raise _fail(op, f"output {y.shape} is not the slice's {tuple(expected)}")

    pad = MAX_RANK - rank
    shape = (1,) * pad + tuple(x.shape)
    begins, ends, steps = [0] * pad + begins, [1] * pad + ends, [1] * pad + steps
    full = (1 << pad) - 1
    begin_mask, end_mask = begin_mask << pad | full, end_mask << pad | full
    shrink_mask <<= pad
    starts, stops, total = [], [], 1
    for axis in range(MAX_RANK):
        stride, size = steps[axis], shape[axis]
        shrink = bool(shrink_mask >> axis & 1)
        start = _eval_start(begins[axis], stride, size, bool(begin_mask >> axis & 1))
        stop = _eval_stop(ends[axis], stride, size, bool(end_mask >> axis & 1), shrink, start)
        starts.append(start)
        stops.append(stop)
        total *= _steps(start, stop, stride)
    if total != _count(y.shape):
        raise _fail(op, f"Eval would write {total} elements into {_count(y.shape)}")
    return Lowered("STRIDED_SLICE", [x.index], [y.index], starts + stops + steps)


# --- CONCATENATION, GATHER ------------------------------------------------------

def lower_concatenation(op: GraphOp) -> Lowered:
    """CONCATENATION: TFLM's Prepare takes no activation, one type for all,
    and for int8 the output's scale and zero point on every input (no
    rescaling: Eval copies bytes); the axis made non-negative."""
    opts = op.options
    if not op.inputs or len(op.outputs) != 1 or any(t is None for t in op.inputs):
        raise _fail(op, "expects inputs and one output")
    if len(op.inputs) > spec.MAX_OP_INPUTS:
        raise _fail(op, f"more than {spec.MAX_OP_INPUTS} inputs")
    if opts is None or int(opts.fusedActivationFunction) != 0:
        raise _fail(op, "a fused activation is not supported")
    y = op.outputs[0]
    rank = len(y.shape)
    if not 1 <= rank <= MAX_RANK:
        raise _fail(op, f"rank {rank} is not 1..{MAX_RANK}")
    axis = int(opts.axis)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise _fail(op, f"axis {opts.axis} outside rank {rank}")
    if y.type == "int8":
        out_q = per_tensor_quant(y, "output")
    total = 0
    for x in op.inputs:
        if x.type != y.type or len(x.shape) != rank:
            raise _fail(op, f"input {x.name} differs in type or rank from the output")
        if any(x.shape[d] != y.shape[d] for d in range(rank) if d != axis):
            raise _fail(op, f"input {x.shape} does not fit the output {y.shape}")
        if y.type == "int8" and per_tensor_quant(x, "input") != out_q:
            raise _fail(op, "int8 inputs need the output's scale and zero point")
        total += x.shape[axis]
    if total != y.shape[axis]:
        raise _fail(op, f"inputs add up to {total} along axis {axis}, not {y.shape[axis]}")
    return Lowered("CONCATENATION", [x.index for x in op.inputs], [y.index], [axis])


def lower_gather(op: GraphOp) -> Lowered:
    """GATHER (int32 positions): TFLM's Prepare makes axis and batch_dims
    non-negative (batch_dims by the positions' rank), requires batch_dims <=
    axis and the batch dims equal, and sets the output's shape: input dims
    before the axis, the positions' dims after the batch ones, the input's
    after the axis."""
    _arity(op, 2)
    x, positions = op.inputs
    y = op.outputs[0]
    opts = op.options
    if opts is None:
        raise _fail(op, "missing options")
    if x.type not in ("int8", "float32") or positions.type != "int32" or y.type != x.type:
        raise _fail(op, "gathers int8 or float32 by int32 positions")
    rank, prank = len(x.shape), len(positions.shape)
    axis, batch_dims = int(opts.axis), int(opts.batchDims)
    axis = axis + rank if axis < 0 else axis
    batch_dims = batch_dims + prank if batch_dims < 0 else batch_dims
    if not (0 <= axis < rank and 0 <= batch_dims <= axis and batch_dims < rank
            and batch_dims <= prank):
        raise _fail(op, f"axis {opts.axis} / batch_dims {opts.batchDims} out of range")
    if tuple(x.shape[:batch_dims]) != tuple(positions.shape[:batch_dims]):
        raise _fail(op, "batch dims of the input and positions differ")
    shape = tuple(x.shape[:axis]) + tuple(positions.shape[batch_dims:]) + tuple(x.shape[axis + 1:])
    if shape != tuple(y.shape) or len(shape) > MAX_RANK or rank > MAX_RANK or prank > MAX_RANK:
        raise _fail(op, f"output {y.shape} is not {shape}")
    if x.type == "int8" and (x.scale is None or y.scale is None
                             or per_tensor_quant(x, "input") != per_tensor_quant(y, "output")):
        raise _fail(op, "int8 gather copies codes: the output needs the input's quantization")
    return Lowered("GATHER", [x.index, positions.index], [y.index], [axis, batch_dims])


# --- QUANTIZE, DEQUANTIZE -------------------------------------------------------

def lower_quantize(op: GraphOp) -> Lowered:
    """QUANTIZE to int8 (per-tensor). From float32, TFLM's Eval divides each
    value by the output scale in float32 (the scale went through double and
    back, unchanged), rounds half away from zero, adds the zero point and
    clamps: the words carry the scale's bits and the zero point. From int8,
    its Prepare computes the requantization QuantizeMultiplier(double(input
    scale) / double(output scale)) and Eval requantizes x - input zero
    point."""
    _arity(op, 1)
    x, y = op.inputs[0], op.outputs[0]
    if x.shape != y.shape:
        raise _fail(op, f"input {x.shape} and output {y.shape} differ")
    output_scale, output_zp = per_tensor_quant(y, "output")
    if x.type == "float32":
        return Lowered("QUANTIZE", [x.index], [y.index],
                       [spec.float_word(output_scale), output_zp, 0, 0, 0])
    if x.type == "int8":
        input_scale, input_zp = per_tensor_quant(x, "input")
        multiplier, shift = quantize_multiplier(float(input_scale) / float(output_scale))
        return Lowered("QUANTIZE", [x.index], [y.index],
                       [spec.float_word(output_scale), output_zp, input_zp, multiplier, shift])
    raise _fail(op, f"quantizing {x.type} is not supported")


def lower_dequantize(op: GraphOp) -> Lowered:
    """DEQUANTIZE int8 -> float32: TFLM's Eval computes float(double(scale) *
    (q - zero point)); q - zero point has at most 9 bits, so that product is
    exact in double and equals the float32 product the engine computes."""
    _arity(op, 1)
    x, y = op.inputs[0], op.outputs[0]
    if y.type != "float32" or x.shape != y.shape:
        raise _fail(op, "int8 -> float32 of one shape only")
    scale, zero_point = per_tensor_quant(x, "input")
    return Lowered("DEQUANTIZE", [x.index], [y.index], [spec.float_word(scale), zero_point])


# --- NEG, CAST, LESS ------------------------------------------------------------

def lower_neg(op: GraphOp) -> Lowered:
    """NEG float32: the sign flipped (TFLM's Eval negates each value)."""
    _arity(op, 1)
    x, y = op.inputs[0], op.outputs[0]
    if x.type != "float32" or y.type != "float32" or x.shape != y.shape:
        raise _fail(op, "float32 of one shape only")
    return Lowered("NEG", [x.index], [y.index], [])


def lower_cast(op: GraphOp) -> Lowered:
    """CAST bool -> float32: 1.0 for true, 0.0 for false."""
    _arity(op, 1)
    x, y = op.inputs[0], op.outputs[0]
    if x.type != "bool" or y.type != "float32" or _count(x.shape) != _count(y.shape):
        raise _fail(op, "only bool -> float32 of one size")
    return Lowered("CAST", [x.index], [y.index], [])


def lower_less(op: GraphOp) -> Lowered:
    """LESS int32 -> bool, broadcasting as TFLM's 4-D slow broadcast does
    (shapes right-aligned, each dim equal or 1)."""
    _arity(op, 2)
    a, b = op.inputs
    y = op.outputs[0]
    if a.type != "int32" or b.type != "int32" or y.type != "bool":
        raise _fail(op, "int32 < int32 -> bool only")
    if max(len(a.shape), len(b.shape), len(y.shape)) > MAX_RANK:
        raise _fail(op, f"rank above {MAX_RANK}")
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise _fail(op, f"{a.shape} and {b.shape} do not broadcast") from None
    if tuple(shape) != tuple(y.shape):
        raise _fail(op, f"output {y.shape} is not the broadcast {tuple(shape)}")
    return Lowered("LESS", [a.index, b.index], [y.index], [])


LOWER = {
    "RESHAPE": lower_reshape,
    "STRIDED_SLICE": lower_strided_slice,
    "CONCATENATION": lower_concatenation,
    "GATHER": lower_gather,
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
    "NEG": lower_neg,
    "CAST": lower_cast,
    "LESS": lower_less,
}
