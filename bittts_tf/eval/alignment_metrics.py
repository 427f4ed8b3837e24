"""Alignment accuracy against ground-truth (festival) phone durations."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def boundary_error_ms(durations, reference, lengths, frame_ms: float):
    """Mean |predicted - reference| phone end time in ms over the phone
    boundaries inside each utterance (the last end is the utterance length,
    identical by construction, so it is left out). Works on numpy or tf inputs:
    durations, reference [B, N] in frames, lengths [B] in phones."""
    durations = tf.cast(durations, tf.float32)
    reference = tf.cast(reference, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    inner = tf.sequence_mask(lengths - 1, tf.shape(durations)[1], tf.float32)
    error = tf.abs(tf.cumsum(durations, axis=1) - tf.cumsum(reference, axis=1)) * inner
    return frame_ms * tf.reduce_sum(error) / tf.maximum(tf.reduce_sum(inner), 1.0)


def boundary_error_ms_np(durations, reference, frame_ms: float) -> float:
    """One utterance, unpadded; the reference implementation for tests."""
    ends = np.cumsum(durations)[:-1]
    reference_ends = np.cumsum(reference)[:-1]
    if len(ends) == 0:
        return 0.0
    return float(np.mean(np.abs(ends - reference_ends)) * frame_ms)
