"""The conv-based JETS acoustic model of BitTTS: phonemes -> log-mel frames.

Phone (+ speaker) embedding -> encoder (4 residual conv blocks) -> variance
adaptor (durations from the alignment module in training, from the duration
predictor at inference) -> length regulator -> decoder (4 conv blocks) ->
float mel projection.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bittts_tf.models import alignment as alignment_lib
from bittts_tf.models.layers import BuiltByFirstCall, ConvStack, mask_weights
from bittts_tf.models.variance import (VarianceAdaptor, alignment_from_durations,
                                       durations_from_log, length_regulate, token_average)
from bittts_tf.quant import QuantConv1D, QuantDense
from bittts_tf.quant.bits import FLOAT_BITS

_PACKAGE = "bittts_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AcousticModel(BuiltByFirstCall, keras.Model):
    """`call` is the training forward pass (needs mels, F0 and energy targets);
    `infer` synthesizes from phonemes alone."""

    def __init__(self, config: dict, weight_bits=32, quantize_activations=False, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        self.weight_bits = weight_bits
        self.quantize_activations = quantize_activations
        c = self.config
        q = dict(weight_bits=weight_bits, quantize_activations=quantize_activations)
        self.phone_embedding = keras.layers.Embedding(c["n_symbols"], c["encoder_channels"],
                                                      name="phone_embedding")
        self.speaker_embedding = (
            keras.layers.Embedding(c["n_speakers"], c["encoder_channels"], name="speaker_embedding")
            if c["n_speakers"] > 1 else None)
        # Built here: `encode` reads their tables directly (see there).
        self.phone_embedding.build((None, None))
        if self.speaker_embedding is not None:
            self.speaker_embedding.build((None,))
        self.encoder = ConvStack(c["encoder_channels"], c["encoder_blocks"], c["encoder_kernel"],
                                 c["dropout"], name="encoder", **q)
        self.aligner = alignment_lib.AlignmentModule(
            c["encoder_channels"], c["n_mels"], c["attention_channels"],
            c["attention_hidden_multiplier"], prior_scaling=c.get("alignment_prior_scaling", 1.0),
            query_kernel=c.get("attention_query_kernel", 3), key_kernel=c.get("attention_key_kernel", 3),
            name="aligner", weight_bits=weight_bits)
        self.variance_adaptor = VarianceAdaptor(c, name="variance_adaptor", **q)
        self.decoder_input = QuantConv1D(c["decoder_channels"], 1, padding="same",
                                         name="decoder_input", **q)
        self.decoder = ConvStack(c["decoder_channels"], c["decoder_blocks"], c["decoder_kernel"],
                                 c["dropout"], name="decoder", **q)
        # Zero init: training starts from the mean mel instead of a random
        # one several log units off.
        self.mel_projection = QuantDense(c["n_mels"], kernel_initializer="zeros",
                                         weight_bits=FLOAT_BITS, name="mel_projection")
        # Standardized log-F0 and a voicing logit per frame (the source-phase
        # vocoder's F0: frame_vocoder.f0_from_head);
        # zero init: the mean F0 at even odds of voicing.
        self.f0_projection = (QuantDense(2, kernel_initializer="zeros", weight_bits=FLOAT_BITS,
                                         name="f0_projection")
                              if c.get("frame_f0", False) else None)

    def encode(self, phonemes, phoneme_lengths, speakers=None, training=False,
               return_embedding=False):
        text_weights = mask_weights(phoneme_lengths, tf.shape(phonemes)[1], self.variable_dtype)
        # A plain gather: Keras' Embedding also maps negative ids (a SELECT
        # op, which TFLite Micro lacks); ids are checked before they get here.
        embedded = tf.gather(self.phone_embedding.embeddings, phonemes) * text_weights
        hidden = self.encoder(embedded, text_weights, training=training)
        if self.speaker_embedding is not None:
            if speakers is None:
                raise ValueError("this model has several speakers: pass speaker ids")
            speakers = tf.convert_to_tensor(speakers, tf.int32)
            hidden = hidden + tf.gather(self.speaker_embedding.embeddings, speakers)[:, None, :]
        if return_embedding:
            return hidden * text_weights, text_weights, embedded
        return hidden * text_weights, text_weights

    def decode(self, hidden, alignment, mel_weights, training=False, with_f0=False):
        return self.decode_frames(length_regulate(hidden, alignment) * mel_weights, mel_weights,
                                  training=training, with_f0=with_f0)

    def decode_frames(self, frames, mel_weights, training=False, with_f0=False):
        """Length-regulated encoder states [B, T, C] -> mel [B, T, n_mels]; the
        exported frames graph runs this on chunks (so every conv input is masked).
        `with_f0` (a frame_f0 model): (mel, frame F0 head [B, T, 2])."""
        frames = self.decoder_input(frames * mel_weights) * mel_weights
        frames = self.decoder(frames, mel_weights, training=training)
        mel = self.mel_projection(frames) * self.config["mel_std"] + self.config["mel_mean"]
        if not with_f0:
            return mel * mel_weights
        if self.f0_projection is None:
            raise ValueError("this acoustic model has no frame F0 (AcousticConfig.frame_f0)")
        return mel * mel_weights, self.f0_projection(frames) * mel_weights

    def decoder_context(self) -> int:
        """Frames on each side of a frame that reach its mel (the decoder's
        "same"-padded convs; decoder_input has kernel 1)."""
        return self.config["decoder_blocks"] * ((self.config["decoder_kernel"] - 1) // 2)

    def standardize_targets(self, f0, energy):
        """(standardized log-F0, voiced flags, standardized energy), frame level."""
        c = self.config
        voiced = tf.cast(f0 > 0.0, self.variable_dtype)
        log_f0 = (tf.math.log(tf.maximum(f0, 1.0)) - c["log_f0_mean"]) / c["log_f0_std"]
        return log_f0 * voiced, voiced, (energy - c["energy_mean"]) / c["energy_std"]

    def call(self, inputs, training=False, use_ground_truth_durations=False):
        phonemes = inputs["phonemes"]
        phoneme_lengths = inputs["phoneme_lengths"]
        mels = inputs["mels"]
        mel_lengths = inputs["mel_lengths"]
        hidden, text_weights, embedded = self.encode(
            phonemes, phoneme_lengths, inputs.get("speakers"), training=training,
            return_embedding=True)
        mel_weights = mask_weights(mel_lengths, tf.shape(mels)[1], self.variable_dtype)
        normalized = (mels - self.config["mel_mean"]) / self.config["mel_std"]
        text_side = embedded if self.config.get("aligner_text_input") == "embedding" else hidden
        log_probs = self.aligner(text_side, normalized * mel_weights, phoneme_lengths,
                                 mel_lengths)
        if use_ground_truth_durations:
            hard = alignment_from_durations(inputs["durations"], tf.shape(mels)[1],
                                            self.variable_dtype)
        else:
            hard = tf.cast(alignment_lib.hard_alignment(log_probs, phoneme_lengths, mel_lengths),
                           self.variable_dtype)
        log_f0, voiced, energy = self.standardize_targets(inputs["f0"], inputs["energy"])
        pitch_target = token_average(log_f0, hard, voiced * mel_weights[..., 0])
        energy_target = token_average(energy, hard, mel_weights[..., 0])
        hidden, predictions = self.variance_adaptor(hidden, text_weights, pitch_target,
                                                    energy_target, training=training)
        outputs = {"log_probs": log_probs, "hard_alignment": hard,
                   "durations": tf.reduce_sum(hard, axis=1), "pitch_target": pitch_target,
                   "energy_target": energy_target, **predictions}
        if self.f0_projection is None:
            outputs["mel"] = self.decode(hidden, hard, mel_weights, training=training)
        else:
            outputs["mel"], outputs["frame_f0"] = self.decode(hidden, hard, mel_weights,
                                                              training=training, with_f0=True)
            outputs["frame_log_f0_target"], outputs["frame_voiced"] = log_f0, voiced
        return outputs

    def infer(self, phonemes, phoneme_lengths, speakers=None, duration_scale=1.0,
              with_f0=False):
        """Returns (mel [B, T, n_mels], mel_lengths [B], durations [B, T_text]),
        and with `with_f0` the frame F0 head's output [B, T, 2] after them; a
        NaN or infinite predicted log-duration raises variance.DurationError."""
        hidden, text_weights = self.encode(phonemes, phoneme_lengths, speakers)
        hidden, predictions = self.variance_adaptor(hidden, text_weights)
        durations = durations_from_log(predictions["log_duration"], text_weights, duration_scale,
                                       refuse_non_finite=True)
        mel_lengths = tf.reduce_sum(durations, axis=1)
        alignment = alignment_from_durations(durations, dtype=self.variable_dtype)
        mel_weights = mask_weights(mel_lengths, tf.shape(alignment)[1], self.variable_dtype)
        if with_f0:
            mel, frame_f0 = self.decode(hidden, alignment, mel_weights, with_f0=True)
            return mel, mel_lengths, durations, frame_f0
        return self.decode(hidden, alignment, mel_weights), mel_lengths, durations

    def get_config(self):
        return {**super().get_config(), "config": self.config, "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}
