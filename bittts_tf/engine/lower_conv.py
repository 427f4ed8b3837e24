"""Lowering of the convolutions: CONV_2D and DEPTHWISE_CONV_2D (int8
activations, int8 filters quantized per output channel, int32 bias) and the
fused ternary convolution BitTTSTernaryConv (its int8 path).

Every parameter word is computed here, once, the way TFLite Micro's
reference kernels compute it in Prepare (padding from the options and the
input size, each channel's multiplier and shift from the float32 scales
widened to double, the activation range from the output quantization), so
the C side only checks ranges and runs integer arithmetic. The per-channel
multipliers and shifts do not fit a fixed count of words: they go into the
blob as two constant int32 tensors after the graph's inputs.

Also the shared arithmetic of the lowerings: `quantize_multiplier` and
`int8_activation_range`, used by lower_data's requantizing QUANTIZE too.
"""

from __future__ import annotations

import math

import numpy as np

from bittts_tf.engine.graph import GraphError, GraphOp, Lowered, NewTensor, TensorInfo
from bittts_tf.quant import spec as quant_spec

PADDING_SAME, PADDING_VALID = 0, 1          # the schema's Padding values
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
INT8_MIN, INT8_MAX = -128, 127
# The int32 accumulator of CONV_2D / DEPTHWISE_CONV_2D adds one product of at
# most 128 * 255 per tap and input channel: 2^16 of them stay below 2^31.
MAX_TAPS = 1 << 16

PARAMS = {
    "CONV_2D": ("stride_h", "stride_w", "dilation_h", "dilation_w", "padding", "pad_h",
                "pad_w", "input_offset", "output_offset", "act_min", "act_max"),
    "DEPTHWISE_CONV_2D": ("stride_h", "stride_w", "dilation_h", "dilation_w", "padding",
                          "pad_h", "pad_w", "depth_multiplier", "input_offset",
                          "output_offset", "act_min", "act_max"),
    "TERNARY_CONV": ("kernel_size", "stride", "dilation", "padding", "input_offset",
                     "output_offset", "multiplier", "shift", "act_min", "act_max"),
}

# The inputs whose data the device's check validates when the engine opens a
# blob (the multipliers and shifts in range, every packed byte < 243) and its
# eval then trusts: each must be a constant of the blob, or a caller (or an
# earlier op) could change it after the check. A depthwise shift of -100
# written into an arena tensor made the kernel shift by 100 bits.
CONST_INPUTS = {
    "CONV_2D": (3, 4),
    "DEPTHWISE_CONV_2D": (3, 4),
    "TERNARY_CONV": (1,),
}


# --- arithmetic shared with lower_data ------------------------------------------

def round_half_away(value: float) -> int:
    """TfLiteRound: to the nearest integer, halves away from zero. `value` is
    a float32 or a double whose fraction bits are all below 2^53, so the
    subtraction below is exact."""
    if not math.isfinite(value):
        raise GraphError(f"cannot round {value!r}")
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return -whole if value < 0 else whole


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real ~ multiplier * 2^(shift - 31) with the
    multiplier in [2^30, 2^31): frexp's significand times 2^31 rounded half
    away from zero, a carry into 2^31 halved into the shift; reals below
    about 2^-32 flush to (0, 0). Shifts above 30 (reals of 2^30 and more)
    are refused: the double-rounding multiply cannot take them."""
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise GraphError(f"requantization scale {real!r} is not finite and non-negative")
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    fixed = round_half_away(significand * 2.0**31)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise GraphError(f"requantization scale {real!r} needs a shift of {shift} (> 30)")
    return int(fixed), int(shift)


def _quantize_bound(bound: float, scale: np.float32, zero_point: int) -> int:
    # float32 quotient as TFLite's Quantize() helper divides, then rounded.
    quotient = np.float32(np.float32(bound) / scale)
    if not math.isfinite(float(quotient)) or abs(float(quotient)) >= 2.0**31:
        raise GraphError(f"activation bound {bound} / scale {scale} overflows int32")
    return zero_point + round_half_away(float(quotient))


def int8_activation_range(activation: int, scale, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: -128..127 narrowed by the
    fused activation's bounds quantized with the output's scale and zero
    point (float32 division, round half away from zero)."""
    scale = np.float32(scale)
    zero_point = int(zero_point)
    if activation == ACT_NONE:
        return INT8_MIN, INT8_MAX
    if activation == ACT_RELU:
        return max(INT8_MIN, _quantize_bound(0.0, scale, zero_point)), INT8_MAX
    if activation == ACT_RELU6:
        return (max(INT8_MIN, _quantize_bound(0.0, scale, zero_point)),
                min(INT8_MAX, _quantize_bound(6.0, scale, zero_point)))
    if activation == ACT_RELU_N1_TO_1:
        return (max(INT8_MIN, _quantize_bound(-1.0, scale, zero_point)),
                min(INT8_MAX, _quantize_bound(1.0, scale, zero_point)))
    raise GraphError(f"fused activation {activation} is not one the engine runs")


