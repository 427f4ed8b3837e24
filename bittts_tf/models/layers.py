"""Masked conv building blocks shared by the encoder, decoder and predictors.

Every block zeroes padded frames before each conv, so a padded utterance gives
the same valid outputs as the utterance alone ("same" padding pads with zeros).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.quant import QuantConv1D

_PACKAGE = "bittts_tf"


def mask_weights(lengths, max_length, dtype=tf.float32):
    """[B, T, 1] of 1.0 on valid frames, 0.0 on padding."""
    return tf.cast(tf.sequence_mask(lengths, max_length), dtype)[..., None]


class BuiltByFirstCall:
    """A composite layer whose sublayers build on its first call.

    Without a build() of its own, Keras builds such a layer by tracing call()
    on symbolic inputs and then running it again. For the tiny preset's three
    models (models.build calls each once, eagerly) that trace was 4.6 of the
    7.4 s of CPU building them took here.
    """

    def build(self, input_shape):
        del input_shape  # each sublayer sees its own shapes when it is called


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvBlock(BuiltByFirstCall, keras.layers.Layer):
    """conv -> ReLU -> LayerNorm -> dropout, with a residual connection."""

    def __init__(self, channels, kernel_size, dropout=0.1, weight_bits=32,
                 quantize_activations=False, residual=True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.dropout_rate = dropout
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        self.residual = residual
        self.conv = QuantConv1D(channels, kernel_size, padding="same", weight_bits=weight_bits,
                                quantize_activations=quantize_activations, name="conv")
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, x, weights, training=False):
        y = self.conv(x * weights)
        y = self.dropout(self.norm(tf.nn.relu(y)), training=training)
        if self.residual:
            y = y + x
        return y * weights

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "kernel_size": self.kernel_size, "dropout": self.dropout_rate,
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations, "residual": self.residual}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvStack(BuiltByFirstCall, keras.layers.Layer):
    """The encoder / decoder body: residual ConvBlocks at one width."""

    def __init__(self, channels, n_blocks, kernel_size, dropout=0.1, weight_bits=32,
                 quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.n_blocks = n_blocks
        self.kernel_size = kernel_size
        self.dropout_rate = dropout
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        self.blocks = [ConvBlock(channels, kernel_size, dropout, weight_bits,
                                 quantize_activations, name=f"block_{i}")
                       for i in range(n_blocks)]

    def call(self, x, weights, training=False):
        for block in self.blocks:
            x = block(x, weights, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "n_blocks": self.n_blocks,
                "kernel_size": self.kernel_size, "dropout": self.dropout_rate,
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}
