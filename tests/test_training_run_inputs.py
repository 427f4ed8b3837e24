"""training.run_inputs: a training run's bad inputs are refused before
TensorFlow is imported (tools/train.py checks them first; run.train runs the
same checks), each with its own error, and nothing is written."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each case: RunOptions overrides, environment, the error's class and a part of its message.
CHECKS = r'''
import json, os, sys
from bittts_tf.training import run_inputs
out, cases = sys.argv[1], json.loads(sys.argv[2])
report = []
for overrides, env, _, _ in cases:
    os.environ.pop("TF_CONFIG", None)
    os.environ.update(env)
    try:
        run_inputs.check_inputs(run_inputs.RunOptions(output_dir=out, **overrides))
        report.append(None)
    except Exception as error:   # noqa: BLE001 -- the class is what is checked
        report.append([type(error).__name__, str(error)])
report.append([m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")])
print(json.dumps(report))
'''


def test_bad_inputs_are_refused_without_tensorflow(tmp_path):
    out = tmp_path / "run"
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text("{")
    synthetic = {"corpus": "synthetic:8", "held_out": 2, "steps": 2, "checkpoint_every": 1}
    cases = [
        (dict(synthetic, steps=3, checkpoint_every=2), {}, "TrainingInputError",
         "--steps=3 must be a multiple of --checkpoint_every=2"),
        (dict(synthetic, steps=0), {}, "TrainingInputError", "must be positive"),
        (dict(synthetic, strategy="multi_worker"), {"TF_CONFIG": '{"cluster": {}}'},
         "DistributeError", 'TF_CONFIG has no "cluster" object'),
        (dict(synthetic, precision="float8"), {}, "DistributeError", "--precision='float8'"),
        (dict(synthetic, mode="vocoder", vocoder_input_noise=-0.5), {}, "TrainingInputError",
         "vocoder_input_noise must be >= 0"),
        (dict(synthetic, init_from=str(garbage)), {}, "CheckpointError", str(garbage)),
        (dict(synthetic, held_out=8), {}, "TrainingInputError",
         "synthetic:8 has too few utterances to hold out 8"),
        (dict(synthetic, corpus=str(cache)), {}, "CacheError", "not a readable cache manifest"),
        (dict(synthetic, corpus=str(tmp_path / "none")), {}, "CacheError", "no manifest.json"),
        (synthetic, {}, None, None),
    ]
    done = subprocess.run([sys.executable, "-c", CHECKS, str(out), json.dumps(cases)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    *results, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == []
    for (overrides, _, kind, part), result in zip(cases, results):
        if kind is None:
            assert result is None, (overrides, result)
        else:
            assert result is not None and result[0] == kind and part in result[1], \
                (overrides, result)
    assert not out.exists()
