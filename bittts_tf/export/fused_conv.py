"""The fused ternary convolution `BitTTSTernaryConv`: a 1-D CONV_2D that reads
the packed kernel itself (tflite/bittts_ternary_conv.h), so no decoded kernel
sits in the arena (the int8 codes of a 128 x 5 x 128 conv take 82 KB, float32
four times that; the op needs one row of K * Cin trits as scratch).

- `fuse_ternary_convs` rewrites a packed graph (float32 or int8, as
  `packer.pack_ternary_weights` / `pack_int8_ternary_weights` make them):
  each BitTTSTernaryDecode whose output only a 1-D CONV_2D reads as its
  filter becomes, with that CONV_2D, one BitTTSTernaryConv op; a decode op
  with other readers stays for them.
- `c_conv_f32`, `c_conv_i8`, `quantize_multiplier`: the C kernel through
  ctypes (build/libbittts_ternary_conv.so, `make lib`).

The op's inputs are the CONV_2D's activations, the packed int8 indices, a
float32 scale (beta) and the CONV_2D's bias (or -1); its output is the
CONV_2D's. Its custom options (`spec.conv_options`) hold the kernel size,
stride, dilation, padding and fused activation. The int8 variant reads the
activations' quantization from the tensors and computes TFLite's per-channel
requantization with filter scale beta, so it gives the decode graph's CONV_2D
outputs bit for bit on the reference kernels (TFLite Micro's, LiteRT's
BUILTIN_REF); the bias stays as the int8 packer requantized it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools

import numpy as np

from bittts_tf.export import graph_surgery, int8_bias
from bittts_tf.litert import native, tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT8, INT32
from bittts_tf.quant import packing, spec

CONV_LIBRARY = native.BUILD_DIR / "libbittts_ternary_conv.so"
STATUS_OK, STATUS_NULL, STATUS_SIZE, STATUS_INDEX, STATUS_PARAM, STATUS_OVERLAP = range(6)


class FuseError(RuntimeError):
    """A graph the rewrite cannot handle (not a packed graph, a broken decode op)."""


class ConvError(RuntimeError):
    """The C kernel refused its arguments."""


# --- the C kernel through ctypes ----------------------------------------------

class ConvShape(ctypes.Structure):
    _fields_ = [("batches", ctypes.c_size_t), ("input_length", ctypes.c_size_t),
                ("input_channels", ctypes.c_size_t), ("output_channels", ctypes.c_size_t),
                ("kernel_size", ctypes.c_size_t), ("stride", ctypes.c_size_t),
                ("dilation", ctypes.c_size_t), ("padding", ctypes.c_int)]


class ConvQuant(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


@functools.lru_cache(maxsize=None)
def conv_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(native._require(CONV_LIBRARY)))
    shape_p, size_t = ctypes.POINTER(ConvShape), ctypes.c_size_t
    vp, size_tp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)
    lib.bittts_conv_f32.argtypes = [shape_p, vp, size_t, vp, size_t, ctypes.c_float, vp, size_t,
                                    ctypes.c_float, ctypes.c_float, vp, size_t, vp, size_t,
                                    size_tp]
    lib.bittts_conv_i8.argtypes = [shape_p, ctypes.POINTER(ConvQuant), vp, size_t, vp, size_t,
                                   vp, size_t, vp, size_t, vp, size_t, size_tp]
    for name in ("bittts_conv_output_length", "bittts_conv_scratch_size",
                 "bittts_conv_pad_before"):
        getattr(lib, name).argtypes = [shape_p]
        getattr(lib, name).restype = size_t
    lib.bittts_conv_quantize_multiplier.argtypes = [
        ctypes.c_double, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32)]
    lib.bittts_conv_multiply_by_quantized_multiplier.argtypes = [ctypes.c_int32] * 3
    lib.bittts_conv_multiply_by_quantized_multiplier.restype = ctypes.c_int32
    lib.bittts_conv_activation_range_f32.argtypes = [
        ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.bittts_conv_activation_range_i8.argtypes = [
        ctypes.c_int, ctypes.c_float, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
        ctypes.POINTER(ctypes.c_int32)]
    lib.bittts_conv_status_message.argtypes = [ctypes.c_int]
    lib.bittts_conv_status_message.restype = ctypes.c_char_p
    return lib


def _check(status: int, what: str, bad: ctypes.c_size_t | None = None) -> None:
    if status != STATUS_OK:
        message = conv_library().bittts_conv_status_message(status).decode()
        if status == STATUS_INDEX and bad is not None:
            message += f" (byte {bad.value})"
        raise ConvError(f"{what}: {message}")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier as the C kernel computes it."""
    multiplier, shift = ctypes.c_int32(), ctypes.c_int32()
    _check(conv_library().bittts_conv_quantize_multiplier(float(real), ctypes.byref(multiplier),
                                                          ctypes.byref(shift)),
           f"quantize_multiplier({real!r})")
    return multiplier.value, shift.value


