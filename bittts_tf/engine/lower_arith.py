"""Lowering of the int8 arithmetic ops (ADD, SUB, MUL, SQUARED_DIFFERENCE,
RSQRT, LOGISTIC, MEAN) to engine ops: each function computes the op's
parameter words the way TFLite Micro's reference kernel computes its op data
in Prepare, including which quantities it holds in float32 and which in
double, so the C kernels (`firmware_stub/bittts_engine_arith.c`) reproduce
the interpreter's int8 outputs bit for bit.

A graph whose op TFLite Micro would refuse (or abort on) in Prepare, or that
takes a path the engine does not implement (int16, a fused activation other
than NONE / RELU / RELU_N1_TO_1 / RELU6, a mean over several axes), raises
GraphError here instead of lowering to something that might differ.
"""

from __future__ import annotations

import math

import numpy as np

from bittts_tf.engine import graph
from bittts_tf.engine.graph import GraphError

# The two-input requantizing ops (ADD, SUB, SQUARED_DIFFERENCE) share one
# layout: both inputs rescaled to a common scale after a left shift, combined,
# then rescaled to the output.
_RESCALED_PAIR_WORDS = ("input1_offset", "input2_offset", "output_offset", "left_shift",
                        "input1_multiplier", "input1_shift", "input2_multiplier",
                        "input2_shift", "output_multiplier", "output_shift", "act_min", "act_max")

PARAMS = {
    "ADD": _RESCALED_PAIR_WORDS,
    "SUB": _RESCALED_PAIR_WORDS,
    "SQUARED_DIFFERENCE": _RESCALED_PAIR_WORDS,
    "MUL": ("input1_offset", "input2_offset", "output_offset", "output_multiplier",
            "output_shift", "act_min", "act_max"),
    "RSQRT": ("input_zero_point", "output_offset", "output_multiplier", "output_shift"),
    "LOGISTIC": ("input_zero_point", "input_range_radius", "input_multiplier",
                 "input_left_shift"),
    "MEAN": ("axis", "reduced_count", "input_zero_point", "output_offset",
             "output_multiplier", "output_shift"),
}

# LOGISTIC's table (input 1) is checked entry by entry when the engine opens
# a blob and only looked up after: it must be a constant of the blob (see
# lower_conv.CONST_INPUTS).
CONST_INPUTS = {"LOGISTIC": (1,)}

# TFLite's ActivationFunctionType values the int8 kernels clamp for.
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3
# int8 ADD / SUB shift both inputs left by 20 bits before rescaling them;
# SQUARED_DIFFERENCE by 7, so that the square of the difference fits int32.
_ADD_LEFT_SHIFT = 20
_SQUARED_DIFFERENCE_LEFT_SHIFT = 7
# LOGISTIC's int8 path reads its input as fixed point with 4 integer bits.
_LOGISTIC_INPUT_INTEGER_BITS = 4


def _round_half_away(value: float) -> int:
    """std::round: to nearest, ties away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier (double-rounding build): real = m * 2^(s-31)
    with m in [2^30, 2^31); the significand q from frexp is scaled by 2^31 and
    rounded half away from zero, a carry to 2^31 is halved into the shift, and
    a shift below -31 flushes to (0, 0). No saturation of large shifts: the C
    check refuses what its kernel cannot take."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = _round_half_away(q * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(fixed), int(shift)


def quantize_multiplier_smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: QuantizeMultiplier of a
    real strictly between 0 and 1 (TFLite aborts otherwise)."""
    if not 0.0 < real < 1.0:
        raise GraphError(f"{what}: multiplier {real!r} is not in (0, 1)")
    return quantize_multiplier(real)


def _int8_tensor(info: graph.TensorInfo | None, op: graph.GraphOp, role: str):
    """(scale as float32, zero point) of a per-tensor quantized int8 tensor."""
    if info is None or info.type != "int8":
        raise GraphError(f"op {op.index} ({op.name}): {role} is not int8")
    if info.scale is None or info.zero_point is None or len(info.scale) != 1:
        raise GraphError(f"op {op.index} ({op.name}): {role} is not per-tensor quantized")
    scale, zero_point = np.float32(info.scale[0]), int(info.zero_point[0])
    if not (np.isfinite(scale) and scale > 0) or not -128 <= zero_point <= 127:
        raise GraphError(f"op {op.index} ({op.name}): {role} has scale {scale} zero point "
                         f"{zero_point}")
    return scale, zero_point


def _arity(op: graph.GraphOp, n_inputs: int) -> None:
    if len(op.inputs) != n_inputs or len(op.outputs) != 1:
        raise GraphError(f"op {op.index} ({op.name}): {len(op.inputs)} inputs and "
                         f"{len(op.outputs)} outputs, expected {n_inputs} and 1")


