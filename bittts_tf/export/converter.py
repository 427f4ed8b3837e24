"""Keras model with ternary layers -> .tflite whose ternary weights are packed.

The model is first converted plainly (the converter folds each layer's
quantized kernel into a float constant, already in the layout its TFLite op
reads). Each of those constants is then replaced by an int8 index tensor
(packed format version 2) and a float32 scale, decoded at run time by the
custom op BitTTSTernaryDecode placed just before the op that reads the
weights, so the decoded weights live only briefly in the arena.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import tflite_file
from bittts_tf.quant import layers as qlayers
from bittts_tf.quant import packing, spec

_FLOAT32 = schema.TensorType.FLOAT32
_INT8 = schema.TensorType.INT8
_CUSTOM = schema.BuiltinOperator.CUSTOM


class ConversionError(RuntimeError):
    pass


@dataclasses.dataclass
class TensorReport:
    tensor: str
    layer: str
    shape: list[int]
    weights: int
    stored_bytes: int
    bits_per_weight: float
    format: str  # "ternary-indexed" or "float32"


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
    """Plain TFLite conversion (float32 weights, or the folded quantized ones)."""
    with _captured_output():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return bytes(converter.convert())


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


def _find_kernel_tensor(model, layer, kernel: np.ndarray, claimed: set):
    """(subgraph index, tensor index, data) of the constant holding `kernel`."""
    matches = []
    for sg_index, subgraph in enumerate(model.subgraphs):
        for t_index, tensor in enumerate(subgraph.tensors):
            if (sg_index, t_index) in claimed or tensor.shape is None:
                continue
            if int(np.prod(tensor.shape)) != kernel.size:
                continue
            data = _tensor_data(model, tensor)
            if data is None:
                continue
            tolerance = 1e-6 * max(float(np.abs(kernel).max()), 1e-30)
            for _, candidate in _candidate_layouts(kernel, tuple(tensor.shape)):
                if np.allclose(candidate, data, rtol=0, atol=tolerance):
                    matches.append((sg_index, t_index, data))
                    break
    if not matches:
        raise ConversionError(f"layer {layer.name!r}: its kernel was not found as a constant in the converted model")
    return matches[0]


def _codes_and_scale(data: np.ndarray, layer) -> tuple[np.ndarray, float]:
    magnitudes = np.abs(data[data != 0])
    if magnitudes.size == 0:
        return np.zeros(data.shape, np.int8), float(layer.ternary_codes()[1])
    scale = float(magnitudes.max())
    if not np.allclose(magnitudes, scale, rtol=1e-6, atol=0):
        raise ConversionError(f"layer {layer.name!r}: folded kernel is not ternary (several magnitudes)")
    return np.sign(data).astype(np.int8), scale


def _add_buffer(model, data: bytes) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8).copy()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _add_tensor(model, subgraph, name: str, shape, tensor_type: int, data: bytes) -> int:
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.asarray(shape, np.int32)
    tensor.type = tensor_type
    tensor.buffer = _add_buffer(model, data)
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _decode_opcode_index(model) -> int:
    for index, code in enumerate(model.operatorCodes):
        if code.customCode is not None and code.customCode.decode() == spec.OP_NAME:
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


def _insert_decode_op(model, subgraph, opcode_index: int, inputs, output: int) -> None:
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray([output], np.int32)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    consumers = [i for i, other in enumerate(subgraph.operators)
                 if other.inputs is not None and output in list(other.inputs)]
    subgraph.operators.insert(consumers[0] if consumers else 0, op)


def _is_ternary(layer) -> bool:
    return getattr(layer, "is_ternary", False)


def pack_ternary_weights(keras_model: keras.Model, float_tflite: bytes):
    """Rewrites `float_tflite`: ternary kernels -> packed indices + decode op.

    Returns (tflite bytes, list of TensorReport for the packed tensors)."""
    model = tflite_file.parse_model(float_tflite, "converted model")
    opcode_index = _decode_opcode_index(model)
    claimed, reports = set(), []
    for layer in qlayers.quantized_layers(keras_model):
        if not _is_ternary(layer):
            continue
        kernel = layer.effective_kernel()
        sg_index, t_index, data = _find_kernel_tensor(model, layer, kernel, claimed)
        claimed.add((sg_index, t_index))
        subgraph = model.subgraphs[sg_index]
        tensor = subgraph.tensors[t_index]
        codes, scale = _codes_and_scale(data, layer)
        packed = packing.pack(codes, scale)
        shared = sum(1 for sg in model.subgraphs for t in sg.tensors if t.buffer == tensor.buffer)
        if shared > 1:
            raise ConversionError(f"layer {layer.name!r}: kernel buffer shared by {shared} tensors")
        model.buffers[tensor.buffer].data = None  # the float copy leaves the file
        tensor.buffer = 0  # buffer 0 is the schema's empty buffer: a computed tensor
        name = tensor.name.decode()
        packed_index = _add_tensor(model, subgraph, name + "/ternary_indices",
                                   [packed.indices.size], _INT8, packed.indices.tobytes())
        scale_index = _add_tensor(model, subgraph, name + "/ternary_scale", [1], _FLOAT32,
                                  np.float32([scale]).tobytes())
        _insert_decode_op(model, subgraph, opcode_index, [packed_index, scale_index], t_index)
        reports.append(TensorReport(name, layer.name, [int(d) for d in tensor.shape],
                                    packed.num_weights, packed.nbytes,
                                    round(packed.bits_per_weight, 4), "ternary-indexed"))
    if not reports:
        raise ConversionError("the model has no ternary layers to pack")
    return tflite_file.serialize_model(model), reports


def float_tensor_reports(tflite_bytes: bytes) -> list[TensorReport]:
    """Every constant float32 tensor still in a model, as report rows."""
    model = tflite_file.parse_model(tflite_bytes)
    rows = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = _tensor_data(model, tensor)
            if data is None or tensor.name.decode().endswith("/ternary_scale"):
                continue
            rows.append(TensorReport(tensor.name.decode(), "", [int(d) for d in tensor.shape],
                                     int(data.size), int(data.nbytes), 32.0, "float32"))
    return rows


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
