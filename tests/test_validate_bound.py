"""Validation that can fail: tools/validate.py's bound passes a faithful
conversion (8-bit activations included) and fails a perturbed or reordered one."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from bittts_tf.export import converter, validate
from bittts_tf.litert import tflite_file
from bittts_tf.quant import TernaryConv1D, TernaryDense
from seeds import fresh_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model_seed():
    """The converted models' weights (shared by the module's tests)."""
    return fresh_seed("test_validate_bound models")


def two_output_model(quantize_activations):
    """Two outputs of the same shape, so that swapping them keeps every shape."""
    inputs = keras.Input((None, 6))
    x = TernaryConv1D(16, 5, padding="same", activation="relu",
                      quantize_activations=quantize_activations)(inputs)
    x = TernaryConv1D(16, 3, padding="same", activation="tanh",
                      quantize_activations=quantize_activations)(x)
    first = TernaryDense(4, name="first")(x)
    second = TernaryDense(4, name="second")(x)
    return keras.Model(inputs, [first, second])


@pytest.fixture(scope="module", params=[False, True], ids=["float", "8bit"])
def converted(request, model_seed):
    keras.utils.set_random_seed(model_seed + int(request.param))
    model = two_output_model(request.param)
    return model, converter.convert(model).tflite


def draws(model, seed, n=3):
    return [validate.random_inputs(model, 2, 48, seed + i) for i in range(n)]


def test_a_faithful_conversion_passes(converted, seed):
    model, tflite = converted
    for inputs in draws(model, seed):
        comparison = validate.compare_litert_keras(model, tflite, inputs)
        assert comparison.verdict() == [], comparison.as_dict()
        if comparison.quantized_activations:
            assert comparison.largest_code_change <= 1


def test_swapped_outputs_fail(converted, seed):
    model, tflite = converted
    flatbuffer = tflite_file.parse_model(tflite)
    first, second = flatbuffer.signatureDefs[0].outputs
    first.tensorIndex, second.tensorIndex = second.tensorIndex, first.tensorIndex
    swapped = tflite_file.serialize_model(flatbuffer)
    comparison = validate.compare_litert_keras(model, swapped, draws(model, seed, 1)[0])
    assert comparison.verdict(), comparison.as_dict()
    assert comparison.rel_err > 10 * validate.ACTIVATION_TOLERANCE


def test_a_perturbed_output_fails(converted, seed):
    """The Keras model's second head biased by 4 steps of an 8-bit grid
    (4/128 of its output's max-norm): the unchanged .tflite must fail."""
    model, tflite = converted
    inputs = draws(model, seed, 1)[0]
    second = model.get_layer("second")
    peak = float(np.max(np.abs(np.asarray(model(inputs[0])[1]))))
    original = second.bias.numpy()
    second.bias.assign(original + 4.0 / 128 * peak)
    try:
        comparison = validate.compare_litert_keras(model, tflite, inputs)
    finally:
        second.bias.assign(original)
    failures = comparison.verdict()
    assert failures and "output error" in failures[-1], comparison.as_dict()
    assert comparison.output_rel_errs[0] <= validate.ACTIVATION_TOLERANCE


def test_a_missing_output_is_refused_by_count(converted, seed):
    model, _ = converted
    single = keras.Model(model.inputs, model.outputs[:1])
    single_tflite = converter.convert(single).tflite
    with pytest.raises(validate.ValidationError, match="1 output.*the Keras model 2"):
        validate.compare_litert_keras(model, single_tflite, draws(model, seed, 1)[0])


def test_the_tool_fails_a_perturbed_model_and_passes_the_right_one(tmp_path, seed):
    keras.utils.set_random_seed(seed)
    model = two_output_model(True)
    (tmp_path / "m.tflite").write_bytes(converter.convert(model).tflite)
    model.save(tmp_path / "right.keras")
    second = model.get_layer("second")
    second.bias.assign(second.bias.numpy() + 1.0)
    model.save(tmp_path / "perturbed.keras")

    def run(name):
        return subprocess.run([sys.executable, os.path.join(REPO, "tools", "validate.py"),
                               f"--keras_model={tmp_path / name}", f"--tflite={tmp_path / 'm.tflite'}",
                               f"--seed={seed % 1000}"], capture_output=True, text=True, timeout=600)
    right, perturbed = run("right.keras"), run("perturbed.keras")
    assert right.returncode == 0, right.stderr
    assert "validate: passed" in right.stdout and right.stderr == ""
    assert perturbed.returncode == 1
    lines = perturbed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"validate: {tmp_path / 'm.tflite'}: FAILED: ")
    assert "output error" in lines[0]