def _shape(x: np.ndarray, kernel_size: int, out_channels: int, stride: int, dilation: int,
           padding: int) -> ConvShape:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"activations must be [N, 1, T, Cin], got {x.shape}")
    return ConvShape(x.shape[0], x.shape[2], x.shape[3], out_channels, kernel_size, stride,
                     dilation, padding)


def _buffer(array: np.ndarray | None):
    return None if array is None else array.ctypes.data_as(ctypes.c_void_p)


def _run(shape, out_dtype, call):
    lib = conv_library()
    length = lib.bittts_conv_output_length(ctypes.byref(shape))
    if length == 0:
        raise ConvError(f"no output frames for the shape {shape.input_length} frames, kernel "
                        f"{shape.kernel_size}, stride {shape.stride}, dilation {shape.dilation}")
    out = np.empty((shape.batches, 1, length, shape.output_channels), out_dtype)
    # The scratch row has the path's element type: int8 or float32.
    scratch = np.empty(lib.bittts_conv_scratch_size(ctypes.byref(shape)), out_dtype)
    bad = ctypes.c_size_t(0)
    status = call(lib, out, scratch, bad)
    _check(status, "BitTTSTernaryConv kernel", bad)
    return out


def c_conv_f32(x: np.ndarray, packed: np.ndarray, beta: float, kernel_size: int,
               out_channels: int, bias: np.ndarray | None = None, stride: int = 1,
               dilation: int = 1, padding: int = spec.CONV_PADDING_VALID,
               activation: int = 0) -> np.ndarray:
    """The C kernel's float32 path: x [N, 1, T, Cin] -> [N, 1, T_out, Cout]."""
    x = np.ascontiguousarray(x, np.float32)
    packed = np.ascontiguousarray(packed, np.int8)
    bias = None if bias is None else np.ascontiguousarray(bias, np.float32)
    shape = _shape(x, kernel_size, out_channels, stride, dilation, padding)
    lo, hi = ctypes.c_float(), ctypes.c_float()
    _check(conv_library().bittts_conv_activation_range_f32(activation, ctypes.byref(lo),
                                                           ctypes.byref(hi)), "activation")

    def call(lib, out, scratch, bad):
        return lib.bittts_conv_f32(ctypes.byref(shape), _buffer(x), x.size, _buffer(packed),
                                   packed.size, beta, _buffer(bias),
                                   0 if bias is None else bias.size, lo, hi, _buffer(scratch),
                                   scratch.size, _buffer(out), out.size, ctypes.byref(bad))

    return _run(shape, np.float32, call)


def c_conv_i8(x: np.ndarray, packed: np.ndarray, kernel_size: int, out_channels: int,
              input_scale: float, input_zero_point: int, beta: float, output_scale: float,
              output_zero_point: int, bias: np.ndarray | None = None, stride: int = 1,
              dilation: int = 1, padding: int = spec.CONV_PADDING_VALID,
              activation: int = 0) -> np.ndarray:
    """The C kernel's int8 path, its multiplier from the float32 scales as
    TFLite computes it: double(input_scale) * double(beta) / double(output_scale)."""
    x = np.ascontiguousarray(x, np.int8)
    packed = np.ascontiguousarray(packed, np.int8)
    bias = None if bias is None else np.ascontiguousarray(bias, np.int32)
    shape = _shape(x, kernel_size, out_channels, stride, dilation, padding)
    real = (float(np.float32(input_scale)) * float(np.float32(beta))
            / float(np.float32(output_scale)))
    multiplier, shift = quantize_multiplier(real)
    lo, hi = ctypes.c_int32(), ctypes.c_int32()
    _check(conv_library().bittts_conv_activation_range_i8(
        activation, output_scale, output_zero_point, ctypes.byref(lo), ctypes.byref(hi)),
        "activation")
    quant = ConvQuant(-int(input_zero_point), int(output_zero_point), multiplier, shift,
                      lo.value, hi.value)

    def call(lib, out, scratch, bad):
        return lib.bittts_conv_i8(ctypes.byref(shape), ctypes.byref(quant), _buffer(x), x.size,
                                  _buffer(packed), packed.size, _buffer(bias),
                                  0 if bias is None else bias.size, _buffer(scratch),
                                  scratch.size, _buffer(out), out.size, ctypes.byref(bad))

    return _run(shape, np.int8, call)


