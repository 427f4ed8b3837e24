"""Flatbuffer surgery on a parsed model (`ModelT`): reading a constant's
values, adding buffers, tensors and decode ops, and replacing a constant
kernel by packed indices that BitTTSTernaryDecode decodes right before each
op that reads it, or by a 4-bit INT4 tensor (read by the int8 op itself, or
by a DEQUANTIZE right before a float op).
"""

from __future__ import annotations

import copy

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import ConversionError
from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT4, INT8
from bittts_tf.quant import packing, spec

_CUSTOM = schema.BuiltinOperator.CUSTOM
_DEQUANTIZE = schema.BuiltinOperator.DEQUANTIZE
# LiteRT 2.3.0 runs an INT4 DEQUANTIZE at every op version (1..7 measured);
# 6 is the one its op versioning gives an INT4 input.
_DEQUANTIZE_INT4_VERSION = 6


def tensor_data(model, tensor) -> np.ndarray | None:
    buffer = model.buffers[tensor.buffer]
    if tensor.type != FLOAT32 or buffer.data is None or len(buffer.data) == 0:
        return None
    return np.frombuffer(bytes(buffer.data), np.float32).reshape(tuple(tensor.shape))


def scales(tensor) -> np.ndarray | None:
    quantization = tensor.quantization
    if quantization is None or quantization.scale is None or len(quantization.scale) == 0:
        return None
    return np.asarray(quantization.scale, np.float32)


def zero_points(tensor) -> np.ndarray:
    points = tensor.quantization.zeroPoint if tensor.quantization is not None else None
    return np.zeros(1, np.int64) if points is None or len(points) == 0 else np.asarray(points)


def dequantized(model, tensor) -> np.ndarray | None:
    """The real values of a constant int8 or int4 tensor with scales (one, or
    one per slice of its quantized dimension), else None."""
    buffer = model.buffers[tensor.buffer]
    factors = scales(tensor)
    if (tensor.type not in (INT8, INT4) or factors is None or buffer.data is None
            or len(buffer.data) == 0):
        return None
    shape = tuple(tensor.shape)
    raw = np.frombuffer(bytes(buffer.data), np.uint8)
    count = int(np.prod(shape, dtype=np.int64))
    try:
        codes = raw.view(np.int8) if tensor.type == INT8 else packing.decode_int4(raw, count)
        values = codes.reshape(shape).astype(np.float32)
    except (packing.PackingError, ValueError):
        return None
    points = zero_points(tensor).astype(np.float32)
    if len(factors) > 1:
        axis = tensor.quantization.quantizedDimension
        if axis >= len(shape) or shape[axis] != len(factors):
            return None
        broadcast = [1] * len(shape)
        broadcast[axis] = len(factors)
        factors = factors.reshape(broadcast)
        points = points.reshape(broadcast) if len(points) > 1 else points
    return (values - points) * factors


def add_buffer(model, data: bytes) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8).copy()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def add_tensor(subgraph, name: str, shape, tensor_type: int, buffer: int,
               quantization=None) -> int:
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.asarray(shape, np.int32)
    tensor.type = tensor_type
    tensor.buffer = buffer
    tensor.quantization = copy.deepcopy(quantization)
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def custom_opcode(model, op_name: str, version: int) -> tuple[int, int]:
    """(index, version) of the operator code of custom op `op_name`: the
    model's own, or one of `version` added when the model has none."""
    for index in sorted(tflite_file.custom_opcodes(model, op_name)):
        return index, model.operatorCodes[index].version
    code = schema.OperatorCodeT()
    code.builtinCode = _CUSTOM
    code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = op_name.encode()
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1, version


def decode_opcode_index(model) -> int:
    """The operator code of our decode op, added when the model has none."""
    # The op version is the format version: a runtime registers the kernel per
    # version, so a model and a runtime of different formats cannot meet silently.
    index, version = custom_opcode(model, spec.OP_NAME, spec.FORMAT_VERSION)
    if version != spec.FORMAT_VERSION:
        raise ConversionError(f"the model already holds {spec.OP_NAME} ops of format "
                              f"version {version}")
    return index