def per_tensor_quant(info: TensorInfo, what: str) -> tuple[np.float32, int]:
    """(scale, zero point) of an int8 activation tensor with one of each."""
    if info.type != "int8" or info.scale is None or info.scale.size != 1:
        raise GraphError(f"{what} ({info.name}) must be int8 with one scale and zero point")
    scale, zero_point = np.float32(info.scale[0]), int(info.zero_point[0])
    if not (math.isfinite(float(scale)) and scale > 0) or not INT8_MIN <= zero_point <= INT8_MAX:
        raise GraphError(f"{what} ({info.name}): scale {scale} / zero point {zero_point} "
                         f"out of range")
    return scale, zero_point


def _fail(op: GraphOp, message: str) -> GraphError:
    return GraphError(f"op {op.index} ({op.name}): {message}")


# --- CONV_2D and DEPTHWISE_CONV_2D ----------------------------------------------

def _out_size_and_pad(op: GraphOp, padding: int, in_size: int, filter_size: int, stride: int,
                      dilation: int) -> tuple[int, int]:
    """TFLite's windowed output size and the padding before the first element
    (half the total, rounded down) for one spatial dimension."""
    if stride < 1 or dilation < 1:
        raise _fail(op, f"stride {stride} / dilation {dilation} must be >= 1")
    span = (filter_size - 1) * dilation + 1
    if padding == PADDING_SAME:
        out = (in_size + stride - 1) // stride
    elif padding == PADDING_VALID:
        out = (in_size + stride - span) // stride
    else:
        raise _fail(op, f"padding {padding} is neither SAME nor VALID")
    if out < 1:
        raise _fail(op, f"no output for input {in_size}, filter {filter_size}, "
                        f"stride {stride}, dilation {dilation}")
    total = max((out - 1) * stride + span - in_size, 0)
    return out, total // 2


def _per_channel(op: GraphOp, input_scale: np.float32, filter_info: TensorInfo,
                 channels: int, channel_dim: int, output_scale: np.float32):
    """PopulateConvolutionQuantizationParams' loop: each output channel's
    double(input scale) * double(filter scale) / double(output scale) through
    QuantizeMultiplier (one filter scale is broadcast to every channel)."""
    scales = filter_info.scale
    if scales is None or scales.size not in (1, channels):
        raise _fail(op, f"filter needs 1 or {channels} scales")
    if scales.size > 1 and filter_info.quantized_dimension != channel_dim:
        raise _fail(op, f"filter is quantized along dimension "
                        f"{filter_info.quantized_dimension}, not {channel_dim}")
    if np.any(filter_info.zero_point != 0):
        raise _fail(op, "filter zero points must be 0 (the per-channel kernel ignores them)")
    multipliers = np.zeros(channels, np.int32)
    shifts = np.zeros(channels, np.int32)
    for channel in range(channels):
        filter_scale = np.float32(scales[channel if scales.size > 1 else 0])
        real = float(input_scale) * float(filter_scale) / float(output_scale)
        multipliers[channel], shifts[channel] = quantize_multiplier(real)
    return multipliers, shifts