# --- the graph rewrite ---------------------------------------------------------

_CONV_2D = 3          # schema.BuiltinOperator.CONV_2D
_CONV_OPTIONS = 1     # schema.BuiltinOptions.Conv2DOptions
_ELEMENT_BYTES = {FLOAT32: 4, INT8: 1}


@dataclasses.dataclass
class FusedConv:
    """One CONV_2D now computed by BitTTSTernaryConv."""

    output: str                 # the conv's output tensor
    filter_shape: list[int]     # [Cout, 1, K, Cin]
    dtype: str                  # "float32" or "int8"
    decoded_bytes: int          # the decoded kernel the arena no longer holds


@dataclasses.dataclass
class FuseResult:
    tflite: bytes
    fused: list[FusedConv]
    left: dict[str, str]  # CONV_2D output reading a decoded kernel -> why it stayed

    def summary(self) -> dict:
        return {"fused_convs": len(self.fused), "left_convs": len(self.left),
                "decoded_bytes_removed": sum(f.decoded_bytes for f in self.fused),
                "largest_decoded_kernel_removed": max(
                    (f.decoded_bytes for f in self.fused), default=0)}


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _constant(model, tensor) -> bytes | None:
    data = model.buffers[tensor.buffer].data
    return None if data is None or len(data) == 0 else bytes(data)


def _one_scale(tensor) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor quantized tensor, else None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    points = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else [0]
    return float(q.scale[0]), int(points[0])


def _conv_opcode(model) -> int:
    index, version = graph_surgery.custom_opcode(model, spec.CONV_OP_NAME, spec.CONV_OP_VERSION)
    if version != spec.CONV_OP_VERSION:
        raise FuseError(f"the model already holds {spec.CONV_OP_NAME} ops of version {version}")
    return index


@dataclasses.dataclass
class _Plan:
    """What replacing one CONV_2D takes."""

    conv: object
    decode: object
    options: bytes
    beta: float
    int8: bool
    bias: int | None
    fused: FusedConv


