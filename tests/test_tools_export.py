"""tools/convert.py and tools/validate.py from the command line."""

import json
import pathlib
import subprocess
import sys

import keras
import pytest

from bittts_tf.quant import TernaryConv1D
from seeds import fresh_seed
from tts_models import save_small_vocoder_run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def keras_model_path(tmp_path_factory):
    inputs = keras.Input((None, 8))
    x = TernaryConv1D(64, 5, padding="same", activation="relu")(inputs)
    outputs = TernaryConv1D(8, 5, padding="same")(x)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_convert_then_validate(keras_model_path, tmp_path):
    tflite = tmp_path / "tiny.tflite"
    converted = run_tool("convert.py", f"--keras_model={keras_model_path}", f"--out={tflite}")
    assert converted.returncode == 0, converted.stderr
    report = json.loads((tmp_path / "tiny.size.json").read_text())
    assert report["tflite_bytes"] == tflite.stat().st_size
    assert report["ternary_weights"] == 5 * 8 * 64 + 5 * 64 * 8
    assert "bits each" in converted.stdout

    validated = run_tool("validate.py", f"--keras_model={keras_model_path}", f"--tflite={tflite}",
                         f"--report={tmp_path / 'v.json'}")
    assert validated.returncode == 0, validated.stderr
    results = json.loads((tmp_path / "v.json").read_text())
    assert results["litert_vs_keras"]["rel_err"] <= 1e-5
    assert results["decode"]["c_decode_equals_numpy"]


def last_line(stderr):
    return stderr.strip().splitlines()[-1]


def test_convert_and_validate_name_foreign_files(keras_model_path, tmp_path):
    not_a_model = tmp_path / "readme.keras"
    not_a_model.write_text("hello")
    result = run_tool("convert.py", f"--keras_model={not_a_model}", f"--out={tmp_path / 'x.tflite'}")
    assert result.returncode != 0
    assert last_line(result.stderr).startswith(f"convert: {not_a_model}: not a readable .keras model")
    assert not (tmp_path / "x.tflite").exists()

    not_tflite = tmp_path / "image.tflite"
    not_tflite.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    result = run_tool("validate.py", f"--keras_model={keras_model_path}", f"--tflite={not_tflite}")
    assert result.returncode != 0
    assert last_line(result.stderr) == (f"validate: {not_tflite}: not a TFLite model "
                                        f"(file identifier b'\\r\\n\\x1a\\n', expected b'TFL3')")
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def vocoder_run(tmp_path_factory):
    """A run directory whose checkpoint holds a small ternary frame vocoder
    with random weights (a fresh, printed seed)."""
    return save_small_vocoder_run(fresh_seed("vocoder_run"), tmp_path_factory.mktemp("voc_run"),
                                  step=7)


def test_convert_and_validate_a_checkpoint_generator(vocoder_run, tmp_path):
    tflite = tmp_path / "voc.tflite"
    converted = run_tool("convert.py", f"--checkpoint={vocoder_run}", "--model=generator",
                         f"--out={tflite}")
    assert converted.returncode == 0, converted.stderr
    report = json.loads((tmp_path / "voc.size.json").read_text())
    assert report["ternary_tensors"] == 1 + 2 * 2  # input conv, two pointwise convs per block
    assert report["bits_per_ternary_weight"] < 1.7
    validated = run_tool("validate.py", f"--checkpoint={vocoder_run}", f"--tflite={tflite}",
                         "--length=12", f"--report={tmp_path / 'v.json'}")
    assert validated.returncode == 0, validated.stderr
    results = json.loads((tmp_path / "v.json").read_text())
    assert results["litert_vs_keras"]["rel_err"] <= 1e-5
    assert results["decode"]["packed_tensors"] == 5


def test_convert_names_what_a_checkpoint_cannot_give(vocoder_run, tmp_path):
    out = f"--out={tmp_path / 'x.tflite'}"
    acoustic = run_tool("convert.py", f"--checkpoint={vocoder_run}", "--model=acoustic", out)
    assert acoustic.returncode != 0
    assert last_line(acoustic.stderr).startswith("convert: the acoustic model's text -> mel path")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    missing = run_tool("convert.py", f"--checkpoint={empty}", out)
    assert last_line(missing.stderr) == f"convert: {empty}: no checkpoint in this directory"
    both = run_tool("convert.py", f"--checkpoint={vocoder_run}", "--keras_model=x.keras", out)
    assert last_line(both.stderr) == "convert: give exactly one of --keras_model and --checkpoint"
    corrupt = tmp_path / "ckpt-00000001.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    broken = run_tool("convert.py", f"--checkpoint={corrupt}", out)
    assert last_line(broken.stderr).startswith(f"convert: checkpoint {corrupt} is corrupt")
    for result in (acoustic, missing, both, broken):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.tflite").exists()


def test_help_describes_the_flags():
    result = run_tool("convert.py", "--help")  # absl exits 1 after printing help
    assert "Converts a Keras model with ternary layers" in result.stdout
    assert "--keras_model: The .keras model to convert." in result.stdout
