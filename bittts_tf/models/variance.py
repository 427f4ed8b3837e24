"""Variance adaptor: duration, pitch and energy predictors, pitch/energy
embeddings and the length regulator (FastSpeech2 / JETS, token-level pitch
and energy)."""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.models.layers import BuiltByFirstCall, ConvBlock
from bittts_tf.quant import QuantConv1D, QuantDense
from bittts_tf.quant.bits import FLOAT_BITS

_PACKAGE = "bittts_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VariancePredictor(BuiltByFirstCall, keras.layers.Layer):
    """Non-residual conv blocks and a float linear head: one value per token."""

    def __init__(self, channels, n_layers, kernel_size, dropout=0.5, weight_bits=32,
                 quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.dropout_rate = dropout
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        self.blocks = [ConvBlock(channels, kernel_size, dropout, weight_bits,
                                 quantize_activations, residual=False, name=f"block_{i}")
                       for i in range(n_layers)]
        self.head = QuantDense(1, weight_bits=FLOAT_BITS, name="head")

    def call(self, x, weights, training=False):
        for block in self.blocks:
            x = block(x, weights, training=training)
        return self.head(x)[..., 0] * weights[..., 0]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "n_layers": self.n_layers,
                "kernel_size": self.kernel_size, "dropout": self.dropout_rate,
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}


def alignment_from_durations(durations, max_frames=None, dtype=tf.float32):
    """0/1 matrix [B, T_mel, T_text]: frame t belongs to token j.

    Frames beyond an utterance's total duration belong to no token, so they
    come out of the length regulator as zeros.
    """
    durations = tf.cast(durations, tf.int32)
    ends = tf.cumsum(durations, axis=1)
    starts = ends - durations
    if max_frames is None:
        max_frames = tf.reduce_max(ends[:, -1])
    frames = tf.range(max_frames)[None, :, None]
    inside = tf.logical_and(frames >= starts[:, None, :], frames < ends[:, None, :])
    return tf.cast(inside, dtype)


def length_regulate(token_features, alignment):
    """Repeats each token's features over its frames: [B, T_mel, C]."""
    return tf.matmul(alignment, token_features)


def token_average(frame_values, alignment, frame_weights=None):
    """Mean of a frame-level value over each token's frames, [B, T_text].

    With `frame_weights` (e.g. voiced-frame flags for F0) the mean is over the
    weighted frames only; tokens with none get 0.
    """
    if frame_weights is None:
        frame_weights = tf.ones_like(frame_values)
    total = tf.einsum("bt,btj->bj", frame_values * frame_weights, alignment)
    count = tf.einsum("bt,btj->bj", frame_weights, alignment)
    return tf.math.divide_no_nan(total, count)


# Caps of length regulation: a phoneme held over 1.2 s, or a segment over
# 24 s (16 kHz, hop 256), is a duration predictor gone wrong, not speech. The
# one home of both numbers: the Keras inference below caps each phoneme, and
# an export writes both into the model folder's manifest, which the runtime
# (bittts_tf.runtime.tts.regulate_durations) and the firmware read.
MAX_FRAMES_PER_TOKEN = 75
MAX_FRAMES_PER_SEGMENT = 1500


class DurationError(ValueError):
    """The duration predictor gave a log-duration no frame count can come from."""