def _plan(model, subgraph, conv, decode_of: dict) -> _Plan | str:
    """The plan for one CONV_2D, or why it stays as it is."""
    inputs = _ints(conv.inputs)
    if len(inputs) < 2 or inputs[1] not in decode_of:
        return ""  # its filter is no decoded kernel: not ours to mention
    decode = decode_of[inputs[1]]
    tensors = subgraph.tensors
    x, w, y = tensors[inputs[0]], tensors[inputs[1]], tensors[int(conv.outputs[0])]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] >= 0 else None
    if inputs.count(inputs[1]) != 1:
        return "its decoded kernel is also another operand of the conv"
    options = conv.builtinOptions
    if conv.builtinOptionsType != _CONV_OPTIONS or options is None:
        return "no Conv2DOptions"
    shapes = [_ints(t.shape) for t in (x, w, y)]
    if any(len(s) != 4 for s in shapes) or shapes[0][1] != 1 or shapes[1][1] != 1 \
            or shapes[2][1] != 1 or shapes[1][3] != shapes[0][3] \
            or shapes[2][3] != shapes[1][0]:
        return f"not a 1-D convolution (input {shapes[0]}, filter {shapes[1]}, output {shapes[2]})"
    cout, _, k, cin = shapes[1]
    stride, dilation = int(options.strideW), int(options.dilationWFactor)
    activation = int(options.fusedActivationFunction)
    padding = int(options.padding)
    if not (1 <= stride <= spec.CONV_MAX_OPTION and 1 <= dilation <= spec.CONV_MAX_OPTION
            and 1 <= k <= spec.CONV_MAX_OPTION):
        return f"stride {stride}, dilation {dilation} or kernel size {k} out of range"
    if padding not in (spec.CONV_PADDING_SAME, spec.CONV_PADDING_VALID):
        return f"padding {padding}"
    if activation not in spec.CONV_ACTIVATIONS.values():
        return f"fused activation {activation}"
    if k * cin > spec.CONV_MAX_ROW:
        return f"K x Cin = {k * cin} is above {spec.CONV_MAX_ROW}"
    packed_index, scale_index = _ints(decode.inputs)[:2]
    packed, scale = tensors[packed_index], tensors[scale_index]
    packed_data, scale_data = _constant(model, packed), _constant(model, scale)
    if packed.type != INT8 or packed_data is None or scale.type != FLOAT32 \
            or scale_data is None or len(scale_data) != 4:
        return "its decode op does not read a constant int8 packed tensor and float32 scale"
    weights = cout * k * cin
    if int(np.prod(_ints(w.shape))) != weights or len(packed_data) != packing.packed_size(weights):
        return "its decode op's sizes do not match the filter"
    int8 = x.type == INT8
    if int8:
        if w.type != INT8 or y.type != INT8 or _one_scale(x) is None or _one_scale(y) is None:
            return "int8 activations need int8 output and per-tensor quantized activations"
        q = w.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
        points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [0])
        if scales.size == 0 or np.any(scales != scales[0]) or np.any(points != 0) \
                or not scales[0] >= 0:
            return "its int8 filter does not have one scale beta on every channel"
        beta = float(scales[0])
        if bias is not None and tensors[bias].type != INT32:
            return "its int8 bias is not int32"
    else:
        if (x.type, w.type, y.type) != (FLOAT32,) * 3:
            return "activations, filter and output are not all float32 (or all int8)"
        if bias is not None and tensors[bias].type != FLOAT32:
            return "its float bias is not float32"
        beta = float(np.frombuffer(scale_data, np.float32)[0])
    if not np.isfinite(beta):
        return f"scale {beta} is not finite"
    element = _ELEMENT_BYTES[INT8 if int8 else FLOAT32]
    report = FusedConv(y.name.decode(), shapes[1], "int8" if int8 else "float32",
                       weights * element)
    return _Plan(conv, decode, spec.conv_options(k, stride, dilation, padding, activation),
                 beta, int8, bias, report)


def _bias_scale_matches(subgraph, plan: _Plan) -> bool:
    """Whether the int8 bias has the scale input scale * beta already (the
    int8 packer requantized it), so it stays as it is."""
    bias = subgraph.tensors[plan.bias]
    q = bias.quantization
    input_scale = _one_scale(subgraph.tensors[int(plan.conv.inputs[0])])[0]
    expected = np.float32(np.float32(input_scale) * np.float32(plan.beta))
    return (q is not None and q.scale is not None and len(q.scale) > 0
            and np.allclose(np.asarray(q.scale, np.float64), float(expected), rtol=1e-6, atol=0))


def _scale_tensor(model, subgraph, decode, beta: float) -> int:
    """The decode op's scale tensor when it holds beta's bits, else a new one."""
    index = int(decode.inputs[1])
    bits = np.float32(beta).tobytes()
    if _constant(model, subgraph.tensors[index]) == bits:
        return index
    name = subgraph.tensors[index].name.decode() + "/beta"
    return graph_surgery.add_tensor(subgraph, name, [1], FLOAT32,
                                    graph_surgery.add_buffer(model, bits))


def _fused_op(opcode: int, plan: _Plan, scale: int):
    from ai_edge_litert import schema_py_generated as schema
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    inputs = [int(plan.conv.inputs[0]), int(plan.decode.inputs[0]), scale]
    if plan.bias is not None:
        inputs.append(int(plan.conv.inputs[2]))  # the bias, possibly a rescaled copy
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray(_ints(plan.conv.outputs), np.int32)
    op.customOptions = np.frombuffer(plan.options, np.uint8).copy()
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return op


