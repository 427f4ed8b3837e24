"""Checks a converted model: LiteRT against Keras, and the C decoder against numpy.

The pass/fail bound (`verdict`):

* Interface: the .tflite takes as many inputs and gives as many outputs as
  the Keras model, position by position of the same rank and the same known
  sizes. The .tflite's outputs are taken in its signature's order (output_0,
  output_1, ...: the Keras order; the subgraph may list them otherwise) and
  compared position by position, so swapped outputs fail on their values
  even when their shapes agree.
* Float activations: relative max-norm error at most `tolerance` (1e-5):
  both compute the same float32 ops, in another order.
* 8-bit activations (absmax, codes -128..127, one step = max|x| / 128 of the
  layer's normalized input): Keras rounds x * 128 / max|x| and LiteRT rounds
  the same float32 value computed in another order. The two values differ by
  a few float32 ulps of numbers below 128, about 1e-5 of a step, so

  - no code may differ by more than one step (a tie resolved the other way
    moves a value to the neighbouring code, never further);
  - few codes may differ at all where they first differ: a value lands
    within 1e-5 of a half-step with probability about 2e-5. A flip upstream
    moves the inputs of the layers after it, which then flip by the dozen
    (seen: one flip in a first layer's 360 codes, then 27 of 1,440 and 52
    of 672 after it), so the bound is on the first layer whose codes differ,
    whose inputs both runtimes agree on: at most `max_flip_share` (1e-3) of
    its codes, or 2 of them in a small layer (at 2e-5 a value, 2 flips among
    a few hundred codes is already a one-in-ten-million draw);
  - the output may then move by what the flipped steps move it:
    `activation_tolerance` (2 / 128, two steps of an 8-bit grid relative to
    the output's max-norm); when no code differs, the float bound applies.
  A graph that computes anything else (a changed weight or bias, a missing
  op, another output) misses these by orders of magnitude.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.litert import native, tflite_file
from bittts_tf.quant import spec

if TYPE_CHECKING:
    import keras

_ROUND = schema.BuiltinOperator.ROUND

FLOAT_TOLERANCE = 1e-5
ACTIVATION_TOLERANCE = 2.0 / 128
MAX_FLIP_SHARE = 1e-3


class ValidationError(ValueError):
    """A .tflite that does not have its Keras model's interface."""


def _known_dims(shape) -> list:
    return [None if d is None or int(d) < 0 else int(d) for d in shape]


def _output_order(tflite_bytes: bytes) -> list[int] | None:
    """The output tensors in the Keras model's order: the converter names a
    Keras model's outputs output_0, output_1, ... in its signature, while the
    subgraph may list them in another order. None without such a signature."""
    model = tflite_file.parse_model(tflite_bytes)
    try:
        return tflite_file.signature_tensors(model)[1]
    except tflite_file.TFLiteFileError:
        return None


def ordered_output_details(interpreter, tflite_bytes: bytes) -> list[dict]:
    """The interpreter's output details in the Keras model's order."""
    details = interpreter.get_output_details()
    order = _output_order(tflite_bytes)
    if order is None:
        return details
    by_index = {d["index"]: d for d in details}
    if sorted(by_index) != sorted(order):
        raise ValidationError("the .tflite's signature names other tensors than its outputs")
    return [by_index[i] for i in order]


def check_interface(keras_model: keras.Model, tflite_bytes: bytes, name: str = "the .tflite") -> None:
    """Same number of inputs and outputs, and at each position the same rank
    and the same known sizes (batch and unknown dimensions aside)."""
    interpreter = native.make_interpreter(tflite_bytes)
    for kind, keras_shapes, details in (
            ("input", [t.shape for t in keras_model.inputs], interpreter.get_input_details()),
            ("output", [t.shape for t in keras_model.outputs],
             ordered_output_details(interpreter, tflite_bytes))):
        if len(details) != len(keras_shapes):
            raise ValidationError(f"{name} has {len(details)} {kind}(s), the Keras model "
                                  f"{len(keras_shapes)}")
        for position, (keras_shape, detail) in enumerate(zip(keras_shapes, details)):
            lite = _known_dims(detail.get("shape_signature", detail["shape"]))
            ours = _known_dims(keras_shape)
            same = len(lite) == len(ours) and all(
                a is None or b is None or a == b for a, b in zip(lite[1:], ours[1:]))
            if not same:
                raise ValidationError(f"{name}: {kind} {position} has shape {lite}, the Keras "
                                      f"model's {kind} {position} {ours}")


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
    rel_err: float                      # the worst output's
    quantized_activations: bool
    rounding_flips: int | None = None
    rounded_values: int | None = None
    # The first activation-quantized layer (graph order) whose codes differ.
    first_flips: int | None = None
    first_flipped_values: int | None = None
    largest_code_change: int | None = None   # in quantization steps
    output_rel_errs: list[float] | None = None

    def verdict(self, tolerance: float = FLOAT_TOLERANCE,
                activation_tolerance: float = ACTIVATION_TOLERANCE,
                max_flip_share: float = MAX_FLIP_SHARE) -> list[str]:
        """What fails the module docstring's bound; empty when it passes."""
        failures = []
        flips = self.rounding_flips or 0
        if self.quantized_activations:
            if self.largest_code_change > 1:
                failures.append(f"an activation code differs by {self.largest_code_change} "
                                "steps (at most 1: a tie rounded the other way)")
            allowed = max(2, int(max_flip_share * (self.first_flipped_values or 0)))
            if (self.first_flips or 0) > allowed:
                failures.append(f"{self.first_flips} of the {self.first_flipped_values} codes of "
                                f"the first layer whose codes differ do (at most {allowed})")
        bound = activation_tolerance if flips else tolerance
        if not self.rel_err <= bound:   # NaN fails too
            failures.append(f"relative (max-norm) output error {self.rel_err:.3e} is over "
                            f"{bound:.1e} ({flips} activation code(s) differ)")
        return failures

    @property
    def rounding_flip_share(self) -> float | None:
        if self.rounding_flips is None:
            return None
        return self.rounding_flips / max(self.rounded_values, 1)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rounding_flip_share": self.rounding_flip_share}


