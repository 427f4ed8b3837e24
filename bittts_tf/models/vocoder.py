"""HiFi-GAN generator (V1 / V2 / V3 topologies) with weight-normalized QAT convs.

Every conv takes the vocoder's weight bits except `conv_post`, the final
waveform conv, which is always float: the paper found the waveform output
too sensitive to quantize.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.models.layers import BuiltByFirstCall
from bittts_tf.models.weight_norm import WeightNormConv1D, WeightNormConv1DTranspose
from bittts_tf.quant.bits import FLOAT_BITS

_PACKAGE = "bittts_tf"
LEAKY_SLOPE = 0.1
# PyTorch's F.leaky_relu default, which HiFi-GAN uses before conv_post.
FINAL_LEAKY_SLOPE = 0.01


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResBlock(BuiltByFirstCall, keras.layers.Layer):
    """HiFi-GAN residual block. Type 1: per dilation, a dilated conv then an
    undilated one; type 2 (V3): one dilated conv per dilation."""

    def __init__(self, channels, kernel_size, dilations, block_type=1, weight_bits=FLOAT_BITS,
                 quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilations = tuple(dilations)
        self.block_type = block_type
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        conv = lambda d, name: WeightNormConv1D(channels, kernel_size, dilation_rate=d,
                                                padding="same", weight_bits=weight_bits,
                                                quantize_activations=quantize_activations,
                                                name=name)
        self.dilated = [conv(d, f"dilated_{i}") for i, d in enumerate(self.dilations)]
        self.plain = ([conv(1, f"plain_{i}") for i in range(len(self.dilations))]
                      if block_type == 1 else [])

    def call(self, x):
        for i, dilated in enumerate(self.dilated):
            y = dilated(tf.nn.leaky_relu(x, LEAKY_SLOPE))
            if self.plain:
                y = self.plain[i](tf.nn.leaky_relu(y, LEAKY_SLOPE))
            x = x + y
        return x

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "kernel_size": self.kernel_size, "dilations": self.dilations,
                "block_type": self.block_type, "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}


class Vocoder(BuiltByFirstCall, keras.Model):
    """What every vocoder keeps: its config dict, the mel size, and the
    weight precision of its QAT layers."""

    def __init__(self, config: dict, n_mels=80, weight_bits=FLOAT_BITS,
                 quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        self.n_mels = n_mels
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations

    def get_config(self):
        return {**super().get_config(), "config": self.config, "n_mels": self.n_mels,
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HiFiGANGenerator(Vocoder):
    """mel [B, T, n_mels] -> waveform [B, T * hop] in (-1, 1)."""

    def __init__(self, config: dict, n_mels=80, weight_bits=FLOAT_BITS,
                 quantize_activations=False, **kwargs):
        super().__init__(config, n_mels, weight_bits, quantize_activations, **kwargs)
        c = self.config
        q = dict(weight_bits=weight_bits, quantize_activations=quantize_activations)
        channels = c["initial_channel"]
        self.conv_pre = WeightNormConv1D(channels, 7, padding="same", name="conv_pre", **q)
        self.upsamples = []
        self.resblocks = []
        for i, (rate, kernel) in enumerate(zip(c["upsample_rates"], c["upsample_kernels"])):
            channels //= 2
            self.upsamples.append(WeightNormConv1DTranspose(
                channels, kernel, strides=rate, padding="same", name=f"upsample_{i}", **q))
            self.resblocks.append([
                ResBlock(channels, k, d, c["resblock_type"], name=f"resblock_{i}_{j}", **q)
                for j, (k, d) in enumerate(zip(c["resblock_kernels"], c["resblock_dilations"]))])
        self.conv_post = WeightNormConv1D(1, 7, padding="same", weight_bits=FLOAT_BITS,
                                          name="conv_post")

    def call(self, mels):
        x = self.conv_pre(mels)
        for upsample, blocks in zip(self.upsamples, self.resblocks):
            x = upsample(tf.nn.leaky_relu(x, LEAKY_SLOPE))
            # Multi-receptive-field fusion: the mean of the parallel blocks.
            x = tf.add_n([block(x) for block in blocks]) / float(len(blocks))
        x = self.conv_post(tf.nn.leaky_relu(x, FINAL_LEAKY_SLOPE))
        return tf.tanh(x)[..., 0]