def durations_from_log(log_durations, text_weights, scale=1.0,
                       max_frames_per_token=MAX_FRAMES_PER_TOKEN, refuse_non_finite=False):
    """Predicted frames per token: round(scale * (exp(d) - 1)), at least 1 and at
    most `max_frames_per_token` on valid tokens. The cap comes before the
    integer cast, so a bad model (exp overflowing to inf) cannot make the
    length regulator allocate without bound: at most the cap per token.

    With `refuse_non_finite` (inference: `AcousticModel.infer`) a NaN or
    infinite log-duration on a valid token is refused (DurationError), as the
    runtime and the firmware refuse it: there is no duration to cap. Without
    it one frame is taken instead; only the trainer's held-out boundary metric
    does that, because a metric must not stop a training run and the duration
    loss logged beside it already shows the NaN.

    There is no per-segment cap (MAX_FRAMES_PER_SEGMENT) here: the runtime and
    the firmware cap each segment (at most max_tokens tokens, the text graph's
    shape) so that its frames fit a buffer of fixed size, while the Keras
    model regulates a whole utterance of any length, which the per-token cap
    already bounds in proportion to its tokens."""
    if refuse_non_finite:
        _refuse_non_finite(log_durations, text_weights)
    frames = tf.round(scale * (tf.exp(log_durations) - 1.0))
    # NaN left here (a padded token, a NaN scale, a valid token when not
    # refused) becomes one frame: the cast must never see it.
    frames = tf.where(tf.math.is_nan(frames), tf.ones_like(frames), frames)
    frames = tf.clip_by_value(frames, 1.0, float(max_frames_per_token))
    return tf.cast(frames * text_weights[..., 0], tf.int32)


def _refuse_non_finite(log_durations, text_weights) -> None:
    bad = tf.logical_and(text_weights[..., 0] > 0,
                         tf.logical_not(tf.math.is_finite(log_durations)))
    count = tf.reduce_sum(tf.cast(bad, tf.int32))
    message = "non-finite log-duration(s) (NaN or inf): the model is broken"
    if tf.executing_eagerly():
        if int(count):
            raise DurationError(f"the duration predictor gave {int(count)} {message}")
        return
    tf.debugging.assert_equal(count, 0, message=f"the duration predictor gave {message}")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VarianceAdaptor(BuiltByFirstCall, keras.layers.Layer):
    """Predicts duration, pitch and energy per token and adds the pitch and
    energy embeddings; targets (teacher forcing) in training, predictions at
    inference."""

    def __init__(self, config: dict, weight_bits=32, quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        c = self.config
        q = dict(weight_bits=weight_bits, quantize_activations=quantize_activations)
        self.duration_predictor = VariancePredictor(
            c["duration_channels"], c["duration_layers"], c["duration_kernel"],
            c["predictor_dropout"], name="duration_predictor", **q)
        self.pitch_predictor = VariancePredictor(
            c["pitch_channels"], c["pitch_layers"], c["pitch_kernel"], c["predictor_dropout"],
            name="pitch_predictor", **q)
        self.energy_predictor = VariancePredictor(
            c["energy_channels"], c["energy_layers"], c["energy_kernel"], c["predictor_dropout"],
            name="energy_predictor", **q)
        self.pitch_embedding = QuantConv1D(c["encoder_channels"], c["variance_embedding_kernel"],
                                           padding="same", name="pitch_embedding", **q)
        self.energy_embedding = QuantConv1D(c["encoder_channels"], c["variance_embedding_kernel"],
                                            padding="same", name="energy_embedding", **q)

    def call(self, hidden, text_weights, pitch_target=None, energy_target=None, training=False):
        """Returns (hidden with variance embeddings, predictions dict)."""
        # The duration predictor learns from the encoder but must not steer it
        # (JETS/FastSpeech2 detach its input).
        log_duration = self.duration_predictor(tf.stop_gradient(hidden), text_weights,
                                               training=training)
        pitch = self.pitch_predictor(hidden, text_weights, training=training)
        energy = self.energy_predictor(hidden, text_weights, training=training)
        pitch_used = pitch if pitch_target is None else pitch_target
        energy_used = energy if energy_target is None else energy_target
        hidden = hidden + self.pitch_embedding(pitch_used[..., None] * text_weights)
        hidden = hidden + self.energy_embedding(energy_used[..., None] * text_weights)
        return hidden * text_weights, {"log_duration": log_duration, "pitch": pitch,
                                       "energy": energy}

    def get_config(self):
        return {**super().get_config(), "config": self.config, "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}
