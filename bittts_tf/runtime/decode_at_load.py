"""Decoding packed ternary weights once, when a model is loaded.

LiteRT's default XNNPACK delegate takes only convolutions whose filters are
constants: with BitTTSTernaryDecode in the graph a decoder + vocoder graph ran
4.4x slower than its float32 conversion (6.17 ms against 1.39 ms, 1.06 M
ternary weights, one thread; measured 2026-11-30). So on a desktop
the packed file is what is stored and shipped, and the interpreter gets the
decoded weights as constants: each decode op is removed and its output
tensor becomes a constant holding what the op would have computed (float32,
or int8 codes in an int8 graph, whose scale stays in the tensor's
quantization parameters). A fused BitTTSTernaryConv (the packed kernel read
by the conv itself, what a microcontroller runs) goes back to a CONV_2D whose
filter is the decoded constant, with the same options and bias.

4-bit kernels (TFLite INT4 tensors) are widened the same way: a DEQUANTIZE
of one becomes its float32 constant output, and an int8 graph's INT4 filter
an INT8 one with the same codes and scale. Read as INT4 at every invoke, the
4-bit paper voice's frames stream ran at a real-time factor of 0.0221
against 0.0056 for the same weights as float32 constants (one thread).
"""

from __future__ import annotations

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT4, INT8
from bittts_tf.quant import packing, spec



def _beta(model, tensor, what: str) -> float:
    """The one finite float32 scale a decode or fused op reads."""
    scale = _buffer(model, tensor)
    if scale.size != 4 or not np.isfinite(scale.view(np.float32)[0]):
        raise tflite_file.TFLiteFileError(f"{what} scale {tensor.name!r} is not one finite float32")
    return float(scale.view(np.float32)[0])


def _buffer(model, tensor) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    if data is None:
        raise tflite_file.TFLiteFileError(f"tensor {tensor.name!r} of a decode op has no data")
    return np.asarray(data, np.uint8)


