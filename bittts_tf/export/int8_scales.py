"""Repairs the quantization parameters the TFLite converter gives a tensor
whose calibrated range is (nearly) empty.

An int8 conv / matmul output is `(accumulator * input scale * weight scale) /
output scale`. When every calibration sample gives the same output (a layer
whose kernel ended all zero, a channel that died), the converter calibrates
a range of almost no width and an output scale far below one accumulator
step: seen here, 7.96e-9 behind input and weight scales of 0.0039 and
0.0034, a requantization multiplier of 1,700. LiteRT's default delegate
(XNNPACK) refuses such an op (multipliers must stay under 256), so the whole
graph failed to load (`failed to create XNNPACK runtime`).

An output step finer than one accumulator step resolves nothing the
accumulator can hold, so the floor `input scale * max(weight scale)`
(multiplier 1) loses nothing. The new scale is given to every tensor that
shares the old parameters through ops that pass int8 codes through unchanged
(reshapes, slices, pads, transposes), which must keep equal parameters.
"""

from __future__ import annotations

import numpy as np

from bittts_tf.litert import tflite_file

# op -> (activation operand, weight operand)
_ACCUMULATING = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1),
                 "TRANSPOSE_CONV": (2, 1), "BATCH_MATMUL": (0, 1)}
_PASS_THROUGH = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "STRIDED_SLICE", "SLICE",
                 "PAD", "GATHER", "MAX_POOL_2D", "SPLIT", "SPLIT_V"}


def _parameters(tensor):
    q = tensor.quantization
    if tensor.type != tflite_file.INT8 or q is None or q.scale is None or len(q.scale) == 0:
        return None
    return (np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64))


def _same(a, b) -> bool:
    return (a is not None and b is not None and a[0].shape == b[0].shape
            and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))


def _linked(subgraph, model, start: int) -> set[int]:
    """`start` and every tensor joined to it through pass-through ops with
    parameters equal to its own."""
    own = _parameters(subgraph.tensors[start])
    names = tflite_file.builtin_names()
    seen, todo = {start}, [start]
    while todo:
        index = todo.pop()
        for op in subgraph.operators:
            name = names.get(tflite_file.builtin_code(model, op))
            if name == "CONCATENATION":   # every input's parameters must equal the output's
                ends = [int(i) for i in op.inputs] + [int(i) for i in op.outputs]
            elif name in _PASS_THROUGH:
                ends = [int(i) for i in op.inputs[:1]] + [int(i) for i in op.outputs]
            else:
                continue
            if index not in ends:
                continue
            for other in ends:
                if other >= 0 and other not in seen and _same(_parameters(subgraph.tensors[other]), own):
                    seen.add(other)
                    todo.append(other)
    return seen


def floor_output_scales(tflite_bytes: bytes) -> tuple[bytes, list[str]]:
    """The model with every int8 conv / matmul output scale raised to at
    least one accumulator step; and the names of the tensors raised."""
    model = tflite_file.parse_model(tflite_bytes)
    names = tflite_file.builtin_names()
    raised = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            operands = _ACCUMULATING.get(names.get(tflite_file.builtin_code(model, op)))
            if operands is None:
                continue
            tensors = subgraph.tensors
            activation = _parameters(tensors[int(op.inputs[operands[0]])])
            weights = _parameters(tensors[int(op.inputs[operands[1]])])
            output_index = int(op.outputs[0])
            output = _parameters(tensors[output_index])
            if activation is None or weights is None or output is None or len(output[0]) != 1:
                continue
            floor = np.float32(float(activation[0].max()) * float(weights[0].max()))
            if not output[0][0] < floor:
                continue
            for index in _linked(subgraph, model, output_index):
                tensors[index].quantization.scale = np.full_like(output[0], floor)
                raised.append(tensors[index].name.decode("utf-8", "replace"))
    if not raised:
        return tflite_bytes, raised
    return tflite_file.serialize_model(model), raised


_FILTER_AND_BIAS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
                    "TRANSPOSE_CONV": (1, 3)}


