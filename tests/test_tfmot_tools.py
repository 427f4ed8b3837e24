"""tools/tfmot_example.py and tools/convert.py --tfmot_model from the command
line (each a process of its own: they run tf-keras, this process Keras 3)."""

import json
import os
import pathlib
import secrets
import subprocess
import sys

import numpy as np
import pytest

from bittts_tf.litert import native

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)


def last_line(stderr):
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A small run of the example (a fresh seed, printed; replay with BITTTS_TEST_SEED)."""
    seed = int(os.environ.get("BITTTS_TEST_SEED", secrets.randbits(31)))
    print(f"tfmot_example: seed {seed}")
    out = tmp_path_factory.mktemp("tfmot_example")
    done = run_tool("tfmot_example.py", f"--out_dir={out}", f"--seed={seed}", "--examples=96",
                    "--epochs=1", "--keywords=3", "--channels=16", "--blocks=1")
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_example_trains_converts_and_validates(example):
    out, stdout = example
    report = json.loads((out / "report.json").read_text())
    assert set(report["distinct_kernel_values"].values()) == {3}
    assert len(report["distinct_kernel_values"]) == 4  # conv, depthwise, pointwise, dense
    assert report["litert_vs_keras"]["rel_err"] <= 1e-5
    assert report["decode"]["c_decode_equals_numpy"]
    assert report["keras3_objects_built"] == []
    size = json.loads((out / "model.size.json").read_text())
    assert size["tflite_bytes"] == (out / "model.tflite").stat().st_size
    assert size["ternary_tensors"] == 4
    assert "held-out accuracy" in stdout


@pytest.mark.parametrize("saved", ["model.h5", "saved_model"])
def test_convert_takes_the_examples_saved_models(example, saved, tmp_path):
    out, _ = example
    tflite = tmp_path / "kws.tflite"
    converted = run_tool("convert.py", f"--tfmot_model={out / saved}", f"--out={tflite}")
    assert converted.returncode == 0, converted.stderr[-3000:]
    report = json.loads((tmp_path / "kws.size.json").read_text())
    assert report["ternary_tensors"] == 4
    assert "bits each" in converted.stdout

    # The same weights as the example converted in memory: the same outputs.
    features = np.random.default_rng(0).standard_normal((3, 48, 32, 1)).astype(np.float32)
    outputs = [native.run_interpreter(native.make_interpreter(path.read_bytes()), [features])[0]
               for path in (tflite, out / "model.tflite")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_convert_names_a_bad_tfmot_model(tmp_path):
    out = f"--out={tmp_path / 'x.tflite'}"
    missing = run_tool("convert.py", f"--tfmot_model={tmp_path / 'none.h5'}", out)
    assert last_line(missing.stderr) == f"convert: {tmp_path / 'none.h5'}: no such file"
    both = run_tool("convert.py", f"--tfmot_model={tmp_path / 'none.h5'}", "--keras_model=x.keras",
                    out)
    assert last_line(both.stderr) == ("convert: give only one of --tfmot_model, --keras_model "
                                      "and --checkpoint")
    integer = run_tool("convert.py", "--keras_model=x.keras", "--integer", out)
    assert last_line(integer.stderr) == "convert: --integer applies to --tfmot_model only"
    for result in (missing, both, integer):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.tflite").exists()


def test_help_describes_the_tfmot_flags():
    convert = run_tool("convert.py", "--help")
    assert "--tfmot_model: Or a tf-keras model quantized with bittts_tf.tfmot" in convert.stdout
    example = run_tool("tfmot_example.py", "--help")
    assert "Ternary keyword spotting with tf-keras and TFMOT" in example.stdout
    assert "--activations: <float|8bit>" in example.stdout
