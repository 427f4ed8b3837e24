"""The ternary weight quantizer as a TFMOT `Quantizer`.

The math is `bittts_tf.quant.quantizers.ternary_quantize`, the one the Keras 3
layers use (TensorFlow ops only, so it serves both Keras versions): beta =
mean |W|, W -> beta * round-clip(W / beta, -1, 1), straight-through gradient.
"""

from __future__ import annotations

import tf_keras
import tensorflow_model_optimization as tfmot

from bittts_tf.quant import bits, quantizers

PACKAGE = "bittts_tf"


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class TernaryWeightQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
    """beta * round-clip(W / beta) with beta = mean |W|; the gradient passes
    straight through. Stateless: beta follows the latent weights at every
    step, in training and inference alike, so it adds no variables."""

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return quantizers.quantize_weights(inputs, bits.TERNARY_BITS)

    def get_config(self):
        return {}

    def __eq__(self, other):
        return isinstance(other, TernaryWeightQuantizer)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(type(self))
