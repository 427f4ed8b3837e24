"""A TFMOT-quantized tf-keras model -> .tflite with packed ternary kernels.

The packer (`bittts_tf.export.packer`) packs layers it knows through
`.name`, `.is_ternary`, `.effective_kernel()` and `.ternary_codes()`;
`ternary_kernels` describes each ternary weight of a QuantizeWrapper that
way, and `convert` runs the usual conversion on those descriptions.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot

# validate imports Keras 3 modules (as TFMOT itself does) but builds nothing with them.
from bittts_tf.export import ConversionError, conversion_report, converter, packer, validate
from bittts_tf.export.keras_io import ModelFileError, check_tf_keras_model_path
from bittts_tf.litert import native
from bittts_tf.quant import quantizers
from bittts_tf.tfmot.quantizer import TernaryWeightQuantizer
from bittts_tf.tfmot.scheme import quantize_scope




@dataclasses.dataclass(frozen=True)
class TernaryKernel:
    """One ternary weight of a TFMOT-wrapped layer, as the converter sees it."""

    name: str  # the wrapper's name, which TensorFlow puts in the graph's op names
    layer_type: str  # the wrapped layer's class: which TFLite ops it may become
    weight: object  # the latent (float) variable, Keras layout

    is_ternary = True

    def effective_kernel(self) -> np.ndarray:
        """The kernel the forward pass uses: the same TensorFlow ops as the
        wrapper's quantizer, so it equals the constant the TFLite converter folds."""
        return np.asarray(TernaryWeightQuantizer()(tf.convert_to_tensor(self.weight), False, {}),
                          np.float32)

    def ternary_codes(self) -> tuple[np.ndarray, float]:
        codes, beta = quantizers.ternary_codes(tf.convert_to_tensor(self.weight))
        return np.asarray(codes).astype(np.int8), float(beta)


def _walk(layer):
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _walk(sub)


def ternary_kernels(model) -> list[TernaryKernel]:
    """Every weight a TernaryWeightQuantizer quantizes in `model` (nested
    models included), in layer order."""
    found = []
    for layer in _walk(model):
        if not isinstance(layer, tfmot.quantization.keras.QuantizeWrapper):
            continue
        for weight, quantizer, _ in layer._weight_vars:  # TFMOT keeps no public list of them
            if isinstance(quantizer, TernaryWeightQuantizer):
                found.append(TernaryKernel(layer.name, type(layer.layer).__name__, weight))
    return found


def _has_activation_quantizers(model) -> bool:
    return any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
               and (layer._quantize_activations or layer._output_quantizers)
               or type(layer).__name__ == "QuantizeLayer"
               for layer in _walk(model))


def _convert_int8(model) -> bytes:
    """TFLite's integer conversion: the fake-quant ranges TFMOT trained become
    the activations' int8 scales, the (ternary) float kernels int8 weights."""
    with converter.captured_output():
        lite = tf.lite.TFLiteConverter.from_keras_model(model)
        lite.optimizations = [tf.lite.Optimize.DEFAULT]
        return bytes(lite.convert())


def convert(model, integer: bool = False) -> conversion_report.ConversionResult:
    """The packed conversion of a model quantized with bittts_tf.tfmot, with
    the size report. float32_tflite_bytes is the same model converted without
    packing (its kernels stored as float32).

    integer=True (for 8-bit activations only): TFLite's int8 conversion, whose
    ternary kernels become int8 codes {-1, 0, 1} decoded by the op."""
    kernels = ternary_kernels(model)
    if not kernels:
        raise ConversionError("the model has no layer quantized by "
                              "TernaryWeightQuantizer (annotate it, then quantize_apply)")
    float_tflite = converter.convert_float(model)
    if integer:
        if not _has_activation_quantizers(model):
            raise ConversionError(
                "integer=True needs 8-bit activations (quantize_apply(model, "
                "activations='8bit')): this model's activations are float")
        packed, rows = packer.pack_int8_ternary_layers(kernels, _convert_int8(model))
        rows += conversion_report.int8_tensor_reports(packed)
    else:
        packed, rows = packer.pack_ternary_layers(kernels, float_tflite)
        rows += conversion_report.float_tensor_reports(packed)
    return conversion_report.ConversionResult(packed, len(float_tflite), rows)


def compare_litert(model, tflite_bytes: bytes, inputs: list[np.ndarray]) -> dict:
    """LiteRT (with BitTTSTernaryDecode) against the tf-keras model in
    inference mode: the largest absolute error and the max-norm relative error
    max |a - r| / max |r| over the outputs."""
    interpreter = native.make_interpreter(tflite_bytes)
    actual = native.run_interpreter(interpreter, inputs)
    expected = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    expected = [np.asarray(r, np.float32)
                for r in (expected if isinstance(expected, (list, tuple)) else [expected])]
    return {"max_abs_err": max(float(np.max(np.abs(a - r))) for a, r in zip(actual, expected)),
            "rel_err": max(validate.max_norm_relative_error(a, r)
                           for a, r in zip(actual, expected))}


def load_model(path) -> tf_keras.Model:
    """A tf-keras model saved with its TFMOT wrappers: a SavedModel directory
    or an .h5 file."""
    path = check_tf_keras_model_path(path)
    try:
        with quantize_scope():
            return tf_keras.models.load_model(os.fspath(path), compile=False)
    except Exception as error:  # h5, protobuf and config errors all mean "unreadable"
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        raise ModelFileError(f"{path}: not a readable tf-keras model ({first_line})") from None
