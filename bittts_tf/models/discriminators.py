"""HiFi-GAN's multi-period (MPD) and multi-scale (MSD) discriminators, and
the multi-resolution spectrogram discriminator (MRD) of UnivNet and Vocos.

Training-only, never quantized or exported. The MPD's (k, 1) Conv2D kernels
are written as Conv1D over the period-folded signal (each of the p phases
becomes a batch row), which is the same computation.
`width` scales every channel count so that a CPU run can afford them.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from bittts_tf.models.layers import BuiltByFirstCall
from bittts_tf.models.weight_norm import WeightNormConv1D

_PACKAGE = "bittts_tf"
LEAKY_SLOPE = 0.1


def _scaled(channels, width):
    return max(4, int(round(channels * width)))


@keras.saving.register_keras_serializable(package=_PACKAGE)

def _conv_stack(convs, conv_post, x):
    """Runs a discriminator's conv stack; returns its output and every layer's
    activations (the feature-matching loss compares them)."""
    features = []
    for conv in convs:
        x = tf.nn.leaky_relu(conv(x), LEAKY_SLOPE)
        features.append(x)
    x = conv_post(x)
    features.append(x)
    return x, features

class PeriodDiscriminator(BuiltByFirstCall, keras.layers.Layer):
    CHANNELS = (32, 128, 512, 1024, 1024)

    def __init__(self, period, width=1.0, **kwargs):
        super().__init__(**kwargs)
        self.period = period
        self.width = width
        strides = (3, 3, 3, 3, 1)
        self.convs = [WeightNormConv1D(_scaled(ch, width), 5, strides=s, padding="same",
                                       weight_bits=32, name=f"conv_{i}")
                      for i, (ch, s) in enumerate(zip(self.CHANNELS, strides))]
        self.conv_post = WeightNormConv1D(1, 3, padding="same", weight_bits=32, name="conv_post")

    def call(self, audio):
        """audio [B, T] -> (scores [B, p, T'], feature maps [B, p, T', C])."""
        batch = tf.shape(audio)[0]
        length = tf.shape(audio)[1]
        pad = (-length) % self.period
        x = tf.pad(audio, [[0, 0], [0, pad]], mode="REFLECT")
        x = tf.reshape(x, [tf.shape(x)[0], -1, self.period])
        x = tf.reshape(tf.transpose(x, [0, 2, 1]), [-1, tf.shape(x)[1], 1])
        x, features = _conv_stack(self.convs, self.conv_post, x)
        # Back to one row per utterance, so a batch can be split after the call.
        unfold = lambda f: tf.reshape(f, [batch, self.period, tf.shape(f)[1], f.shape[-1]])
        return unfold(x)[..., 0], [unfold(f) for f in features]

    def get_config(self):
        return {**super().get_config(), "period": self.period, "width": self.width}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GroupedConv1D(BuiltByFirstCall, keras.layers.Layer):
    """A grouped conv as one conv per channel group: TF's own grouped Conv1D
    goes through a slow path on CPU (hundreds of times slower here)."""

    def __init__(self, filters, kernel_size, groups=1, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.groups = groups
        self.strides = strides
        self.convs = [WeightNormConv1D(filters // groups, kernel_size, strides=strides,
                                       padding="same", weight_bits=32, name=f"group_{g}")
                      for g in range(groups)]

    def call(self, x):
        if self.groups == 1:
            return self.convs[0](x)
        parts = tf.split(x, self.groups, axis=-1)
        return tf.concat([conv(part) for conv, part in zip(self.convs, parts)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "groups": self.groups, "strides": self.strides}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaleDiscriminator(BuiltByFirstCall, keras.layers.Layer):
    # (channels, kernel, stride, groups) of MelGAN / HiFi-GAN's DiscriminatorS.
    LAYERS = ((128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16),
              (1024, 41, 4, 16), (1024, 41, 1, 16), (1024, 5, 1, 1))

    def __init__(self, width=1.0, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.convs = []
        in_channels = 1
        for i, (ch, kernel, stride, groups) in enumerate(self.LAYERS):
            out_channels = _scaled(ch, width)
            # Fewer groups when the widths shrink: a CPU run pays per group.
            groups = max(1, int(round(groups * min(width, 1.0))))
            groups = math.gcd(math.gcd(groups, in_channels), out_channels)
            self.convs.append(GroupedConv1D(out_channels, kernel, groups, stride,
                                            name=f"conv_{i}"))
            in_channels = out_channels
        self.conv_post = WeightNormConv1D(1, 3, padding="same", weight_bits=32, name="conv_post")

    def call(self, audio):
        x = audio[..., None]
        x, features = _conv_stack(self.convs, self.conv_post, x)
        return x[..., 0], features

    def get_config(self):
        return {**super().get_config(), "width": self.width}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResolutionDiscriminator(BuiltByFirstCall, keras.layers.Layer):
    """Judges the magnitude spectrogram of one STFT resolution (Hann window of
    n_fft samples, hop n_fft / 4) with Conv2D over (frames, bins), striding
    along frequency, as UnivNet's and Vocos' MRD: an iSTFT vocoder's faults
    (phase noise, smeared harmonics) show in the spectrogram."""

    CHANNELS = 32
    # (kernel over frames and bins, stride along bins) of each conv.
    LAYERS = (((3, 9), 1), ((3, 9), 2), ((3, 9), 2), ((3, 9), 2), ((3, 3), 1))

    def __init__(self, n_fft, width=1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_fft = n_fft
        self.width = width
        # Half the MPD's narrowing (8 channels at its 0.125): these convs are only
        # CHANNELS wide at 1.0 and see every bin of every frame.
        channels = _scaled(self.CHANNELS, min(1.0, 2 * width))
        self.convs = [keras.layers.Conv2D(channels, kernel, strides=(1, stride), padding="same",
                                          name=f"conv_{i}")
                      for i, (kernel, stride) in enumerate(self.LAYERS)]
        self.conv_post = keras.layers.Conv2D(1, (3, 3), padding="same", name="conv_post")

    def call(self, audio):
        """audio [B, T] -> (scores [B, frames, bins'], feature maps [B, frames, bins', C])."""
        spectrum = tf.signal.stft(audio, self.n_fft, self.n_fft // 4, fft_length=self.n_fft,
                                  window_fn=tf.signal.hann_window, pad_end=True)
        x, features = _conv_stack(self.convs, self.conv_post, tf.abs(spectrum)[..., None])
        return x[..., 0], features

    def get_config(self):
        return {**super().get_config(), "n_fft": self.n_fft, "width": self.width}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Discriminators(BuiltByFirstCall, keras.Model):
    """MPD, MSD and MRD together: audio [B, T] -> (list of scores, list of
    feature lists). `resolution_ffts` names the MRD's window lengths (none:
    no MRD, HiFi-GAN's pair)."""

    def __init__(self, periods=(2, 3, 5, 7, 11), n_scales=3, width=1.0, resolution_ffts=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.periods = tuple(periods)
        self.n_scales = n_scales
        self.width = width
        self.resolution_ffts = tuple(resolution_ffts)
        self.period_discriminators = [PeriodDiscriminator(p, width, name=f"period_{p}")
                                      for p in self.periods]
        self.scale_discriminators = [ScaleDiscriminator(width, name=f"scale_{i}")
                                     for i in range(n_scales)]
        self.resolution_discriminators = [ResolutionDiscriminator(n, width, name=f"resolution_{n}")
                                          for n in self.resolution_ffts]

    def call(self, audio):
        scores, features = [], []
        for d in self.period_discriminators:
            s, f = d(audio)
            scores.append(s)
            features.append(f)
        x = audio
        for i, d in enumerate(self.scale_discriminators):
            if i > 0:
                x = tf.nn.avg_pool1d(x[..., None], 4, 2, "SAME")[..., 0]
            s, f = d(x)
            scores.append(s)
            features.append(f)
        for d in self.resolution_discriminators:
            s, f = d(audio)
            scores.append(s)
            features.append(f)
        return scores, features

    def get_config(self):
        return {**super().get_config(), "periods": self.periods, "n_scales": self.n_scales,
                "width": self.width, "resolution_ffts": self.resolution_ffts}
