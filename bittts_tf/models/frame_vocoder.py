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

With `source_phase_cutoff` the vocoder also takes frame F0 (Hz, 0 where
unvoiced): as two input features added after `conv_in`, and as a source
phase added to the head's phases below the cut-off in voiced frames (see
`source_phase`). The head's output (what the streamed graph emits) stays the
residual phase; the source phase needs the F0 integrated from the
utterance's first frame, state that the streamed runtime carries from chunk
to chunk.
"""

from __future__ import annotations

import math

import keras
import numpy as np
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


# The F0 input features: [voicing * ln(F0 / F0_REFERENCE) * F0_FEATURE_SCALE,
# voicing]. The scale brings a voice's log-F0 spread (slt: 0.09-0.15 in
# natural log units) near 1.
F0_REFERENCE = 200.0
F0_FEATURE_SCALE = 10.0


def f0_features(log_f0, voicing):
    """[B, T, 2] from natural-log F0 and voicing in 0..1 ([B, T] each)."""
    return tf.stack([voicing * (log_f0 - math.log(F0_REFERENCE)) * F0_FEATURE_SCALE, voicing],
                    axis=-1)


def f0_features_from_hz(f0):
    """The features of frame F0 in Hz, 0 where unvoiced ([B, T] -> [B, T, 2])."""
    voiced = tf.cast(f0 > 0.0, f0.dtype)
    return f0_features(tf.math.log(tf.maximum(f0, 1.0)), voiced)


def f0_from_head(frame_f0, log_f0_mean: float, log_f0_std: float):
    """(F0 in Hz [B, T], its features [B, T, 2]) from an acoustic model's frame
    F0 head ([B, T, 2]: standardized log-F0, voicing logit). Hz is 0 where the
    logit is not positive (the source phase's voicing is hard); the features
    take the sigmoid's voicing, which the exported graph computes in-line."""
    log_f0 = frame_f0[..., 0] * log_f0_std + log_f0_mean
    voiced = tf.cast(frame_f0[..., 1] > 0.0, frame_f0.dtype)
    return tf.exp(log_f0) * voiced, f0_features(log_f0, tf.sigmoid(frame_f0[..., 1]))


def integrated_phase(f0, hop: int, sample_rate: int):
    """theta [B, T] = 2 pi hop / sample_rate * sum of F0 over the frames before
    t, wrapped to [0, 2 pi): the source's fundamental phase at each frame.
    Summed in float64 (an utterance's sum reaches 10^4 radians); the wrap
    loses nothing, since only integer multiples of theta are used."""
    step = tf.cast(f0, tf.float64) * (2.0 * math.pi * hop / sample_rate)
    theta = tf.math.floormod(tf.cumsum(step, axis=1, exclusive=True), 2.0 * math.pi)
    return tf.cast(theta, f0.dtype)


def source_phase(f0, theta, n_fft: int, sample_rate: int, cutoff: float):
    """[B, T, n_fft // 2 + 1]: in a voiced frame (F0 > 0), bin b below `cutoff`
    gets the phase of the harmonic nearest it, round(f_b / F0) * theta wrapped
    to [0, 2 pi) (round half to even); other bins and unvoiced frames get 0."""
    frequencies = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    below = tf.constant(frequencies < cutoff, f0.dtype)
    frequencies = tf.constant(frequencies, f0.dtype)
    harmonic = tf.round(frequencies / tf.maximum(f0, 1.0)[..., None])
    voiced = tf.cast(f0 > 0.0, f0.dtype)[..., None]
    return tf.math.floormod(harmonic * theta[..., None], 2.0 * math.pi) * voiced * below


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
        # Float: 2 x channels weights, and the F0 features have no zeros for
        # a ternary kernel to spend.
        self.f0_input = (QuantDense(c["channels"], weight_bits=FLOAT_BITS, name="f0_input")
                         if self.takes_f0 and c.get("source_f0_input", True) else None)
        self.istft_constants = istft_lib.irfft_constants(c["n_fft"])

    @property
    def takes_f0(self) -> bool:
        return self.config.get("source_phase_cutoff", 0.0) > 0.0

    def head_output(self, mels, mask, f0_features=None):
        """The spectral head's output [B, T, n_fft + 2]: log-magnitudes of the
        n_fft // 2 + 1 bins, then their phases (what the streaming graph
        emits); `f0_features` ([B, T, 2], see `f0_features`) when takes_f0."""
        x = self.conv_in(mels * mask)
        if self.f0_input is not None:
            if f0_features is None:
                raise ValueError("this vocoder has a source phase: pass the frame F0")
            x = x + self.f0_input(f0_features * mask)
        x = self.norm_in(x) * mask
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm_out(x))

    def spectrum(self, mels, mask, f0=None, f0_feature_values=None):
        """(real, imag) of the predicted STFT, [B, T, n_fft // 2 + 1] each.
        `f0`: frame F0 in Hz (0: unvoiced), [B, T]; its features are
        `f0_feature_values` when given (the acoustic model's soft voicing)."""
        c = self.config
        if not self.takes_f0:
            return spectrum_from_head(self.head_output(mels, mask), mask, c["n_fft"])
        if f0 is None:
            raise ValueError("this vocoder has a source phase: pass the frame F0")
        f0 = tf.cast(f0, mels.dtype) * mask[..., 0]
        if f0_feature_values is None:
            f0_feature_values = f0_features_from_hz(f0)
        head = self.head_output(mels, mask, f0_feature_values)
        bins = c["n_fft"] // 2 + 1
        theta = integrated_phase(f0, c["hop_length"], c["sample_rate"])
        phase = source_phase(f0, theta, c["n_fft"], c["sample_rate"], c["source_phase_cutoff"])
        head = tf.concat([head[..., :bins], head[..., bins:] + phase], axis=-1)
        return spectrum_from_head(head, mask, c["n_fft"])

    def call(self, mels, mask=None, f0=None, f0_feature_values=None):
        if mask is None:
            mask = tf.ones_like(mels[..., :1])
        real, imag = self.spectrum(mels, mask, f0, f0_feature_values)
        return istft_lib.istft(real, imag, mask, self.config["n_fft"], self.config["hop_length"],
                               self.istft_constants)


def receptive_field(config: dict) -> tuple[int, int]:
    """(left, right) mel frames outside a chunk that reach its samples."""
    conv = (config["input_kernel"] - 1) // 2 + config["blocks"] * ((config["block_kernel"] - 1) // 2)
    left, right = istft_lib.context_frames(config["n_fft"], config["hop_length"])
    return conv + left, conv + right
