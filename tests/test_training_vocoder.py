"""Vocoder training recipe: generator-only warm-up on the spectral losses,
then the discriminators; fine-tuning on a frozen acoustic model's mels."""

import numpy as np

from bittts_tf.models import build, configs
from bittts_tf.training import checkpoints, data, run
from bittts_tf.training.losses import multi_resolution_stft_loss
from test_training import options


def test_stft_loss_is_zero_only_for_equal_signals(rng):
    import tensorflow as tf
    real = tf.constant(rng.normal(0, 0.1, (2, 4096)), tf.float32)
    assert float(multi_resolution_stft_loss(real, real)) < 1e-3
    noisy = real + tf.constant(rng.normal(0, 0.05, (2, 4096)), tf.float32)
    assert float(multi_resolution_stft_loss(noisy, real)) > 0.1


def test_discriminators_wait_for_the_warm_up(tmp_path):
    result = run.train(options(tmp_path / "voc", mode="vocoder", quantize="vocoder", steps=4,
                               stft_loss_weight=9.0, generator_warmup_steps=2))
    losses = result["train_losses"]
    for step in (1, 2):  # the optimizer's step counter is 0 and 1 here: warm-up
        assert losses[step]["adversarial"] == losses[step]["discriminator"] == 0.0
        assert losses[step]["stft"] > 0
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
