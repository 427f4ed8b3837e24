"""Unsupervised text-to-mel alignment (Badlani et al. 2021, as used by JETS).

A text encoder and a mel encoder project both sequences to a shared space;
the score of (frame t, token j) is minus their L2 distance. A log-softmax
over the tokens plus a beta-binomial prior gives soft alignment log-probs,
which train the encoders through the forward-sum loss (the likelihood of all
monotonic alignments: `ctc_forward_sum_loss`, with a blank as in RAD-TTS and
JETS, or `forward_sum_loss`, without) and yield hard durations through
monotonic alignment search (MAS). No external durations are needed.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.models.layers import BuiltByFirstCall
from bittts_tf.quant import QuantConv1D

_PACKAGE = "bittts_tf"

# Stands in for log(0): finite so that masked cells never produce inf - inf = NaN
# in the forward recursion or its gradient.
LOG_ZERO = -1e9


def beta_binomial_log_prior(text_lengths, mel_lengths, max_text: int | None = None,
                            max_mel: int | None = None, scaling: float = 1.0):
    """log P(token j | frame t) under a beta-binomial prior, [B, T_mel, T_text].

    For an utterance of N tokens and T frames, frame t (1-based) gets
    BetaBinomial(n=N-1, a=scaling*t, b=scaling*(T-t+1)) over j = 0..N-1: a soft
    diagonal that keeps early training from collapsing onto one token.
    Padded cells are 0 (the prior does not act there; masks do).
    """
    text_lengths = tf.cast(text_lengths, tf.float32)
    mel_lengths = tf.cast(mel_lengths, tf.float32)
    if max_text is None:
        max_text = tf.cast(tf.reduce_max(text_lengths), tf.int32)
    if max_mel is None:
        max_mel = tf.cast(tf.reduce_max(mel_lengths), tf.int32)
    k = tf.cast(tf.range(max_text), tf.float32)[None, None, :]
    t = tf.cast(tf.range(1, max_mel + 1), tf.float32)[None, :, None]
    n = (text_lengths - 1.0)[:, None, None]
    big_t = mel_lengths[:, None, None]
    a = scaling * t
    b = scaling * (big_t - t + 1.0)
    valid = tf.logical_and(k <= n, t <= big_t)
    # Keep the lgamma arguments positive in padded cells; they are masked anyway.
    safe_k = tf.where(valid, k, 0.0)
    safe_b = tf.where(valid, b, 1.0)
    safe_n = tf.maximum(n, safe_k)
    log_choose = (tf.math.lgamma(safe_n + 1.0) - tf.math.lgamma(safe_k + 1.0)
                  - tf.math.lgamma(safe_n - safe_k + 1.0))
    log_beta_num = (tf.math.lgamma(safe_k + a) + tf.math.lgamma(safe_n - safe_k + safe_b)
                    - tf.math.lgamma(safe_n + a + safe_b))
    log_beta_den = tf.math.lgamma(a) + tf.math.lgamma(safe_b) - tf.math.lgamma(a + safe_b)
    return tf.where(valid, log_choose + log_beta_num - log_beta_den, 0.0)


def masked_log_softmax(scores, text_mask):
    """log-softmax over the last (token) axis, padded tokens at LOG_ZERO."""
    scores = tf.where(text_mask, scores, LOG_ZERO)
    return tf.where(text_mask, tf.nn.log_softmax(scores, axis=-1), LOG_ZERO)


def forward_sum_loss(log_probs, text_lengths, mel_lengths):
    """-log sum over monotonic alignments of prod_t P(token a_t | frame t), per frame.

    An alignment maps each frame to one token, starts at the first token, ends
    at the last, and advances by 0 or 1 token per frame (every token is used).
    `log_probs` is [B, T_mel, T_text]; each frame is renormalized over the
    valid tokens first, so the result is a proper likelihood. Returns the mean
    over the batch of -log P / T_mel.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    text_lengths = tf.cast(text_lengths, tf.int32)
    mel_lengths = tf.cast(mel_lengths, tf.int32)
    max_text = tf.shape(log_probs)[2]
    text_mask = tf.sequence_mask(text_lengths, max_text)[:, None, :]
    log_probs = masked_log_softmax(log_probs, text_mask)

    first = log_probs[:, 0, :]
    token_index = tf.range(max_text)[None, :]
    alpha0 = tf.where(token_index == 0, first, LOG_ZERO)

    def step(alpha, frame_log_probs):
        shifted = tf.pad(alpha[:, :-1], [[0, 0], [1, 0]], constant_values=LOG_ZERO)
        stay_or_advance = tf.reduce_logsumexp(tf.stack([alpha, shifted], axis=0), axis=0)
        return stay_or_advance + frame_log_probs

    rest = tf.transpose(log_probs[:, 1:, :], [1, 0, 2])
    alphas = tf.scan(step, rest, initializer=alpha0)
    alphas = tf.concat([alpha0[None], alphas], axis=0)  # [T_mel, B, T_text]
    batch = tf.range(tf.shape(log_probs)[0])
    last = tf.stack([mel_lengths - 1, batch, text_lengths - 1], axis=1)
    log_likelihood = tf.gather_nd(alphas, last)
    return tf.reduce_mean(-log_likelihood / tf.cast(mel_lengths, tf.float32))


