"""Checks a converted model: LiteRT against Keras, and the C decoder against numpy."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import runtime, tflite_file
from bittts_tf.quant import layers as qlayers
from bittts_tf.quant import quantizers, spec

_ROUND = schema.BuiltinOperator.ROUND


def max_norm_relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |a - r| / max |r|: the relative error in the max norm."""
    scale = float(np.max(np.abs(reference)))
    return float(np.max(np.abs(actual - reference))) / max(scale, 1e-30)


def random_inputs(keras_model: keras.Model, batch: int, length: int, seed: int) -> list[np.ndarray]:
    """Standard-normal inputs; unknown (None) dimensions after the batch become `length`."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in keras_model.inputs:
        shape = [batch] + [length if d is None else int(d) for d in tensor.shape[1:]]
        arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


@dataclasses.dataclass
class LiteRTComparison:
    max_abs_err: float
    rel_err: float
    quantized_activations: bool
    rounding_flips: int | None = None
    rounded_values: int | None = None

    @property
    def rounding_flip_share(self) -> float | None:
        if self.rounding_flips is None:
            return None
        return self.rounding_flips / max(self.rounded_values, 1)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rounding_flip_share": self.rounding_flip_share}


def _keras_activation_codes(keras_model, inputs) -> list[np.ndarray]:
    """Per activation-quantized layer, the rounded codes Keras computes."""
    layers = [l for l in qlayers.quantized_layers(keras_model) if l.quantize_activations]
    if not layers:
        return []
    probe = keras.Model(keras_model.inputs, [layer.input for layer in layers])
    layer_inputs = probe(list(inputs))
    if not isinstance(layer_inputs, (list, tuple)):
        layer_inputs = [layer_inputs]
    return [np.asarray(quantizers.absmax_activation_codes(
                quantizers.layer_norm(x), layer.activation_bits))
            for layer, x in zip(layers, layer_inputs)]


def _litert_round_outputs(interpreter, tflite_bytes: bytes) -> list[np.ndarray]:
    model = tflite_file.parse_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    outputs = []
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == _ROUND:
            outputs.append(interpreter.get_tensor(int(op.outputs[0])))
    return outputs


def compare_litert_keras(keras_model: keras.Model, tflite_bytes: bytes,
                         inputs: list[np.ndarray]) -> LiteRTComparison:
    """Runs both on `inputs`; with activation quantization, also counts the
    activations that LiteRT rounded to a different integer than Keras."""
    act_layers = [l for l in qlayers.quantized_layers(keras_model) if l.quantize_activations]
    interpreter = runtime.make_interpreter(tflite_bytes, preserve_all_tensors=bool(act_layers))
    actual = runtime.run_interpreter(interpreter, inputs)
    expected = keras_model(list(inputs) if len(keras_model.inputs) > 1 or isinstance(keras_model.input, list) else inputs[0])
    expected = [np.asarray(e) for e in (expected if isinstance(expected, (list, tuple)) else [expected])]
    max_abs = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    rel = max(max_norm_relative_error(a, e) for a, e in zip(actual, expected))
    result = LiteRTComparison(max_abs, rel, bool(act_layers))
    if act_layers:
        keras_codes = _keras_activation_codes(keras_model, inputs)
        litert_codes = _litert_round_outputs(interpreter, tflite_bytes)
        if len(litert_codes) != len(keras_codes):
            raise RuntimeError(f"{len(keras_codes)} activation-quantized layers but "
                               f"{len(litert_codes)} ROUND ops in the converted model")
        result.rounding_flips = int(sum(np.count_nonzero(k != l.reshape(k.shape))
                                        for k, l in zip(keras_codes, litert_codes)))
        result.rounded_values = int(sum(k.size for k in keras_codes))
    return result


@dataclasses.dataclass
class PackedTensor:
    name: str
    indices: np.ndarray
    scale: float
    num_weights: int


def packed_tensors(tflite_bytes: bytes) -> list[PackedTensor]:
    """The inputs of every BitTTSTernaryDecode op in a model."""
    model = tflite_file.parse_model(tflite_bytes)
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode is None or code.customCode.decode() != spec.OP_NAME:
                continue
            packed_t, scale_t = (subgraph.tensors[int(i)] for i in op.inputs)
            output_t = subgraph.tensors[int(op.outputs[0])]
            indices = np.frombuffer(bytes(model.buffers[packed_t.buffer].data), np.int8)
            scale = float(np.frombuffer(bytes(model.buffers[scale_t.buffer].data), np.float32)[0])
            found.append(PackedTensor(output_t.name.decode(), indices, scale,
                                      int(np.prod(output_t.shape))))
    return found


def compare_c_numpy_decode(tflite_bytes: bytes) -> dict:
    """Decodes every packed tensor with the C library and with numpy."""
    tensors = packed_tensors(tflite_bytes)
    mismatched = []
    for t in tensors:
        c_weights = runtime.c_decode_f32(t.indices, t.scale, t.num_weights)
        np_weights = runtime.numpy_decode_f32(t.indices, t.scale, t.num_weights)
        if not np.array_equal(c_weights, np_weights):
            mismatched.append(t.name)
    return {"packed_tensors": len(tensors), "weights": sum(t.num_weights for t in tensors),
            "c_numpy_mismatched_tensors": mismatched,
            "c_decode_equals_numpy": not mismatched and bool(tensors)}


def corrupt_indices(tflite_bytes: bytes, value: int = spec.MIN_INDEX - 1) -> bytes:
    """A copy of the model with one index byte of the first packed tensor set to
    `value` (an int8; the default is just below the valid range)."""
    if not -128 <= value <= 127:
        raise ValueError(f"value {value} is not an int8 byte (-128..127)")
    model = tflite_file.parse_model(tflite_bytes)
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode is not None and code.customCode.decode() == spec.OP_NAME:
                buffer = model.buffers[subgraph.tensors[int(op.inputs[0])].buffer]
                data = np.array(buffer.data, np.uint8).view(np.int8)
                data[len(data) // 2] = value
                buffer.data = data.view(np.uint8)
                return tflite_file.serialize_model(model)
    raise ValueError("model has no packed ternary tensors")