def _keras_activation_codes(keras_model, inputs) -> list[np.ndarray]:
    """Per activation-quantized layer, the rounded codes Keras computes."""
    import keras

    from bittts_tf.quant import layers as qlayers
    from bittts_tf.quant import quantizers
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
    """The outputs of every ROUND op, subgraph by subgraph (a while loop or
    a call puts ops in subgraphs after the first)."""
    model = tflite_file.parse_model(tflite_bytes)
    outputs = []
    for index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            if tflite_file.builtin_code(model, op) == _ROUND:
                outputs.append(interpreter.get_tensor(int(op.outputs[0]), index))
    return outputs


def compare_litert_keras(keras_model: keras.Model, tflite_bytes: bytes,
                         inputs: list[np.ndarray]) -> LiteRTComparison:
    """Runs both on `inputs`; with activation quantization, also counts the
    activations that LiteRT rounded to a different integer than Keras."""
    from bittts_tf.quant import layers as qlayers
    check_interface(keras_model, tflite_bytes)
    act_layers = [l for l in qlayers.quantized_layers(keras_model) if l.quantize_activations]
    interpreter = native.make_interpreter(tflite_bytes, preserve_all_tensors=bool(act_layers))
    native.run_interpreter(interpreter, inputs)
    actual = [interpreter.get_tensor(d["index"])
              for d in ordered_output_details(interpreter, tflite_bytes)]
    expected = keras_model(list(inputs) if len(keras_model.inputs) > 1 or isinstance(keras_model.input, list) else inputs[0])
    expected = [np.asarray(e) for e in (expected if isinstance(expected, (list, tuple)) else [expected])]
    if len(actual) != len(expected):
        raise ValidationError(f"the .tflite gave {len(actual)} outputs, Keras {len(expected)}")
    for position, (a, e) in enumerate(zip(actual, expected)):
        if a.shape != e.shape:
            raise ValidationError(f"output {position}: the .tflite gave shape {a.shape}, "
                                  f"Keras {e.shape}")
    max_abs = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    rel_errs = [max_norm_relative_error(a, e) for a, e in zip(actual, expected)]
    result = LiteRTComparison(max_abs, max(rel_errs), bool(act_layers), output_rel_errs=rel_errs)
    if act_layers:
        keras_codes = _keras_activation_codes(keras_model, inputs)
        litert_codes = _litert_round_outputs(interpreter, tflite_bytes)
        if len(litert_codes) != len(keras_codes):
            raise RuntimeError(f"{len(keras_codes)} activation-quantized layers but "
                               f"{len(litert_codes)} ROUND ops in the converted model")
        for k, l in zip(keras_codes, litert_codes):
            if k.size != l.size:
                raise RuntimeError(f"an activation-quantized layer rounds {k.size} values in "
                                   f"Keras, its ROUND op {l.size}")
        changes = [np.abs(k - l.reshape(k.shape)) for k, l in zip(keras_codes, litert_codes)]
        result.rounding_flips = int(sum(np.count_nonzero(c) for c in changes))
        result.rounded_values = int(sum(k.size for k in keras_codes))
        result.largest_code_change = int(max(float(np.max(c, initial=0)) for c in changes))
        first = next((c for c in changes if np.count_nonzero(c)), changes[0] if changes else None)
        if first is not None:
            result.first_flips, result.first_flipped_values = int(np.count_nonzero(first)), first.size
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
    decode_codes = tflite_file.custom_opcodes(model)
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in decode_codes:
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
        c_weights = native.c_decode_f32(t.indices, t.scale, t.num_weights)
        np_weights = native.numpy_decode_f32(t.indices, t.scale, t.num_weights)
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
    decode_codes = tflite_file.custom_opcodes(model)
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex in decode_codes:
                buffer = model.buffers[subgraph.tensors[int(op.inputs[0])].buffer]
                data = np.array(buffer.data, np.uint8).view(np.int8)
                data[len(data) // 2] = value
                buffer.data = data.view(np.uint8)
                return tflite_file.serialize_model(model)
    raise ValueError("model has no packed ternary tensors")
