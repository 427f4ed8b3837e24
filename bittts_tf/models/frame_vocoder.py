"""A frame-rate vocoder: ConvNeXt blocks at the mel frame rate -> log-magnitude
and phase of an STFT -> inverse STFT (Vocos, Siuzdak 2023).

Every conv runs at the mel frame rate (62.5 frames a second at 16 kHz, hop
256), so a step costs a fraction of HiFi-GAN's, whose convs run at up to the
sample rate (the equal-CPU comparison in the README: after 24 CPU minutes
the frame-rate vocoder reached WER 0.30, the tiny HiFi-GAN 0.40). The
pointwise convs (90% of the weights) are QAT layers; the depthwise convs (7 k
weights, under 1%) and the spectral head stay float.

Every conv input is multiplied by `mask` (1 on the utterance's frames), so an
utterance cut into chunks with enough context gives the same samples as the
whole utterance (see `receptive_field`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.audio.istft_spec import MAX_LOG_MAGNITUDE  # shared with the C inverse STFT
from bittts_tf.models import istft as istft_lib
from bittts_tf.models.layers import BuiltByFirstCall
from bittts_tf.models.vocoder import Vocoder
from bittts_tf.quant import QuantConv1D, QuantDense
from bittts_tf.quant.bits import FLOAT_BITS

_PACKAGE = "bittts_tf"


def sigmoid_gelu(x):
    """GELU as x * sigmoid(1.702 x): LOGISTIC and MUL, which TFLite Micro has
    (its GELU kernel is missing from some builds)."""
    return x * tf.sigmoid(1.702 * x)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvNeXtBlock(BuiltByFirstCall, keras.layers.Layer):
    """depthwise conv -> LayerNorm -> pointwise expand -> GELU -> pointwise
    project, with a residual connection.

    Vocos multiplies the projection by a learned per-channel layer scale
    (initialized at 1/8) so that deep stacks start near the identity. The
    TFLite converter folds such a multiply into the projection's filter,
    which is then no longer ternary; here the projection's initial weights are
    scaled instead (a ternary kernel's scale, mean |W|, follows them)."""

    def __init__(self, channels, hidden_channels, kernel_size=7, layer_scale=0.1,
                 weight_bits=FLOAT_BITS, quantize_activations=False, norm_epsilon=1e-6,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.layer_scale_init = layer_scale
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        q = dict(weight_bits=weight_bits, quantize_activations=quantize_activations)
        self.depthwise = keras.layers.DepthwiseConv1D(kernel_size, padding="same", name="depthwise")
        self.norm_epsilon = norm_epsilon
        self.norm = keras.layers.LayerNormalization(epsilon=norm_epsilon, name="norm")
        self.expand = QuantConv1D(hidden_channels, 1, name="expand", **q)
        self.project = QuantConv1D(
            channels, 1, name="project",
            kernel_initializer=keras.initializers.VarianceScaling(
                layer_scale**2, mode="fan_avg", distribution="uniform"), **q)

    def call(self, x, mask):
        y = self.norm(self.depthwise(x * mask))
        y = self.project(sigmoid_gelu(self.expand(y)))
        return (x + y) * mask

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "hidden_channels": self.hidden_channels, "kernel_size": self.kernel_size,
                "layer_scale": self.layer_scale_init, "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations,
                "norm_epsilon": self.norm_epsilon}


def spectrum_from_head(x, mask, n_fft: int):
    """(real, imag) [B, T, n_fft // 2 + 1] from the head's log-magnitudes and
    phases; the magnitude is clipped at exp(MAX_LOG_MAGNITUDE) and masked."""
    bins = n_fft // 2 + 1
    magnitude = tf.exp(tf.minimum(x[..., :bins], MAX_LOG_MAGNITUDE)) * mask
    phase = x[..., bins:]
    return magnitude * tf.cos(phase), magnitude * tf.sin(phase)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameVocoder(Vocoder):
    """mel [B, T, n_mels] (and mask [B, T, 1]) -> waveform [B, T * hop]."""

    def __init__(self, config: dict, n_mels=80, weight_bits=FLOAT_BITS,
                 quantize_activations=False, **kwargs):
        super().__init__(config, n_mels, weight_bits, quantize_activations, **kwargs)
        c = self.config
        q = dict(weight_bits=weight_bits, quantize_activations=quantize_activations)
        self.conv_in = QuantConv1D(c["channels"], c["input_kernel"], padding="same",
                                   name="conv_in", **q)
        epsilon = c.get("norm_epsilon", 1e-6)   # configs saved before the field: 1e-6
        self.norm_in = keras.layers.LayerNormalization(epsilon=epsilon, name="norm_in")
        self.blocks = [ConvNeXtBlock(c["channels"], c["hidden_channels"], c["block_kernel"],
                                     c["layer_scale"], name=f"block_{i}", norm_epsilon=epsilon,
                                     **q)
                       for i in range(c["blocks"])]
        self.norm_out = keras.layers.LayerNormalization(epsilon=epsilon, name="norm_out")
        head_bits = weight_bits if c["quantize_head"] else FLOAT_BITS
        self.head = QuantDense(c["n_fft"] + 2, weight_bits=head_bits, name="head")
        self.istft_constants = istft_lib.irfft_constants(c["n_fft"])

    def head_output(self, mels, mask):
        """The spectral head's output [B, T, n_fft + 2]: log-magnitudes of the
        n_fft // 2 + 1 bins, then their phases (what the streaming graph emits)."""
        x = self.norm_in(self.conv_in(mels * mask)) * mask
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm_out(x))

    def spectrum(self, mels, mask):
        """(real, imag) of the predicted STFT, [B, T, n_fft // 2 + 1] each."""
        return spectrum_from_head(self.head_output(mels, mask), mask, self.config["n_fft"])

    def call(self, mels, mask=None):
        if mask is None:
            mask = tf.ones_like(mels[..., :1])
        real, imag = self.spectrum(mels, mask)
        return istft_lib.istft(real, imag, mask, self.config["n_fft"], self.config["hop_length"],
                               self.istft_constants)


def receptive_field(config: dict) -> tuple[int, int]:
    """(left, right) mel frames outside a chunk that reach its samples."""
    conv = (config["input_kernel"] - 1) // 2 + config["blocks"] * ((config["block_kernel"] - 1) // 2)
    left, right = istft_lib.context_frames(config["n_fft"], config["hop_length"])
    return conv + left, conv + right
