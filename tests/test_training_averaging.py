"""Checkpoint averaging and held-out evaluation of a checkpoint, against numpy
means of the stored arrays and the losses training itself logged."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bittts_tf.eval.held_out import HeldOutError, HeldOutEvaluator
from bittts_tf.quant import quantized_layers
from bittts_tf.quant.quantizers import ternary_codes_np
from bittts_tf.training import averaging, checkpoints, run, run_log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def options(output_dir, **overrides):
    base = dict(output_dir=str(output_dir), corpus="synthetic:20", config="tiny", held_out=4,
                batch_size=4, segment_frames=16, checkpoint_every=2, scalar_every=1,
                media_every=1000, binarization_start_step=2, verbose=0, learning_rate=1e-2,
                run_eagerly=True)   # eager steps: tracing was half of the run's time
    base.update(overrides)
    return run.RunOptions(**base)


@pytest.fixture(scope="module")
def ternary_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("ternary")
    result = run.train(options(output_dir, mode="acoustic", quantize="acoustic", steps=6))
    return output_dir, result


def stored(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files if key != checkpoints.MANIFEST_KEY}


def test_average_holds_the_mean_model_weights_and_the_newest_optimizer(ternary_run, tmp_path):
    run_dir, _ = ternary_run
    paths = averaging.last_checkpoints(str(run_dir), 3)
    assert [checkpoints.read_manifest(p)["step"] for p in paths] == [2, 4, 6]
    output = averaging.write_average(paths[::-1], str(tmp_path / "avg.npz"))

    inputs = [stored(p) for p in paths]
    got = stored(output)
    assert set(got) == set(inputs[-1])
    model_floats = 0
    for key, value in got.items():
        if key.startswith("model/") and value.dtype.kind == "f":
            model_floats += 1
            expected = np.mean([arrays[key].astype(np.float64) for arrays in inputs], axis=0)
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
        else:  # seed states and the optimizer: the newest checkpoint's
            np.testing.assert_array_equal(value, inputs[-1][key])
    assert model_floats > 20
    # The weights did move between checkpoints, so the mean is not any one of them.
    kernel = next(k for k in got if k.startswith("model/acoustic/") and got[k].ndim == 3)
    assert not any(np.array_equal(got[kernel], arrays[kernel]) for arrays in inputs)

    manifest = checkpoints.read_manifest(output)
    assert manifest["step"] == 6 and manifest["averaged_steps"] == [2, 4, 6]
    assert manifest["averaged_from"] == [os.path.abspath(p) for p in paths[::-1]]


def test_averaged_ternary_model_requantizes_the_mean_latent_weights(ternary_run, tmp_path):
    run_dir, _ = ternary_run
    paths = averaging.last_checkpoints(str(run_dir), 2)
    output = averaging.write_average(paths, str(tmp_path / "avg.npz"))
    evaluator = HeldOutEvaluator(output, "synthetic:20")
    losses = evaluator.evaluate(output)
    assert np.isfinite(losses["mel_l1"])

    model = evaluator.trainer.acoustic
    layout = checkpoints.read_manifest(output)["layout"]["model/acoustic"]
    arrays = [stored(p) for p in paths]
    layer = quantized_layers(model)[0]
    index = next(i for i, (path, _) in enumerate(layout) if path == layer.kernel.path)
    mean_latent = np.mean([a[f"model/acoustic/{index:05d}"] for a in arrays], axis=0)
    codes, beta = ternary_codes_np(mean_latent)
    # numpy's and TensorFlow's float32 means of |w| may differ in the last bit,
    # and a weight at a tie (|w| / beta = 0.5) may then round either way.
    decided = np.abs(np.abs(mean_latent) / beta - 0.5) > 1e-5
    assert decided.mean() > 0.99
    np.testing.assert_allclose(np.asarray(layer.effective_kernel())[decided],
                               (codes * beta)[decided], rtol=1e-6)


def test_held_out_evaluation_matches_what_training_logged(ternary_run):
    run_dir, _ = ternary_run
    logged = run_log.read_held_out(str(run_dir))
    paths = averaging.last_checkpoints(str(run_dir), 3)
    evaluator = HeldOutEvaluator(paths[-1], "synthetic:20")
    for path in paths:
        step = checkpoints.read_manifest(path)["step"]
        losses = evaluator.evaluate(path)
        for name in ("mel_l1", "forward_sum", "duration"):
            assert losses[name] == pytest.approx(logged[step][name], rel=1e-4), (step, name)


def test_averaging_refuses_what_it_cannot_average(ternary_run, tmp_path):
    run_dir, _ = ternary_run
    paths = averaging.last_checkpoints(str(run_dir), 3)
    with pytest.raises(checkpoints.CheckpointError, match="at least two"):
        averaging.average(paths[:1])
    with pytest.raises(checkpoints.CheckpointError, match="fewer than the 4"):
        averaging.last_checkpoints(str(run_dir), 4)
    with pytest.raises(checkpoints.CheckpointError, match="a resumed run would pick"):
        averaging.write_average(paths, os.path.join(os.path.dirname(paths[0]), "avg.npz"))
    with pytest.raises(checkpoints.CheckpointError, match="repeat a step"):
        averaging.average([paths[0], paths[0]])

    arrays, manifest = checkpoints.read_arrays(paths[0])
    float_config = {**manifest["model_config"], "quantize": "none"}
    other = checkpoints.write(str(tmp_path / "float.npz"), arrays,
                              {**manifest, "model_config": float_config})
    with pytest.raises(checkpoints.CheckpointError, match="float.npz holds other models"):
        averaging.average([other, paths[2]])

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(pathlib.Path(paths[1]).read_bytes()[:5000])
    with pytest.raises(checkpoints.CheckpointError, match="truncated.npz is corrupt"):
        averaging.average([paths[0], str(truncated)])

    elsewhere = checkpoints.write(str(tmp_path / "elsewhere.npz"), arrays,
                                  {**manifest, "held_out_ids": ["utt_a", "utt_b"]})
    with pytest.raises(HeldOutError, match="does not hold out the utterances"):
        HeldOutEvaluator(elsewhere, "synthetic:20")


def test_average_tool_prints_inputs_and_average_side_by_side(ternary_run, tmp_path):
    run_dir, _ = ternary_run
    report = tmp_path / "avg.json"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "average_checkpoints.py"),
         f"--run_dir={run_dir}", "--last=2", f"--output={tmp_path / 'avg.npz'}",
         "--corpus=synthetic:20", f"--report={report}"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "averaged 2 checkpoints (steps 4, 6)" in result.stdout
    rows = json.loads(report.read_text())["held_out"]
    assert len(rows) == 3
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if "mel_l1" in line) + 1:]
    assert len(table) == 3 and table[-1].startswith("average (")
    for line, (path, row) in zip(table, rows.items()):
        assert path in line and f"{row['mel_l1']:.4f}" in line


def test_damaged_checkpoints_are_refused_as_checkpoint_errors(ternary_run, tmp_path):
    """What a damaged or foreign .npz turns into: a CheckpointError naming the
    file (the tools print it in one line), not an IndexError or KeyError."""
    run_dir, _ = ternary_run
    paths = averaging.last_checkpoints(str(run_dir), 2)
    arrays, manifest = checkpoints.read_arrays(paths[0])
    bare = tmp_path / "bare.npz"
    with open(bare, "wb") as f:
        np.save(f, np.zeros(3))
    listed = checkpoints.write(str(tmp_path / "listed.npz"), {}, [1, 2])
    stepless = checkpoints.write(str(tmp_path / "stepless.npz"), arrays,
                                 {k: v for k, v in manifest.items() if k != "step"})
    key = next(k for k, v in arrays.items() if k.startswith("model/") and v.dtype.kind == "f"
               and v.size > 1)
    reshaped = checkpoints.write(str(tmp_path / "reshaped.npz"),
                                 {**arrays, key: arrays[key].reshape(-1)[:-1]},
                                 manifest)   # the older: paths[1] is the reference
    for path, message in [(bare, "bare.npz is not a checkpoint"),
                          (listed, "listed.npz is corrupt: its manifest is a list"),
                          (stepless, "stepless.npz has no step"),
                          (reshaped, f"reshaped.npz: {key} is")]:
        with pytest.raises(checkpoints.CheckpointError, match=message):
            averaging.average([paths[1], str(path)])


def test_average_tool_refuses_bad_input_in_one_line(ternary_run, tmp_path):
    run_dir, _ = ternary_run
    paths = averaging.last_checkpoints(str(run_dir), 2)
    out = f"--output={tmp_path / 'avg.npz'}"
    cases = [([f"--run_dir={run_dir}", "--last=50"], "fewer than the 50 asked for"),
             ([f"--checkpoints={paths[0]}"], "at least two checkpoints"),
             ([f"--checkpoints={paths[0]},{paths[0]}"], "repeat a step"),
             ([f"--checkpoints={','.join(paths)}", "--last=2"], "--last picks from --run_dir"),
             ([f"--run_dir={run_dir}", f"--report={tmp_path / 'r.json'}"], "give --corpus too"),
             ([f"--run_dir={run_dir}", "--metrics=mel_l1"], "give --corpus too"),
             ([f"--run_dir={tmp_path}"], "no checkpoint in this directory")]
    for args, message in cases:
        result = subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                               "average_checkpoints.py"),
                                 *args, out], capture_output=True, text=True, cwd=REPO,
                                timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and message in lines[0], \
            (args, result.stderr[-2000:])
    assert not (tmp_path / "avg.npz").exists()
