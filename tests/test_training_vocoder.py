"""Vocoder training recipe: generator-only warm-up on the spectral losses,
then the discriminators; fine-tuning on a frozen acoustic model's mels."""

import numpy as np
import pytest

from bittts_tf.models import build, configs
from bittts_tf.training import checkpoints, data, run
from bittts_tf.training import losses as losses_lib
from test_training import CHEAP_DISCRIMINATORS, options


def test_stft_loss_is_zero_only_for_equal_signals(rng):
    import tensorflow as tf
    real = tf.constant(rng.normal(0, 0.1, (2, 4096)), tf.float32)
    assert float(losses_lib.multi_resolution_stft_loss(real, real)) < 1e-3
    noisy = real + tf.constant(rng.normal(0, 0.05, (2, 4096)), tf.float32)
    assert float(losses_lib.multi_resolution_stft_loss(noisy, real)) > 0.1


def hann(n):
    """The periodic Hann window tf.signal.hann_window makes."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def numpy_spectra(audio, n, hop):
    """rfft of Hann-windowed frames without padding, as tf.signal.stft frames."""
    frames = np.stack([audio[..., i:i + n] for i in range(0, audio.shape[-1] - n + 1, hop)],
                      axis=-2)
    return np.fft.rfft(frames * hann(n), axis=-1)


def numpy_cepstral_loss(fake, real):
    """The cepstral loss in numpy: the log of the floored magnitude, a real
    inverse FFT."""
    n, hop = losses_lib.CEPSTRAL_FFT, losses_lib.CEPSTRAL_HOP
    low, high = losses_lib.CEPSTRAL_QUEFRENCIES

    def cepstrum(audio):
        magnitude = np.sqrt(np.abs(numpy_spectra(audio, n, hop)) ** 2 + 1e-7)
        return np.fft.irfft(np.log(magnitude), n=n, axis=-1)[..., low:high]

    return np.mean(np.abs(cepstrum(fake) - cepstrum(real)))


def numpy_phase_loss(fake, real):
    """The phase loss in numpy: angles by np.angle, each phase step's
    difference as 1 - cos, weighted by the real step's magnitude."""
    f, r = (numpy_spectra(x, losses_lib.PHASE_FFT, losses_lib.PHASE_HOP) for x in (fake, real))
    total = 0.0
    for axis in (-2, -1):
        def step(x):
            later = np.take(x, np.arange(1, x.shape[axis]), axis=axis)
            earlier = np.take(x, np.arange(x.shape[axis] - 1), axis=axis)
            return later * np.conj(earlier)
        weight = np.abs(step(r))
        distance = 1 - np.cos(np.angle(step(f)) - np.angle(step(r)))
        total += np.sum(distance * weight) / np.sum(weight)
    return total / 2


