"""Keras model with ternary layers -> .tflite whose ternary weights are packed.

The model is first converted plainly by TensorFlow's converter, which folds
each layer's quantized kernel into a float constant, already in the layout
its TFLite op reads; `packer` then packs those constants, and `conversion_report`
compares the result with the float32 model's conversion.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import TYPE_CHECKING

import tensorflow as tf

from bittts_tf.export import ConversionError
from bittts_tf.export.packer import pack_ternary_weights
from bittts_tf.export.conversion_report import ConversionResult, float_tensor_reports

if TYPE_CHECKING:
    import keras


@contextlib.contextmanager
def captured_output():
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


class kernels_as_keras_computes_them:
    """Within the block, each QAT layer of `trackable` (Keras 3; a tf-keras
    model has none) holds its quantized kernel, as Keras computes it, and
    runs it as a float kernel: a function traced and converted in the block
    gets the Keras model's weights as constants. Traced with the quantizer
    instead, the converter folds round(w / scale) itself and can round a tie
    the other way: on a 4-bit vocoder one weight of 49,152 (block_1/expand)
    came out a code apart, so the graph was no longer the Keras model's."""

    def __init__(self, trackable):
        self.layers = [layer for layer in quantized_layers(trackable)
                       if layer.weight_bits != 32]

    def __enter__(self):
        self.saved = [(layer.weight_bits, layer.kernel.numpy()) for layer in self.layers]
        for layer in self.layers:
            layer.kernel.assign(layer.effective_kernel().astype(layer.kernel.dtype))
            layer.weight_bits = 32
        return self

    def __exit__(self, *exc):
        for layer, (bits, kernel) in zip(self.layers, self.saved):
            layer.weight_bits = bits
            layer.kernel.assign(kernel)
        return False


def quantized_layers(trackable) -> list:
    from bittts_tf.quant import layers as qlayers   # Keras 3: not for a tf-keras model's process

    return qlayers.quantized_layers(trackable)


def convert_float(model: keras.Model) -> bytes:
    """Plain TFLite conversion (float32 weights, or the quantized ones as
    Keras computes them) of a Keras 3 or a tf-keras model."""
    with captured_output(), kernels_as_keras_computes_them(model):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return bytes(converter.convert())


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


def convert(keras_model: keras.Model) -> ConversionResult:
    """The full conversion, with the float32 baseline for the size report."""
    packed, ternary_rows = pack_ternary_weights(keras_model, convert_float(keras_model))
    baseline = convert_float(float32_model(keras_model))
    return ConversionResult(packed, len(baseline), ternary_rows + float_tensor_reports(packed))
