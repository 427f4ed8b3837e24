"""Losses of the acoustic model (JETS) and of HiFi-GAN (least-squares GAN)."""

from __future__ import annotations

import tensorflow as tf

from bittts_tf.models import alignment


def masked_mean_abs(prediction, target, weights):
    """Mean |prediction - target| over valid frames and channels; weights [B, T, 1]."""
    channels = tf.cast(tf.shape(prediction)[-1], prediction.dtype)
    total = tf.reduce_sum(tf.abs(prediction - target) * weights)
    return total / tf.maximum(tf.reduce_sum(weights) * channels, 1.0)


def masked_mean_square(prediction, target, weights):
    """weights [B, T]."""
    return tf.reduce_sum(tf.square(prediction - target) * weights) / tf.maximum(
        tf.reduce_sum(weights), 1.0)


def acoustic_losses(outputs, batch, step, config) -> dict:
    """Every acoustic loss (unweighted) and their weighted sum under "acoustic_total"."""
    mel_lengths = batch["mel_lengths"]
    text_lengths = batch["phoneme_lengths"]
    mel_weights = tf.sequence_mask(mel_lengths, tf.shape(batch["mels"])[1], tf.float32)[..., None]
    text_weights = tf.sequence_mask(text_lengths, tf.shape(batch["phonemes"])[1], tf.float32)
    losses = {
        "mel_l1": masked_mean_abs(outputs["mel"], batch["mels"], mel_weights),
        "duration": masked_mean_square(outputs["log_duration"],
                                       tf.math.log(outputs["durations"] + 1.0), text_weights),
        "pitch": masked_mean_square(outputs["pitch"], outputs["pitch_target"], text_weights),
        "energy": masked_mean_square(outputs["energy"], outputs["energy_target"], text_weights),
        "forward_sum": (alignment.ctc_forward_sum_loss if config.forward_sum == "ctc"
                        else alignment.forward_sum_loss)(outputs["log_probs"], text_lengths,
                                                         mel_lengths),
        "binarization": alignment.binarization_loss(outputs["hard_alignment"],
                                                    outputs["log_probs"]),
    }
    binarize = tf.cast(tf.cast(step, tf.int64) >= config.binarization_start_step, tf.float32)
    losses["acoustic_total"] = (
        config.acoustic_mel_weight * losses["mel_l1"]
        + config.variance_weight * (losses["duration"] + losses["pitch"] + losses["energy"])
        + config.forward_sum_weight * losses["forward_sum"]
        + binarize * config.binarization_weight * losses["binarization"])
    return losses


def discriminator_loss(real_scores, fake_scores):
    """sum over discriminators of mean (1 - D(real))^2 + mean D(fake)^2."""
    return tf.add_n([tf.reduce_mean(tf.square(1.0 - r)) + tf.reduce_mean(tf.square(f))
                     for r, f in zip(real_scores, fake_scores)])


def generator_adversarial_loss(fake_scores):
    return tf.add_n([tf.reduce_mean(tf.square(1.0 - f)) for f in fake_scores])


def feature_matching_loss(real_features, fake_features):
    """sum over every discriminator layer of mean |real - fake| (real held fixed)."""
    return tf.add_n([tf.reduce_mean(tf.abs(tf.stop_gradient(r) - f))
                     for real, fake in zip(real_features, fake_features)
                     for r, f in zip(real, fake)])
