"""Alignment learning against independent references: brute-force search over
all monotonic paths, a numpy forward algorithm, scipy's beta-binomial pmf."""

import itertools

import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

from bittts_tf.models import alignment


def all_monotonic_paths(n_frames, n_tokens):
    """Every path as a token index per frame: durations are the compositions
    of n_frames into n_tokens positive parts."""
    for cuts in itertools.combinations(range(1, n_frames), n_tokens - 1):
        bounds = (0,) + cuts + (n_frames,)
        yield np.concatenate([np.full(bounds[j + 1] - bounds[j], j) for j in range(n_tokens)])


def path_matrix(tokens, n_tokens):
    m = np.zeros((len(tokens), n_tokens), np.int32)
    m[np.arange(len(tokens)), tokens] = 1
    return m


@pytest.mark.parametrize("case", range(12))
def test_mas_equals_brute_force(case, rng):
    n_tokens = int(rng.integers(1, 5))
    n_frames = int(rng.integers(n_tokens, 9))
    log_probs = rng.normal(size=(n_frames, n_tokens)) * 3
    best_score, best = -np.inf, None
    for tokens in all_monotonic_paths(n_frames, n_tokens):
        score = log_probs[np.arange(n_frames), tokens].sum()
        if score > best_score:
            best_score, best = score, tokens
    found = alignment.monotonic_alignment_search(log_probs)
    np.testing.assert_array_equal(found, path_matrix(best, n_tokens))
    assert found.sum(axis=1).tolist() == [1] * n_frames


def test_mas_rejects_too_few_frames():
    with pytest.raises(ValueError, match="at least one frame per token"):
        alignment.monotonic_alignment_search(np.zeros((2, 3)))


def test_batched_mas_ignores_padding(rng):
    a = rng.normal(size=(6, 3))
    padded = rng.normal(size=(2, 9, 4)) * 100  # garbage in the padding
    padded[0, :6, :3] = a
    paths = alignment.batch_monotonic_alignment_search(padded, [3, 4], [6, 9])
    np.testing.assert_array_equal(paths[0, :6, :3], alignment.monotonic_alignment_search(a))
    assert paths[0, 6:].sum() == 0 and paths[0, :, 3:].sum() == 0


def numpy_log_softmax(x):
    return x - scipy.special.logsumexp(x, axis=-1, keepdims=True)


def brute_force_forward_sum(log_probs):
    """-log sum over all monotonic paths of prod P, per frame (exact, tiny sizes)."""
    n_frames, n_tokens = log_probs.shape
    lp = numpy_log_softmax(log_probs)
    scores = [lp[np.arange(n_frames), tokens].sum()
              for tokens in all_monotonic_paths(n_frames, n_tokens)]
    return -scipy.special.logsumexp(scores) / n_frames


def test_forward_sum_loss_equals_brute_force_on_a_padded_batch(rng):
    text_lengths = np.array([3, 1, 4, 2])
    mel_lengths = np.array([7, 3, 8, 2])
    log_probs = rng.normal(size=(4, 8, 4)).astype(np.float32) * 2
    expected = np.mean([brute_force_forward_sum(log_probs[i, :t, :n].astype(np.float64))
                        for i, (n, t) in enumerate(zip(text_lengths, mel_lengths))])
    got = alignment.forward_sum_loss(log_probs, text_lengths, mel_lengths)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-5)


def numpy_forward(log_probs):
    n_frames, n_tokens = log_probs.shape
    lp = numpy_log_softmax(log_probs)
    alpha = np.full(n_tokens, -np.inf)
    alpha[0] = lp[0, 0]
    for t in range(1, n_frames):
        advance = np.concatenate([[-np.inf], alpha[:-1]])
        alpha = np.logaddexp(alpha, advance) + lp[t]
    return -alpha[-1] / n_frames


