"""bittts_tf.tfmot: ternary QAT of tf-keras models through TFMOT, and their
conversion, checked against numpy.

TFMOT switches its process to tf-keras, and this test process builds Keras 3
models, so everything tf-keras runs in one subprocess (WORKER below): it
trains small annotated models, converts them, and saves kernels, gradients,
inputs, outputs and .tflite files. The tests here compare those with numpy
references and run the .tflite files in LiteRT with our decode op.
"""

import json
import math
import os
import pathlib
import secrets
import subprocess
import sys

import numpy as np
import pytest

from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import validate
from bittts_tf.litert import native, tflite_file
from bittts_tf.quant import packing

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCALE_EPSILON = np.float32(1e-8)

WORKER = r'''
import json, pathlib, sys
import numpy as np
from bittts_tf import tfmot as ternary   # first: switches the process to tf-keras
import tensorflow as tf
import tf_keras

out, seed = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(seed)
tf_keras.utils.set_random_seed(seed)
L = tf_keras.layers
arrays, facts, errors = {}, {}, {}

# The quantizer alone: values, and the gradient of <U, Q(W)> with respect to W.
w = tf.Variable(rng.normal(0, 0.3, (3, 4, 5)).astype(np.float32))
upstream = rng.normal(size=(3, 4, 5)).astype(np.float32)
with tf.GradientTape() as tape:
    q = ternary.TernaryWeightQuantizer()(w, True, {})
    loss = tf.reduce_sum(upstream * q)
arrays.update(w=w.numpy(), q=q.numpy(), upstream=upstream,
              grad=tape.gradient(loss, w).numpy(),
              q_zero=ternary.TernaryWeightQuantizer()(tf.zeros((4, 3)), False, {}).numpy())

# The gradient through a wrapped Dense reaches its latent kernel unchanged.
dense_in = tf_keras.Input((6,))
dense = ternary.quantize_apply(tf_keras.Model(
    dense_in, ternary.annotate(L.Dense(4))(dense_in)))
x = rng.normal(size=(9, 6)).astype(np.float32)
u = rng.normal(size=(9, 4)).astype(np.float32)
with tf.GradientTape() as tape:
    loss = tf.reduce_sum(u * dense(x, training=True))
(kernel,) = [v for v in dense.trainable_variables if "kernel" in v.name]
arrays.update(dense_x=x, dense_u=u, dense_grad=tape.gradient(loss, kernel).numpy())


def build(activations):
    a, b = tf_keras.Input((12, 10, 3), name="a"), tf_keras.Input((16, 4), name="b")
    ann = lambda layer: ternary.annotate(layer, activations)
    x = ann(L.Conv2D(8, 3, padding="same", activation="relu"))(a)
    x = ann(L.DepthwiseConv2D(3, padding="same", activation="relu"))(x)
    x = L.GlobalAveragePooling2D()(x)
    y = ann(L.Conv1D(6, 3, activation="relu"))(b)
    y = L.GlobalAveragePooling1D()(y)
    z = ann(L.Dense(5))(L.Concatenate()([x, y]))
    model = ternary.quantize_apply(tf_keras.Model([a, b], z), activations)
    model.compile(tf_keras.optimizers.Adam(1e-2), "mse")
    xa = rng.normal(size=(64, 12, 10, 3)).astype(np.float32)
    xb = rng.normal(size=(64, 16, 4)).astype(np.float32)
    model.fit([xa, xb], rng.normal(size=(64, 5)).astype(np.float32), epochs=3,
              batch_size=16, verbose=0)
    return model


test_a = rng.normal(size=(4, 12, 10, 3)).astype(np.float32)
test_b = rng.normal(size=(4, 16, 4)).astype(np.float32)
arrays.update(test_a=test_a, test_b=test_b)
for activations in ("float", "8bit"):
    model = build(activations)
    kernels = ternary.ternary_kernels(model)
    facts[activations] = {"kernels": [[k.name, k.layer_type] for k in kernels]}
    for i, k in enumerate(kernels):
        arrays[f"{activations}_latent_{i}"] = np.asarray(k.weight)
        arrays[f"{activations}_effective_{i}"] = k.effective_kernel()
    arrays[f"{activations}_out"] = model([test_a, test_b], training=False).numpy()
    conversions = {"float": False} if activations == "float" else {"qdq": False, "int8": True}
    for kind, integer in conversions.items():
        result = ternary.convert(model, integer=integer)
        (out / f"{activations}_{kind}.tflite").write_bytes(result.tflite)
        facts[activations][kind] = result.summary()
    if activations == "float":
        model.save(out / "model.h5")
        model.save(out / "saved_model")
        for path in ("model.h5", "saved_model"):
            loaded = ternary.load_model(out / path)
            arrays[f"loaded_{path}_out"] = loaded([test_a, test_b], training=False).numpy()
            facts[f"loaded_{path}_kernels"] = [k.name for k in ternary.ternary_kernels(loaded)]

configs = [ternary.TernaryConv1DQuantizeConfig("8bit"), ternary.TernaryConv2DQuantizeConfig(),
           ternary.TernaryDepthwiseConv2DQuantizeConfig(), ternary.TernaryDenseQuantizeConfig(),
           ternary.TernaryQuantizeConfig("gamma", "8bit")]
facts["configs_round_trip"] = all(
    type(c).from_config(c.get_config()) == c
    and tf_keras.utils.deserialize_keras_object(tf_keras.utils.serialize_keras_object(c)) == c
    for c in configs)
facts["registered_names"] = [tf_keras.utils.get_registered_name(type(c)) for c in configs]


def error_of(case, call):
    try:
        call()
        errors[case] = None
    except Exception as error:
        errors[case] = f"{type(error).__name__}: {error}"


def wrong_layer_type():
    i = tf_keras.Input((5,))
    model = tf_keras.Model(i, tfmot_api.quantize_annotate_layer(
        L.Dense(3, name="not_a_conv"), ternary.TernaryConv2DQuantizeConfig())(i))
    ternary.quantize_apply(model)


def mixed_modes():
    i = tf_keras.Input((5,))
    x = ternary.annotate(L.Dense(3, name="eight_bit_dense"), "8bit")(i)
    ternary.quantize_apply(tf_keras.Model(i, ternary.annotate(L.Dense(2))(x)), "float")


def folded_batch_norm():
    i = tf_keras.Input((8, 8, 2))
    x = ternary.annotate(L.Conv2D(4, 3, name="conv_before_bn"))(i)
    x = L.BatchNormalization()(x)
    model = ternary.quantize_apply(tf_keras.Model(i, x))
    bn = model.layers[-1]
    bn.set_weights([w + rng.uniform(0.5, 2.0, w.shape).astype(np.float32)
                    for w in bn.get_weights()])
    ternary.convert(model)


import tensorflow_model_optimization as tfmot
tfmot_api = tfmot.quantization.keras
no_ternary = tf_keras.Sequential([tf_keras.Input((4,)), L.Dense(2)])
float_model = build("float")
text_h5 = out / "notes.h5"
text_h5.write_text("not a model")
error_of("unsupported_layer", lambda: ternary.config_for(L.LSTM(3, name="lstm_layer")))
error_of("bad_activations", lambda: ternary.annotate(L.Dense(3), "4bit"))
error_of("wrong_layer_type", wrong_layer_type)
error_of("mixed_modes", mixed_modes)
error_of("not_a_model", lambda: ternary.quantize_apply("model.h5"))
error_of("missing_file", lambda: ternary.load_model(out / "missing.h5"))
error_of("text_h5", lambda: ternary.load_model(text_h5))
error_of("no_ternary_layers", lambda: ternary.convert(no_ternary))
error_of("integer_without_8bit", lambda: ternary.convert(float_model, integer=True))
error_of("folded_batch_norm", folded_batch_norm)

import os
facts["legacy_keras"] = os.environ.get("TF_USE_LEGACY_KERAS")
facts["tf_keras_is_tf_keras"] = tf.keras.Model is tf_keras.Model
facts["keras3_objects_built"] = ternary.keras3_objects_built()
np.savez(out / "arrays.npz", **arrays)
(out / "facts.json").write_text(json.dumps({"facts": facts, "errors": errors}))
'''


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """Runs WORKER once (a fresh seed, printed; replay with BITTTS_TEST_SEED)."""
    seed = int(os.environ.get("BITTTS_TEST_SEED", secrets.randbits(32)))
    print(f"tfmot worker: seed {seed}")
    out = tmp_path_factory.mktemp("tfmot")
    done = subprocess.run([sys.executable, "-c", WORKER, str(out), str(seed)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((out / "facts.json").read_text())
    with np.load(out / "arrays.npz") as arrays:
        return {"dir": out, "arrays": dict(arrays), **found}


def ternary_reference(w):
    """beta = mean |W| (+ the quantizer's epsilon), codes = round-clip(W / beta)."""
    w = np.asarray(w, np.float32)
    beta = np.float32(np.mean(np.abs(w), dtype=np.float64)) + SCALE_EPSILON
    codes = np.clip(np.round(w / beta), -1, 1)
    return codes, beta


def test_quantizer_is_beta_times_round_clip(worker):
    a = worker["arrays"]
    codes, beta = ternary_reference(a["w"])
    np.testing.assert_allclose(a["q"], codes * beta, rtol=1e-6, atol=0)
    assert set(np.unique(a["q"] / beta).round(5)) <= {-1.0, 0.0, 1.0}
    assert not a["q_zero"].any()


def test_ste_gradient_equals_upstream(worker):
    a = worker["arrays"]
    assert np.array_equal(a["grad"], a["upstream"])


def test_wrapped_layer_passes_the_gradient_to_its_latent_kernel(worker):
    a = worker["arrays"]
    # d/dW sum(U * (x @ Q(W) + b)) with dQ/dW = identity: x^T U.
    np.testing.assert_allclose(a["dense_grad"], a["dense_x"].T @ a["dense_u"], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("activations", ["float", "8bit"])
def test_after_fit_each_annotated_kernel_takes_three_values(worker, activations):
    a = worker["arrays"]
    kernels = worker["facts"][activations]["kernels"]
    assert [layer_type for _, layer_type in kernels] == [
        "Conv2D", "DepthwiseConv2D", "Conv1D", "Dense"]
    for i, (name, _) in enumerate(kernels):
        effective = a[f"{activations}_effective_{i}"]
        codes, beta = ternary_reference(a[f"{activations}_latent_{i}"])
        assert np.unique(effective).size == 3, name
        np.testing.assert_allclose(effective, codes * beta, rtol=1e-6, atol=0, err_msg=name)


def litert_outputs(tflite: bytes, arrays) -> np.ndarray:
    """The model's output in LiteRT with our op; inputs matched by rank
    (the converter may order a model's inputs differently)."""
    interpreter = native.make_interpreter(tflite)
    by_rank = {4: arrays["test_a"], 3: arrays["test_b"]}
    inputs = [by_rank[len(d["shape"])] for d in interpreter.get_input_details()]
    (output,) = native.run_interpreter(interpreter, inputs)
    return output


def test_float_activations_litert_matches_tf_keras(worker):
    a = worker["arrays"]
    tflite = (worker["dir"] / "float_float.tflite").read_bytes()
    error = validate.max_norm_relative_error(litert_outputs(tflite, a), a["float_out"])
    print(f"float activations: LiteRT vs tf-keras relative error {error:.3e}")
    assert error <= 1e-5


def test_packed_tensors_hold_the_numpy_codes_and_scales(worker):
    a = worker["arrays"]
    tflite = (worker["dir"] / "float_float.tflite").read_bytes()
    packed = validate.packed_tensors(tflite)
    latents = [a[f"float_latent_{i}"] for i in range(len(worker["facts"]["float"]["kernels"]))]
    assert len(packed) == len(latents)
    for latent in latents:
        codes, beta = ternary_reference(latent)
        matching = [p for p in packed if p.num_weights == latent.size
                    and math.isclose(p.scale, beta, rel_tol=1e-6)]
        assert matching, f"no packed tensor with scale {beta} and {latent.size} weights"
        decoded = packing.decode(matching[0].indices, matching[0].num_weights)
        # The op's layout permutes the weights; their multiset is the kernel's.
        assert sorted(decoded.tolist()) == sorted(codes.astype(int).ravel().tolist())


def test_size_report(worker):
    summary = worker["facts"]["float"]["float"]
    sizes = [int(np.prod(worker["arrays"][f"float_latent_{i}"].shape)) for i in range(4)]
    expected_bytes = sum(math.ceil(n / 5) + 4 for n in sizes)  # 5 trits a byte, a float32 scale
    assert summary["ternary_weights"] == sum(sizes)
    assert summary["ternary_stored_bytes"] == expected_bytes
    assert summary["bits_per_ternary_weight"] == round(8 * expected_bytes / sum(sizes), 4)
    assert summary["tflite_bytes"] < summary["float32_tflite_bytes"]
    assert summary["float32_weights"] == 8 + 8 + 6 + 5  # the biases stay float32


def output_step(tflite: bytes) -> float:
    """The quantization step of the model's output: the scale of the int8
    tensor that the final DEQUANTIZE reads."""
    model = tflite_file.parse_model(tflite)
    subgraph = model.subgraphs[0]
    (producer,) = [op for op in subgraph.operators if int(op.outputs[0]) == subgraph.outputs[0]]
    assert model.operatorCodes[producer.opcodeIndex].builtinCode == schema.BuiltinOperator.DEQUANTIZE
    return float(subgraph.tensors[int(producer.inputs[0])].quantization.scale[0])


def test_8bit_activations_convert_and_run(worker):
    a = worker["arrays"]
    for kind in ("qdq", "int8"):
        tflite = (worker["dir"] / f"8bit_{kind}.tflite").read_bytes()
        assert worker["facts"]["8bit"][kind]["ternary_tensors"] == 4
        actual = litert_outputs(tflite, a)
        error = validate.max_norm_relative_error(actual, a["8bit_out"])
        step = output_step(tflite)
        steps = float(np.max(np.abs(actual - a["8bit_out"]))) / step
        # Integer kernels round at other places than TFMOT's fake quantization:
        # outputs may move by a quantization step or two.
        print(f"8-bit activations ({kind}): LiteRT vs tf-keras relative error {error:.3e}, "
              f"{steps:.2f} output quantization steps of {step:.3g}")
        assert steps <= 2.01


def test_saved_models_load_with_their_ternary_layers(worker):
    a = worker["arrays"]
    for path in ("model.h5", "saved_model"):
        np.testing.assert_allclose(a[f"loaded_{path}_out"], a["float_out"], rtol=1e-6, atol=1e-7)
        assert worker["facts"][f"loaded_{path}_kernels"] == [
            name for name, _ in worker["facts"]["float"]["kernels"]]


def test_configs_serialize_under_registered_names(worker):
    assert worker["facts"]["configs_round_trip"]
    assert worker["facts"]["registered_names"] == [
        "bittts_tf>TernaryConv1DQuantizeConfig", "bittts_tf>TernaryConv2DQuantizeConfig",
        "bittts_tf>TernaryDepthwiseConv2DQuantizeConfig", "bittts_tf>TernaryDenseQuantizeConfig",
        "bittts_tf>TernaryQuantizeConfig"]


@pytest.mark.parametrize("case, names", [
    ("unsupported_layer", ["'lstm_layer'", "LSTM"]),
    ("bad_activations", ["activations", "'4bit'"]),
    ("wrong_layer_type", ["'not_a_conv'", "Conv2D", "Dense"]),
    ("mixed_modes", ["'eight_bit_dense'", "'8bit'", "'float'"]),
    ("not_a_model", ["model", "str"]),
    ("missing_file", ["missing.h5", "no such file"]),
    ("text_h5", ["notes.h5", "not a readable tf-keras model"]),
    ("no_ternary_layers", ["no layer quantized by TernaryWeightQuantizer"]),
    ("integer_without_8bit", ["integer=True", "8-bit activations"]),
    ("folded_batch_norm", ["'quant_conv_before_bn'", "per-channel factor"]),
])
def test_bad_input_gives_one_line_naming_it(worker, case, names):
    message = worker["errors"][case]
    assert message is not None, f"{case}: no error"
    first_line = message.splitlines()[0]
    for name in names:
        assert name in first_line, message
    if case != "folded_batch_norm":  # the converter's message carries its log's tail
        assert "\n" not in message, message


def test_worker_ran_in_legacy_keras_and_built_no_keras3_model(worker):
    facts = worker["facts"]
    assert facts["legacy_keras"] == "1"
    assert facts["tf_keras_is_tf_keras"]
    assert facts["keras3_objects_built"] == []