def _broadcast_shape(op: graph.GraphOp) -> None:
    """The output's shape is the inputs' broadcast shape, within 4 dims."""
    a, b, out = op.inputs[0].shape, op.inputs[1].shape, op.outputs[0].shape
    try:
        expected = np.broadcast_shapes(a, b)
    except ValueError:
        raise GraphError(f"op {op.index} ({op.name}): shapes {a} and {b} do not broadcast")
    if tuple(expected) != tuple(out) or len(out) > 4:
        raise GraphError(f"op {op.index} ({op.name}): output shape {out}, inputs {a} and {b}")


def activation_range_int8(activation: int, scale: np.float32, zero_point: int,
                          op: graph.GraphOp) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for an int8 output: the
    bounds 0, 6, -1, 1 quantized as zero point + round(bound / scale) (the
    division in float32, ties away from zero) and narrowed into -128..127."""
    def quantize(bound: float) -> int:
        return zero_point + _round_half_away(float(np.float32(bound) / scale))

    if activation == _ACT_NONE:
        return -128, 127
    if activation == _ACT_RELU:
        return max(-128, quantize(0.0)), 127
    if activation == _ACT_RELU6:
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if activation == _ACT_RELU_N1_TO_1:
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    raise GraphError(f"op {op.index} ({op.name}): fused activation {activation} is not one the "
                     f"int8 kernels clamp for")


def _fused_activation(op: graph.GraphOp) -> int:
    return int(getattr(op.options, "fusedActivationFunction", 0) or 0)


def _rescaled_pair(op: graph.GraphOp, opcode: str, left_shift: int, real_multipliers,
                   act_min: int, act_max: int, output_is_smaller_than_one: bool):
    (s1, z1), (s2, z2), (so, zo) = (_int8_tensor(op.inputs[0], op, "input 1"),
                                    _int8_tensor(op.inputs[1], op, "input 2"),
                                    _int8_tensor(op.outputs[0], op, "output"))
    r1, r2, ro = real_multipliers(s1, s2, so)
    what = f"op {op.index} ({op.name})"
    m1, sh1 = quantize_multiplier_smaller_than_one(r1, f"{what} input 1")
    m2, sh2 = quantize_multiplier_smaller_than_one(r2, f"{what} input 2")
    if output_is_smaller_than_one:
        mo, sho = quantize_multiplier_smaller_than_one(ro, f"{what} output")
    else:
        mo, sho = quantize_multiplier(ro)
    words = dict(input1_offset=-z1, input2_offset=-z2, output_offset=zo, left_shift=left_shift,
                 input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2,
                 output_multiplier=mo, output_shift=sho, act_min=act_min, act_max=act_max)
    return graph.Lowered(opcode, [op.inputs[0].index, op.inputs[1].index], [op.outputs[0].index],
                         [words[name] for name in PARAMS[opcode]])


def lower_add(op: graph.GraphOp) -> graph.Lowered:
    """ADD, int8: TFLM's CalculateOpDataAdd. Twice the larger input scale is
    a double; each input's multiplier is its scale over that, the output's is
    that over 2^20 times the output scale, all in double and each quantized as
    a multiplier below one; the activation clamp from the fused activation."""
    _arity(op, 2)
    _broadcast_shape(op)
    so, zo = _int8_tensor(op.outputs[0], op, "output")
    act_min, act_max = activation_range_int8(_fused_activation(op), so, zo, op)

    def reals(s1, s2, so):
        twice_max = 2.0 * float(max(s1, s2))
        return (float(s1) / twice_max, float(s2) / twice_max,
                twice_max / ((1 << _ADD_LEFT_SHIFT) * float(so)))

    return _rescaled_pair(op, "ADD", _ADD_LEFT_SHIFT, reals, act_min, act_max, True)


def lower_sub(op: graph.GraphOp) -> graph.Lowered:
    """SUB, int8: TFLM's CalculateOpDataSub, which (unlike ADD and unlike
    LiteRT's SUB) forms twice the larger scale and all three ratios in float32
    and only widens each ratio to double for quantizing it."""
    _arity(op, 2)
    _broadcast_shape(op)
    so, zo = _int8_tensor(op.outputs[0], op, "output")
    act_min, act_max = activation_range_int8(_fused_activation(op), so, zo, op)

    def reals(s1, s2, so):
        twice_max = np.float32(2) * max(s1, s2)
        output_denominator = np.float32(1 << _ADD_LEFT_SHIFT) * so
        return (float(s1 / twice_max), float(s2 / twice_max),
                float(twice_max / output_denominator))

    return _rescaled_pair(op, "SUB", _ADD_LEFT_SHIFT, reals, act_min, act_max, True)


def lower_squared_difference(op: graph.GraphOp) -> graph.Lowered:
    """SQUARED_DIFFERENCE, int8: TFLM's PrepareQuantized with a left shift of
    7. Input ratios as for ADD (double); the output's is twice the larger scale
    squared over (2^14 times the output scale, a float32 product), in double,
    quantized as a general multiplier (it may exceed one); no fused activation,
    so the clamp is the whole int8 range."""
    _arity(op, 2)
    _broadcast_shape(op)

    def reals(s1, s2, so):
        twice_max = 2.0 * float(max(s1, s2))
        output_denominator = float(np.float32(1 << (2 * _SQUARED_DIFFERENCE_LEFT_SHIFT)) * so)
        return (float(s1) / twice_max, float(s2) / twice_max,
                twice_max * twice_max / output_denominator)

    return _rescaled_pair(op, "SQUARED_DIFFERENCE", _SQUARED_DIFFERENCE_LEFT_SHIFT, reals,
                          -128, 127, False)


def lower_mul(op: graph.GraphOp) -> graph.Lowered:
    """MUL, int8: TFLM's CalculateOpDataMul. One multiplier, the product of
    the input scales over the output scale in double, quantized generally;
    the clamp from the fused activation."""
    _arity(op, 2)
    _broadcast_shape(op)
    s1, z1 = _int8_tensor(op.inputs[0], op, "input 1")
    s2, z2 = _int8_tensor(op.inputs[1], op, "input 2")
    so, zo = _int8_tensor(op.outputs[0], op, "output")
    act_min, act_max = activation_range_int8(_fused_activation(op), so, zo, op)
    multiplier, shift = quantize_multiplier(float(s1) * float(s2) / float(so))
    words = dict(input1_offset=-z1, input2_offset=-z2, output_offset=zo,
                 output_multiplier=multiplier, output_shift=shift, act_min=act_min,
                 act_max=act_max)
    return graph.Lowered("MUL", [op.inputs[0].index, op.inputs[1].index], [op.outputs[0].index],
                         [words[name] for name in PARAMS["MUL"]])


def lower_rsqrt(op: graph.GraphOp) -> graph.Lowered:
    """RSQRT, int8: TFLM's PrepareAbsRsqrt. The multiplier is one over
    (float32 sqrt of the input scale times the output scale, a float32
    product), taken in double and quantized generally. The input zero point
    is kept as is (the kernel subtracts it)."""
    _arity(op, 1)
    si, zi = _int8_tensor(op.inputs[0], op, "input")
    so, zo = _int8_tensor(op.outputs[0], op, "output")
    if op.inputs[0].shape != op.outputs[0].shape:
        raise GraphError(f"op {op.index} ({op.name}): shapes {op.inputs[0].shape} -> "
                         f"{op.outputs[0].shape}")
    multiplier, shift = quantize_multiplier(1.0 / float(np.sqrt(si) * so))
    words = dict(input_zero_point=zi, output_offset=zo, output_multiplier=multiplier,
                 output_shift=shift)
    return graph.Lowered("RSQRT", [op.inputs[0].index], [op.outputs[0].index],
                         [words[name] for name in PARAMS["RSQRT"]])


def lower_logistic(op: graph.GraphOp) -> graph.Lowered:
    """LOGISTIC, int8: TFLM's CalculateArithmeticOpDataLogistic. The input
    scale times 2^27 (a Q4.27 input) in double is split by frexp into a
    significand, scaled by 2^31 and rounded half away from zero (no carry
    handling, unlike QuantizeMultiplier), and a left shift; the input radius
    is floor(15 * 2^27 / 2^shift) in double. TFLM requires the output zero
    point -128 and never reads the output scale (it assumes 1/256)."""
    _arity(op, 1)
    si, zi = _int8_tensor(op.inputs[0], op, "input")
    _, zo = _int8_tensor(op.outputs[0], op, "output")
    if zo != -128:
        raise GraphError(f"op {op.index} ({op.name}): output zero point {zo}, TFLM requires -128")
    if op.inputs[0].shape != op.outputs[0].shape:
        raise GraphError(f"op {op.index} ({op.name}): shapes {op.inputs[0].shape} -> "
                         f"{op.outputs[0].shape}")
    real = float(si) * float(1 << (31 - _LOGISTIC_INPUT_INTEGER_BITS))
    q, left_shift = math.frexp(real)
    multiplier = _round_half_away(q * (1 << 31))
    # A significand that rounds up to 2^31 would not fit TFLM's int32, and a
    # negative shift makes its radius computation shift by a negative count.
    if multiplier >= 1 << 31 or not 0 <= left_shift <= 30:
        raise GraphError(f"op {op.index} ({op.name}): input scale {si} gives multiplier "
                         f"{multiplier} shift {left_shift}")
    radius = math.floor(1.0 * ((1 << _LOGISTIC_INPUT_INTEGER_BITS) - 1)
                        * (1 << (31 - _LOGISTIC_INPUT_INTEGER_BITS)) / (1 << left_shift))
    words = dict(input_zero_point=zi, input_range_radius=radius, input_multiplier=multiplier,
                 input_left_shift=left_shift)
    params = [words[name] for name in PARAMS["LOGISTIC"]]
    table = graph.NewTensor("int8", (LOGISTIC_TABLE_SIZE,), data=logistic_table(params))
    return graph.Lowered("LOGISTIC", [op.inputs[0].index, table], [op.outputs[0].index], params)


# LOGISTIC's int8 -> int8 function, tabulated (code -128 first): the kernel's
# eval is then a lookup (the arithmetic cost about 350 Cortex-M7 instructions
# a code, 108 M instructions per second of audio for the shipped voice).
LOGISTIC_TABLE_SIZE = 256


def logistic_table(params: list[int]) -> np.ndarray:
    """The 256 outputs of the engine's own LOGISTIC arithmetic (the kernel
    without a table, through the host library) for `params`; the kernel's
    check recomputes every entry, so a table from a stale library is refused
    when the blob is opened rather than run."""
    from bittts_tf.engine import native  # the host library: only when lowering

    codes = np.arange(-128, 128, dtype=np.int8)
    table = np.zeros(LOGISTIC_TABLE_SIZE, np.int8)
    status = native.run_op("LOGISTIC", [codes], [table], list(params))
    if status != 0:
        raise GraphError(f"LOGISTIC parameters {params}: the engine refused them ({status})")
    return table


def lower_mean(op: graph.GraphOp) -> graph.Lowered:
    """MEAN, int8 over one axis: TFLM's PrepareMeanOrSumHelper quantizes the
    input over output scale (double) generally; its QuantizedMeanOrSum then
    folds 1/count in: with k = floor(log2(count)) capped at 32 and at 31 +
    shift, the multiplier becomes (multiplier << k) / count (int64, truncated)
    and the shift drops by k. That fold depends only on the shapes, so it is
    done here. The axis (a constant tensor in the graph) becomes a parameter
    word."""
    _arity(op, 2)
    source, axis_tensor, out = op.inputs[0], op.inputs[1], op.outputs[0]
    si, zi = _int8_tensor(source, op, "input")
    so, zo = _int8_tensor(out, op, "output")
    if axis_tensor is None or not axis_tensor.is_const or axis_tensor.type != "int32":
        raise GraphError(f"op {op.index} ({op.name}): the axis is not a constant int32 tensor")
    rank = len(source.shape)
    axes = {int(a) + rank if int(a) < 0 else int(a) for a in np.ravel(axis_tensor.data)}
    if len(axes) != 1 or not all(0 <= a < rank for a in axes):
        raise GraphError(f"op {op.index} ({op.name}): axes {list(np.ravel(axis_tensor.data))} of "
                         f"rank {rank}; the engine reduces one axis")
    axis = axes.pop()
    count = int(source.shape[axis])
    kept = tuple(source.shape[:axis]) + (1,) + tuple(source.shape[axis + 1:])
    dropped = tuple(source.shape[:axis]) + tuple(source.shape[axis + 1:])
    keep_dims = bool(getattr(op.options, "keepDims", False))
    if tuple(out.shape) != (kept if keep_dims else dropped):
        raise GraphError(f"op {op.index} ({op.name}): output shape {out.shape} for input "
                         f"{source.shape} over axis {axis}")
    multiplier, shift = quantize_multiplier(float(si) / float(so))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    if fold < 0:
        raise GraphError(f"op {op.index} ({op.name}): output shift {shift} too small to fold "
                         f"in 1/{count}")
    multiplier, shift = (multiplier << fold) // count, shift - fold
    words = dict(axis=axis, reduced_count=count, input_zero_point=zi, output_offset=zo,
                 output_multiplier=multiplier, output_shift=shift)
    return graph.Lowered("MEAN", [source.index], [out.index],
                         [words[name] for name in PARAMS["MEAN"]])


LOWER = {
    "ADD": lower_add,
    "SUB": lower_sub,
    "MUL": lower_mul,
    "SQUARED_DIFFERENCE": lower_squared_difference,
    "RSQRT": lower_rsqrt,
    "LOGISTIC": lower_logistic,
    "MEAN": lower_mean,
}
