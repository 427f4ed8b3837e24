"""Keras layers whose weights are quantized in the forward pass (QAT).

`QuantConv1D`, `QuantConv1DTranspose` and `QuantDense` take `weight_bits`
(1.58 for ternary, 2/4/8 for the uniform baselines, None or 32 for float) and
`quantize_activations` (the paper's LayerNorm + 8-bit absmax input quantizer).
The `Ternary*` classes are the same layers with `weight_bits=1.58`.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bittts_tf.quant import bits, quantizers

_PACKAGE = "bittts_tf"


@dataclasses.dataclass(frozen=True)
class WeightPrecision:
    layer: str
    weight: str
    shape: tuple[int, ...]
    count: int
    bits: float


class _QuantizedKernelMixin:
    """Shared QAT behaviour: quantize the input and the kernel, then the float op."""

    def __init__(self, *args, weight_bits=bits.TERNARY_BITS, quantize_activations=False,
                 activation_bits=8, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self, "data_format", "channels_last") != "channels_last":
            raise ValueError(f"{type(self).__name__} supports channels_last only")
        self.weight_bits = bits.normalize_bits(weight_bits)
        self.quantize_activations = bool(quantize_activations)
        self.activation_bits = int(activation_bits)

    @property
    def is_ternary(self) -> bool:
        return self.weight_bits == bits.TERNARY_BITS

    @property
    def is_quantized(self) -> bool:
        return self.weight_bits != bits.FLOAT_BITS

    def quantize_input(self, x):
        if not self.quantize_activations:
            return x
        return quantizers.absmax_activation_quantize(
            quantizers.layer_norm(x), self.activation_bits)

    def quantized_kernel(self):
        if self.compute_dtype == self.variable_dtype:
            return quantizers.quantize_weights(self.kernel, self.weight_bits)
        # Mixed precision: quantize the float32 weights (the codes and scale of
        # float32 training), then cast for the float16/bfloat16 op.
        with keras.src.backend.common.variables.AutocastScope(None):
            kernel = tf.convert_to_tensor(self.kernel)
        return tf.cast(quantizers.quantize_weights(kernel, self.weight_bits), self.compute_dtype)

    def effective_kernel(self) -> np.ndarray:
        """The kernel the forward pass uses, in Keras layout."""
        return np.asarray(self.quantized_kernel(), np.float32)

    def ternary_codes(self) -> tuple[np.ndarray, float]:
        """int8 codes in {-1, 0, 1} (Keras layout) and the scale beta."""
        if not self.is_ternary:
            raise ValueError(f"layer {self.name!r} is not ternary (weight_bits={self.weight_bits})")
        codes, beta = quantizers.ternary_codes(tf.convert_to_tensor(self.kernel))
        return np.asarray(codes).astype(np.int8), float(beta)

    def weight_precisions(self) -> list[WeightPrecision]:
        rows = [WeightPrecision(self.name, "kernel", tuple(self.kernel.shape),
                                int(np.prod(self.kernel.shape)), self.weight_bits)]
        if self.use_bias:
            rows.append(WeightPrecision(self.name, "bias", tuple(self.bias.shape),
                                        int(np.prod(self.bias.shape)), bits.FLOAT_BITS))
        return rows

    def _add_bias_and_activation(self, outputs):
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(),
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations,
                "activation_bits": self.activation_bits}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantConv1D(_QuantizedKernelMixin, keras.layers.Conv1D):
    """Conv1D (same/causal/valid padding, strides, dilation) with QAT weights."""


    def call(self, inputs):
        x = self.quantize_input(inputs)
        padding = self.padding
        if padding == "causal":
            x = ops.pad(x, self._compute_causal_padding())
            padding = "valid"
        outputs = ops.conv(x, self.quantized_kernel(), strides=list(self.strides),
                           padding=padding, dilation_rate=self.dilation_rate,
                           data_format=self.data_format)
        return self._add_bias_and_activation(outputs)



@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantConv1DTranspose(_QuantizedKernelMixin, keras.layers.Conv1DTranspose):
    """Conv1DTranspose (the vocoder's upsampler) with QAT weights."""


    def call(self, inputs):
        x = self.quantize_input(inputs)
        outputs = ops.conv_transpose(
            x, self.quantized_kernel(), strides=list(self.strides), padding=self.padding,
            output_padding=self.output_padding, dilation_rate=self.dilation_rate,
            data_format=self.data_format)
        return self._add_bias_and_activation(outputs)



@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantDense(_QuantizedKernelMixin, keras.layers.Dense):
    """Dense with QAT weights. On sequences ([batch, time, channels]) it runs
    as a 1x1 convolution, so converted graphs get CONV_2D, not
    FULLY_CONNECTED: TFLite Micro's int8 FULLY_CONNECTED rounds differently
    from LiteRT's (80 of 102,400 outputs one step off on a random int8
    Dense, /tmp measurement of 2026-11-30), while their CONV_2D agree
    exactly. Same weights, same checkpoints."""


    def call(self, inputs):
        x = self.quantize_input(inputs)
        kernel = self.quantized_kernel()
        if len(x.shape) == 3:
            outputs = ops.conv(x, kernel[None], strides=1, padding="valid")
        else:
            outputs = ops.matmul(x, kernel)
        return self._add_bias_and_activation(outputs)



def _ternary(cls):
    """A subclass of `cls` whose weight_bits default is 1.58 and is fixed."""

    class Ternary(cls):
        def __init__(self, *args, **kwargs):
            kwargs.pop("weight_bits", None)
            super().__init__(*args, weight_bits=bits.TERNARY_BITS, **kwargs)

    Ternary.__name__ = Ternary.__qualname__ = cls.__name__.replace("Quant", "Ternary")
    Ternary.__doc__ = f"{cls.__name__} with ternary (1.58-bit) weights."
    return keras.saving.register_keras_serializable(package=_PACKAGE)(Ternary)


TernaryConv1D = _ternary(QuantConv1D)
TernaryConv1DTranspose = _ternary(QuantConv1DTranspose)
TernaryDense = _ternary(QuantDense)

QUANTIZED_LAYER_TYPES = (QuantConv1D, QuantConv1DTranspose, QuantDense)


def quantized_layers(model: keras.Model) -> list:
    """Every QAT layer in `model`, nested models included, in build order."""
    return [layer for layer in _walk(model) if isinstance(layer, QUANTIZED_LAYER_TYPES)]


def _walk(layer):
    yield layer
    for sub in getattr(layer, "_layers", None) or []:
        yield from _walk(sub)