def _drop_tensors(model, sg_index: int, candidates: set[int]) -> None:
    """Removes the candidate tensors no op, graph input or output refers to
    (renumbering the others everywhere they are named), and empties the
    buffers only they held."""
    subgraph = model.subgraphs[sg_index]
    used = set(_ints(subgraph.inputs)) | set(_ints(subgraph.outputs))
    for op in subgraph.operators:
        used |= set(_ints(op.inputs)) | set(_ints(op.outputs)) | set(_ints(op.intermediates))
    dropped = sorted(candidates - used)
    if not dropped:
        return
    gone = set(dropped)
    new_index = {}
    kept = []
    for old, tensor in enumerate(subgraph.tensors):
        if old not in gone:
            new_index[old] = len(kept)
            kept.append(tensor)
    buffers_left = {t.buffer for sg in model.subgraphs for t in
                    (kept if sg is subgraph else sg.tensors)}
    for old in dropped:
        buffer = subgraph.tensors[old].buffer
        if buffer != 0 and buffer not in buffers_left:
            model.buffers[buffer].data = None
    subgraph.tensors = kept

    def renumber(values):
        if values is None:
            return None
        return np.asarray([new_index[int(v)] if int(v) >= 0 else int(v) for v in values],
                          np.int32)

    for op in subgraph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
        if op.intermediates is not None:
            op.intermediates = renumber(op.intermediates)
    subgraph.inputs, subgraph.outputs = renumber(subgraph.inputs), renumber(subgraph.outputs)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex != sg_index:
            continue
        for entry in (signature.inputs or []) + (signature.outputs or []):
            entry.tensorIndex = new_index[int(entry.tensorIndex)]


def fuse_ternary_convs(tflite_bytes: bytes, name: str = "model") -> FuseResult:
    """Rewrites a packed graph (float32 or int8): each BitTTSTernaryDecode ->
    CONV_2D pair of a 1-D convolution (input [N, 1, T, Cin], filter
    [Cout, 1, K, Cin]; any stride and dilation along time, SAME or VALID,
    fused NONE / RELU / RELU_N1_TO_1 / RELU6) becomes one BitTTSTernaryConv
    reading the packed bytes. A decode op whose output other ops read too
    stays for them; the decoded kernels no op reads any more leave the graph.

    int8: beta is the filter's (every channel's) scale, which the int8 packer
    gave the bias too; a bias whose scale is not input scale * beta is
    requantized as `packer.pack_int8_ternary_weights` does."""
    model = tflite_file.parse_model(tflite_bytes, name)
    decode_codes = tflite_file.custom_opcodes(model)
    for index in sorted(decode_codes):
        version = model.operatorCodes[index].version
        if version != spec.FORMAT_VERSION:
            raise FuseError(f"{name}: {spec.OP_NAME} of version {version}; this "
                            f"rewrite reads format version {spec.FORMAT_VERSION}")
    fused, left = [], {}
    opcode = None
    for sg_index, subgraph in enumerate(model.subgraphs):
        decode_of = {}
        for op in subgraph.operators:
            if op.opcodeIndex in decode_codes:
                if len(_ints(op.inputs)) != 2 or len(_ints(op.outputs)) != 1:
                    raise FuseError(f"{name}: a {spec.OP_NAME} op without 2 inputs and 1 output")
                decode_of[int(op.outputs[0])] = op
        graph_outputs = set(_ints(subgraph.outputs))
        replacement = {}
        for op in subgraph.operators:
            if tflite_file.builtin_code(model, op) != _CONV_2D:
                continue
            plan = _plan(model, subgraph, op, decode_of)
            if isinstance(plan, str):
                if plan:
                    left[subgraph.tensors[int(op.outputs[0])].name.decode()] = plan
                continue
            if plan.int8 and plan.bias is not None and not _bias_scale_matches(subgraph, plan):
                int8_bias.requantize(model, subgraph, op, plan.beta,
                                           repr(plan.fused.output))
            if opcode is None:
                opcode = _conv_opcode(model)
            scale = _scale_tensor(model, subgraph, plan.decode, plan.beta)
            replacement[id(op)] = _fused_op(opcode, plan, scale)
            fused.append(plan.fused)
        if not replacement:
            continue
        operators = [replacement.get(id(op), op) for op in subgraph.operators]
        read = {int(i) for op in operators for i in _ints(op.inputs)}
        candidates = set()
        kept = []
        for op in operators:
            if op.opcodeIndex in decode_codes and int(op.outputs[0]) not in read \
                    and int(op.outputs[0]) not in graph_outputs:
                candidates |= set(_ints(op.inputs)) | set(_ints(op.outputs))
                continue  # no reader left: the decode op goes
            kept.append(op)
        subgraph.operators = kept
        _drop_tensors(model, sg_index, candidates)
    return FuseResult(tflite_file.serialize_model(model), fused, left)