def test_forward_sum_loss_equals_numpy_forward_algorithm_on_long_inputs(rng):
    text_lengths = np.array([20, 35])
    mel_lengths = np.array([150, 90])
    log_probs = rng.normal(size=(2, 150, 35)).astype(np.float32)
    expected = np.mean([numpy_forward(log_probs[i, :t, :n].astype(np.float64))
                        for i, (n, t) in enumerate(zip(text_lengths, mel_lengths))])
    got = alignment.forward_sum_loss(log_probs, text_lengths, mel_lengths)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_forward_sum_gradient_is_finite_and_zero_in_padding(rng):
    log_probs = tf.Variable(rng.normal(size=(2, 10, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = alignment.forward_sum_loss(log_probs, [5, 3], [10, 6])
    grad = tape.gradient(loss, log_probs).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(grad[1, 6:] == 0) and np.all(grad[1, :, 3:] == 0)
    assert np.abs(grad[1, :6, :3]).sum() > 0


def test_beta_binomial_prior_matches_scipy():
    text_lengths = np.array([5, 3])
    mel_lengths = np.array([12, 7])
    prior = alignment.beta_binomial_log_prior(text_lengths, mel_lengths, scaling=1.0).numpy()
    assert prior.shape == (2, 12, 5)
    for i, (n, t_total) in enumerate(zip(text_lengths, mel_lengths)):
        for t in range(1, t_total + 1):
            expected = scipy.stats.betabinom(n - 1, t, t_total - t + 1).logpmf(np.arange(n))
            np.testing.assert_allclose(prior[i, t - 1, :n], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.exp(prior[i, :t_total, :n]).sum(-1), 1.0, rtol=1e-4)
    assert np.all(prior[1, 7:] == 0) and np.all(prior[1, :, 3:] == 0)


def test_binarization_loss_is_the_mean_log_prob_on_the_hard_path(rng):
    log_probs = np.log(rng.dirichlet(np.ones(4), size=(1, 9))).astype(np.float32)
    hard = alignment.batch_monotonic_alignment_search(log_probs, [4], [9])
    expected = -np.sum(hard * log_probs) / 9
    got = alignment.binarization_loss(tf.constant(hard), tf.constant(log_probs))
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_boundary_error_matches_numpy_on_a_padded_batch(rng):
    from bittts_tf.eval.alignment_metrics import boundary_error_ms, boundary_error_ms_np
    lengths = [6, 3]
    durations = np.zeros((2, 6), np.int32)
    reference = np.zeros((2, 6), np.int32)
    for i, n in enumerate(lengths):
        reference[i, :n] = rng.integers(1, 8, n)
        durations[i, :n] = rng.integers(1, 8, n)
        durations[i, n - 1] += reference[i].sum() - durations[i].sum()  # same total
    got = float(boundary_error_ms(durations, reference, lengths, 16.0))
    per_boundary = [boundary_error_ms_np(durations[i, :n], reference[i, :n], 16.0) * (n - 1)
                    for i, n in enumerate(lengths)]
    np.testing.assert_allclose(got, sum(per_boundary) / sum(n - 1 for n in lengths), rtol=1e-6)


def brute_force_ctc(log_probs, blank_log_prob):
    """-log sum over every frame labelling that collapses to 1..N (CTC rules:
    merge repeats, then drop blanks), enumerated outright; / N."""
    n_frames, n_tokens = log_probs.shape
    scores = numpy_log_softmax(np.concatenate([np.full((n_frames, 1), blank_log_prob),
                                               log_probs], axis=1))
    target = list(range(1, n_tokens + 1))
    total = []
    for labels in itertools.product(range(n_tokens + 1), repeat=n_frames):
        collapsed = [l for i, l in enumerate(labels) if i == 0 or l != labels[i - 1]]
        if [l for l in collapsed if l != 0] == target:
            total.append(scores[np.arange(n_frames), labels].sum())
    return -scipy.special.logsumexp(total) / n_tokens


def test_ctc_forward_sum_equals_brute_force_on_a_padded_batch(rng):
    text_lengths = np.array([3, 1, 2])
    mel_lengths = np.array([6, 4, 5])
    log_probs = (rng.normal(size=(3, 6, 3)) * 2).astype(np.float32)
    log_probs[0, :, 1] += 1.0  # not a normalized input: the loss normalizes it
    expected = np.mean([brute_force_ctc(log_probs[i, :t, :n].astype(np.float64), -1.0)
                        for i, (n, t) in enumerate(zip(text_lengths, mel_lengths))])
    got = alignment.ctc_forward_sum_loss(log_probs, text_lengths, mel_lengths, -1.0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)


def test_signed_boundary_errors_and_their_summary_match_a_direct_count(seed):
    from bittts_tf.eval.alignment_metrics import (boundary_error_ms_np, boundary_error_summary,
                                                  boundary_errors_frames)
    rng = np.random.default_rng(seed)
    reference = rng.integers(1, 9, 12)
    learned = reference.copy()
    shift = rng.integers(1, 4)
    learned[0] += shift          # every inner boundary comes `shift` frames late...
    learned[-1] -= shift         # ...and the utterance still ends where it did
    errors = boundary_errors_frames(learned, reference)
    assert errors.tolist() == [shift] * 11
    summary = boundary_error_summary(errors, 16.0)
    assert summary["signed_mean_ms"] == summary["mean_abs_ms"] == summary["median_abs_ms"] == 16.0 * shift
    assert summary["share_over_2_frames"] == (1.0 if shift > 2 else 0.0)
    assert summary["mean_abs_ms"] == pytest.approx(boundary_error_ms_np(learned, reference, 16.0))
    with pytest.raises(ValueError, match="no inner phone boundaries"):
        boundary_error_summary([], 16.0)


def test_ctc_forward_sum_equals_tf_ctc_loss_on_a_random_batch(seed):
    rng = np.random.default_rng(seed)
    batch, max_text, max_mel = 4, 9, 40
    text_lengths = rng.integers(1, max_text + 1, batch)
    mel_lengths = np.maximum(rng.integers(10, max_mel + 1, batch), text_lengths)
    log_probs = (rng.normal(size=(batch, max_mel, max_text)) * 3).astype(np.float32)
    logits = np.concatenate([np.full((batch, max_mel, 1), -1.0, np.float32),
                             np.where(np.arange(max_text) < text_lengths[:, None, None],
                                      log_probs, -1e9)], axis=-1)
    labels = np.where(np.arange(max_text) < text_lengths[:, None], np.arange(1, max_text + 1), 0)
    reference = tf.nn.ctc_loss(labels, logits, text_lengths, mel_lengths,
                               logits_time_major=False, blank_index=0).numpy()
    expected = np.mean(reference / text_lengths)
    got = alignment.ctc_forward_sum_loss(log_probs, text_lengths, mel_lengths, -1.0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_ctc_forward_sum_gradient_matches_tf_ctc_loss_and_is_zero_in_padding(seed):
    rng = np.random.default_rng(seed)
    text_lengths, mel_lengths = np.array([6, 3]), np.array([20, 11])
    values = (rng.normal(size=(2, 20, 6)) * 2).astype(np.float32)
    log_probs = tf.Variable(values)
    with tf.GradientTape() as tape:
        loss = alignment.ctc_forward_sum_loss(log_probs, text_lengths, mel_lengths, -1.0)
    grad = tape.gradient(loss, log_probs).numpy()
    reference_input = tf.Variable(values)
    with tf.GradientTape() as tape:
        logits = tf.concat([tf.fill([2, 20, 1], -1.0), tf.where(
            np.arange(6) < text_lengths[:, None, None], reference_input, -1e9)], -1)
        labels = np.where(np.arange(6) < text_lengths[:, None], np.arange(1, 7), 0)
        reference = tf.reduce_mean(tf.nn.ctc_loss(labels, logits, text_lengths, mel_lengths,
                                                  logits_time_major=False, blank_index=0)
                                   / text_lengths.astype(np.float32))
    expected = tape.gradient(reference, reference_input).numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    assert np.all(grad[1, 11:] == 0) and np.all(grad[1, :, 3:] == 0)
