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


def boundary_errors_frames(durations, reference) -> np.ndarray:
    """Signed errors (predicted - reference end, in frames) of the inner phone
    boundaries of one unpadded utterance: positive means the learned boundary
    comes late."""
    return (np.cumsum(durations)[:-1] - np.cumsum(reference)[:-1]).astype(np.float64)


def boundary_error_summary(errors_frames, frame_ms: float) -> dict[str, float]:
    """Mean absolute, signed mean and median absolute error in ms, and the
    share of boundaries more than 2 frames off."""
    errors = np.asarray(errors_frames, np.float64)
    if errors.size == 0:
        raise ValueError("no inner phone boundaries to compare")
    return {"boundaries": int(errors.size),
            "mean_abs_ms": float(np.mean(np.abs(errors)) * frame_ms),
            "signed_mean_ms": float(np.mean(errors) * frame_ms),
            "median_abs_ms": float(np.median(np.abs(errors)) * frame_ms),
            "share_over_2_frames": float(np.mean(np.abs(errors) > 2))}
