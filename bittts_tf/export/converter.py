"""Keras model with ternary layers -> .tflite whose ternary weights are packed.

The model is first converted plainly (the converter folds each layer's
quantized kernel into a float constant, already in the layout its TFLite op
reads). Each ternary layer is then found as the conv / matmul op whose weight
operand holds its kernel, and that constant is replaced by an int8 index
tensor (packed format version 2) and a float32 scale, decoded at run time by
the custom op BitTTSTernaryDecode placed just before the op that reads the
weights, so the decoded weights live only briefly in the arena.

An integer model (int8 weights with per-channel scales, int32 biases) is
packed the same way by `pack_int8_ternary_weights`: the decode op outputs the
int8 codes {-1, 0, 1}, the kernel's scale moves into the weight tensor's
quantization parameters, and each reader's bias is requantized to match.

Layers reach the packers as objects with `.name`, `.is_ternary`,
`.effective_kernel()` (Keras layout) and `.ternary_codes()`: the Keras 3 QAT
layers, or the descriptions `bittts_tf.tfmot` makes of TFMOT-wrapped tf-keras
layers (`pack_ternary_layers`). Keras 3 is imported only by the functions that
take a Keras 3 model: packing a tf-keras model needs none of it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import tflite_file
from bittts_tf.quant import packing, spec

if TYPE_CHECKING:
    import keras

_FLOAT32 = schema.TensorType.FLOAT32
_INT8 = schema.TensorType.INT8
_INT32 = schema.TensorType.INT32
_CUSTOM = schema.BuiltinOperator.CUSTOM


class ConversionError(RuntimeError):
    pass


class CheckpointModelError(ValueError):
    """A checkpoint that cannot give the requested model; the message names it."""


@dataclasses.dataclass
class TensorReport:
    tensor: str
    layer: str
    shape: list[int]
    weights: int
    stored_bytes: int
    bits_per_weight: float
    format: str  # "ternary-indexed", or a constant's type: "float32", "int8", "int32"


@contextlib.contextmanager
def _captured_output():
    """Sends the converter's stdout/stderr chatter (C++ logs included) to a
    temporary file; on failure its tail goes into the error message."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except Exception as error:
            sys.stdout.flush()
            sys.stderr.flush()
            sink.seek(0)
            tail = sink.read().decode(errors="replace").strip().splitlines()[-5:]
            raise ConversionError(f"TFLite conversion failed: {error}\n" + "\n".join(tail)) from error
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def convert_float(model: keras.Model) -> bytes:
    """Plain TFLite conversion (float32 weights, or the folded quantized ones)
    of a Keras 3 or a tf-keras model."""
    with _captured_output():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return bytes(converter.convert())


_WEIGHT_OPERAND = {
    schema.BuiltinOperator.CONV_2D: 1,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: 1,
    schema.BuiltinOperator.TRANSPOSE_CONV: 1,
    schema.BuiltinOperator.FULLY_CONNECTED: 1,
    schema.BuiltinOperator.BATCH_MATMUL: 1,
}
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
_TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items()
               if not name.startswith("_")}
# The ops each layer type is expected to become; another op with matching
# weights is still accepted (e.g. a one-input-channel conv as DEPTHWISE_CONV_2D).
# The plain Keras names are the layers that bittts_tf.tfmot wraps.
_CONV_OPS = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D}
_MATMUL_OPS = {schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.BATCH_MATMUL}
_EXPECTED_OPS = {
    "QuantConv1D": _CONV_OPS,
    "QuantConv1DTranspose": {schema.BuiltinOperator.TRANSPOSE_CONV},
    "QuantDense": _MATMUL_OPS,
    "Conv1D": _CONV_OPS,
    "Conv2D": _CONV_OPS,
    "DepthwiseConv2D": {schema.BuiltinOperator.DEPTHWISE_CONV_2D},
    "Dense": _MATMUL_OPS,
}


