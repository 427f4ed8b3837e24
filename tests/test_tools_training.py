"""tools/compare_runs.py and the figures of tools/kill_resume_check.py,
on run records made up here (the training itself is tested in test_training)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bittts_tf.training import resume_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_curve(run_dir, rows):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "held_out.jsonl"), "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def test_compare_runs_reports_final_values_ratios_and_a_plot(tmp_path, seed):
    rng = np.random.default_rng(seed)
    finals = rng.uniform(0.2, 1.0, 2)
    boundaries = rng.uniform(10, 50, 2)
    for name, final, boundary in zip(("float", "ternary"), finals, boundaries):
        steps = [0, 100, 200]
        write_curve(tmp_path / name, [
            {"step": s, "cpu_seconds": 30.0 * i, "mel_l1": final * (3 - i),
             "alignment_boundary_ms": boundary * (3 - i)} for i, s in enumerate(steps)])
    png = tmp_path / "out" / "curves.png"
    os.makedirs(png.parent)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare_runs.py"),
                             f"--runs={tmp_path / 'float'},{tmp_path / 'ternary'}",
                             f"--output={png}"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "out" / "curves.json").read_text())
    assert summary["float"]["step"] == 200 and summary["float"]["cpu_minutes"] == 1.0
    assert summary["ternary"]["mel_l1"] == pytest.approx(finals[1])
    assert summary["ternary"]["mel_l1_ratio"] == pytest.approx(finals[1] / finals[0])
    assert summary["ternary"]["alignment_boundary_ms_ratio"] == pytest.approx(
        boundaries[1] / boundaries[0])


def test_compare_runs_names_a_directory_without_a_curve(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare_runs.py"),
                             f"--runs={tmp_path}"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert f"{tmp_path}: no held_out.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def compare_runs(*flags):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare_runs.py"), *flags],
                          capture_output=True, text=True, timeout=300, check=False)


def refusal(result) -> str:
    """The one stderr line of a refused run."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("compare_runs: "), lines
    return lines[0]


def test_compare_runs_tells_runs_of_one_folder_name_apart_by_their_paths(tmp_path, seed):
    rng = np.random.default_rng(seed)
    runs = ["x/s1/am", "x/s2/am", "y/s1/am"]
    finals = dict(zip(runs, rng.uniform(0.2, 1.0, len(runs))))
    for run, final in finals.items():
        write_curve(tmp_path / run, [{"step": s, "cpu_seconds": 60.0 * s, "mel_l1": final * (3 - s),
                                      "alignment_boundary_ms": 20.0} for s in range(3)])
    png = tmp_path / "curves.png"
    result = compare_runs(f"--runs={','.join(str(tmp_path / r) for r in runs)}", f"--output={png}")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "curves.json").read_text())
    # The shortest path ends that no other run shares.
    labels = {"x/s1/am": "x/s1/am", "x/s2/am": "s2/am", "y/s1/am": "y/s1/am"}
    assert set(summary) == set(labels.values())
    for run, label in labels.items():
        assert summary[label]["mel_l1"] == pytest.approx(finals[run])


def test_compare_runs_refuses_bad_input_in_one_line(tmp_path):
    good, torn = tmp_path / "good", tmp_path / "torn"
    write_curve(good, [{"step": 0, "cpu_seconds": 0.0, "mel_l1": 1.0, "alignment_boundary_ms": 9.0}])
    (torn / "held_out.jsonl").parent.mkdir()
    (torn / "held_out.jsonl").write_text('{"step": 0, "cpu_seconds": 0.0, "mel_l1": 1.0}\n\n'
                                         '{"step": 100, "mel_l1": 0.5}\n')

    assert "given twice" in refusal(compare_runs(f"--runs={good},{good}/"))

    line = refusal(compare_runs(f"--runs={good}", f"--output={tmp_path / 'd.json'}"))
    assert "--output" in line and ".png" in line
    assert not (tmp_path / "d.json").exists()

    line = refusal(compare_runs(f"--runs={good}", "--metrics=mel_l1,nosuch"))
    assert "--metrics" in line and "nosuch" in line and "alignment_boundary_ms, mel_l1" in line

    line = refusal(compare_runs(f"--runs={good},{torn}", "--metrics=mel_l1"))
    assert f"{torn / 'held_out.jsonl'}: line 3 has no step or no cpu_seconds" in line


def test_resume_comparison_finds_the_largest_relative_difference(seed):
    rng = np.random.default_rng(seed)
    before = {s: {"loss": float(rng.uniform(1, 2)), "mel": float(rng.uniform(1, 2))}
              for s in range(1, 31)}
    after = {s: dict(row) for s, row in before.items()}
    after[27]["mel"] *= 1.01          # the one disagreement, after the checkpoint
    after[5]["loss"] *= 2.0           # before the checkpoint: not compared
    got = resume_check.compare(before, after, resumed_at=20)
    assert got["n_steps_compared"] == 10 and got["steps_compared"] == [21, 30]
    assert got["max_relative_difference"] == pytest.approx(0.01, rel=1e-6)
    assert got["max_relative_difference_per_loss"]["loss"] == 0.0
    assert got["first_step_differing_by_more_than_0.0001"] == 27


def test_falling_means_cover_the_first_and_last_twenty_steps():
    losses = {s: {"loss": float(s)} for s in range(1, 101)}
    got = resume_check.falling(losses)["loss"]
    assert got["first_20_mean"] == pytest.approx(np.mean(np.arange(1, 21)))
    assert got["last_20_mean"] == pytest.approx(np.mean(np.arange(81, 101)))


def test_train_names_a_bad_acoustic_override_before_touching_the_output(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"),
                             f"--output_dir={out}", "--acoustic_config=encoder_blocks=two"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "--acoustic_config: acoustic override 'encoder_blocks=two'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
