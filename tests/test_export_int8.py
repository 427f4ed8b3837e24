"""Integer TTS graphs: each ternary kernel packed and decoded to int8 codes
{-1, 0, 1}, its scale in the tensor's quantization parameters, the readers'
int32 biases requantized.

The reference is the TFLite converter's own int8 graph, unpacked: on the
same input each rewritten op stays within one output step of it (only the
bias rounding may flip the last bit); whole graphs, where such flips travel
through int8 layer norms, stay as close to it as it is to itself under
LiteRT's two kernel sets. Also: int8 around the convs, fixed shapes, 1.6 bits
per ternary weight, the model folder's int8 variant, and one-line errors
naming the layer."""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, InterpreterWithCustomOps, OpResolverType

from bittts_tf.engine import graph as engine_graph
from bittts_tf.export import ConversionError, converter, packer, tts_graphs
from bittts_tf.litert import native, tflite_file
from bittts_tf.models import build, configs
from bittts_tf.quant import (QuantConv1D, QuantDense, TernaryConv1D, TernaryConv1DTranspose,
                             TernaryDense, packing, spec)
from bittts_tf.runtime import TextToSpeech, model_folder
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.runtime.stream import run_stream
from bittts_tf.text import FrontEnd
from seeds import fresh_seed
from tts_models import (SHARED_VOICE_MAX_TOKENS, shared_voice, shared_voice_export_report,
                        shared_voice_folder, shared_voice_int8_graphs)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_TOKENS, STEP = 24, 4
BUILTIN = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
OPS = schema.BuiltinOperator
KERNEL_OPS = {OPS.CONV_2D, OPS.DEPTHWISE_CONV_2D, OPS.FULLY_CONNECTED, OPS.TRANSPOSE_CONV}


def random_utterances(rng, count):
    return [{"phonemes": rng.integers(1, 71, int(rng.integers(8, MAX_TOKENS + 1)))}
            for _ in range(count)]


@pytest.fixture(scope="module")
def tts(tmp_path_factory):
    """The run's shared random voice (tts_models.shared_voice, a fresh printed
    seed: the tiny ternary preset as a trained model, a few frames a phoneme
    and a mel that varies, from a random mel projection), built here."""
    _, config, acoustic, vocoder, _ = shared_voice(tmp_path_factory)
    assert SHARED_VOICE_MAX_TOKENS == MAX_TOKENS
    shapes = tts_graphs.graph_shapes(acoustic, vocoder, MAX_TOKENS, STEP)
    return config, acoustic, vocoder, shapes


@pytest.fixture(scope="module")
def graphs(tts, tmp_path_factory):
    """The shared voice's int8 graphs as export_model_folder made them for its
    step-4 folder (calibrated on the voice's four random utterances)."""
    graphs = shared_voice_int8_graphs(tmp_path_factory)
    assert sorted(graphs) == [tts_graphs.FRAMES_GRAPH, tts_graphs.TEXT_GRAPH]
    return graphs