def _candidate_layouts(kernel: np.ndarray, target_shape: tuple[int, ...]):
    """Ways the converter may have laid out `kernel`: axis permutations, then reshape."""
    squeezed = tuple(d for d in target_shape if d != 1)
    for perm in itertools.permutations(range(kernel.ndim)):
        moved = kernel.transpose(perm)
        if tuple(d for d in moved.shape if d != 1) == squeezed:
            yield perm, moved.reshape(target_shape)


def _tensor_data(model, tensor) -> np.ndarray | None:
    buffer = model.buffers[tensor.buffer]
    if tensor.type != _FLOAT32 or buffer.data is None or len(buffer.data) == 0:
        return None
    return np.frombuffer(bytes(buffer.data), np.float32).reshape(tuple(tensor.shape))


def _scales(tensor) -> np.ndarray | None:
    quantization = tensor.quantization
    if quantization is None or quantization.scale is None or len(quantization.scale) == 0:
        return None
    return np.asarray(quantization.scale, np.float32)


def _zero_points(tensor) -> np.ndarray:
    points = tensor.quantization.zeroPoint if tensor.quantization is not None else None
    return np.zeros(1, np.int64) if points is None or len(points) == 0 else np.asarray(points)


def _dequantized(model, tensor) -> np.ndarray | None:
    """The real values of a constant int8 tensor with scales (one, or one per
    slice of its quantized dimension), else None."""
    buffer = model.buffers[tensor.buffer]
    scales = _scales(tensor)
    if tensor.type != _INT8 or scales is None or buffer.data is None or len(buffer.data) == 0:
        return None
    shape = tuple(tensor.shape)
    values = np.frombuffer(bytes(buffer.data), np.int8).reshape(shape).astype(np.float32)
    points = _zero_points(tensor).astype(np.float32)
    if len(scales) > 1:
        axis = tensor.quantization.quantizedDimension
        if axis >= len(shape) or shape[axis] != len(scales):
            return None
        broadcast = [1] * len(shape)
        broadcast[axis] = len(scales)
        scales = scales.reshape(broadcast)
        points = points.reshape(broadcast) if len(points) > 1 else points
    return (values - points) * scales


@dataclasses.dataclass
class _WeightSite:
    """The constant weight operand of one op."""

    subgraph: int
    op: object  # schema.OperatorT
    builtin: int
    tensor: int
    data: np.ndarray  # float32 (dequantized for int8 weights), in the op's layout
    names: tuple[str, ...]  # the weight tensor's and the op's output tensors' names
    quantized: bool = False  # int8 weights with scales in the tensor

    def __post_init__(self):
        # Invariant under every layout: rules out most layer / op pairs
        # without trying any permutation.
        self.max_abs = float(np.abs(self.data).max(initial=0.0))

    def describe(self, model) -> str:
        tensor = model.subgraphs[self.subgraph].tensors[self.tensor]
        return f"{tflite_file.builtin_names().get(self.builtin, self.builtin)} weights {tensor.name.decode()!r}"


def _weight_sites(model) -> list[_WeightSite]:
    """The weight operand of every conv / matmul op whose weights are a float32
    constant or an int8 constant with scales (read as its real values)."""
    sites = []
    for sg_index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            builtin = tflite_file.builtin_code(model, op)
            operand = _WEIGHT_OPERAND.get(builtin)
            if operand is None or op.inputs is None or len(op.inputs) <= operand:
                continue
            t_index = int(op.inputs[operand])
            if t_index < 0:
                continue
            tensor = subgraph.tensors[t_index]
            data = _tensor_data(model, tensor)
            quantized = data is None
            if quantized:
                data = _dequantized(model, tensor)
            if data is None:
                continue
            names = (tensor.name.decode(),) + tuple(
                subgraph.tensors[int(o)].name.decode() for o in (op.outputs or []) if o >= 0)
            sites.append(_WeightSite(sg_index, op, builtin, t_index, data, names, quantized))
    return sites


def _equal_in_some_layout(kernel: np.ndarray, site: _WeightSite) -> bool:
    """Whether the op's weights are `kernel` (a layer's effective kernel, Keras
    layout) in some layout, to float32 rounding."""
    if kernel.size != site.data.size:
        return False
    kernel_max = float(np.abs(kernel).max(initial=0.0))
    tolerance = 1e-6 * max(kernel_max, 1e-30)
    if abs(kernel_max - site.max_abs) > tolerance:
        return False
    return any(np.allclose(layout, site.data, rtol=0, atol=tolerance)
               for _, layout in _candidate_layouts(kernel, site.data.shape))