def decoded_weights(model, op, subgraph) -> tuple[int, np.ndarray]:
    """(output tensor index, the array the decode op `op` would output).
    Everything the op's record claims is checked first: a damaged graph
    whose manifest was re-signed reaches this too."""
    inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
    outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    if len(inputs) != 2 or len(outputs) != 1:
        raise tflite_file.TFLiteFileError(f"a {spec.OP_NAME} op has {len(inputs)} inputs and "
                                         f"{len(outputs)} outputs, not 2 and 1")
    indices_tensor, scale_tensor = (subgraph.tensors[i] for i in inputs)
    output_index = outputs[0]
    output = subgraph.tensors[output_index]
    shape = tuple(int(d) for d in (output.shape if output.shape is not None else []))
    if any(d < 0 for d in shape):
        raise tflite_file.TFLiteFileError(f"decode output {output.name!r} has shape {list(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    raw = _buffer(model, indices_tensor)
    indices = raw.view(np.int8) if indices_tensor.type == INT8 else raw
    try:
        codes = packing.decode(indices, count).reshape(shape)
    except ValueError as error:
        raise tflite_file.TFLiteFileError(f"decode input {indices_tensor.name!r}: {error}") from None
    if output.type == INT8:
        return output_index, codes.astype(np.int8)
    if output.type != FLOAT32:
        raise tflite_file.TFLiteFileError(f"decode output {output.name!r} has tensor type "
                                         f"{output.type}, not float32 or int8")
    beta = np.float32(_beta(model, scale_tensor, "decode"))
    return output_index, (codes.astype(np.float32) * beta).astype(np.float32)


_CONV_2D = 3          # schema.BuiltinOperator.CONV_2D
_DEQUANTIZE = 6       # schema.BuiltinOperator.DEQUANTIZE


def _int4_codes(model, tensor) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes in the tensor's shape, its scales) of a constant INT4 tensor."""
    shape = tuple(_ints(tensor.shape))
    scales = (np.asarray(tensor.quantization.scale, np.float32)
              if tensor.quantization is not None and tensor.quantization.scale is not None
              else np.zeros(0, np.float32))
    if min(shape, default=1) < 0 or scales.size == 0 or not np.all(np.isfinite(scales)):
        raise tflite_file.TFLiteFileError(f"INT4 tensor {tensor.name!r} has shape {list(shape)} "
                                         f"and {scales.size} scales")
    try:
        codes = packing.decode_int4(_buffer(model, tensor), int(np.prod(shape, dtype=np.int64)))
    except ValueError as error:
        raise tflite_file.TFLiteFileError(f"INT4 tensor {tensor.name!r}: {error}") from None
    return codes.reshape(shape), scales


def _is_int4_dequantize(model, op, subgraph) -> bool:
    inputs = _ints(op.inputs)
    return (tflite_file.builtin_code(model, op) == _DEQUANTIZE and len(inputs) == 1
            and inputs[0] >= 0 and subgraph.tensors[inputs[0]].type == INT4
            and model.buffers[subgraph.tensors[inputs[0]].buffer].data is not None)


def dequantized_int4(model, op, subgraph) -> tuple[int, np.ndarray]:
    """(output tensor index, the float32 array a DEQUANTIZE of an INT4 constant outputs)."""
    outputs = _ints(op.outputs)
    source = subgraph.tensors[int(op.inputs[0])]
    codes, scales = _int4_codes(model, source)
    if len(outputs) != 1 or scales.size != 1:
        raise tflite_file.TFLiteFileError(f"DEQUANTIZE of INT4 {source.name!r}: {len(outputs)} "
                                         f"outputs and {scales.size} scales, not 1 and 1")
    return outputs[0], (codes.astype(np.float32) * scales[0]).astype(np.float32)


def _conv_opcode(model) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == _CONV_2D and not code.customCode:
            return index
    from ai_edge_litert import schema_py_generated as schema
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = _CONV_2D
    code.version = 3   # int8 per-channel filters
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def unfused_conv(model, op, subgraph, conv_opcode: int):
    """The CONV_2D that computes what the BitTTSTernaryConv `op` does, its
    filter [Cout, 1, K, Cin] a new constant tensor (float32 codes * beta, or
    int8 codes whose one scale is beta). Its record is checked first."""
    from ai_edge_litert import schema_py_generated as schema
    inputs, outputs = _ints(op.inputs), _ints(op.outputs)
    if len(inputs) not in (3, 4) or len(outputs) != 1 or min(inputs[:3] + outputs) < 0:
        raise tflite_file.TFLiteFileError(f"a {spec.CONV_OP_NAME} op has inputs {inputs} and "
                                         f"outputs {outputs}, not 3 or 4 and 1")
    try:
        options = spec.parse_conv_options(bytes(op.customOptions if op.customOptions is not None
                                                else b""))
    except ValueError as error:
        raise tflite_file.TFLiteFileError(str(error)) from None
    x, packed, scale, y = (subgraph.tensors[i] for i in inputs[:3] + outputs)
    x_shape, y_shape = _ints(x.shape), _ints(y.shape)
    if len(x_shape) != 4 or len(y_shape) != 4 or min(x_shape + y_shape) < 1:
        raise tflite_file.TFLiteFileError(f"{spec.CONV_OP_NAME} input {x_shape} or output "
                                         f"{y_shape} is not a 4-D shape")
    shape = (y_shape[3], 1, options["kernel_size"], x_shape[3])
    count = int(np.prod(shape, dtype=np.int64))
    raw = _buffer(model, packed)
    try:
        codes = packing.decode(raw.view(np.int8), count).reshape(shape)
    except ValueError as error:
        raise tflite_file.TFLiteFileError(f"{spec.CONV_OP_NAME} packed input: {error}") from None
    beta = _beta(model, scale, spec.CONV_OP_NAME)
    buffer = schema.BufferT()
    filter_tensor = schema.TensorT()
    filter_tensor.shape = np.asarray(shape, np.int32)
    filter_tensor.name = bytes(y.name or b"") + b"/filter"
    if x.type == INT8:
        buffer.data = np.frombuffer(codes.astype(np.int8).tobytes(), np.uint8).copy()
        filter_tensor.type = INT8
        # One scale, or one a channel as the bias has them: XNNPACK refused
        # a per-tensor filter beside a per-channel bias ("failed to prepare").
        channels = 1
        if len(inputs) == 4 and inputs[3] >= 0:
            bias_q = subgraph.tensors[inputs[3]].quantization
            if bias_q is not None and bias_q.scale is not None and len(bias_q.scale) == shape[0]:
                channels = shape[0]
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = [beta] * channels, [0] * channels, 0
        filter_tensor.quantization = q
    else:
        weights = (codes.astype(np.float32) * np.float32(beta)).astype(np.float32)
        buffer.data = np.frombuffer(weights.tobytes(), np.uint8).copy()
        filter_tensor.type = FLOAT32
    model.buffers.append(buffer)
    filter_tensor.buffer = len(model.buffers) - 1
    subgraph.tensors.append(filter_tensor)
    conv_options = schema.Conv2DOptionsT()
    conv_options.padding = options["padding"]
    conv_options.strideW, conv_options.strideH = options["stride"], 1
    conv_options.dilationWFactor, conv_options.dilationHFactor = options["dilation"], 1
    conv_options.fusedActivationFunction = options["activation"]
    conv = schema.OperatorT()
    conv.opcodeIndex = conv_opcode
    conv.inputs = np.asarray([inputs[0], len(subgraph.tensors) - 1,
                              inputs[3] if len(inputs) == 4 else -1], np.int32)
    conv.outputs = np.asarray(outputs, np.int32)
    conv.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = conv_options
    return conv


def _widen_int4_filters(model, subgraph) -> None:
    """Each INT4 constant an op still reads (an int8 graph's filter) -> INT8,
    same codes and scales."""
    read = {i for op in subgraph.operators for i in _ints(op.inputs) if i >= 0}
    for index in sorted(read):
        tensor = subgraph.tensors[index]
        if tensor.type != INT4 or model.buffers[tensor.buffer].data is None:
            continue
        codes, _ = _int4_codes(model, tensor)
        buffer = type(model.buffers[0])()
        buffer.data = np.frombuffer(codes.astype(np.int8).tobytes(), np.uint8).copy()
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        tensor.type = INT8


def decode_at_load(model_bytes: bytes, name: str = "model",
                   kernels: list[int] | None = None) -> bytes:
    """The model with every BitTTSTernaryDecode op (and DEQUANTIZE of an INT4
    constant) replaced by its constant output, every BitTTSTernaryConv by a
    CONV_2D with a constant filter and every INT4 filter widened to INT8.
    `kernels`, when given, receives the indices (subgraph 0) of the tensors
    that now hold decoded ternary kernels."""
    model = tflite_file.parse_model(model_bytes, name)
    decode_codes = tflite_file.custom_opcodes(model, spec.OP_NAME)
    fused_codes = tflite_file.custom_opcodes(model, spec.CONV_OP_NAME)
    has_int4 = any(t.type == INT4 for sg in model.subgraphs for t in (sg.tensors or []))
    if not decode_codes and not fused_codes and not has_int4:
        return model_bytes
    conv_opcode = _conv_opcode(model) if fused_codes else -1
    packed_buffers = set()
    found = []
    for sg_index, subgraph in enumerate(model.subgraphs):
        kept = []
        for op in subgraph.operators:
            if op.opcodeIndex in fused_codes:
                kept.append(unfused_conv(model, op, subgraph, conv_opcode))
                packed_buffers.add(subgraph.tensors[int(op.inputs[1])].buffer)
                if sg_index == 0:
                    found.append(int(kept[-1].inputs[1]))
                continue
            if _is_int4_dequantize(model, op, subgraph):
                output_index, weights = dequantized_int4(model, op, subgraph)
            elif op.opcodeIndex in decode_codes:
                output_index, weights = decoded_weights(model, op, subgraph)
                if sg_index == 0:
                    found.append(output_index)
            else:
                kept.append(op)
                continue
            buffer = type(model.buffers[0])()
            buffer.data = np.frombuffer(weights.tobytes(), np.uint8).copy()
            model.buffers.append(buffer)
            subgraph.tensors[output_index].buffer = len(model.buffers) - 1
            packed_buffers.update(subgraph.tensors[i].buffer for i in op.inputs)
        subgraph.operators = kept
        _widen_int4_filters(model, subgraph)
    # The packed inputs are read by no op now (one packed tensor may feed
    # several decode ops, so they go only after all are decoded).
    for index in packed_buffers:
        model.buffers[index].data = None
    if kernels is not None:
        kernels.extend(sorted(set(found)))
    return tflite_file.serialize_model(model)