BLANK_LOG_PROB = -1.0


def ctc_forward_sum_loss(log_probs, text_lengths, mel_lengths, blank_log_prob=BLANK_LOG_PROB):
    """RAD-TTS / JETS forward-sum: CTC of the token sequence 1..N over the
    frames, with a blank of fixed log-score `blank_log_prob` appended to every
    frame (frames may then also belong to no token). Mean over the batch of
    -log P / N_tokens, as torch's CTC 'mean' reduction.

    The CTC forward recursion runs as a `tf.scan` over the frames, the way
    `forward_sum_loss` does: on a CPU its loss and gradient cost about a
    thirteenth of `tf.nn.ctc_loss`'s, which dominated a training step. The
    labels 1..N are all distinct, so a token state may always be entered from
    the previous token's state, skipping the blank between them.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    text_lengths = tf.cast(text_lengths, tf.int32)
    mel_lengths = tf.cast(mel_lengths, tf.int32)
    batch_size, max_text = tf.shape(log_probs)[0], tf.shape(log_probs)[2]
    text_mask = tf.sequence_mask(text_lengths, max_text)[:, None, :]
    scores = tf.where(text_mask, log_probs, LOG_ZERO)
    blank = tf.fill(tf.concat([tf.shape(scores)[:2], [1]], 0), blank_log_prob)
    normalized = tf.nn.log_softmax(tf.concat([blank, scores], axis=-1), axis=-1)
    blank_scores, token_scores = normalized[..., :1], normalized[..., 1:]
    # Extended states blank, token 1, blank, token 2, ..., token N, blank: [B, T, 2N + 1].
    interleaved = tf.reshape(
        tf.stack([tf.repeat(blank_scores, max_text, axis=-1), token_scores], axis=-1),
        tf.concat([tf.shape(scores)[:2], [2 * max_text]], 0))
    extended = tf.concat([interleaved, blank_scores], axis=-1)
    n_states = 2 * max_text + 1
    state = tf.range(n_states)[None, :]
    may_skip = tf.logical_and(state % 2 == 1, state >= 3)

    alpha0 = tf.where(state <= 1, extended[:, 0, :], LOG_ZERO)

    def step(alpha, frame_scores):
        from_previous = tf.pad(alpha[:, :-1], [[0, 0], [1, 0]], constant_values=LOG_ZERO)
        from_two_back = tf.where(
            may_skip, tf.pad(alpha[:, :-2], [[0, 0], [2, 0]], constant_values=LOG_ZERO), LOG_ZERO)
        return (tf.reduce_logsumexp(tf.stack([alpha, from_previous, from_two_back], 0), 0)
                + frame_scores)

    rest = tf.transpose(extended[:, 1:, :], [1, 0, 2])
    alphas = tf.scan(step, rest, initializer=alpha0)
    alphas = tf.concat([alpha0[None], alphas], axis=0)  # [T_mel, B, 2N + 1]
    batch = tf.range(batch_size)
    last_frame = mel_lengths - 1
    ends = [tf.gather_nd(alphas, tf.stack([last_frame, batch, 2 * text_lengths - offset], 1))
            for offset in (0, 1)]  # the final blank, or the last token
    log_likelihood = tf.reduce_logsumexp(tf.stack(ends, 0), 0)
    return tf.reduce_mean(-log_likelihood / tf.cast(text_lengths, tf.float32))


def monotonic_alignment_search(log_probs: np.ndarray) -> np.ndarray:
    """Most likely monotonic alignment of one utterance (Viterbi), as a 0/1 matrix.

    `log_probs` is [T_mel, T_text] with T_mel >= T_text, unpadded. Same path
    constraints as `forward_sum_loss`; returns int32 [T_mel, T_text] with one 1
    per frame.
    """
    log_probs = np.asarray(log_probs, np.float64)
    n_frames, n_tokens = log_probs.shape
    if n_tokens == 0 or n_frames < n_tokens:
        raise ValueError(f"need at least one frame per token, got {n_frames} frames "
                         f"for {n_tokens} tokens")
    best = np.full((n_frames, n_tokens), -np.inf)
    came_from_previous = np.zeros((n_frames, n_tokens), bool)
    best[0, 0] = log_probs[0, 0]
    for t in range(1, n_frames):
        stay = best[t - 1]
        advance = np.concatenate([[-np.inf], best[t - 1, :-1]])
        came_from_previous[t] = advance > stay
        best[t] = np.maximum(stay, advance) + log_probs[t]
    path = np.zeros((n_frames, n_tokens), np.int32)
    token = n_tokens - 1
    for t in range(n_frames - 1, -1, -1):
        path[t, token] = 1
        if t > 0 and came_from_previous[t, token]:
            token -= 1
    return path


def batch_monotonic_alignment_search(log_probs, text_lengths, mel_lengths) -> np.ndarray:
    """MAS over a padded batch: [B, T_mel, T_text] -> 0/1 float32, zeros in padding."""
    log_probs = np.asarray(log_probs)
    paths = np.zeros(log_probs.shape, np.float32)
    for i, (n_tokens, n_frames) in enumerate(zip(np.asarray(text_lengths), np.asarray(mel_lengths))):
        paths[i, :n_frames, :n_tokens] = monotonic_alignment_search(
            log_probs[i, :n_frames, :n_tokens])
    return paths


def hard_alignment(log_probs, text_lengths, mel_lengths):
    """MAS inside a tf graph (no gradient: the path is a discrete choice)."""
    paths = tf.numpy_function(batch_monotonic_alignment_search,
                              [tf.stop_gradient(log_probs), text_lengths, mel_lengths],
                              tf.float32, stateful=False)
    paths.set_shape(log_probs.shape)
    return paths


def binarization_loss(hard, log_probs, reduce=None):
    """-mean over the frames of log P(soft alignment agrees with the hard one).
    `reduce`: sums over the replicas of a global batch (training.distribute)."""
    chosen = tf.reduce_sum(hard * tf.maximum(log_probs, LOG_ZERO), axis=[1, 2])
    if reduce is not None:
        return -reduce.sum(tf.reduce_sum(chosen)) / tf.maximum(reduce.sum(tf.reduce_sum(hard)),
                                                               1.0)
    return -tf.reduce_sum(chosen) / tf.maximum(tf.reduce_sum(hard), 1.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlignmentModule(BuiltByFirstCall, keras.layers.Layer):
    """Text/mel encoders and their L2 scores; returns soft alignment log-probs.

    Sizes follow RAD-TTS: keys 2 convs (kernel `key_kernel`, then 1), queries
    3 convs (kernel `query_kernel`, 1, 1), both into `attention_channels`.
    The score is minus the L2 distance times `temperature` (JETS); RAD-TTS's
    squared distance with temperature 5e-4 suits raw log-mels, not the
    standardized ones used here.
    """

    def __init__(self, text_channels=256, n_mels=80, attention_channels=80,
                 hidden_multiplier=2, temperature=1.0, prior_scaling=1.0,
                 weight_bits=32, query_kernel=3, key_kernel=3, **kwargs):
        super().__init__(**kwargs)
        self.text_channels = text_channels
        self.n_mels = n_mels
        self.attention_channels = attention_channels
        self.hidden_multiplier = hidden_multiplier
        self.temperature = temperature
        self.prior_scaling = prior_scaling
        self.weight_bits = weight_bits
        self.query_kernel = query_kernel
        self.key_kernel = key_kernel
        conv = lambda ch, k, name: QuantConv1D(ch, k, padding="same", weight_bits=weight_bits,
                                               name=name)
        self.key_layers = [conv(text_channels * hidden_multiplier, key_kernel, "key_conv_0"),
                           conv(attention_channels, 1, "key_conv_1")]
        self.query_layers = [conv(n_mels * hidden_multiplier, query_kernel, "query_conv_0"),
                             conv(attention_channels, 1, "query_conv_1"),
                             conv(attention_channels, 1, "query_conv_2")]

    def call(self, text_features, mels, text_lengths, mel_lengths):
        text_mask = tf.sequence_mask(text_lengths, tf.shape(text_features)[1])
        mel_mask = tf.sequence_mask(mel_lengths, tf.shape(mels)[1])
        text_weights = tf.cast(text_mask, text_features.dtype)[..., None]
        mel_weights = tf.cast(mel_mask, mels.dtype)[..., None]
        # Zeroing the padding before every conv keeps valid outputs identical to
        # those of the same utterance run alone (the convs' "same" padding is zeros).
        keys = _masked_conv_stack(self.key_layers, text_features, text_weights)
        queries = _masked_conv_stack(self.query_layers, mels, mel_weights)
        distance = (tf.reduce_sum(queries ** 2, -1)[:, :, None]
                    - 2.0 * tf.matmul(queries, keys, transpose_b=True)
                    + tf.reduce_sum(keys ** 2, -1)[:, None, :])
        # The epsilon keeps the sqrt's gradient finite at zero distance.
        scores = -self.temperature * tf.sqrt(tf.maximum(distance, 0.0) + 1e-8)
        log_probs = masked_log_softmax(scores, text_mask[:, None, :])
        prior = beta_binomial_log_prior(text_lengths, mel_lengths, tf.shape(text_features)[1],
                                        tf.shape(mels)[1], self.prior_scaling)
        cell_mask = tf.logical_and(text_mask[:, None, :], mel_mask[:, :, None])
        return tf.where(cell_mask, log_probs + tf.cast(prior, log_probs.dtype),
                        tf.cast(LOG_ZERO, log_probs.dtype))

    def get_config(self):
        return {**super().get_config(), "text_channels": self.text_channels,
                "n_mels": self.n_mels, "attention_channels": self.attention_channels,
                "hidden_multiplier": self.hidden_multiplier, "temperature": self.temperature,
                "prior_scaling": self.prior_scaling, "weight_bits": self.weight_bits,
                "query_kernel": self.query_kernel, "key_kernel": self.key_kernel}


def _masked_conv_stack(layers, x, weights):
    for i, layer in enumerate(layers):
        x = layer(x * weights)
        if i < len(layers) - 1:
            x = tf.nn.relu(x)
    return x * weights


def durations_from_alignment(hard):
    """Frames per token, [B, T_text], from a 0/1 alignment [B, T_mel, T_text]."""
    return tf.reduce_sum(hard, axis=1)