def _lower_conv_like(op: GraphOp, depthwise: bool) -> Lowered:
    """ConvPrepare / DepthwiseConvPrepare (CalculateOpData*): padding from the
    options and the input's height and width, per-channel multipliers and
    shifts, offsets, the activation range."""
    opts = op.options
    if opts is None or len(op.outputs) != 1 or len(op.inputs) not in (2, 3):
        raise _fail(op, "expects input, filter, optional bias and one output")
    x, w = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) == 3 else None
    y = op.outputs[0]
    if x is None or w is None or not w.is_const:
        raise _fail(op, "needs an input and a constant filter")
    if w.type != "int8" or len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise _fail(op, "int8 NHWC input, filter and output of rank 4 only")
    input_scale, input_zp = per_tensor_quant(x, "input")
    output_scale, output_zp = per_tensor_quant(y, "output")
    n, in_h, in_w, in_c = x.shape
    if depthwise:
        _, k_h, k_w, channels = w.shape
        if w.shape[0] != 1:
            raise _fail(op, f"depthwise filter {w.shape} must be [1, KH, KW, C]")
        depth_multiplier = int(opts.depthMultiplier)
        if depth_multiplier < 1 or in_c * depth_multiplier != channels:
            raise _fail(op, f"depth multiplier {depth_multiplier}: {in_c} input channels do "
                            f"not give {channels}")
        channel_dim = 3
        if k_h * k_w > MAX_TAPS:
            raise _fail(op, f"{k_h * k_w} products per output overflow int32")
    else:
        channels, k_h, k_w, filter_c = w.shape
        if filter_c < 1 or in_c % filter_c or channels % (in_c // filter_c):
            raise _fail(op, f"filter depth {filter_c} does not divide the input's {in_c} "
                            f"channels into groups of the {channels} outputs")
        if k_h * k_w * filter_c > MAX_TAPS:
            raise _fail(op, f"{k_h * k_w * filter_c} products per output overflow int32")
        channel_dim = 0
    if bias is not None and (bias.type != "int32" or not bias.is_const
                             or int(np.prod(bias.shape)) != channels):
        raise _fail(op, f"bias must be a constant int32 of {channels} values")
    padding = int(opts.padding)
    stride_h, stride_w = int(opts.strideH), int(opts.strideW)
    dilation_h, dilation_w = int(opts.dilationHFactor), int(opts.dilationWFactor)
    out_h, pad_h = _out_size_and_pad(op, padding, in_h, k_h, stride_h, dilation_h)
    out_w, pad_w = _out_size_and_pad(op, padding, in_w, k_w, stride_w, dilation_w)
    if y.shape != (n, out_h, out_w, channels):
        raise _fail(op, f"output {y.shape} is not {(n, out_h, out_w, channels)}")
    act_min, act_max = int8_activation_range(int(opts.fusedActivationFunction), output_scale,
                                             output_zp)
    multipliers, shifts = _per_channel(op, input_scale, w, channels, channel_dim, output_scale)
    params = [stride_h, stride_w, dilation_h, dilation_w, padding, pad_h, pad_w]
    if depthwise:
        params.append(depth_multiplier)
    params += [-input_zp, output_zp, act_min, act_max]
    return Lowered(
        opcode="DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        inputs=[x.index, w.index, None if bias is None else bias.index,
                NewTensor("int32", (channels,), data=multipliers),
                NewTensor("int32", (channels,), data=shifts)],
        outputs=[y.index], params=params)


def lower_conv_2d(op: GraphOp) -> Lowered:
    """CONV_2D int8 x int8 (per-channel) -> int8: TFLite Micro's ConvPrepare."""
    return _lower_conv_like(op, depthwise=False)


def lower_depthwise_conv_2d(op: GraphOp) -> Lowered:
    """DEPTHWISE_CONV_2D int8 x int8 (per-channel) -> int8: TFLite Micro's
    DepthwiseConvPrepare (the depth multiplier from the options)."""
    return _lower_conv_like(op, depthwise=True)


# --- BitTTSTernaryConv ----------------------------------------------------------

# bittts_ternary_conv.c's kChunk: output frames whose activations its int8
# SIMD path widens at a time.
TERNARY_CONV_CHUNK = 16


def ternary_scratch_size(kernel_size: int, input_channels: int, stride: int = 1,
                         dilation: int = 1, out_length: int = 0) -> int:
    """bittts_conv_scratch_size: one row of K * Cin trits plus the up to 4 + 4
    trits of the packed bytes the row starts and ends inside, whole bytes;
    with out_length (T_out), bittts_conv_i8_fast_scratch_size: when Cin is a
    multiple of 4, the int16 lanes of a pair of rows (2 * K * Cin bytes plus
    32 of alignment and margins) and the input window of up to 16 output
    frames widened to int16, which the Cortex-M4/M7 build's SIMD path needs
    (two rows per SMLAD; tests/c/cortex_m/bench_conv.c)."""
    trits = quant_spec.TRITS_PER_BYTE
    row = (kernel_size * input_channels + 2 * (trits - 1)) // trits * trits
    if out_length < 1 or input_channels % 4:
        return row
    frames = (min(out_length, TERNARY_CONV_CHUNK) - 1) * stride + (kernel_size - 1) * dilation + 1
    return 2 * kernel_size * input_channels + 32 + 2 * frames * input_channels