def _uniform(tensor) -> bool:
    """Per-channel parameters whose scales are all equal and zero points zero."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) < 2:
        return False
    scales = np.asarray(q.scale, np.float32)
    points = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], np.int64)
    return bool(np.all(scales == scales[0]) and points.size == scales.size and not np.any(points))


def collapse_equal_channel_scales(tflite_bytes: bytes) -> tuple[bytes, int]:
    """The model with each conv / matmul whose int8 filter has per-channel
    scales all equal (and zero points zero) given one scale and one zero
    point for the filter and for its int32 bias together (per-tensor
    quantization, which every int8 kernel of LiteRT and TFLite Micro reads;
    XNNPACK refuses a per-tensor bias beside a per-channel filter, so the two
    always change together, and a tensor shared by several ops only when
    every one of them can). A ternary kernel decoded to int8 codes has one
    scale beta for all its channels, its readers' biases one scale input *
    beta: per channel each costs 12 bytes a channel (a float32 scale and an
    int64 zero point), 56 KB of the tiny voice's int8 frames graph. Returns
    the model and the bytes saved."""
    model = tflite_file.parse_model(tflite_bytes)
    names = tflite_file.builtin_names()
    saved = 0
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        pairs, blocked = [], set()
        readers: dict[int, int] = {}
        for op in subgraph.operators:
            for index in op.inputs if op.inputs is not None else []:
                readers[int(index)] = readers.get(int(index), 0) + 1
        for op in subgraph.operators:
            operands = _FILTER_AND_BIAS.get(names.get(tflite_file.builtin_code(model, op)))
            inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            if operands is None or len(inputs) <= operands[0]:
                continue
            filter_index = inputs[operands[0]]
            bias_index = inputs[operands[1]] if len(inputs) > operands[1] else -1
            members = [filter_index] + ([bias_index] if bias_index >= 0 else [])
            if all(_uniform(tensors[i]) for i in members):
                pairs.append(members)
            else:
                blocked.update(members)
        chosen = {i for members in pairs for i in members}
        # A tensor read elsewhere than as a collapsible filter / bias stays.
        uses = {}
        for members in pairs:
            for i in members:
                uses[i] = uses.get(i, 0) + 1
        for members in pairs:
            if any(i in blocked or uses[i] != readers.get(i, 0) for i in members):
                chosen.difference_update(members)
        for members in pairs:
            if not all(i in chosen for i in members):
                chosen.difference_update(members)
        for index in sorted(chosen):
            q = tensors[index].quantization
            saved += 12 * (len(q.scale) - 1)
            q.scale = np.asarray(q.scale, np.float32)[:1].copy()
            q.zeroPoint = np.asarray(q.zeroPoint, np.int64)[:1].copy()
            q.quantizedDimension = 0
    if not saved:
        return tflite_bytes, 0
    return tflite_file.serialize_model(model), saved


# How far below the calibrated range a SUB output's tied scale may reach:
# rounding the scale down to a power of two clips at most this fraction of
# the calibrated extreme; a larger gap rounds up (a step at most 2x coarser).
_SUB_CLIP = 1.0625


def _power_of_two_multiple(scale: float, anchor: float, clip: float) -> np.float32:
    """anchor * 2**k, the smallest not below scale / clip."""
    return np.float32(anchor * 2.0 ** np.ceil(np.log2(scale / (anchor * clip))))


def _per_tensor_int8_ops(model, op_name: str):
    """(subgraph, (first input, second input, output), their (scale, zero
    point) parameters) of every two-input `op_name` op whose three ends are
    int8 with one scale each."""
    names = tflite_file.builtin_names()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if names.get(tflite_file.builtin_code(model, op)) != op_name or len(op.inputs) != 2:
                continue
            ends = (int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0]))
            params = [_parameters(subgraph.tensors[i]) for i in ends]
            if all(p is not None and len(p[0]) == 1 for p in params):
                yield subgraph, ends, params


def tie_sub_scales(tflite_bytes: bytes) -> tuple[bytes, list[str]]:
    """The model with each int8 SUB's second input and output scales made
    power-of-two multiples of its first input's; and the names of the
    tensors changed.

    TFLite Micro and LiteRT requantize SUB with the same integer arithmetic
    but derive its multipliers differently: TFLite Micro divides the scales
    in float32, LiteRT in float64, and the two 31-bit multipliers differ in
    their low bits (by 3 to 64 units on every SUB of the tiny voice's int8
    frames graph), so a rare output lands one step apart (seen: states 1
    step, spectrum 2, over 1,196 invokes). With ratios that are powers of
    two every division is exact in both precisions and both runtimes get the
    same multipliers. ADD and MEAN divide in float64 in both (MUL: tie_mul_scales). The layer
    norms' SUB is x - mean(x): the mean's scale rounds up (a step at most 2x
    coarser on values about a tenth of x's range), the output's to the
    nearest power of two within _SUB_CLIP (its calibrated range is x's
    within 3% here)."""
    model = tflite_file.parse_model(tflite_bytes)
    changed = []
    for subgraph, (first, second, output), params in _per_tensor_int8_ops(model, "SUB"):
        tensors = subgraph.tensors
        anchor = float(params[0][0][0])
        for index, current, clip in ((second, params[1], 1.0), (output, params[2], _SUB_CLIP)):
            scale = _power_of_two_multiple(float(current[0][0]), anchor, clip)
            if index == first or current[0][0] == scale:
                continue
            for linked in _linked(subgraph, model, index):
                tensors[linked].quantization.scale = np.asarray([scale], np.float32)
                changed.append(tensors[linked].name.decode("utf-8", "replace"))
    if not changed:
        return tflite_bytes, changed
    return tflite_file.serialize_model(model), changed


# How far (in float32 steps of the scale) an int8 MUL's output scale may be
# moved to find one both runtimes requantize alike: 4,096 steps change the
# scale by at most 5e-4 of itself; a 31-bit multiplier derived in float32
# and in float64 agree for about 1 in 400 scales, so a match is all but sure.
_MUL_SEARCH = 4096


def _quantized_multiplier(x: float) -> tuple[int, int]:
    mantissa, exponent = np.frexp(x)
    q = int(np.round(mantissa * 2.0**31))
    return (q // 2, int(exponent) + 1) if q == 2**31 else (q, int(exponent))


def _mul_multipliers_agree(s1: np.float32, s2: np.float32, so: np.float32) -> bool:
    in_float32 = float(np.float32(np.float32(s1 * s2) / so))
    in_float64 = float(s1) * float(s2) / float(so)
    return _quantized_multiplier(in_float32) == _quantized_multiplier(in_float64)


def _nearest_agreeing_scale(s1: np.float32, s2: np.float32, so: np.float32):
    """The float32 scale nearest `so` (within _MUL_SEARCH steps) at which
    MUL's multiplier is the same derived in float32 and float64, or None."""
    up = down = so
    for _ in range(_MUL_SEARCH):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        for scale in (up, down):
            if _mul_multipliers_agree(s1, s2, scale):
                return scale
    return None


def tie_mul_scales(tflite_bytes: bytes) -> tuple[bytes, list[str]]:
    """The model with each int8 MUL's output scale moved (by at most 5e-4 of
    itself) to one whose requantization multiplier is the same derived in
    float32 and in float64; and the names of the tensors changed.

    LiteRT's reference MUL derives its multiplier from the scales in float32
    (s1 * s2 / so on the float fields), TFLite Micro's in float64; on a
    random voice's layer-norm MUL (x - mean times rsqrt of the variance) the
    two 31-bit multipliers differed by 41 units and one output code of 512
    was one step apart (test_tflm seed 1368705874). Not every MUL can be
    tied this way: when s1 * s2's own float32 rounding is larger than any
    quotient's, no output scale cancels it (about 1 in 10 of random scale
    triples); those keep their scale and may still differ by a rare step."""
    model = tflite_file.parse_model(tflite_bytes)
    changed = []
    for subgraph, ends, params in _per_tensor_int8_ops(model, "MUL"):
        tensors = subgraph.tensors
        s1, s2, so = (np.float32(p[0][0]) for p in params)
        if _mul_multipliers_agree(s1, s2, so):
            continue
        found = _nearest_agreeing_scale(s1, s2, so)
        if found is None:
            continue
        for linked in _linked(subgraph, model, ends[2]):
            tensors[linked].quantization.scale = np.asarray([found], np.float32)
            changed.append(tensors[linked].name.decode("utf-8", "replace"))
    if not changed:
        return tflite_bytes, changed
    return tflite_file.serialize_model(model), changed
