"""Losses of the acoustic model (JETS) and of HiFi-GAN (least-squares GAN).

`reduce`: None on one device (the original ops), or a
distribute.ReplicaReduce inside strategy.run, whose cross-replica sums make
every mean the global batch's."""

from __future__ import annotations

import tensorflow as tf

from bittts_tf.models import alignment


def _mean(x, reduce=None):
    return tf.reduce_mean(x) if reduce is None else reduce.mean(x)


def _sum(x, reduce=None):
    return x if reduce is None else reduce.sum(x)


def masked_mean_abs(prediction, target, weights, reduce=None):
    """Mean |prediction - target| over valid frames and channels; weights [B, T, 1]."""
    channels = tf.cast(tf.shape(prediction)[-1], prediction.dtype)
    total = _sum(tf.reduce_sum(tf.abs(prediction - target) * weights), reduce)
    return total / tf.maximum(_sum(tf.reduce_sum(weights), reduce) * channels, 1.0)


def masked_mean_square(prediction, target, weights, reduce=None):
    """weights [B, T]."""
    return _sum(tf.reduce_sum(tf.square(prediction - target) * weights), reduce) / tf.maximum(
        _sum(tf.reduce_sum(weights), reduce), 1.0)


def acoustic_losses(outputs, batch, step, config, reduce=None) -> dict:
    """Every acoustic loss (unweighted) and their weighted sum under "acoustic_total"."""
    mel_lengths = batch["mel_lengths"]
    text_lengths = batch["phoneme_lengths"]
    mel_weights = tf.sequence_mask(mel_lengths, tf.shape(batch["mels"])[1], tf.float32)[..., None]
    text_weights = tf.sequence_mask(text_lengths, tf.shape(batch["phonemes"])[1], tf.float32)
    losses = {
        "mel_l1": masked_mean_abs(outputs["mel"], batch["mels"], mel_weights, reduce),
        "duration": masked_mean_square(outputs["log_duration"],
                                       tf.math.log(outputs["durations"] + 1.0), text_weights,
                                       reduce),
        "pitch": masked_mean_square(outputs["pitch"], outputs["pitch_target"], text_weights,
                                    reduce),
        "energy": masked_mean_square(outputs["energy"], outputs["energy_target"], text_weights,
                                     reduce),
        "forward_sum": (alignment.ctc_forward_sum_loss if config.forward_sum == "ctc"
                        else alignment.forward_sum_loss)(outputs["log_probs"], text_lengths,
                                                         mel_lengths),
        "binarization": alignment.binarization_loss(outputs["hard_alignment"],
                                                    outputs["log_probs"], reduce),
    }
    if reduce is not None:
        # A mean over the utterances: the global batch's.
        losses["forward_sum"] = reduce.batch_mean(losses["forward_sum"],
                                                  tf.shape(text_lengths)[0])
    binarize = tf.cast(tf.cast(step, tf.int64) >= config.binarization_start_step, tf.float32)
    losses["acoustic_total"] = (
        config.acoustic_mel_weight * losses["mel_l1"]
        + config.variance_weight * (losses["duration"] + losses["pitch"] + losses["energy"])
        + config.forward_sum_weight * losses["forward_sum"]
        + binarize * config.binarization_weight * losses["binarization"])
    if "frame_f0" in outputs:
        losses.update(frame_f0_losses(outputs["frame_f0"], outputs["frame_log_f0_target"],
                                      outputs["frame_voiced"], mel_weights[..., 0], reduce))
        losses["acoustic_total"] += config.frame_f0_weight * (losses["frame_log_f0"]
                                                              + losses["frame_voicing"])
    return losses


def frame_f0_losses(frame_f0, log_f0_target, voiced, frame_weights, reduce=None) -> dict:
    """The frame F0 head's losses: mean |standardized log-F0 error| over the
    voiced frames, and the voicing logit's binary cross-entropy over all
    valid frames ([B, T, 2] head output, [B, T] targets and weights)."""
    voiced_weights = voiced * frame_weights
    log_f0 = _sum(tf.reduce_sum(tf.abs(frame_f0[..., 0] - log_f0_target) * voiced_weights),
                  reduce) / tf.maximum(_sum(tf.reduce_sum(voiced_weights), reduce), 1.0)
    entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=voiced, logits=frame_f0[..., 1])
    voicing = _sum(tf.reduce_sum(entropy * frame_weights), reduce) / tf.maximum(
        _sum(tf.reduce_sum(frame_weights), reduce), 1.0)
    return {"frame_log_f0": log_f0, "frame_voicing": voicing}


def discriminator_loss(real_scores, fake_scores, reduce=None):
    """sum over discriminators of mean (1 - D(real))^2 + mean D(fake)^2."""
    return tf.add_n([_mean(tf.square(1.0 - r), reduce) + _mean(tf.square(f), reduce)
                     for r, f in zip(real_scores, fake_scores)])


def generator_adversarial_loss(fake_scores, reduce=None):
    return tf.add_n([_mean(tf.square(1.0 - f), reduce) for f in fake_scores])


def feature_matching_loss(real_features, fake_features, reduce=None):
    """sum over every discriminator layer of mean |real - fake| (real held fixed)."""
    return tf.add_n([_mean(tf.abs(tf.stop_gradient(r) - f), reduce)
                     for real, fake in zip(real_features, fake_features)
                     for r, f in zip(real, fake)])


# (n_fft, hop) pairs of the multi-resolution STFT loss: 16 ms to 128 ms
# windows at 16 kHz (Parallel WaveGAN uses three of 512-2048 at 24 kHz).
STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512))