def _scaled_relation(kernel: np.ndarray, data: np.ndarray) -> str | None:
    """When `data` is not `kernel` itself: "scaled" if it is the kernel times
    one factor in some layout (a folded scalar multiply: still ternary),
    "per-channel" if times a factor per slice of one axis (a folded
    BatchNormalization or channel multiply: no longer ternary), else None."""
    if kernel.size != data.size:
        return None
    found = None
    for _, layout in _candidate_layouts(kernel, data.shape):
        nonzero = layout != 0
        if not nonzero.any() or np.any(data[~nonzero] != 0):
            continue
        ratio = np.where(nonzero, data / np.where(nonzero, layout, 1), np.nan)
        values = ratio[nonzero]
        if np.allclose(values, values[0], rtol=1e-5, atol=0):
            return "scaled"
        for axis in range(data.ndim):
            if data.shape[axis] < 2:
                continue
            slices = np.moveaxis(ratio, axis, 0).reshape(data.shape[axis], -1)
            known = ~np.isnan(slices)
            low = np.min(slices, axis=1, initial=np.inf, where=known)
            high = np.max(slices, axis=1, initial=-np.inf, where=known)
            spread_ok = (high - low <= 1e-5 * np.abs(high)) | ~known.any(axis=1)
            if np.all(spread_ok):
                found = "per-channel"
    return found


_NAME_SEPARATORS = "/;:"


def _name_score(layer_name: str, names) -> int:
    """2 when a tensor name has the layer's name as a path component, 1 when
    only with the suffix TensorFlow adds to uniquify a name scope (name_1)."""
    score = 0
    for name in names:
        for part in re.split(f"[{re.escape(_NAME_SEPARATORS)}]", name):
            if part == layer_name:
                score = max(score, 2)
            elif re.fullmatch(re.escape(layer_name) + r"(_\d+)+", part):
                score = max(score, 1)
    return score


def _best_site(layer, matches: list[_WeightSite], claimed: set[int]) -> _WeightSite:
    """Among ops whose weights match: one no other layer took, of the op type
    the layer becomes, with the layer's name in its tensor names."""
    expected = _EXPECTED_OPS.get(_layer_family(layer), set())
    return max(matches, key=lambda site: (id(site) not in claimed, site.builtin in expected,
                                          _name_score(layer.name, site.names)))


def _unmatched_error(model, layer, sites: list[_WeightSite]) -> ConversionError:
    kernel = layer.effective_kernel()
    folded = [site for site in sites if _scaled_relation(kernel, site.data) == "per-channel"]
    if folded:
        return ConversionError(
            f"layer {layer.name!r}: the TFLite converter folded a per-channel factor (a "
            f"BatchNormalization or constant multiply after the layer) into its kernel "
            f"({folded[0].describe(model)}), which is no longer ternary; put a nonlinearity "
            f"between them, or fold the factor into the next layer, before converting")
    return ConversionError(
        f"layer {layer.name!r}: no CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV / "
        f"FULLY_CONNECTED / BATCH_MATMUL in the converted model has its kernel (shape "
        f"{list(kernel.shape)}) as constant weights (is the layer unused in this graph?)")


def _assign_sites(model, layers: list, sites: list[_WeightSite]) -> list[_WeightSite]:
    """The op (weight site) of each layer. Layers whose kernel appears as it is
    choose first, so that a layer matching only a scaled copy (a folded scalar
    multiply) cannot take the op of a layer with the same codes."""
    chosen: dict[int, _WeightSite] = {}
    claimed: set[int] = set()
    pending = []
    for i, layer in enumerate(layers):
        kernel = layer.effective_kernel()
        matches = [site for site in sites if _equal_in_some_layout(kernel, site)]
        if matches:
            chosen[i] = _best_site(layer, matches, claimed)
            claimed.add(id(chosen[i]))
        else:
            pending.append(i)
    for i in pending:
        kernel = layers[i].effective_kernel()
        matches = [site for site in sites if _scaled_relation(kernel, site.data) == "scaled"]
        if not matches:
            raise _unmatched_error(model, layers[i], sites)
        chosen[i] = _best_site(layers[i], matches, claimed)
        claimed.add(id(chosen[i]))
    return [chosen[i] for i in range(len(layers))]