@pytest.fixture(scope="module")
def feeds(tts):
    """Fresh inputs as the runtime gives them: padded phonemes, and stream
    steps (frames, mask, states) at the utterance's start, middle and end,
    the states from the Keras stream over the utterance's regulated frames."""
    _, acoustic, vocoder, shapes = tts
    rng = np.random.default_rng(fresh_seed("test_export_int8 inputs"))
    function, _ = tts_graphs.frames_function(acoustic, vocoder, shapes)
    stream = shapes.stream
    text, frames = [], []
    for utterance in random_utterances(rng, 3):
        ids = utterance["phonemes"]
        n = len(ids)
        padded = np.zeros((1, MAX_TOKENS), np.int32)
        padded[0, :n] = ids
        length = np.asarray([n], np.int32)
        text.append({"phonemes": padded, "length": length})
        hidden, weights = acoustic.encode(padded, length)
        hidden, predictions = acoustic.variance_adaptor(hidden, weights)
        durations = np.maximum(np.round(np.exp(np.asarray(predictions["log_duration"][0, :n])) - 1), 1)
        regulated = np.repeat(np.asarray(hidden[0, :n]), durations.astype(int), axis=0)
        steps = []

        def keep(**inputs):
            steps.append({k: np.asarray(v) for k, v in inputs.items()})
            out = function(inputs["frames"], inputs["mask"],
                           *[inputs[name] for name in stream.state_names])
            return {k: v.numpy() for k, v in out.items()}

        run_stream(keep, stream, regulated)
        frames += [steps[k] for k in sorted({0, len(steps) // 2, len(steps) - 1})]
    return {"text": text, "frames": frames}


def run(interpreter, feed):
    """Outputs in the order of their names (PartitionedCall:<i>); a float
    input of an int8 tensor is quantized with the tensor's parameters."""
    interpreter.allocate_tensors()
    inputs = {tflite_file.signature_input_name(d["name"]): d
              for d in interpreter.get_input_details()}
    for name, value in feed.items():
        detail = inputs[name]
        if detail["dtype"] == np.int8 and value.dtype != np.int8:
            scale, zero = detail["quantization"]
            value = np.clip(np.round(value / scale) + zero, -128, 127)
        interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
    interpreter.invoke()
    outputs = sorted(interpreter.get_output_details(), key=lambda d: d["name"])
    return [interpreter.get_tensor(d["index"]).astype(np.float64) for d in outputs]


def opcode_name(model, op):
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode is not None:
        return code.customCode.decode()
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def decoded_readers(model):
    """(decode op, op reading its output) of every decode op."""
    subgraph = model.subgraphs[0]
    pairs = []
    for op in subgraph.operators:
        if opcode_name(model, op) == spec.OP_NAME:
            output = int(op.outputs[0])
            (reader,) = [r for r in subgraph.operators if output in [int(i) for i in r.inputs]]
            pairs.append((op, reader))
    return pairs


def tensor_values(model, tensor):
    data = bytes(model.buffers[tensor.buffer].data)
    dtype = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}[tensor.type]
    return np.frombuffer(data, dtype).reshape(tuple(tensor.shape))


def real_values(model, tensor):
    """int8 / int32 constant -> its real values, from the tensor's own scales."""
    values = tensor_values(model, tensor).astype(np.float64)
    q = tensor.quantization
    scales = np.asarray(q.scale, np.float64)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[q.quantizedDimension if values.ndim > 1 else 0] = scales.size
        scales = scales.reshape(shape)
    return values * scales


@pytest.mark.parametrize("name", ["text", "frames"])
def test_codes_and_scales_hold_the_converters_weights(graphs, name):
    unpacked = tflite_file.parse_model(graphs[name].folded)
    packed = tflite_file.parse_model(graphs[name].packed)
    before = {t.name: t for t in unpacked.subgraphs[0].tensors}
    tensors = packed.subgraphs[0].tensors
    pairs = decoded_readers(packed)
    assert len(pairs) == len([t for t in graphs[name].tensors if t.format == "ternary-indexed"])
    for decode, reader in pairs:
        filter_tensor = tensors[int(decode.outputs[0])]
        original = before[re.sub(rb"/decoded_\d+$", b"", filter_tensor.name)]
        indices = tensor_values(packed, tensors[int(decode.inputs[0])])
        codes = native.c_decode_i8(indices, int(np.prod(filter_tensor.shape))).reshape(original.shape)
        assert filter_tensor.type == schema.TensorType.INT8
        q, q0 = filter_tensor.quantization, original.quantization
        beta = float(q.scale[0])
        # One scale for all channels, stored once (per-tensor).
        assert len(q.scale) == 1 and len(q0.scale) == int(original.shape[0])
        assert not np.any(q.zeroPoint) and q.quantizedDimension == q0.quantizedDimension
        # The converter's filter: int8 in {-127, 0, 127} per channel, channel max = beta.
        expected = real_values(unpacked, original)
        np.testing.assert_allclose(codes * beta, expected, rtol=1e-6, atol=1e-7 * beta)
        # Its readers' bias: scale input * beta, the same real values to half a step.
        builtin = opcode_name(packed, reader)
        at = {OPS.TRANSPOSE_CONV: 3}.get(builtin, 2)
        if builtin in KERNEL_OPS and len(reader.inputs) > at and reader.inputs[at] >= 0:
            bias = tensors[int(reader.inputs[at])]
            activation = tensors[int(reader.inputs[{OPS.TRANSPOSE_CONV: 2}.get(builtin, 0)])]
            step = float(activation.quantization.scale[0]) * beta
            np.testing.assert_allclose(bias.quantization.scale, step, rtol=1e-6)
            old_bias = before[tensors[int(reader.inputs[at])].name.removesuffix(b"/rescaled")]
            error = np.abs(real_values(packed, bias) - real_values(unpacked, old_bias))
            assert error.max() <= 0.5 * step * (1 + 1e-5), filter_tensor.name


def activation_operand(model, op):
    return 2 if opcode_name(model, op) == OPS.TRANSPOSE_CONV else 0


def single_op(model, output_name, with_decode=False):
    """The parsed model cut to the op writing `output_name` (after the decode
    op writing its filter, if asked): input, its activations; output, its own."""
    subgraph = model.subgraphs[0]
    names = [t.name for t in subgraph.tensors]
    output = names.index(output_name)
    (index,) = [i for i, op in enumerate(subgraph.operators) if output in [int(o) for o in op.outputs]]
    indices = [index]
    if with_decode:
        filter_index = int(subgraph.operators[index].inputs[1])
        indices = [i for i, d in enumerate(subgraph.operators)
                   if opcode_name(model, d) == spec.OP_NAME and int(d.outputs[0]) == filter_index] + indices
    return engine_graph.ops_model(model, indices)


def invoke(interpreter, value):
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int32)


def check_rewritten_ops(unpacked, packed, feeds, with_decode_at_load=True):
    """Each op reading a decoded filter, alone, on the activations the
    converter's graph gives it: within one step of the converter's op, with
    the filter decoded at load (under both kernel sets) and in the graph.
    Returns (outputs that differ, outputs compared)."""
    at_load = decode_at_load(packed) if with_decode_at_load else None
    parsed = tflite_file.parse_model(packed)
    parsed_unpacked = tflite_file.parse_model(unpacked)
    parsed_at_load = tflite_file.parse_model(at_load) if at_load is not None else None
    tensors = parsed.subgraphs[0].tensors
    whole = Interpreter(model_content=unpacked, experimental_op_resolver_type=BUILTIN,
                        experimental_preserve_all_tensors=True)
    details = {d["name"]: d["index"] for d in whole.get_tensor_details()}
    readers = [(tensors[int(r.outputs[0])].name,
                tensors[int(r.inputs[activation_operand(parsed, r)])].name.decode())
               for _, r in decoded_readers(parsed)]
    # The single-op graphs, made once for every feed: cutting one out of a
    # whole graph (parse, serialize) costs far more than running it.
    resolvers = (BUILTIN, OpResolverType.AUTO)
    singles = {}
    for output_name, _ in readers:
        for resolver in resolvers:
            singles[output_name, "converter", resolver] = Interpreter(
                model_content=single_op(parsed_unpacked, output_name),
                experimental_op_resolver_type=resolver)
            if at_load is not None:
                singles[output_name, "at load", resolver] = Interpreter(
                    model_content=single_op(parsed_at_load, output_name),
                    experimental_op_resolver_type=resolver)
        singles[output_name, "in graph", None] = native.make_interpreter(
            single_op(parsed, output_name, with_decode=True))
    flipped = total = 0
    for feed in feeds:
        run(whole, feed)
        for output_name, activation_name in readers:
            activations = whole.get_tensor(details[activation_name])
            expected = {resolver: invoke(singles[output_name, "converter", resolver], activations)
                        for resolver in resolvers}
            compared = [(singles[output_name, "in graph", None], BUILTIN)]
            if at_load is not None:
                compared += [(singles[output_name, "at load", r], r) for r in resolvers]
            for interpreter, resolver in compared:
                got = invoke(interpreter, activations)
                assert np.abs(got - expected[resolver]).max() <= 1, (output_name, resolver)
                flipped += int((got != expected[resolver]).sum())
                total += got.size
    return flipped, total


@pytest.mark.parametrize("name", ["text", "frames"])
def test_each_rewritten_op_within_one_step_of_the_converters(graphs, feeds, name):
    flipped, total = check_rewritten_ops(graphs[name].folded, graphs[name].packed, feeds[name])
    print(f"{name}: {flipped} of {total} int8 outputs of rewritten ops differ by one step")


def snr_db(reference: list, other: list) -> float:
    signal = sum(np.sum(np.float64(r) ** 2) for r in reference)
    noise = sum(np.sum((np.float64(o) - r) ** 2) for r, o in zip(reference, other))
    return np.inf if noise == 0 else 10 * np.log10(signal / noise)


@pytest.mark.parametrize("name", ["text", "frames"])
def test_whole_graphs_as_close_as_litert_kernels_are_to_each_other(graphs, feeds, name):
    unpacked, packed = graphs[name].folded, graphs[name].packed
    runs = {"converter's, builtin kernels": Interpreter(model_content=unpacked,
                                                        experimental_op_resolver_type=BUILTIN),
            "converter's, default (XNNPACK)": Interpreter(model_content=unpacked),
            "in-graph decode": native.make_interpreter(packed),
            "decode at load": Interpreter(model_content=decode_at_load(packed)),
            "decode at load, builtin kernels": Interpreter(
                model_content=decode_at_load(packed), experimental_op_resolver_type=BUILTIN)}
    outputs = {key: [run(interpreter, feed) for feed in feeds[name]]
               for key, interpreter in runs.items()}
    reference = outputs.pop("converter's, builtin kernels")
    snr = {key: [snr_db([r[k] for r in reference], [o[k] for o in got])
                 for k in range(len(reference[0]))] for key, got in outputs.items()}
    for key, values in snr.items():
        print(f"{name} {key}: SNR vs the converter's graph (builtin kernels) "
              f"{[round(float(v), 1) for v in values]} dB")
    kernels = snr.pop("converter's, default (XNNPACK)")
    for key, values in snr.items():
        for k, (got, between_kernels) in enumerate(zip(values, kernels)):
            assert got >= min(between_kernels, 40.0) - 6.0, (key, k, got, between_kernels)


@pytest.mark.parametrize("name", ["text", "frames"])
def test_int8_around_the_convs_fixed_shapes_and_only_our_custom_op(graphs, name):
    model = tflite_file.parse_model(graphs[name].packed)
    subgraph = model.subgraphs[0]
    customs = {code.customCode.decode() for code in model.operatorCodes
               if code.customCode is not None}
    assert customs == {spec.OP_NAME}
    for _, reader in decoded_readers(model):
        activations = subgraph.tensors[int(reader.inputs[activation_operand(model, reader)])]
        output = subgraph.tensors[int(reader.outputs[0])]
        assert opcode_name(model, reader) in KERNEL_OPS | {OPS.BATCH_MATMUL}
        assert activations.type == output.type == schema.TensorType.INT8, output.name
    for tensor in subgraph.tensors:
        signature = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        assert signature is None or all(int(d) >= 0 for d in signature), tensor.name
    floats = {opcode_name(model, op) for op in subgraph.operators
              if subgraph.tensors[int(op.outputs[0])].type == schema.TensorType.FLOAT32}
    if name == "frames":
        # The stream is int8 from its inputs to its outputs: no float op at
        # all (its inverse STFT runs in C after it).
        assert floats == set(), floats
        ends = [subgraph.tensors[int(i)] for i in list(subgraph.inputs) + list(subgraph.outputs)]
        assert all(t.type == schema.TensorType.INT8 for t in ends)
    else:
        # Float only where TFLite has no int8 kernel (the layer norms' NEG,
        # the length mask's CAST) and at the int8 region's edges (DEQUANTIZE).
        assert floats <= {OPS.DEQUANTIZE, OPS.NEG, OPS.CAST}, floats


def test_bits_per_ternary_weight_and_sizes(graphs):
    for name, graph in graphs.items():
        summary = tts_graphs.size_summary(graph)
        print(f"{name}: int8 packed {len(graph.packed)} bytes, unpacked {len(graph.folded)}; "
              f"{summary['ternary_weights']} ternary weights at "
              f"{summary['bits_per_ternary_weight']} bits")
        assert summary["bits_per_ternary_weight"] <= 1.61
        assert len(graph.packed) < 0.6 * len(graph.folded)


@pytest.fixture(scope="module")
def int8_folder(tts, tmp_path_factory):
    """(folder, what export_model_folder returned): the `tts` voice's folder
    with int8 graphs calibrated on its random utterances (shared with
    test_tflm, test_firmware and test_export_tts: exported once a run)."""
    folder = shared_voice_folder(tmp_path_factory, STEP)
    return pathlib.Path(folder), shared_voice_export_report(folder)


def test_model_folder_int8_variant(int8_folder):
    tmp_path, report = int8_folder
    manifest = json.loads((tmp_path / model_folder.MANIFEST).read_text())
    for graph in model_folder.GRAPHS:
        entry = manifest["graphs"][model_folder.graph_key(graph, "int8")]
        data = (tmp_path / model_folder.graph_file(graph, "int8")).read_bytes()
        assert entry["file"] == f"{graph}.int8.tflite"
        assert entry["bytes"] == len(data) and entry["sha256"] == model_folder.sha256(data)
        assert report["int8"]["graphs"][graph]["bytes"] == len(data)
    on_disk = json.loads((tmp_path / model_folder.SIZE_REPORT).read_text())
    assert on_disk["int8"]["total"]["bits_per_ternary_weight"] <= 1.61
    assert model_folder.load(str(tmp_path)).variants == ["packed", "int8"]
    for decode in ("graph", "load"):
        result = TextToSpeech(str(tmp_path), variant="int8", decode=decode).synthesize(
            "Hello there, quick brown fox.")
        assert result.audio.size > 0 and np.all(np.isfinite(result.audio))
        assert np.abs(result.audio).max() > 0


def run_tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_eval_int8_tool(int8_folder, tmp_path):
    folder, _ = int8_folder
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Hello there.\nThe quick brown fox, who was rather tired, jumped over "
                         "the lazy dog by the river.\n")
    output = tmp_path / "out" / "int8_eval.json"
    done = run_tool("eval_int8.py", f"--model_dir={folder}", f"--sentences={sentences}",
                    f"--output={output}")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(output.read_text())
    rows, summary = report["sentences"], report["summary"]
    assert [r["text"] for r in rows] == sentences.read_text().splitlines()
    for row in rows:
        assert 0 <= row["durations_changed"] <= row["phonemes"]
        assert row["snr_db"] is None or np.isfinite(row["snr_db"])
        assert row["mel_l1"] >= 0 and {"heard_float", "heard_int8"} <= set(row)
    assert {"wer_float", "wer_int8", "mel_l1_mean", "durations_differ"} <= set(summary)
    assert "WER float" in done.stdout


