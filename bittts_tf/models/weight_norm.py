"""Weight normalization (Salimans & Kingma 2016) on the QAT conv layers.

HiFi-GAN trains its convs with weight norm: kernel = g * v / ||v||, one g per
output channel. Here `kernel` itself is that product, so everything that reads
`layer.kernel` (the quantizer, `ternary_codes`, exporters) sees the effective
weights without knowing about the reparametrization.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.quant import QuantConv1D, QuantConv1DTranspose

_PACKAGE = "bittts_tf"
_NORM_EPSILON = 1e-12


class _WeightNormMixin:
    # Keras kernel layouts: Conv1D (k, in, out); Conv1DTranspose (k, out, in).
    _output_axis = -1

    def build(self, input_shape):
        super().build(input_shape)
        # g starts at 1: the initial kernel is the unit direction v / ||v|| of
        # each output channel. Every discriminator trained here started so
        # (an assign of g = ||v|| here was lost in the symbolic trace Keras
        # built the models by), and runs stay comparable with them.
        self.weight_norm_g = self.add_weight(
            name="weight_norm_g", shape=(self.filters,), initializer="ones", trainable=True,
            dtype=self.dtype)

    def _reduce_axes(self, rank):
        output_axis = self._output_axis % rank
        return [a for a in range(rank) if a != output_axis]

    def _direction_norm(self, v):
        return tf.sqrt(tf.reduce_sum(tf.square(v), axis=self._reduce_axes(len(v.shape)),
                                     keepdims=True) + _NORM_EPSILON)

    @property
    def kernel(self):
        if not self.built:
            raise AttributeError("build the layer before reading its kernel")
        v = tf.convert_to_tensor(self._kernel)
        shape = [1] * len(v.shape)
        shape[self._output_axis] = self.filters
        g = tf.reshape(tf.convert_to_tensor(self.weight_norm_g), shape)
        return v * (g / self._direction_norm(v))

    @kernel.setter
    def kernel(self, value):
        # Conv1DTranspose.build assigns `self.kernel`; the variable is the direction v.
        self._kernel = value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightNormConv1D(_WeightNormMixin, QuantConv1D):
    """QuantConv1D whose kernel is weight-normalized before it is quantized."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightNormConv1DTranspose(_WeightNormMixin, QuantConv1DTranspose):
    """QuantConv1DTranspose whose kernel is weight-normalized before it is quantized."""

    _output_axis = -2