def builtin_opcode_index(model, builtin: int, version: int) -> int:
    """The operator code of builtin op `builtin`: the model's own of that
    version, or one added."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def dequantize_opcode_index(model) -> int:
    return builtin_opcode_index(model, _DEQUANTIZE, _DEQUANTIZE_INT4_VERSION)


def replace_constant(model, buffer_index: int, packed, opcode_index: int, adopt=None) -> str:
    """Every tensor holding buffer `buffer_index` becomes the output of a decode
    op. Each op that reads such a tensor gets its own decode op right before
    it, all reading one packed tensor: the packed bytes are stored once (also
    when the converter shared one constant between layers with equal kernels)
    and each decoded kernel is live only around the op that reads it.

    `packed` is a `packing.PackedTernary` (decoded by BitTTSTernaryDecode,
    `opcode_index`) or a `packing.PackedInt4` (an INT4 tensor, dequantized by
    DEQUANTIZE, `opcode_index`, into float weights; int8 weights become the
    INT4 tensor themselves, which the int8 ops read: no op is added).

    For int8 weights, `adopt(subgraph, tensor index)` decides which int8
    tensors holding the buffer are decoded, and has moved their scale into
    their quantization parameters when it says yes; the others keep the bytes.
    Returns the name of the first tensor packed."""
    int4 = isinstance(packed, packing.PackedInt4)
    holder_type = FLOAT32 if adopt is None else INT8
    packed_buffer = add_buffer(model, packed.payload.tobytes())
    scale_buffer = None if int4 else add_buffer(model, np.float32([packed.scale]).tobytes())
    first_name = None
    others = 0  # tensors of another type or size sharing the bytes (equal zeros, say)
    for subgraph in model.subgraphs:
        holders = []
        # Listed first: adopting a tensor may add bias tensors to the subgraph.
        sharing = [i for i, t in enumerate(subgraph.tensors) if t.buffer == buffer_index]
        for i in sharing:
            t = subgraph.tensors[i]
            if (t.type == holder_type and int(np.prod(t.shape)) == packed.num_weights
                    and (adopt is None or adopt(subgraph, i))):
                holders.append(i)
            else:
                others += 1
        if not holders:
            continue
        name = subgraph.tensors[holders[0]].name.decode()
        first_name = first_name or name
        if int4 and adopt is not None:
            for holder in holders:
                subgraph.tensors[holder].type = INT4
                subgraph.tensors[holder].buffer = packed_buffer
            continue
        if int4:
            inputs = [add_tensor(subgraph, name + "/int4", packed.shape, INT4, packed_buffer,
                                 _one_scale(packed.scale))]
            make_op = dequantize_op
        else:
            inputs = [add_tensor(subgraph, name + "/ternary_indices", [packed.indices.size],
                                 INT8, packed_buffer),
                      add_tensor(subgraph, name + "/ternary_scale", [1], FLOAT32, scale_buffer)]
            make_op = decode_op
        before = {}  # id(consumer op) -> decode ops to insert before it
        for holder in holders:
            tensor = subgraph.tensors[holder]
            tensor.buffer = 0  # buffer 0 is the schema's empty buffer: a computed tensor
            consumers = [op for op in subgraph.operators
                         if op.inputs is not None and holder in [int(i) for i in op.inputs]]
            outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]
            for k, consumer in enumerate(consumers):
                output = holder
                if k > 0 or holder in outputs:
                    output = add_tensor(subgraph, f"{tensor.name.decode()}/decoded_{k}",
                                        tensor.shape, tensor.type, 0, tensor.quantization)
                    consumer.inputs = np.asarray(
                        [output if int(i) == holder else int(i) for i in consumer.inputs], np.int32)
                before.setdefault(id(consumer), []).append(make_op(opcode_index, inputs, output))
            if not consumers or holder in outputs:
                # Read by no op, or a graph output: decoded first thing.
                before.setdefault(None, []).append(make_op(opcode_index, inputs, holder))
        operators = list(before.get(None, []))
        for op in subgraph.operators:
            operators.extend(before.get(id(op), []))
            operators.append(op)
        subgraph.operators = operators
    if not others:
        model.buffers[buffer_index].data = None  # the float copy leaves the file
    return first_name


def _one_scale(scale: float):
    quantization = schema.QuantizationParametersT()
    quantization.scale = np.float32([scale])
    quantization.zeroPoint = np.zeros(1, np.int64)
    return quantization


def dequantize_op(opcode_index: int, inputs, output: int):
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray([output], np.int32)
    return op


def decode_op(opcode_index: int, inputs, output: int):
    op = dequantize_op(opcode_index, inputs, output)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return op


def readers(subgraph, index: int) -> list:
    return [op for op in subgraph.operators
            if op.inputs is not None and index in [int(i) for i in op.inputs]]


def is_shared(model, subgraph, index: int, op) -> bool:
    """Whether tensor `index` (or its buffer) serves more than `op`."""
    outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]
    if index in outputs or any(r is not op for r in readers(subgraph, index)):
        return True
    buffer = subgraph.tensors[index].buffer
    return sum(t.buffer == buffer for sg in model.subgraphs for t in sg.tensors) > 1