def _layer_family(layer) -> str:
    """The key of `_EXPECTED_OPS` for a layer: its class or a base class, or
    for a layer description, the class it names in `.layer_type`."""
    names = [getattr(layer, "layer_type", None)] + [cls.__name__ for cls in type(layer).__mro__]
    return next((name for name in names if name in _EXPECTED_OPS), "")


def _codes_and_scale(data: np.ndarray, layers: list, default_scale: float) -> tuple[np.ndarray, float]:
    magnitudes = np.abs(data[data != 0])
    if magnitudes.size == 0:
        return np.zeros(data.shape, np.int8), default_scale
    scale = float(magnitudes.max())
    if not np.allclose(magnitudes, scale, rtol=1e-6, atol=0):
        names = ", ".join(repr(layer.name) for layer in layers)
        raise ConversionError(f"layer{'s' if len(layers) > 1 else ''} {names}: the weights in "
                              f"the converted model are not ternary "
                              f"({np.unique(magnitudes).size} distinct magnitudes)")
    return np.sign(data).astype(np.int8), scale


def _add_buffer(model, data: bytes) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8).copy()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _add_tensor(subgraph, name: str, shape, tensor_type: int, buffer: int,
                quantization=None) -> int:
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.asarray(shape, np.int32)
    tensor.type = tensor_type
    tensor.buffer = buffer
    tensor.quantization = copy.deepcopy(quantization)
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _decode_opcode_index(model) -> int:
    for index, code in enumerate(model.operatorCodes):
        if code.customCode is not None and code.customCode.decode() == spec.OP_NAME:
            if code.version != spec.FORMAT_VERSION:
                raise ConversionError(f"the model already holds {spec.OP_NAME} ops of format "
                                      f"version {code.version}")
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = _CUSTOM
    code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = spec.OP_NAME.encode()
    # The op version is the format version: a runtime registers the kernel per
    # version, so a model and a runtime of different formats cannot meet silently.
    code.version = spec.FORMAT_VERSION
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _decode_op(opcode_index: int, inputs, output: int):
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray([output], np.int32)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return op


def _is_ternary(layer) -> bool:
    return getattr(layer, "is_ternary", False)


def _default_scale(layers) -> float:
    """The scale stored for an all-zero kernel: any finite value decodes to zeros."""
    for layer in layers:
        beta = layer.ternary_codes()[1]
        if np.isfinite(beta) and beta > 0:
            return float(beta)
    return 1.0


def _replace_constant(model, buffer_index: int, packed: packing.PackedTernary,
                      opcode_index: int, adopt=None) -> str:
    """Every tensor holding buffer `buffer_index` becomes the output of a decode
    op. Each op that reads such a tensor gets its own decode op right before
    it, all reading one packed tensor: the packed bytes are stored once (also
    when the converter shared one constant between layers with equal kernels)
    and each decoded kernel is live only around the op that reads it.

    For int8 weights, `adopt(subgraph, tensor index)` decides which int8
    tensors holding the buffer are decoded, and has moved their scale into
    their quantization parameters when it says yes; the others keep the bytes.
    Returns the name of the first tensor packed."""
    holder_type = _FLOAT32 if adopt is None else _INT8
    packed_buffer = _add_buffer(model, packed.indices.tobytes())
    scale_buffer = _add_buffer(model, np.float32([packed.scale]).tobytes())
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
        packed_index = _add_tensor(subgraph, name + "/ternary_indices", [packed.indices.size],
                                   _INT8, packed_buffer)
        scale_index = _add_tensor(subgraph, name + "/ternary_scale", [1], _FLOAT32, scale_buffer)
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
                    output = _add_tensor(subgraph, f"{tensor.name.decode()}/decoded_{k}",
                                         tensor.shape, tensor.type, 0, tensor.quantization)
                    consumer.inputs = np.asarray(
                        [output if int(i) == holder else int(i) for i in consumer.inputs], np.int32)
                before.setdefault(id(consumer), []).append(
                    _decode_op(opcode_index, [packed_index, scale_index], output))
            if not consumers or holder in outputs:
                # Read by no op, or a graph output: decoded first thing.
                before.setdefault(None, []).append(
                    _decode_op(opcode_index, [packed_index, scale_index], holder))
        operators = list(before.get(None, []))
        for op in subgraph.operators:
            operators.extend(before.get(id(op), []))
            operators.append(op)
        subgraph.operators = operators
    if not others:
        model.buffers[buffer_index].data = None  # the float copy leaves the file
    return first_name


