"""Requantizing an int8 op's int32 bias when its weights get a new scale:
TFLite's integer kernels require the bias scale to be input scale * weight
scale."""

from __future__ import annotations

import copy

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import ConversionError, graph_surgery
from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT32


# Where an integer op reads its activations and its int32 bias, whose scale
# TFLite's kernels require to be input scale * weight scale.
_ACTIVATION_OPERAND = {
    schema.BuiltinOperator.CONV_2D: 0,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: 0,
    schema.BuiltinOperator.TRANSPOSE_CONV: 2,
    schema.BuiltinOperator.FULLY_CONNECTED: 0,
    schema.BuiltinOperator.BATCH_MATMUL: 0,
}
_BIAS_OPERAND = {
    schema.BuiltinOperator.CONV_2D: 2,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: 2,
    schema.BuiltinOperator.TRANSPOSE_CONV: 3,
    schema.BuiltinOperator.FULLY_CONNECTED: 2,
}


def requantize(model, subgraph, op, beta: float, layer_names: str) -> None:
    """Gives the int32 bias of `op` the scale input scale * `beta` that its
    new weight scale needs, its values rounded to the new step. A float bias
    (a hybrid op) reads real values and needs nothing; a bias tensor or buffer
    that serves other ops too is copied first, so they keep theirs."""
    builtin = tflite_file.builtin_code(model, op)
    at = _BIAS_OPERAND.get(builtin)
    if at is None or len(op.inputs) <= at or int(op.inputs[at]) < 0:
        return
    what = f"{tflite_file.builtin_names().get(builtin, builtin)} {subgraph.tensors[int(op.outputs[0])].name.decode()!r}"
    index = int(op.inputs[at])
    bias = subgraph.tensors[index]
    if bias.type == FLOAT32:
        return
    data = model.buffers[bias.buffer].data
    old_scales = graph_surgery.scales(bias)
    if bias.type != INT32 or old_scales is None or data is None or len(data) == 0:
        raise ConversionError(
            f"layer {layer_names}: the bias of {what} is not a constant int32 tensor with scales "
            f"(type {tflite_file.type_names().get(bias.type, bias.type)}), so it cannot follow the new "
            f"weight scale")
    activations = subgraph.tensors[int(op.inputs[_ACTIVATION_OPERAND[builtin]])]
    input_scales = graph_surgery.scales(activations)
    if input_scales is None or len(input_scales) != 1:
        raise ConversionError(f"layer {layer_names}: the input of {what} has no single "
                              f"quantization scale, so its int32 bias cannot be rescaled")
    new_scale = np.float32(float(input_scales[0]) * beta)
    values = np.frombuffer(bytes(data), np.int32).astype(np.float64)
    rescaled = np.round(values * old_scales.astype(np.float64) / np.float64(new_scale))
    limit = np.iinfo(np.int32)
    if rescaled.size and (rescaled.min() < limit.min or rescaled.max() > limit.max):
        raise ConversionError(f"layer {layer_names}: the bias of {what} overflows int32 at the "
                              f"weight scale {beta:g} ({rescaled.max():.3g})")
    quantization = copy.deepcopy(bias.quantization)
    quantization.scale = np.full(len(old_scales), new_scale, np.float32)
    quantization.zeroPoint = np.zeros(len(old_scales), np.int64)
    payload = rescaled.astype(np.int32).tobytes()
    if graph_surgery.is_shared(model, subgraph, index, op):
        copied = graph_surgery.add_tensor(subgraph, bias.name.decode() + "/rescaled", bias.shape,
                                          INT32, graph_surgery.add_buffer(model, payload),
                                          quantization)
        op.inputs = np.asarray([copied if k == at else int(i) for k, i in enumerate(op.inputs)],
                               np.int32)
    else:
        model.buffers[bias.buffer].data = np.frombuffer(payload, np.uint8).copy()
        bias.quantization = quantization