def stft(audio, n_fft: int, hop: int):
    """Hann-windowed frames without padding, [..., frames, n_fft // 2 + 1]."""
    return tf.signal.stft(audio, n_fft, hop, fft_length=n_fft, window_fn=tf.signal.hann_window)


def stft_magnitude(audio, n_fft: int, hop: int):
    return tf.sqrt(tf.square(tf.abs(stft(audio, n_fft, hop))) + 1e-7)


# Quefrencies of the voice's pitch (60-400 Hz at 16 kHz) in the real cepstrum
# of a 1024-sample frame: where a periodic voice has its cepstral peak.
CEPSTRAL_FFT, CEPSTRAL_HOP = 1024, 256
CEPSTRAL_QUEFRENCIES = (40, 267)


def cepstral_loss(fake, real, reduce=None):
    """Mean |difference| of the real cepstra (inverse FFT of the log
    magnitude) over the pitch quefrencies: how far the output's harmonics
    stand above the noise between them, against the recording's. The
    shipped voice's cepstral peak, frame by frame over its loud frames, is
    half festival's (1.55 against 2.98 on 20 validation sentences; Praat's
    smoothed CPPS, which averages 20 ms of cepstra over every frame: 14.71
    against 15.32 dB): the harmonics are a small part of a log spectrum's L1,
    and the whole of this loss."""
    low, high = CEPSTRAL_QUEFRENCIES

    def cepstrum(audio):
        log_magnitude = tf.math.log(stft_magnitude(audio, CEPSTRAL_FFT, CEPSTRAL_HOP))
        return tf.signal.irfft(tf.complex(log_magnitude, tf.zeros_like(log_magnitude)),
                               fft_length=[CEPSTRAL_FFT])[..., low:high]

    return _mean(tf.abs(cepstrum(fake) - cepstrum(real)), reduce)


def multi_resolution_stft_loss(fake, real, resolutions=STFT_RESOLUTIONS, reduce=None):
    """Mean over resolutions of spectral convergence + mean |log magnitude
    difference| (Parallel WaveGAN, Yamamoto et al. 2020)."""
    total = 0.0
    for n_fft, hop in resolutions:
        fake_magnitude = stft_magnitude(fake, n_fft, hop)
        real_magnitude = stft_magnitude(real, n_fft, hop)
        if reduce is None:
            convergence = tf.norm(real_magnitude - fake_magnitude) / tf.maximum(
                tf.norm(real_magnitude), 1e-7)
        else:  # Frobenius norms of the global batch
            convergence = tf.sqrt(reduce.sum(tf.reduce_sum(tf.square(
                real_magnitude - fake_magnitude)))) / tf.maximum(
                tf.sqrt(reduce.sum(tf.reduce_sum(tf.square(real_magnitude)))), 1e-7)
        log_distance = _mean(tf.abs(tf.math.log(real_magnitude)
                                    - tf.math.log(fake_magnitude)), reduce)
        total += convergence + log_distance
    return total / len(resolutions)


# The phase loss's STFT: the frame vocoder's own (1024-sample frames, hop 256).
PHASE_FFT, PHASE_HOP = 1024, 256


def _phase_step_distance(fake_a, fake_b, real_a, real_b):
    """(1 - cos of the difference between the fake's and the real's phase
    step from b to a, weight): the step is the angle of a * conj(b), the
    weight the real step's magnitude, so silence and the noise between
    harmonics, whose phase is anyone's guess, count for little."""
    fake_step = fake_a * tf.math.conj(fake_b)
    real_step = real_a * tf.math.conj(real_b)
    fake_size, real_size = tf.abs(fake_step), tf.abs(real_step)
    # Below a millionth of the real step's mean size a fake step's angle is
    # noise; the floor keeps its gradient (1 / size) bounded there.
    floor = 1e-6 * tf.reduce_mean(real_size) + 1e-12
    cosine = tf.math.real(fake_step * tf.math.conj(real_step)) / (
        tf.maximum(fake_size, floor) * tf.maximum(real_size, floor))
    return 1.0 - cosine, real_size


def phase_loss(fake, real, reduce=None):
    """How far the output's phase steps are from the recording's, frame to
    frame (instantaneous frequency) and bin to bin (group delay), as in
    APNet's anti-wrapping phase losses (Ai and Ling, 2023) but as 1 - cos
    weighted by the recording's magnitude. Why: festival's own clips with
    their phases jittered by 0.5 rad (Gaussian, every bin and frame) fall
    from DNSMOS 3.09 to 2.82 (SIG 3.33 to 3.11) on 40 validation sentences,
    where the shipped voice is (2.86 / 3.12); random phases above 4 kHz
    alone cost 0.03, and halving their harmonics' cepstrum (CPPS 15.6 to
    14.0 dB, below the voice's 14.8) 0.05. Fine-tuning the shipped voice
    with it (weight 30) gained DNSMOS +0.023 at one average and nothing 250
    steps later, with more word errors: not in the recipe."""
    fake_spectrum, real_spectrum = stft(fake, PHASE_FFT, PHASE_HOP), stft(real, PHASE_FFT, PHASE_HOP)
    total = 0.0
    for later, earlier in ((lambda x: x[:, 1:, :], lambda x: x[:, :-1, :]),    # frame to frame
                           (lambda x: x[:, :, 1:], lambda x: x[:, :, :-1])):   # bin to bin
        distance, weight = _phase_step_distance(later(fake_spectrum), earlier(fake_spectrum),
                                                later(real_spectrum), earlier(real_spectrum))
        total += _sum(tf.reduce_sum(distance * weight), reduce) / tf.maximum(
            _sum(tf.reduce_sum(weight), reduce), 1e-12)
    return total / 2.0