def _readers(subgraph, index: int) -> list:
    return [op for op in subgraph.operators
            if op.inputs is not None and index in [int(i) for i in op.inputs]]


def _is_shared(model, subgraph, index: int, op) -> bool:
    """Whether tensor `index` (or its buffer) serves more than `op`."""
    outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]
    if index in outputs or any(r is not op for r in _readers(subgraph, index)):
        return True
    buffer = subgraph.tensors[index].buffer
    return sum(t.buffer == buffer for sg in model.subgraphs for t in sg.tensors) > 1


def _requantize_bias(model, subgraph, op, beta: float, layer_names: str) -> None:
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
    if bias.type == _FLOAT32:
        return
    data = model.buffers[bias.buffer].data
    old_scales = _scales(bias)
    if bias.type != _INT32 or old_scales is None or data is None or len(data) == 0:
        raise ConversionError(
            f"layer {layer_names}: the bias of {what} is not a constant int32 tensor with scales "
            f"(type {_TYPE_NAMES.get(bias.type, bias.type)}), so it cannot follow the new "
            f"weight scale")
    activations = subgraph.tensors[int(op.inputs[_ACTIVATION_OPERAND[builtin]])]
    input_scales = _scales(activations)
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
    if _is_shared(model, subgraph, index, op):
        copied = _add_tensor(subgraph, bias.name.decode() + "/rescaled", bias.shape, _INT32,
                             _add_buffer(model, payload), quantization)
        op.inputs = np.asarray([copied if k == at else int(i) for k, i in enumerate(op.inputs)],
                               np.int32)
    else:
        model.buffers[bias.buffer].data = np.frombuffer(payload, np.uint8).copy()
        bias.quantization = quantization


def _int8_adopter(model, layers: list, beta: float, refusals: dict):
    """The `adopt` of `_replace_constant` for int8 weights: an int8 tensor
    holding the packed buffer is decoded when it is symmetric, ternary in
    value and read only as the weight operand of conv / matmul ops; it then
    gets one scale `beta` (its own, if another tensor shares its bytes) for
    every channel, also an all-zero one, and each reader's bias follows; an
    all-zero tensor keeps the converter's largest scale. Why
    a tensor was left is noted in `refusals` (tensor index -> reason)."""
    names = ", ".join(repr(name) for name in dict.fromkeys(layer.name for layer in layers))

    def adopt(subgraph, index: int) -> bool:
        tensor = subgraph.tensors[index]
        scales = _scales(tensor)
        readers = _readers(subgraph, index)
        outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]
        reason = None
        if scales is None or np.any(scales <= 0) or np.any(_zero_points(tensor) != 0):
            reason = "its int8 weights are not symmetric with positive scales"
        elif index in outputs or any(
                [int(i) for i in op.inputs].count(index) != 1
                or _WEIGHT_OPERAND.get(tflite_file.builtin_code(model, op)) is None
                or int(op.inputs[_WEIGHT_OPERAND[tflite_file.builtin_code(model, op)]]) != index
                for op in readers):
            reason = "its int8 weights are also read elsewhere than as a conv / matmul's weights"
        else:
            data = _dequantized(model, tensor)
            try:
                _, own_beta = _codes_and_scale(data, layers, beta)
            except ConversionError as error:
                reason = str(error).split(": ", 1)[-1]
            if not data.any():
                # Any scale decodes to zeros; the converter's largest keeps the
                # readers' biases within int32 (a ternary beta of 1e-8 would not).
                own_beta = float(scales.max())
        if reason is not None:
            refusals[index] = reason
            return False
        for op in readers:
            _requantize_bias(model, subgraph, op, own_beta, names)
        tensor.quantization.scale = np.full(len(scales), own_beta, np.float32)
        tensor.quantization.zeroPoint = np.zeros(len(scales), np.int64)
        return True

    return adopt