def test_eval_int8_names_a_folder_without_int8_graphs(int8_folder, tmp_path):
    folder, _ = int8_folder
    copy = tmp_path / "no_int8"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / model_folder.MANIFEST).read_text())
    for graph in model_folder.GRAPHS:
        del manifest["graphs"][model_folder.graph_key(graph, "int8")]
    (copy / model_folder.MANIFEST).write_text(json.dumps(manifest))
    done = run_tool("eval_int8.py", f"--model_dir={copy}", f"--output={tmp_path / 'x.json'}")
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"eval_int8: --model_dir={copy}: ") and "no int8" in message
    assert not (tmp_path / "x.json").exists()


def int8_keras(model, inputs):
    """The converter's int8 graph of a small Keras model, calibrated on `inputs`."""
    signature = tf.TensorSpec((1,) + model.input_shape[1:], tf.float32, name="x")
    function = tf.function(lambda x: model(x), input_signature=[signature])
    return tts_graphs.convert_int8_function(function, model, [{"x": x} for x in inputs])


@pytest.fixture
def seeded(rng):
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    return rng


@pytest.mark.parametrize("kind", ["conv", "transpose", "dense", "all-zero conv"])
def test_each_layer_kind_within_one_step(seeded, kind):
    make = {"conv": lambda: TernaryConv1D(7, 3, padding="same", name="layer"),
            "transpose": lambda: TernaryConv1DTranspose(5, 4, strides=2, padding="same",
                                                        name="layer"),
            "dense": lambda: TernaryDense(7, name="layer"),
            # The bias must survive: any weight scale decodes zeros, not any bias scale.
            "all-zero conv": lambda: TernaryConv1D(7, 3, padding="same",
                                                   kernel_initializer="zeros",
                                                   bias_initializer="ones", name="layer")}[kind]
    inputs = keras.Input((10, 6))
    model = keras.Model(inputs, TernaryDense(3, name="after")(make()(inputs)))
    samples = [seeded.standard_normal((1, 10, 6)).astype(np.float32) for _ in range(16)]
    unpacked = int8_keras(model, samples)
    packed, rows = packer.pack_int8_ternary_weights(model, unpacked)
    assert sorted(r.layer for r in rows) == ["after", "layer"]
    fresh = [{"x": seeded.standard_normal((1, 10, 6)).astype(np.float32)} for _ in range(4)]
    flipped, total = check_rewritten_ops(unpacked, packed, fresh)
    print(f"{kind}: {flipped} of {total} int8 outputs of rewritten ops differ by one step")


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_4bit_kernels_become_int4_filters_of_exact_value(seeded, kind):
    """The int8 op reads the INT4 tensor itself, whose codes times the scale
    are the Keras kernel exactly: on the activations the graph gives it, the
    op's output is within one output step of the Keras layer on the same
    (dequantized) activations. TFLite Micro equals LiteRT's reference kernels."""
    from bittts_tf.export import tflm
    layer = {"conv": lambda: QuantConv1D(9, 3, padding="same", weight_bits=4, name="layer"),
             "dense": lambda: QuantDense(9, weight_bits=4, name="layer")}[kind]()
    inputs = keras.Input((10, 6))
    model = keras.Model(inputs, layer(inputs))
    samples = [seeded.standard_normal((1, 10, 6)).astype(np.float32) for _ in range(16)]
    packed, rows = packer.pack_int8_ternary_weights(model, int8_keras(model, samples))
    weights = {"conv": 3 * 6 * 9, "dense": 6 * 9}[kind]
    assert [(r.layer, r.format, r.weights, r.stored_bytes) for r in rows] == [
        ("layer", "int4", weights, weights // 2 + 4)]
    parsed = tflite_file.parse_model(packed)
    subgraph = parsed.subgraphs[0]
    (op,) = [op for op in subgraph.operators
             if opcode_name(parsed, op) in (OPS.CONV_2D, OPS.FULLY_CONNECTED)]
    x_t, w_t, y_t = (subgraph.tensors[int(i)] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    assert w_t.type == schema.TensorType.INT4
    assert not any(opcode_name(parsed, o) == spec.OP_NAME for o in subgraph.operators)
    interpreter = Interpreter(model_content=packed, experimental_op_resolver_type=BUILTIN,
                              experimental_preserve_all_tensors=True)
    details = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    reference = Interpreter(model_content=packed,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    micro = tflm.make_interpreter(packed, 64 * 1024)
    widened = decode_at_load(packed)
    assert not any(t.type == schema.TensorType.INT4
                   for t in tflite_file.parse_model(widened).subgraphs[0].tensors)
    widened_reference = Interpreter(model_content=widened,
                                    experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    for k in range(4):
        # Within the calibrated ranges: a clipped output would not be the layer's.
        x = seeded.uniform(0.2, 0.9) * samples[k]
        run(interpreter, {"x": x})
        x_q = interpreter.get_tensor(details[x_t.name.decode()]).astype(np.float64)
        y_q = interpreter.get_tensor(details[y_t.name.decode()]).astype(np.float64)
        x_real = (x_q - x_t.quantization.zeroPoint[0]) * x_t.quantization.scale[0]
        y_real = (y_q - y_t.quantization.zeroPoint[0]) * y_t.quantization.scale[0]
        expected = np.asarray(layer(x_real.reshape(1, 10, 6).astype(np.float32)), np.float64)
        step = float(y_t.quantization.scale[0])
        error = np.abs(y_real.reshape(expected.shape) - expected).max()
        assert error <= 1.01 * step, (error, step)
        (expected_output,) = run(reference, {"x": x})
        micro.set_input(x, 0)
        micro.invoke()
        diff = micro.get_output(0) - expected_output.astype(np.float32)
        assert not diff.any(), (np.abs(diff).max(), int((diff != 0).sum()), step)
        # The desktop runtime widens the INT4 filter to INT8 at load: the same outputs.
        (widened,) = run(widened_reference, {"x": x})
        np.testing.assert_array_equal(widened, expected_output)


# Seeds that once failed. 380179852: the next layer's ternary columns summed
# to zero on the all-zero conv's constant output, the converter calibrated
# its output scale below one accumulator step and LiteRT's default delegate
# refused the graph (fixed by export.int8_scales).
@pytest.mark.replay_seed(380179852)
def test_all_zero_conv_replayed_seed(seeded):
    test_each_layer_kind_within_one_step(seeded, "all-zero conv")


def test_folded_batch_norm_is_refused_naming_the_layer(seeded):
    inputs = keras.Input((16, 8))
    outputs = keras.layers.BatchNormalization(name="bn")(
        TernaryConv1D(8, 3, padding="same", name="folded")(inputs))
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    bn.set_weights([seeded.uniform(0.5, 2, 8), seeded.normal(size=8), seeded.normal(size=8),
                    seeded.uniform(0.5, 2, 8)])
    samples = [seeded.standard_normal((1, 16, 8)).astype(np.float32) for _ in range(8)]
    with pytest.raises(ConversionError) as error:
        packer.pack_int8_ternary_weights(model, int8_keras(model, samples))
    message = str(error.value)
    assert message.startswith("layer 'folded': ") and "no longer ternary" in message
    assert "\n" not in message


def test_float_packer_refuses_int8_weights_naming_the_layer(seeded):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, TernaryDense(6, name="dense")(inputs))
    samples = [seeded.standard_normal((1, 8)).astype(np.float32) for _ in range(8)]
    with pytest.raises(ConversionError,
                       match=r"^layer 'dense': its weights .* are int8 .*pack_int8_ternary_weights$"):
        packer.pack_ternary_weights(model, int8_keras(model, samples))


def share_buffers(tflite, pairs):
    """The model with each (to, from) tensor pointing at the bytes of `from`,
    as the converter does for constants with equal bytes."""
    model = tflite_file.parse_model(tflite)
    tensors = {t.name.decode(): t for t in model.subgraphs[0].tensors}
    for to, source in pairs:
        tensors[to].buffer = tensors[source].buffer
    return tflite_file.serialize_model(model)


def test_equal_kernels_and_a_shared_bias_buffer(seeded):
    inputs = keras.Input((12, 6))
    first = TernaryConv1D(6, 3, padding="same", activation="relu", name="first")
    second = TernaryConv1D(6, 3, padding="same", name="second")
    model = keras.Model(inputs, second(first(inputs)))
    second.set_weights(first.get_weights())
    samples = [seeded.standard_normal((1, 12, 6)).astype(np.float32) for _ in range(16)]
    unpacked = int8_keras(model, samples)
    parsed = tflite_file.parse_model(unpacked)
    subgraph = parsed.subgraphs[0]
    convs = [op for op in subgraph.operators if opcode_name(parsed, op) == OPS.CONV_2D]
    biases = [subgraph.tensors[int(op.inputs[2])].name.decode() for op in convs]
    # Both convs read one bias buffer: rescaling it for one must not change the other's.
    shared = share_buffers(unpacked, [(biases[1], biases[0])])
    packed, rows = packer.pack_int8_ternary_weights(model, shared)
    assert sorted(r.layer for r in rows) in (["first", "second"], ["first, second"])
    assert len(decoded_readers(tflite_file.parse_model(packed))) == 2
    fresh = [{"x": seeded.standard_normal((1, 12, 6)).astype(np.float32)} for _ in range(4)]
    # In the graph only: see the next test.
    flipped, total = check_rewritten_ops(shared, packed, fresh, with_decode_at_load=False)
    print(f"{flipped} of {total} int8 outputs of rewritten ops differ by one step")


def test_decode_at_load_of_a_packed_tensor_read_twice(seeded):
    """Equal kernels share one packed tensor read by two decode ops; decoded
    at load, the model computes what the in-graph decode computes."""
    inputs = keras.Input((None, 6))
    first = TernaryConv1D(6, 3, padding="same", activation="relu", name="first")
    second = TernaryConv1D(6, 3, padding="same", name="second")
    model = keras.Model(inputs, second(first(inputs)))
    second.set_weights(first.get_weights())
    result = converter.convert(model)
    assert len(decoded_readers(tflite_file.parse_model(result.tflite))) == 2
    x = seeded.standard_normal((1, 12, 6)).astype(np.float32)
    in_graph = native.run_interpreter(native.make_interpreter(result.tflite), [x])[0]
    at_load = native.run_interpreter(Interpreter(model_content=decode_at_load(result.tflite)),
                                      [x])[0]
    np.testing.assert_allclose(at_load, in_graph, rtol=1e-5, atol=1e-5 * np.abs(in_graph).max())


def test_packing_codes_round_trip_in_the_c_kernel(graphs):
    """The in-graph decode and decode at load produce the same int8 codes."""
    packed = graphs["frames"].packed
    model = tflite_file.parse_model(packed)
    loaded = tflite_file.parse_model(decode_at_load(packed))
    for decode, _ in decoded_readers(model):
        tensor = model.subgraphs[0].tensors[int(decode.outputs[0])]
        indices = tensor_values(model, model.subgraphs[0].tensors[int(decode.inputs[0])])
        n = int(np.prod(tensor.shape))
        constant = tensor_values(loaded, loaded.subgraphs[0].tensors[int(decode.outputs[0])])
        np.testing.assert_array_equal(constant.reshape(-1), native.c_decode_i8(indices, n))
        np.testing.assert_array_equal(constant.reshape(-1), packing.decode(indices, n))


def test_multi_speaker_text_graph_calibrates_with_speakers(seeded):
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols),
                            n_speakers=3)
    acoustic, vocoder = build.build_acoustic(config), build.build_generator(config)
    shapes = tts_graphs.graph_shapes(acoustic, vocoder, MAX_TOKENS, STEP)
    utterances = [{**u, "speaker": np.int32(i % 3)}
                  for i, u in enumerate(random_utterances(seeded, 4))]
    samples = tts_graphs.calibration_inputs(acoustic, utterances, shapes)
    assert all(set(s) == {"phonemes", "length", "speaker"} for s in samples["text"])
    function, layers = tts_graphs.text_function(acoustic, shapes)
    unpacked = tts_graphs.convert_int8_function(function, layers, samples["text"])
    packed, _ = packer.pack_int8_ternary_weights(layers, unpacked)
    feed = {**samples["text"][0], "speaker": np.asarray([2], np.int32)}
    reference = run(Interpreter(model_content=unpacked, experimental_op_resolver_type=BUILTIN), feed)
    got = run(Interpreter(model_content=decode_at_load(packed),
                          experimental_op_resolver_type=BUILTIN), feed)
    assert snr_db(reference, got) >= 20.0


@pytest.mark.parametrize("name", ["text", "frames"])
def test_shipped_form_is_the_packed_graph_fused_and_unnamed(graphs, feeds, name):
    """The model folder's int8 graph: each decode -> CONV_2D pair one
    BitTTSTernaryConv, names only on the graph's ends; on LiteRT's reference
    kernels (what TFLite Micro's are) it gives the packed graph's outputs bit
    for bit, and loaded on a desktop (decode at load) the same as the packed
    graph loaded."""
    packed, shipped = graphs[name].packed, graphs[name].shipped
    model = tflite_file.parse_model(shipped)
    subgraph = model.subgraphs[0]
    _, customs = tflite_file.graph_ops(model)
    assert spec.CONV_OP_NAME in customs
    for decode, reader in decoded_readers(model):
        assert opcode_name(model, reader) != OPS.CONV_2D
    ends = {int(i) for i in list(subgraph.inputs) + list(subgraph.outputs)}
    assert all(t.name == b"" for i, t in enumerate(subgraph.tensors) if i not in ends)
    assert len(shipped) < len(packed)
    reference = {key: InterpreterWithCustomOps(
        model_content=m, custom_op_registerers=native.litert_registerers(),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        for key, m in (("packed", packed), ("shipped", shipped))}
    loaded = {key: Interpreter(model_content=decode_at_load(m))
              for key, m in (("packed", packed), ("shipped", shipped))}
    for feed in feeds[name]:
        for pair in (reference, loaded):
            for a, b in zip(run(pair["packed"], feed), run(pair["shipped"], feed)):
                np.testing.assert_array_equal(a, b)


def test_mcd_against_keras_is_near_zero_for_float_graphs_and_names_a_mismatch(tts, int8_folder):
    """check_streaming's int8 measure: the folder's graphs on its float
    durations against the Keras waveform. The float graphs give the Keras
    samples (MCD ~0 dB); the int8 ones are further; a reference of another
    length is refused by name."""
    from bittts_tf.eval.int8_check import Int8CheckError, mcd_against_keras
    config, acoustic, vocoder, _ = tts
    path, _ = int8_folder
    texts = ["Hello there, quick brown fox.", "Turn left at the corner, then stop."]
    timing = TextToSpeech(str(path))
    references = []
    for text in texts:
        audio = []
        for ids in timing.segments(text):
            mel, lengths, _ = acoustic.infer(np.asarray([ids], np.int32),
                                             np.asarray([len(ids)], np.int32))
            audio.append(np.asarray(vocoder(mel[:, :int(lengths[0])])[0]))
        references.append(np.concatenate(audio))
    float32 = mcd_against_keras(str(path), texts, references, config.audio, variant="packed")
    int8 = mcd_against_keras(str(path), texts, references, config.audio, variant="int8")
    print(f"MCD against Keras: float graphs {float32['mcd_db']}, int8 {int8['mcd_db']} dB")
    assert float32["max_mcd_db"] < 0.05
    assert int8["mean_mcd_db"] > float32["mean_mcd_db"]
    with pytest.raises(Int8CheckError, match="Turn left"):
        mcd_against_keras(str(path), texts[1:], [references[1][:-256]], config.audio)