def harmonic_voice(rng, rate=16000, samples=8192):
    """(f0, a [1, samples] sum of harmonics at random phases up to 7 kHz)."""
    f0 = rng.uniform(100, 300)
    t = np.arange(samples) / rate
    return f0, sum(np.cos(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
                   for k in range(1, int(7000 / f0)))[None] * 0.1


def loss_values(loss, numpy_loss, cases):
    """{case: loss(fake, real)} after checking each against numpy_loss."""
    import tensorflow as tf
    values = {}
    for name, (fake, real) in cases.items():
        ours = float(loss(tf.constant(fake, tf.float32), tf.constant(real, tf.float32)))
        assert ours == pytest.approx(numpy_loss(fake, real), rel=1e-3, abs=1e-5), name
        values[name] = ours
    return values


def test_cepstral_loss_equals_numpy_and_sees_a_voice_lose_its_harmonics(rng):
    f0, voice = harmonic_voice(rng)
    noise = rng.normal(0, 0.01, voice.shape)
    values = loss_values(losses_lib.cepstral_loss, numpy_cepstral_loss, {
        "same": (voice, voice), "noisier": (voice + 3 * noise, voice + noise),
        "random": (rng.normal(0, 0.1, (2, 8192)), rng.normal(0, 0.1, (2, 8192)))})
    print(f"f0 {f0:.1f} Hz: {values}")
    assert values["same"] < 1e-6 < values["noisier"]


def test_phase_loss_equals_numpy_and_sees_jittered_phases(rng):
    f0, voice = harmonic_voice(rng)
    # The voice with its phases jittered: every frame of its STFT rotated by
    # Gaussian angles, overlap-added back.
    n, hop = losses_lib.PHASE_FFT, losses_lib.PHASE_HOP
    jittered = np.zeros_like(voice)
    norm = np.zeros(voice.shape[-1])
    for i, frame in enumerate(numpy_spectra(voice[0], n, hop)):
        frame = frame * np.exp(1j * rng.normal(0, 0.5, frame.shape))
        jittered[0, i * hop:i * hop + n] += np.fft.irfft(frame, n) * hann(n)
        norm[i * hop:i * hop + n] += hann(n) ** 2
    jittered[0] /= np.maximum(norm, 1e-3)
    values = loss_values(losses_lib.phase_loss, numpy_phase_loss, {
        "same": (voice, voice), "jittered": (jittered, voice),
        "random": (rng.normal(0, 0.1, (2, 8192)), rng.normal(0, 0.1, (2, 8192)))})
    print(f"f0 {f0:.1f} Hz: {values}")
    assert values["same"] < 1e-5 < values["jittered"]
    # Unrelated noise is about as far as phases can be (1 - cos of a uniform angle: 1).
    assert values["jittered"] < values["random"]


def test_discriminators_wait_for_the_warm_up(tmp_path):
    result = run.train(options(tmp_path / "voc", mode="vocoder", quantize="vocoder", steps=4,
                               stft_loss_weight=9.0, cepstral_loss_weight=50.0, phase_loss_weight=10.0,
                               generator_warmup_steps=2,
                               media_every=4))   # TensorBoard audio of a plain vocoder too
    losses = result["train_losses"]
    for step in (1, 2):  # the optimizer's step counter is 0 and 1 here: warm-up
        assert losses[step]["adversarial"] == losses[step]["discriminator"] == 0.0
        assert losses[step]["stft"] > 0 and losses[step]["cepstral"] > 0 and losses[step]["phase"] > 0
    for step in (3, 4):
        assert losses[step]["adversarial"] > 0 and losses[step]["discriminator"] > 0
    # The discriminators' optimizer took exactly the two adversarial steps.
    assert int(result["trainer"].discriminator_optimizer.iterations) == 2


def test_fine_tuning_uses_the_frozen_teachers_aligned_mels(tmp_path):
    teacher_run = run.train(options(tmp_path / "am", mode="acoustic", quantize="acoustic",
                                    steps=2))
    tuned = run.train(options(tmp_path / "voc", mode="vocoder", steps=2, stft_loss_weight=9.0,
                              teacher_acoustic=str(tmp_path / "am")))
    trainer = tuned["trainer"]
    teacher = trainer.teacher
    # The teacher is the acoustic checkpoint, unchanged by vocoder training.
    manifest = checkpoints.read_manifest(teacher_run["checkpoint"])
    fresh = build.build_acoustic(configs.ModelConfig.from_dict(manifest["model_config"]))
    checkpoints.restore(teacher_run["checkpoint"], {"acoustic": fresh})
    assert len(teacher.weights) == len(fresh.weights)
    for got, stored in zip(teacher.weights, fresh.weights):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(stored))
    # Its ground-truth-aligned mel is what the vocoder hears, and only the
    # generator and discriminators are saved.
    corpus = run.load_corpus("synthetic:20", trainer.audio_config, 4)
    batch = data.pad_batch(corpus.train[:2], trainer.audio_config.hop_length)
    expected = teacher(batch, training=False, use_ground_truth_durations=True)["mel"]
    np.testing.assert_array_equal(np.asarray(trainer.vocoder_input(batch)), np.asarray(expected))
    layout = checkpoints.read_manifest(tuned["checkpoint"])["layout"]
    assert not any(group.startswith("model/acoustic") for group in layout)


def _vocoder_trainer(noise: float, seed: int):
    from bittts_tf.training import jets_trainer
    from bittts_tf.training.config import TrainingConfig
    # Only the input noise is used: the cheapest discriminators that compile.
    config = configs.preset("tiny", vocoder_overrides=CHEAP_DISCRIMINATORS)
    training = TrainingConfig(mode="vocoder", vocoder_input_noise=noise, seed=seed)
    trainer = jets_trainer.JetsTrainer(training, config.audio,
                                       generator=build.build_generator(config),
                                       discriminators=build.build_discriminators(config))
    trainer.compile(jets_trainer.make_optimizer(training), jets_trainer.make_optimizer(training))
    return trainer


def test_input_noise_is_gaussian_of_its_deviation_and_repeats_on_resume(rng, seed):
    import tensorflow as tf
    from bittts_tf.training.config import TrainingConfig
    sigma = float(rng.uniform(0.01, 0.2))
    segment = tf.constant(rng.normal(-4, 2, (4, 48, 80)), tf.float32)
    noisy = _vocoder_trainer(sigma, seed)
    added = (noisy.with_input_noise(segment) - segment).numpy().ravel()
    # 15,360 draws: the sample deviation is within 0.6% of sigma at one
    # standard error, the mean within 0.008 sigma; the bounds are ~8 errors.
    assert abs(added.std() / sigma - 1) < 0.05, (added.std(), sigma)
    assert abs(added.mean()) < 0.07 * sigma
    assert abs(np.mean(np.abs(added) < sigma) - 0.6827) < 0.03   # Gaussian, not uniform
    # The same step of the same run draws the same noise (a resumed run
    # repeats it); the next step draws other noise.
    again = _vocoder_trainer(sigma, seed).with_input_noise(segment).numpy().ravel()
    np.testing.assert_array_equal(again - segment.numpy().ravel(), added)
    noisy.optimizer.iterations.assign_add(1)
    assert not np.allclose(noisy.with_input_noise(segment).numpy().ravel(),
                           segment.numpy().ravel() + added)
    # At 0 the segment passes untouched; a negative deviation is refused.
    np.testing.assert_array_equal(_vocoder_trainer(0.0, seed).with_input_noise(segment), segment)
    with pytest.raises(ValueError, match="vocoder_input_noise"):
        TrainingConfig(mode="vocoder", vocoder_input_noise=-0.1)