def _quantized_layers(keras_model) -> list:
    from bittts_tf.quant import layers as qlayers

    return qlayers.quantized_layers(keras_model)


def _pack(layers: list, tflite_bytes: bytes, integer: bool):
    """Shared by the float and the integer packers (see their docstrings)."""
    model = tflite_file.parse_model(tflite_bytes, "converted model")
    layers = [layer for layer in layers if _is_ternary(layer)]
    if not layers:
        raise ConversionError("the model has no ternary layers to pack")
    groups: dict[tuple[int, bool], list] = {}  # (buffer, int8 weights) -> [(layer, site)]
    for layer, site in zip(layers, _assign_sites(model, layers, _weight_sites(model))):
        if site.quantized and not integer:
            raise ConversionError(f"layer {layer.name!r}: its weights in the converted model are "
                                  f"int8 ({site.describe(model)}); pack an integer model with "
                                  f"pack_int8_ternary_weights")
        buffer_index = model.subgraphs[site.subgraph].tensors[site.tensor].buffer
        groups.setdefault((buffer_index, site.quantized), []).append((layer, site))
    opcode_index = _decode_opcode_index(model)
    reports = []
    for (buffer_index, quantized), members in groups.items():
        layers = [layer for layer, _ in members]
        data = members[0][1].data
        codes, scale = _codes_and_scale(data, layers, _default_scale(layers))
        packed = packing.pack(codes, scale)
        decoded = packing.unpack(packed)
        if not np.allclose(decoded, data, rtol=1e-6, atol=0):
            raise ConversionError(f"layer {layers[0].name!r}: packed weights do not decode to "
                                  f"the converted model's weights")
        refusals: dict[int, str] = {}
        adopt = _int8_adopter(model, layers, scale, refusals) if quantized else None
        name = _replace_constant(model, buffer_index, packed, opcode_index, adopt)
        for layer, site in members:
            if model.subgraphs[site.subgraph].tensors[site.tensor].buffer == buffer_index:
                raise ConversionError(f"layer {layer.name!r}: {site.describe(model)} cannot hold "
                                      f"int8 codes: {refusals.get(site.tensor, 'not decoded')}")
        names = []
        for layer in layers:
            if layer.name not in names:
                names.append(layer.name)
        reports.append(TensorReport(name, ", ".join(names), [int(d) for d in data.shape],
                                    packed.num_weights, packed.nbytes,
                                    round(packed.bits_per_weight, 4), "ternary-indexed"))
    return tflite_file.serialize_model(model), reports


def pack_ternary_weights(keras_model, float_tflite: bytes):
    """Rewrites `float_tflite`: ternary kernels -> packed indices + decode op.

    Each ternary layer of `keras_model` (a keras.Model or any layer holding the
    layers of the graph) is mapped to the op that computes it: the conv / matmul
    op whose constant weight operand holds the layer's effective kernel in the
    op's layout (ties between equal kernels broken by the layer's name in the
    tensor names). Returns (tflite bytes, list of TensorReport for the packed
    tensors); raises ConversionError naming the layer that cannot be packed."""
    return _pack(_quantized_layers(keras_model), float_tflite, integer=False)


