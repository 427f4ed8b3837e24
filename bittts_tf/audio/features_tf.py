"""TensorFlow versions of per-phone feature averaging, for use inside a model.

A model that learns its own alignment gets durations during training, so the
per-phone pitch and energy targets must be computed in the graph, in batches.
"""

from __future__ import annotations

import tensorflow as tf


def phone_average(values: tf.Tensor, durations: tf.Tensor, ignore_zeros: bool = False) -> tf.Tensor:
    """values [B, T], durations [B, N] (whole frames) -> per-phone means [B, N].

    Phone k of item b covers frames [sum(durations[b, :k]), sum(durations[b, :k+1])).
    Frames past the sum of an item's durations are ignored; a phone with no
    (voiced, when ignore_zeros) frame gets 0, as in bittts_tf.audio.features.
    """
    values = tf.convert_to_tensor(values, tf.float32)
    durations = tf.cast(durations, tf.int32)
    mask = tf.cast(values != 0, tf.float32) if ignore_zeros else tf.ones_like(values)
    zeros = tf.zeros_like(values[:, :1])
    csum = tf.concat([zeros, tf.cumsum(values * mask, axis=1)], axis=1)    # [B, T + 1]
    ccount = tf.concat([zeros, tf.cumsum(mask, axis=1)], axis=1)
    t = tf.shape(values)[1]
    ends = tf.minimum(tf.cumsum(durations, axis=1), t)
    starts = tf.minimum(ends - durations, t)
    starts = tf.maximum(starts, 0)
    total = tf.gather(csum, ends, batch_dims=1) - tf.gather(csum, starts, batch_dims=1)
    count = tf.gather(ccount, ends, batch_dims=1) - tf.gather(ccount, starts, batch_dims=1)
    return tf.math.divide_no_nan(total, count)