def lower_ternary_conv(op: GraphOp) -> Lowered:
    """BitTTSTernaryConv with int8 activations: what our TFLM registration's
    ConvPrepare computes (firmware_stub/bittts_tflm_kernel.cc): the options
    from the custom FlexBuffer, the one multiplier of double(input scale) *
    double(beta) / double(output scale), the offsets and the activation
    range. The float32 scale input is folded into the multiplier and dropped;
    the kernel row scratch is an extra output."""
    if len(op.outputs) != 1 or len(op.inputs) not in (3, 4):
        raise _fail(op, "expects activations, packed kernel, scale, optional bias; one output")
    x, packed, beta_info = op.inputs[0], op.inputs[1], op.inputs[2]
    bias = op.inputs[3] if len(op.inputs) == 4 else None
    y = op.outputs[0]
    if x is None or packed is None or beta_info is None:
        raise _fail(op, "missing input")
    try:
        options = quant_spec.parse_conv_options(op.custom_options)
    except ValueError as error:
        raise _fail(op, str(error)) from None
    if x.type != "int8" or y.type != "int8":
        raise _fail(op, "only the int8 path runs in the engine")
    if packed.type != "int8" or not packed.is_const:
        raise _fail(op, "packed kernel must be a constant int8 tensor")
    if beta_info.type != "float32" or not beta_info.is_const or beta_info.data.size != 1:
        raise _fail(op, "scale must be one constant float32")
    if len(x.shape) != 4 or x.shape[1] != 1 or len(y.shape) != 4 or y.shape[1] != 1:
        raise _fail(op, "activations must be [N, 1, T, Cin] and the output [N, 1, T_out, Cout]")
    beta = np.float32(beta_info.data.reshape(-1)[0])
    if not (math.isfinite(float(beta)) and beta >= 0):
        raise _fail(op, f"scale {beta} must be finite and non-negative")
    input_scale, input_zp = per_tensor_quant(x, "input")
    output_scale, output_zp = per_tensor_quant(y, "output")
    kernel_size, stride, dilation = (int(options[k]) for k in ("kernel_size", "stride",
                                                                "dilation"))
    padding, activation = int(options["padding"]), int(options["activation"])
    out_length, _ = _out_size_and_pad(op, padding, x.shape[2], kernel_size, stride, dilation)
    if y.shape[0] != x.shape[0] or y.shape[2] != out_length:
        raise _fail(op, f"output {y.shape} does not follow from the input {x.shape}")
    cout, cin = y.shape[3], x.shape[3]
    if kernel_size * cin > quant_spec.CONV_MAX_ROW:
        raise _fail(op, f"a row of {kernel_size * cin} trits exceeds {quant_spec.CONV_MAX_ROW}")
    if packed.data.size != -(-cout * kernel_size * cin // quant_spec.TRITS_PER_BYTE):
        raise _fail(op, f"{packed.data.size} packed bytes do not hold {cout} x {kernel_size} x "
                        f"{cin} trits")
    if bias is not None and (bias.type != "int32" or not bias.is_const
                             or bias.data.size != cout):
        raise _fail(op, f"bias must be a constant int32 of {cout} values")
    multiplier, shift = quantize_multiplier(float(input_scale) * float(beta)
                                            / float(output_scale))
    act_min, act_max = int8_activation_range(activation, output_scale, output_zp)
    return Lowered(
        opcode="TERNARY_CONV",
        inputs=[x.index, packed.index, None if bias is None else bias.index],
        outputs=[y.index, NewTensor("int8", (ternary_scratch_size(kernel_size, cin, stride, dilation,
                                                                  out_length),))],
        params=[kernel_size, stride, dilation, padding, -input_zp, output_zp, multiplier, shift,
                act_min, act_max])


LOWER = {
    "CONV_2D": lower_conv_2d,
    "DEPTHWISE_CONV_2D": lower_depthwise_conv_2d,
    quant_spec.CONV_OP_NAME: lower_ternary_conv,
}