def pack_int8_ternary_weights(keras_model, int8_tflite: bytes):
    """Rewrites an integer model (TFLite's int8 conversion): ternary kernels ->
    packed indices + a decode op whose output holds the int8 codes {-1, 0, 1}.

    Layers are mapped to ops as in `pack_ternary_weights`, matching the real
    values of each op's int8 weights (int8 * per-channel scale). The decoded
    tensor keeps its zero points and quantized dimension and gets the
    kernel's scale beta for every channel; each reader's int32 bias is
    requantized to input scale * beta (TFLite's int8 kernels require that
    product), rounding its values to the 127x coarser step. Weights an op
    reads in float (a float fallback) are packed as by `pack_ternary_weights`.
    Returns (tflite bytes, TensorReport rows); raises ConversionError naming
    the layer whose weights are not exactly ternary or cannot be rewritten."""
    return _pack(_quantized_layers(keras_model), int8_tflite, integer=True)


def pack_ternary_layers(layers: list, float_tflite: bytes):
    """`pack_ternary_weights` for a list of layers or layer descriptions, each
    with `.name`, `.is_ternary`, `.effective_kernel()` (Keras layout),
    `.ternary_codes()` and optionally `.layer_type` (the Keras class name,
    which tells the TFLite ops the layer may become)."""
    return _pack(list(layers), float_tflite, integer=False)


def pack_int8_ternary_layers(layers: list, int8_tflite: bytes):
    """`pack_int8_ternary_weights` for a list of layers or layer descriptions
    (see `pack_ternary_layers`)."""
    return _pack(list(layers), int8_tflite, integer=True)


_CONSTANT_BITS = {_FLOAT32: 32.0, _INT8: 8.0, _INT32: 32.0}


def constant_tensor_reports(tflite_bytes: bytes,
                            types: tuple[int, ...] = (_FLOAT32,)) -> list[TensorReport]:
    """Every constant tensor of the given types still in a model (the decode
    ops' packed inputs aside), as report rows; format is the type's name."""
    model = tflite_file.parse_model(tflite_bytes)
    decode_codes = {i for i, code in enumerate(model.operatorCodes)
                    if code.customCode is not None and code.customCode.decode() == spec.OP_NAME}
    rows = []
    for subgraph in model.subgraphs:
        decode_inputs = {int(i) for op in subgraph.operators if op.opcodeIndex in decode_codes
                         for i in op.inputs}
        for index, tensor in enumerate(subgraph.tensors):
            data = model.buffers[tensor.buffer].data
            if (tensor.type not in types or index in decode_inputs or data is None
                    or len(data) == 0):
                continue
            weights = int(np.prod(tensor.shape, dtype=np.int64))
            rows.append(TensorReport(tensor.name.decode(), "", [int(d) for d in tensor.shape],
                                     weights, len(data), _CONSTANT_BITS[tensor.type],
                                     _TYPE_NAMES[tensor.type]))
    return rows


def float_tensor_reports(tflite_bytes: bytes) -> list[TensorReport]:
    """Every constant float32 tensor still in a model, as report rows."""
    return constant_tensor_reports(tflite_bytes, (_FLOAT32,))


def int8_tensor_reports(tflite_bytes: bytes) -> list[TensorReport]:
    """The constants of an integer model: int8 weights, int32 biases (and
    shape operands), float32 ones of the ops left in float."""
    return constant_tensor_reports(tflite_bytes, (_FLOAT32, _INT8, _INT32))


