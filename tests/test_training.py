"""Training through Keras fit: losses, exact resume (in-process and after a
real SIGKILL of tools/train.py), NaN stop, corrupt checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bittts_tf import fileio
from bittts_tf.audio.config import preset as audio_preset
from bittts_tf.eval.synthesis import Synthesizer
from bittts_tf.quant import quantized_layers
from bittts_tf.training import callbacks, checkpoints, run, run_log
from bittts_tf.training.config import TrainingInputError
from bittts_tf.training.mel import LogMel, reference_log_mel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CHEAP_DISCRIMINATORS = {"n_scales": 0, "periods": (2, 3)}


def options(output_dir, **overrides):
    # Eager steps: these runs check what training keeps and refuses, not the
    # traced step (test_distribute and the killed tool trace it); tracing was
    # about half of each run's 40-50 s here.
    base = dict(output_dir=str(output_dir), corpus="synthetic:20", config="tiny", held_out=4,
                batch_size=4, segment_frames=16, checkpoint_every=2, scalar_every=1,
                media_every=1000, binarization_start_step=2, verbose=0, evaluate=False,
                run_eagerly=True)
    base.update(overrides)
    # Two period discriminators and no scale ones: what these runs check
    # does not hang on which discriminators there are, and the scale ones
    # were most of each eager GAN step.
    base["vocoder_overrides"] = {**CHEAP_DISCRIMINATORS, **overrides.get("vocoder_overrides", {})}
    return run.RunOptions(**base)


def test_tf_log_mel_matches_the_feature_extractor(rng):
    config = audio_preset("tiny")
    audio = rng.normal(0, 0.1, (2, 5000)).astype(np.float32)
    got = LogMel(config)(tf.constant(audio)).numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], reference_log_mel(audio[i], config), atol=2e-3)


def test_joint_training_resumes_at_the_same_step_and_loss(tmp_path):
    # Eager steps: what is checked is the resume (weights, both optimizers,
    # step, data position); traced joint steps run in test_distribute.
    # A checkpoint every step: the resume below starts at step 1, before the
    # binarization starts at step 2.
    straight = run.train(options(tmp_path / "straight", mode="joint", quantize="all", steps=2,
                                 checkpoint_every=1))
    losses = straight["train_losses"]
    assert sorted(losses) == [1, 2]
    for row in losses.values():
        assert all(np.isfinite(v) for v in row.values())
        assert {"mel_l1", "forward_sum", "wave_mel_l1", "discriminator", "adversarial"} <= set(row)

    # The joint checkpoint speaks through its own vocoder.
    synthesizer = Synthesizer(str(tmp_path / "straight"))
    assert synthesizer.vocoder_source.endswith("ckpt-00000002.npz")
    mel = synthesizer.mel("Hello world.")
    assert mel.shape[1] == 80 and len(mel) >= len(synthesizer.front_end.encode("Hello world."))
    audio = synthesizer.waveform(mel)
    assert audio.shape == (len(mel) * synthesizer.config.audio.hop_length,)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() < 1
    # The same checkpoint in float64 (tools/check_streaming.py's exact reference).
    exact = Synthesizer(str(tmp_path / "straight"), dtype="float64")
    exact_audio = exact.waveform(mel.astype(np.float64))
    assert exact_audio.dtype == np.float64
    np.testing.assert_allclose(exact_audio, audio, rtol=0, atol=1e-4 * np.abs(exact_audio).max())

    # A second run that only has the step-1 checkpoint (as after a kill at step 2).
    resumed_dir = tmp_path / "resumed" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    shutil.copy(tmp_path / "straight" / "checkpoints" / "ckpt-00000001.npz", resumed_dir)
    resumed = run.train(options(tmp_path / "resumed", mode="joint", quantize="all", steps=2,
                                checkpoint_every=1))
    assert sorted(resumed["train_losses"]) == [2]
    for name, value in losses[2].items():
        np.testing.assert_allclose(resumed["train_losses"][2][name], value, rtol=1e-4,
                                   err_msg=f"step 2 {name}")


def wait_for(path, process, timeout=240):
    start = time.time()
    while not os.path.exists(path):
        if process.poll() is not None:
            raise AssertionError(f"train.py exited with {process.returncode} before {path}")
        if time.time() - start > timeout:
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.05)


def test_train_tool_killed_and_rerun_continues_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, os.path.join(REPO, "tools", "train.py"), "--mode=acoustic",
               "--corpus=synthetic:20", "--held_out=4", "--batch_size=4", "--steps=40",
               "--checkpoint_every=4", "--binarization_start_step=2", "--scalar_every=1",
               f"--output_dir={out}"]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(out / "checkpoints" / "ckpt-00000004.npz", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    last = checkpoints.latest(str(out / "checkpoints"))
    assert last is not None and not os.path.basename(last).startswith(".tmp")
    stopped_at = checkpoints.read_manifest(last)["step"]
    assert stopped_at < 40

    rerun = subprocess.run([c.replace("--steps=40", f"--steps={stopped_at + 4}") for c in command],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resumed from {last} at step {stopped_at}" in rerun.stdout
    logged = run_log.read_losses(str(out))
    assert sorted(logged) == list(range(1, stopped_at + 5))

    # The same steps without the kill, in-process, from the same seed.
    # Traced as the tool's steps are: the losses must agree to 1e-4.
    reference = run.train(options(tmp_path / "reference", mode="acoustic",
                                  steps=stopped_at + 4, checkpoint_every=4, run_eagerly=False))
    for step in range(1, stopped_at + 5):
        np.testing.assert_allclose(logged[step]["loss"], reference["train_losses"][step]["loss"],
                                   rtol=1e-4, err_msg=f"step {step}")


def test_nan_stops_training_without_a_checkpoint(tmp_path, monkeypatch):
    real_build = run.build.build_acoustic

    def poisoned(config):
        model = real_build(config)
        kernel = model.decoder.blocks[0].conv.kernel
        kernel.assign(np.full(kernel.shape, np.nan, np.float32))
        return model

    monkeypatch.setattr(run.build, "build_acoustic", poisoned)
    with pytest.raises(callbacks.NonFiniteLossError, match=r"non-finite loss at step 1: .*mel_l1=nan"):
        run.train(options(tmp_path / "nan", mode="acoustic", steps=2))
    assert checkpoints.latest(str(tmp_path / "nan" / "checkpoints")) is None


def test_corrupt_or_mismatched_checkpoint_is_named(tmp_path):
    result = run.train(options(tmp_path / "ok", mode="acoustic", steps=2))
    path = result["checkpoint"]
    trainer = result["trainer"]
    truncated = tmp_path / "ckpt-00000002.npz"
    truncated.write_bytes(open(path, "rb").read()[:5000])
    with pytest.raises(checkpoints.CheckpointError, match="corrupt or truncated"):
        checkpoints.restore(str(truncated), trainer.models)
    with pytest.raises(checkpoints.CheckpointError, match="has no 'model/generator'"):
        checkpoints.restore(path, {"generator": trainer.acoustic})

    # Resumes that would not continue the run are refused before training;
    # the temporary file of a save that was killed half-way is gone.
    stale = tmp_path / "ok" / "checkpoints" / f"{fileio.TEMP_PREFIX}killed.npz"
    stale.write_bytes(b"half a checkpoint")
    with pytest.raises(TrainingInputError, match="does not hold out what the run resumed"):
        run.train(options(tmp_path / "ok", mode="acoustic", steps=4, held_out=3))
    assert not stale.exists()
    with pytest.raises(TrainingInputError, match="is at step 2, which --checkpoint_every=4 does "
                                                 "not divide"):
        run.train(options(tmp_path / "ok", mode="acoustic", steps=4, checkpoint_every=4))
    assert checkpoints.of_run(str(tmp_path / "ok")) == [path]


def test_held_out_curve_and_cpu_budget_survive_a_resume(tmp_path):
    out = tmp_path / "budget"
    # A budget of ~0 CPU time: the run stops at its first checkpoint (step 2),
    # far before --steps, and records held-out losses at steps 0 and 2.
    first = run.train(options(out, steps=100, evaluate=True, max_cpu_minutes=1e-6))
    assert first["step"] == 2
    curve = run_log.read_held_out(str(out))
    assert sorted(curve) == [0, 2]
    assert 0 <= curve[0]["cpu_seconds"] < curve[2]["cpu_seconds"]
    for row in curve.values():
        assert np.isfinite(row["mel_l1"]) and row["alignment_boundary_ms"] >= 0
    saved = checkpoints.read_manifest(first["checkpoint"])["cpu_seconds"]
    assert saved == pytest.approx(curve[2]["cpu_seconds"], abs=0.1)

    # The spent budget is remembered across the restart: nothing more is trained.
    again = run.train(options(out, steps=100, evaluate=True, max_cpu_minutes=1e-6))
    assert again["step"] == 2 and again["cpu_seconds"] >= saved
    assert sorted(run_log.read_held_out(str(out))) == [0, 2]

    # A larger budget continues from the checkpoint; the curve keeps its rows.
    more = run.train(options(out, steps=4, evaluate=True, max_cpu_minutes=60))
    assert more["step"] == 4
    curve = run_log.read_held_out(str(out))
    assert sorted(curve) == [0, 2, 4] and curve[4]["cpu_seconds"] > curve[2]["cpu_seconds"]


def test_held_out_evaluation_weights_batches_by_utterances():
    class Fixed:
        def test_step(self, batch):
            n = len(batch["phoneme_lengths"])
            return {"loss": float(n)}    # a batch of n reports n

    batches = [{"phoneme_lengths": np.ones(4)}, {"phoneme_lengths": np.ones(1)}]
    got = callbacks.evaluate_held_out(Fixed(), batches)
    assert got["loss"] == pytest.approx((4 * 4 + 1 * 1) / 5)


def test_learning_rate_decays_by_the_given_factor_every_100_steps(seed):
    from bittts_tf.training.config import TrainingConfig
    from bittts_tf.training.jets_trainer import make_optimizer
    rng = np.random.default_rng(seed)
    rate, lr = float(rng.uniform(0.5, 0.99)), float(rng.uniform(1e-4, 1e-2))
    optimizer = make_optimizer(TrainingConfig(learning_rate=lr, lr_decay_rate=rate))
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(lr)  # at iteration 0
    schedule = optimizer._learning_rate  # Keras keeps the schedule object here
    for step in (100, 250, 1000):
        assert float(schedule(step)) == pytest.approx(lr * rate ** (step / 100), rel=1e-5)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="lr_decay_rate must be in"):
            TrainingConfig(lr_decay_rate=bad)


def test_qat_run_starts_from_a_float_run_checkpoint(tmp_path):
    float_run = run.train(options(tmp_path / "float", mode="acoustic", steps=2))
    float_weights = [v.numpy() for v in float_run["trainer"].acoustic.variables]
    float_cpu = checkpoints.read_manifest(float_run["checkpoint"])["cpu_seconds"]

    # --steps equal to the checkpoint's step: nothing is trained, so the
    # ternary model must hold exactly the float run's latent weights.
    ternary = run.train(options(tmp_path / "ternary", mode="acoustic", quantize="acoustic",
                                steps=2, init_from=str(tmp_path / "float")))
    model = ternary["trainer"].acoustic
    assert ternary["step"] == 2 and ternary["cpu_seconds"] >= float_cpu
    assert any(layer.is_ternary for layer in quantized_layers(model))
    for expected, variable in zip(float_weights, model.variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), expected)

    # Trained on, it continues the step count; a resume ignores --init_from
    # and keeps the provenance.
    more = run.train(options(tmp_path / "ternary", mode="acoustic", quantize="acoustic",
                             steps=4, init_from=str(tmp_path / "float")))
    assert more["step"] == 4
    resumed = run.train(options(tmp_path / "ternary", mode="acoustic", quantize="acoustic",
                                steps=4, init_from=str(tmp_path / "elsewhere")))
    assert resumed["step"] == 4
    manifest = checkpoints.read_manifest(resumed["checkpoint"])
    assert manifest["init_from"] == float_run["checkpoint"]
    assert manifest["model_config"]["quantize"] == "acoustic"


def test_vocoder_training_starts_from_a_recovered_checkpoint_not_from_another_mode(tmp_path, rng):
    """A checkpoint rebuilt from a model folder (weights only, no optimizer,
    step or discriminators: tools/recover_checkpoint.py) starts a run at step
    0 with its generator's weights; with a zero learning rate they come out
    of two steps unchanged. That vocoder run does not start an acoustic one."""
    from bittts_tf.models import build, configs

    config = configs.preset("tiny", quantize="all")
    generator = build.build_generator(config)
    for variable in generator.trainable_variables:  # not the initializer's values
        variable.assign(rng.normal(0, 0.1, variable.shape))
    recovered = checkpoints.save(
        str(tmp_path / "recovered"), 0, {"generator": generator}, {},
        {"model_config": config.to_dict(), "recovered_from": {"model_dir": "a model folder"}},
        keep=0)
    out = tmp_path / "from_recovered"
    result = run.train(options(out, mode="vocoder", quantize="all", steps=2, learning_rate=0.0,
                               init_from=recovered))
    assert sorted(result["train_losses"]) == [1, 2]
    after = checkpoints.latest(str(out / "checkpoints"))
    assert checkpoints.read_manifest(after)["init_from"] == recovered
    with np.load(after) as trained, np.load(recovered) as original:
        generator_keys = [k for k in original.files if k.startswith("model/generator/")]
        assert generator_keys
        for key in generator_keys:
            np.testing.assert_array_equal(trained[key], original[key], err_msg=key)

    with pytest.raises(ValueError, match="trained in mode 'vocoder', not 'acoustic'"):
        run.train(options(tmp_path / "acoustic", mode="acoustic", steps=2, init_from=str(out)))
    (tmp_path / "no_run").mkdir()
    with pytest.raises(checkpoints.CheckpointError, match="--init_from=.*no_run: no checkpoint in this directory"):
        run.train(options(tmp_path / "acoustic2", mode="acoustic", steps=2,
                          init_from=str(tmp_path / "no_run")))


def test_joint_training_starts_from_a_recovered_checkpoint_of_both_models(tmp_path, rng):
    """A JETS-style joint fine-tune starts from the shipped voice as
    tools/recover_checkpoint.py rebuilds it: its acoustic model and generator
    both come in (with a zero learning rate, out of two steps unchanged); a
    recovered checkpoint without the generator is refused in one line."""
    from tts_models import random_recovered_checkpoint

    both, acoustic, metadata = random_recovered_checkpoint(rng, tmp_path / "both")
    out = tmp_path / "joint"
    result = run.train(options(out, mode="joint", quantize="all", steps=2, learning_rate=0.0,
                               init_from=both, use_ground_truth_durations=True))
    assert sorted(result["train_losses"]) == [1, 2]
    with np.load(checkpoints.latest(str(out / "checkpoints"))) as trained, np.load(both) as original:
        for group in ("model/acoustic/", "model/generator/"):
            # Weights, not the dropout seed states (int), which advance each step.
            keys = [k for k in original.files
                    if k.startswith(group) and original[k].dtype.kind == "f"]
            assert keys, group
            for key in keys:
                np.testing.assert_array_equal(trained[key], original[key], err_msg=key)

    acoustic_only = checkpoints.save(str(tmp_path / "acoustic_only"), 0, {"acoustic": acoustic},
                                     {}, metadata, keep=0)
    with pytest.raises(checkpoints.CheckpointError, match="holds no 'model/generator' for mode 'joint'"):
        run.train(options(tmp_path / "joint2", mode="joint", quantize="all", steps=2,
                          init_from=acoustic_only))


def test_a_run_that_adds_resolution_discriminators_starts_them_fresh(tmp_path, capsys):
    """The generator carries over from a run without them; the period
    discriminators start fresh beside the new ones (the config differs)."""
    run.train(options(tmp_path / "periods", mode="vocoder", steps=2))
    result = run.train(options(tmp_path / "resolutions", mode="vocoder", steps=4,
                               init_from=str(tmp_path / "periods"),
                               vocoder_overrides={"resolution_ffts": (64, 256)}))
    assert "discriminators start fresh" in capsys.readouterr().out
    assert sorted(result["train_losses"]) == [3, 4]
    assert all(np.isfinite(v) for losses in result["train_losses"].values()
               for v in losses.values())
    def discriminator_arrays(name):
        with np.load(checkpoints.latest(str(tmp_path / name / "checkpoints"))) as saved:
            return [k for k in saved.files if k.startswith("model/discriminators/")]
    # Two resolutions of five convs and a final one, each a kernel and a bias.
    assert len(discriminator_arrays("resolutions")) - len(discriminator_arrays("periods")) \
        == 2 * 6 * 2


def test_a_checkpoint_from_before_the_resolution_discriminators_had_none(tmp_path):
    """Its config lacks the field: it had the default then, none."""
    from bittts_tf.models import build, configs
    config = configs.preset("tiny", n_symbols=20)
    old = config.to_dict()
    del old["vocoder"]["resolution_ffts"]
    path = checkpoints.save(str(tmp_path / "old"), 0, {"generator": build.build_generator(config)},
                            {}, {"model_config": old}, keep=0)
    assert not run._discriminators_differ(path, config)
    with_them = configs.preset("tiny", n_symbols=20, vocoder_overrides={"resolution_ffts": (512,)})
    assert run._discriminators_differ(path, with_them)
