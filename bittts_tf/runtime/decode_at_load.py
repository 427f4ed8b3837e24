"""Decoding packed ternary weights once, when a model is loaded.

LiteRT's default XNNPACK delegate takes only convolutions whose filters are
constants: with BitTTSTernaryDecode in the graph a decoder + vocoder graph ran
4.4x slower than its float32 conversion (6.17 ms against 1.39 ms, 1.06 M
ternary weights, one thread; measured 2026-11-30). So on a desktop
the packed file is what is stored and shipped, and the interpreter gets the
decoded weights as constants: each decode op is removed and its output
tensor becomes a constant holding what the op would have computed (float32,
or int8 codes in an int8 graph, whose scale stays in the tensor's
quantization parameters).
"""

from __future__ import annotations

import numpy as np

from bittts_tf.export import tflite_file
from bittts_tf.quant import packing, spec

_FLOAT32 = 0   # schema.TensorType.FLOAT32
_INT8 = 9      # schema.TensorType.INT8
_UINT8 = 3     # schema.TensorType.UINT8


def _decode_opcodes(model) -> set[int]:
    return {i for i, code in enumerate(model.operatorCodes)
            if code.customCode is not None and bytes(code.customCode).decode() == spec.OP_NAME}


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
    indices = raw.view(np.int8) if indices_tensor.type == _INT8 else raw
    try:
        codes = packing.decode(indices, count).reshape(shape)
    except ValueError as error:
        raise tflite_file.TFLiteFileError(f"decode input {indices_tensor.name!r}: {error}") from None
    if output.type == _INT8:
        return output_index, codes.astype(np.int8)
    if output.type != _FLOAT32:
        raise tflite_file.TFLiteFileError(f"decode output {output.name!r} has tensor type "
                                         f"{output.type}, not float32 or int8")
    scale = _buffer(model, scale_tensor)
    if scale.size != 4 or not np.isfinite(scale.view(np.float32)[0]):
        raise tflite_file.TFLiteFileError(f"decode scale {scale_tensor.name!r} is not one finite "
                                         "float32")
    return output_index, (codes.astype(np.float32) * scale.view(np.float32)[0]).astype(np.float32)


def decode_at_load(model_bytes: bytes, name: str = "model") -> bytes:
    """The model with every BitTTSTernaryDecode op replaced by its constant output."""
    model = tflite_file.parse_model(model_bytes, name)
    decode_codes = _decode_opcodes(model)
    if not decode_codes:
        return model_bytes
    packed_buffers = set()
    for subgraph in model.subgraphs:
        kept = []
        for op in subgraph.operators:
            if op.opcodeIndex not in decode_codes:
                kept.append(op)
                continue
            output_index, weights = decoded_weights(model, op, subgraph)
            buffer = type(model.buffers[0])()
            buffer.data = np.frombuffer(weights.tobytes(), np.uint8).copy()
            model.buffers.append(buffer)
            subgraph.tensors[output_index].buffer = len(model.buffers) - 1
            packed_buffers.update(subgraph.tensors[i].buffer for i in op.inputs)
        subgraph.operators = kept
    # The packed inputs are read by no op now (one packed tensor may feed
    # several decode ops, so they go only after all are decoded).
    for index in packed_buffers:
        model.buffers[index].data = None
    return tflite_file.serialize_model(model)