def float32_model(keras_model: keras.Model) -> keras.Model:
    """A copy of `keras_model` with every layer's weight quantization off.

    Its plain conversion is the float32 baseline the size report compares with."""
    config = keras_model.get_config()

    def strip(node):
        if isinstance(node, dict):
            return {k: (32.0 if k == "weight_bits" else strip(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    clone = keras_model.__class__.from_config(strip(config))
    clone.set_weights(keras_model.get_weights())
    return clone


@dataclasses.dataclass
class ConversionResult:
    tflite: bytes
    float32_tflite_bytes: int
    tensors: list[TensorReport]

    def summary(self) -> dict:
        ternary = [t for t in self.tensors if t.format == "ternary-indexed"]
        ternary_weights = sum(t.weights for t in ternary)
        ternary_bytes = sum(t.stored_bytes for t in ternary)
        return {
            "custom_op": spec.OP_NAME,
            "tflite_bytes": len(self.tflite),
            "float32_tflite_bytes": self.float32_tflite_bytes,
            "size_ratio_vs_float32": round(len(self.tflite) / self.float32_tflite_bytes, 4),
            "ternary_tensors": len(ternary),
            "ternary_weights": ternary_weights,
            "ternary_stored_bytes": ternary_bytes,
            "bits_per_ternary_weight": round(8.0 * ternary_bytes / max(ternary_weights, 1), 4),
            "float32_weights": sum(t.weights for t in self.tensors if t.format == "float32"),
        }

    def report(self) -> dict:
        return {**self.summary(), "tensors": [dataclasses.asdict(t) for t in self.tensors]}


def convert(keras_model: keras.Model) -> ConversionResult:
    """The full conversion, with the float32 baseline for the size report."""
    packed, ternary_rows = pack_ternary_weights(keras_model, convert_float(keras_model))
    baseline = convert_float(float32_model(keras_model))
    return ConversionResult(packed, len(baseline), ternary_rows + float_tensor_reports(packed))


def format_size_table(result: ConversionResult) -> str:
    lines = [f"{'tensor':60s} {'weights':>9s} {'bytes':>9s} {'bits/w':>7s}  format"]
    for t in result.tensors:
        lines.append(f"{t.tensor[-60:]:60s} {t.weights:9d} {t.stored_bytes:9d} "
                     f"{t.bits_per_weight:7.3f}  {t.format}")
    s = result.summary()
    lines.append(
        f"total: {s['tflite_bytes']} bytes .tflite vs {s['float32_tflite_bytes']} bytes float32 "
        f"({s['size_ratio_vs_float32']:.3f}x); {s['ternary_weights']} ternary weights at "
        f"{s['bits_per_ternary_weight']:.3f} bits each, scale included")
    return "\n".join(lines)


CHECKPOINT_MODELS = ("generator", "acoustic")


def model_from_checkpoint(path: str, which: str = "generator") -> keras.Model:
    """A model of a training checkpoint (a file, or a run / checkpoints
    directory: its newest checkpoint), ready for `convert`.

    "generator": the vocoder, wrapped as a keras.Model with a concrete input,
    mel [batch, frames, n_mels] -> waveform. "acoustic" is refused: its
    text -> mel path has a data-dependent length (durations), so it has no
    single graph; tools/export_tts.py exports it as fixed-shape graphs."""
    import keras

    from bittts_tf.models import build, configs
    from bittts_tf.training import checkpoints

    if which not in CHECKPOINT_MODELS:
        raise CheckpointModelError(f"model {which!r}: must be one of {CHECKPOINT_MODELS}")
    if which == "acoustic":
        raise CheckpointModelError(
            "the acoustic model's text -> mel path has a data-dependent "
            "length, so it has no single graph to convert; tools/export_tts.py exports it")
    try:
        found = checkpoints.of_run(path) if os.path.isdir(path) else [path]
        if not found:
            raise CheckpointModelError(f"{path}: no checkpoint in this directory")
        checkpoint = found[-1]
        manifest = checkpoints.read_manifest(checkpoint)
        layout = manifest.get("layout", {})
        if f"model/{which}" not in layout:
            raise CheckpointModelError(f"{checkpoint}: holds no {which} (it holds "
                                       f"{', '.join(sorted(layout)) or 'nothing'})")
        config = configs.ModelConfig.from_dict(manifest["model_config"])
        generator = build.build_generator(config)
        checkpoints.restore(checkpoint, {"generator": generator})
    except checkpoints.CheckpointError as error:
        raise CheckpointModelError(str(error)) from None
    mels = keras.Input((None, config.audio.n_mels), name="mel")
    return keras.Model(mels, generator(mels), name="generator")


def load_source_model(keras_model: str | None, checkpoint: str | None,
                      which: str = "generator") -> keras.Model:
    """The model a conversion starts from: a .keras file or a checkpoint's
    model, exactly one of them (the tools' --keras_model / --checkpoint)."""
    from bittts_tf.export import keras_io

    if (keras_model is None) == (checkpoint is None):
        raise CheckpointModelError("give exactly one of --keras_model and --checkpoint")
    if keras_model is not None:
        return keras_io.load_keras_model(keras_model)
    return model_from_checkpoint(checkpoint, which)
