"""Recovering the Keras models of a model folder from its packed graphs
(bittts_tf/export/recover.py, tools/recover_checkpoint.py): every weight of a
random model comes back from both folder formats, a re-export gives the same
graphs' outputs, a weight that cannot be found is a one-line error, and the
shipped voice's recovered models reproduce its graphs."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from bittts_tf.export import recover, tts_graphs
from bittts_tf.litert import tflite_file
from bittts_tf.quant import layers as qlayers
from bittts_tf.runtime import model_folder
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.text import FrontEnd
from bittts_tf.training import checkpoints
from seeds import fresh_seed
from tts_models import random_tts

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "slt_tiny"
MAX_TOKENS = 24
STEP = 4
# The format-1 frames graph: a chunk of frames between context frames.
CHUNK, LEFT, RIGHT = 4, 8, 8


# --- Folders of a random model ------------------------------------------------

@pytest.fixture(scope="module")
def original():
    """A random tiny TTS with nothing at its default: biases, layer-norm
    gammas and betas moved off 0 and 1, a random mel projection."""
    seed = fresh_seed("recover: model")
    config, acoustic, vocoder = random_tts(seed)
    move_off_defaults(acoustic, vocoder, np.random.default_rng(seed))
    return config, acoustic, vocoder


def move_off_defaults(acoustic, vocoder, rng):
    """Biases, layer-norm gammas and betas moved off 0 and 1 (the converter
    drops a MUL by ones and an ADD of zeros), a random mel projection."""
    for model in (acoustic, vocoder):
        for variable in model.variables:
            if variable.path.endswith(("/bias", "/gamma", "/beta")):
                noise = rng.normal(0.0, 0.3, variable.shape).astype(np.float32)
                variable.assign(np.asarray(variable) + noise)
    projection = acoustic.mel_projection.kernel
    projection.assign(rng.normal(0.0, 0.1, projection.shape).astype(np.float32))


def write_format1_folder(path, config, acoustic, vocoder, text_graph: bytes):
    """The folder as the format-1 exporter wrote it (the shipped voice's form):
    the text graph (`text_graph`: format 2 changed only the frames graph, so a
    format-2 export's text.tflite, which saves converting it again), and a
    stateless frames graph over LEFT + CHUNK + RIGHT regulated frames giving
    the chunk's samples and mel."""
    window, hop = LEFT + CHUNK + RIGHT, config.audio.hop_length
    channels = config.acoustic.encoder_channels

    def frames_function():
        @tf.function(input_signature=[tf.TensorSpec([1, window, channels], tf.float32,
                                                    name="frames"),
                                      tf.TensorSpec([1, window, 1], tf.float32, name="mask")])
        def frames(regulated, mask):
            mel = acoustic.decode_frames(regulated, mask)
            audio = vocoder(mel, mask)
            return {"audio": audio[:, LEFT * hop:(LEFT + CHUNK) * hop],
                    "mel": mel[:, LEFT:LEFT + CHUNK]}

        layers = [acoustic.decoder_input, acoustic.decoder, acoustic.mel_projection, vocoder]
        return frames, tts_graphs._LayerGroup(layers)

    graphs = {"text": text_graph,
              "frames": tts_graphs.convert_graph("frames", frames_function, False).packed}
    os.makedirs(path, exist_ok=True)
    for key, data in graphs.items():
        (pathlib.Path(path) / f"{key}.tflite").write_bytes(data)
    manifest = {"format": model_folder.FORMAT_NAME, "format_version": 1,
                "audio": config.audio.to_dict(), "front_end": FrontEnd().to_dict(),
                "speakers": 1,
                "shapes": {"max_tokens": MAX_TOKENS, "chunk_frames": CHUNK, "left_context": LEFT,
                           "right_context": RIGHT, "hop_length": hop,
                           "encoder_channels": channels, "n_mels": config.audio.n_mels},
                "graphs": {key: {"file": f"{key}.tflite", "bytes": len(data),
                                 "sha256": model_folder.sha256(data)}
                           for key, data in graphs.items()},
                "model_config": config.to_dict(), "source": {"test": "format 1"}}
    (pathlib.Path(path) / model_folder.MANIFEST).write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def folders(original, tmp_path_factory):
    """Folder format -> the random model exported in it."""
    config, acoustic, vocoder = original
    format2 = str(tmp_path_factory.mktemp("format2"))
    tts_graphs.export_model_folder(format2, acoustic, vocoder, config, FrontEnd(), MAX_TOKENS,
                                   STEP, {"test": "format 2"}, float32_baseline=False)
    format1 = write_format1_folder(str(tmp_path_factory.mktemp("format1")), config, acoustic,
                                   vocoder, (pathlib.Path(format2) / "text.tflite").read_bytes())
    return {1: format1, 2: format2}


@pytest.fixture(scope="module")
def recovered(folders):
    """Folder format -> its Recovery (made on first use)."""
    cache = {}

    def get(form):
        if form not in cache:
            cache[form] = recover.recover(folders[form])
        return cache[form]

    return get


def effective_weights(acoustic, vocoder) -> dict:
    """Variable path -> the weight the forward pass uses: a QAT layer's
    quantized kernel, else the variable; float variables only."""
    weights = {}
    for model in (acoustic, vocoder):
        for variable in model.variables:
            if np.issubdtype(np.dtype(variable.dtype), np.floating):
                weights[variable.path] = np.asarray(variable)
        for layer in qlayers.quantized_layers(model):
            weights[layer.kernel.path] = layer.effective_kernel()
    return weights


def run_graph(data: bytes, inputs: dict) -> dict:
    """LiteRT on a packed graph (decoded at load): output tensor name -> array."""
    interpreter = Interpreter(model_content=decode_at_load(data))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        name = tflite_file.signature_input_name(detail["name"])
        interpreter.set_tensor(detail["index"], np.asarray(inputs[name], detail["dtype"]))
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"])
            for d in interpreter.get_output_details()}


def random_inputs(data: bytes, rng, n_symbols: int) -> dict:
    """Inputs for every input of a graph: ids, a length, a 0/1 mask, normal floats."""
    interpreter = Interpreter(model_content=decode_at_load(data))
    inputs = {}
    for detail in interpreter.get_input_details():
        name = tflite_file.signature_input_name(detail["name"])
        shape = tuple(detail["shape"])
        if name == "phonemes":
            inputs[name] = rng.integers(1, n_symbols, shape)
        elif name == "length":
            inputs[name] = rng.integers(3, MAX_TOKENS + 1, shape)
        elif name == "mask":
            inputs[name] = (rng.random(shape) < 0.8).astype(np.float32)
        else:
            inputs[name] = rng.normal(0.0, 1.0, shape).astype(np.float32)
    return inputs


def worst_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| as a fraction of the peak |b|."""
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)


# --- Round trips --------------------------------------------------------------

@pytest.mark.parametrize("shape, spread", [((1, 1, 128), 1.0), ((5, 96, 96), 1.0),
                                           ((1, 384, 128), 1.0), ((3, 16, 8), 0.05)])
def test_ternary_latent_gives_codes_and_scale_exactly(rng, shape, spread):
    """Codes and beta of a random latent kernel (a spread of 0.05 around +-1
    makes every code nonzero) come back bit for bit from `ternary_latent`."""
    from bittts_tf.quant import quantizers

    signs = rng.choice([-1.0, 1.0], shape)
    latent = (rng.normal(0.0, 1.0, shape) if spread == 1.0
              else signs * (1.0 + rng.uniform(-spread, spread, shape))).astype(np.float32)
    codes, beta = quantizers.ternary_codes(tf.constant(latent))
    codes = np.asarray(codes).astype(np.int8)
    again, beta_again = quantizers.ternary_codes(tf.constant(recover.ternary_latent(codes, beta)))
    np.testing.assert_array_equal(np.asarray(again), codes)
    assert np.float32(beta_again) == np.float32(beta)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("shape, scale", [((1, 1, 128), 1.0), ((5, 96, 96), 0.02),
                                          ((1, 384, 128), 3e-4), ((3, 64, 64), 3e-5)])
def test_uniform_latent_gives_the_kbit_kernel_exactly(rng, bits, shape, scale):
    """A k-bit kernel as the graphs hold it (the quantizer's output) comes
    back bit for bit from the layer's quantizer applied to `uniform_latent`
    (3e-5 puts an 8-bit kernel's largest code at 126); the kernel itself as
    the latent misses by the quantizer's epsilon where that is above
    float32's resolution (small kernels)."""
    from bittts_tf.quant import quantizers

    latent = (scale * rng.normal(0.0, 1.0, shape)).astype(np.float32)
    kernel = np.asarray(quantizers.uniform_quantize(tf.constant(latent), bits))
    again = np.asarray(quantizers.uniform_quantize(
        tf.constant(recover.uniform_latent(kernel, bits)), bits))
    np.testing.assert_array_equal(again, kernel)
    if scale < 0.1:
        naive = np.asarray(quantizers.uniform_quantize(tf.constant(kernel), bits))
        assert not np.array_equal(naive, kernel)


@pytest.mark.parametrize("form", [1, 2])
def test_every_weight_comes_back(original, recovered, form):
    config, acoustic, vocoder = original
    recovery = recovered(form)
    want = effective_weights(acoustic, vocoder)
    got = effective_weights(recovery.acoustic, recovery.vocoder)
    assert set(got) == set(want)
    training_only = {v.path for v in acoustic.aligner.variables}
    assert set(recovery.not_recovered) == training_only
    assert recovery.states and all("seed_generator" in path for path in recovery.states)
    assert recovery.model_config.to_dict() == config.to_dict()
    assert len(recovery.folds) == 1 and "mel_projection" in recovery.folds[0]
    errors = {path: worst_error(got[path], want[path])
              for path in want if path not in training_only}
    worst = max(errors, key=errors.get)
    print(f"format {form}: {len(errors)} weights recovered, worst {errors[worst]:.2g} of the "
          f"peak ({worst})")
    assert errors[worst] <= 1e-6, worst
    assert_same_ternary_codes((acoustic, vocoder), (recovery.acoustic, recovery.vocoder))



def assert_same_ternary_codes(models, recovered):
    """Every ternary layer but the aligner's (training only) has the original's
    codes, and its scale within 1e-6."""
    originals = {layer.path: layer for model in models for layer in qlayers.quantized_layers(model)}
    for layer in (layer for model in recovered for layer in qlayers.quantized_layers(model)):
        if layer.is_ternary and "aligner" not in layer.path:
            codes, beta = layer.ternary_codes()
            want_codes, want_beta = originals[layer.path].ternary_codes()
            np.testing.assert_array_equal(codes, want_codes, err_msg=layer.path)
            assert abs(beta - want_beta) <= 1e-6 * want_beta, layer.path

def test_reexport_gives_the_same_graphs(original, folders, recovered, tmp_path, rng):
    """The recovered models exported again (format 2) against the original
    folder, every output of both graphs on random inputs."""
    config = original[0]
    recovery = recovered(2)
    again = str(tmp_path / "again")
    tts_graphs.export_model_folder(again, recovery.acoustic, recovery.vocoder,
                                   recovery.model_config, recovery.front_end, MAX_TOKENS, STEP,
                                   {"test": "recovered"}, float32_baseline=False)
    for graph in model_folder.GRAPHS:
        first = (pathlib.Path(folders[2]) / f"{graph}.tflite").read_bytes()
        second = (pathlib.Path(again) / f"{graph}.tflite").read_bytes()
        for _ in range(3):
            inputs = random_inputs(first, rng, config.acoustic.n_symbols)
            want, got = run_graph(first, inputs), run_graph(second, inputs)
            assert set(got) == set(want)
            for name in want:
                error = worst_error(got[name], want[name])
                assert error <= 1e-5, f"{graph} output {name}: {error:.3g} of the peak"
        print(f"{graph}: outputs of the re-export equal the original's")


def test_a_4bit_voice_is_stored_at_4_bits_and_comes_back(tmp_path, rng):
    """Every 4-bit kernel leaves the folder's graphs as an INT4 tensor (two
    weights a byte) and comes back to its Keras value; the int8 graphs hold
    no float or int8 copy of them."""
    seed = fresh_seed("recover: 4-bit model")
    config, acoustic, vocoder = random_tts(seed, weight_bits=4)
    folder = str(tmp_path / "four_bit")
    utterances = [{"phonemes": rng.integers(1, 71, int(rng.integers(8, MAX_TOKENS + 1)))}
                  for _ in range(2)]
    report = tts_graphs.export_model_folder(folder, acoustic, vocoder, config, FrontEnd(),
                                            MAX_TOKENS, STEP, {"test": "4-bit"},
                                            float32_baseline=False, int8_utterances=utterances)
    kernels = qlayers.quantized_layers(acoustic) + qlayers.quantized_layers(vocoder)
    graph_kernels = sum(int(np.prod(layer.kernel.shape)) for layer in kernels
                        if layer.weight_bits == 4 and "aligner" not in layer.path)
    for variant in ("", "int8"):
        graphs = report["int8"]["graphs"] if variant else report["graphs"]
        assert sum(g["int4_weights"] for g in graphs.values()) == graph_kernels, variant
        assert all(g["ternary_weights"] == 0 for g in graphs.values())
        for graph in model_folder.GRAPHS:
            name = f"{graph}.{variant}.tflite" if variant else f"{graph}.tflite"
            model = tflite_file.parse_model((pathlib.Path(folder) / name).read_bytes())
            int4 = [t for t in model.subgraphs[0].tensors if t.type == tflite_file.INT4]
            for tensor in int4:
                count = int(np.prod(tensor.shape))
                assert len(model.buffers[tensor.buffer].data) == -(-count // 2)
    recovery = recover.recover(folder)
    want = effective_weights(acoustic, vocoder)
    got = effective_weights(recovery.acoustic, recovery.vocoder)
    training_only = {v.path for v in acoustic.aligner.variables}
    errors = {path: worst_error(got[path], want[path]) for path in want
              if path not in training_only}
    worst = max(errors, key=errors.get)
    print(f"4-bit: {len(errors)} weights recovered, worst {errors[worst]:.2g} of the peak ({worst})")
    assert errors[worst] <= 1e-6, worst
    assert recovery.model_config.weight_bits == 4


def test_recovered_keras_reproduces_format1_graphs(original, folders, recovered, rng):
    """Format 1 cannot be exported any more: the recovered Keras paths against
    its graphs instead, on random inputs."""
    config = original[0]
    recovery = recovered(1)
    text = (pathlib.Path(folders[1]) / "text.tflite").read_bytes()
    inputs = random_inputs(text, rng, config.acoustic.n_symbols)
    outputs = run_graph(text, inputs)
    hidden, weights = recovery.acoustic.encode(inputs["phonemes"].astype(np.int32),
                                               inputs["length"].astype(np.int32))
    hidden, predictions = recovery.acoustic.variance_adaptor(hidden, weights)
    by_rank = {value.ndim: value for value in outputs.values()}
    assert worst_error(np.asarray(hidden), by_rank[3]) <= 1e-5
    assert worst_error(np.asarray(predictions["log_duration"]), by_rank[2]) <= 1e-5
    frames = (pathlib.Path(folders[1]) / "frames.tflite").read_bytes()
    inputs = random_inputs(frames, rng, config.acoustic.n_symbols)
    audio, mel = keras_frames(recovery, inputs["frames"], inputs["mask"], LEFT, CHUNK)
    outputs = run_graph(frames, inputs)
    by_rank = {value.ndim: value for value in outputs.values()}
    assert worst_error(audio, by_rank[2]) <= 1e-5
    assert worst_error(mel, by_rank[3]) <= 1e-5


def keras_frames(recovery, frames, mask, left, chunk):
    """The format-1 frames graph's function on the recovered Keras models."""
    hop = recovery.model_config.audio.hop_length
    mel = recovery.acoustic.decode_frames(frames, mask)
    audio = recovery.vocoder(mel, mask)
    return (np.asarray(audio[:, left * hop:(left + chunk) * hop]),
            np.asarray(mel[:, left:left + chunk]))


# --- Refusals -----------------------------------------------------------------

def _damaged(folder: str, destination: pathlib.Path, rename) -> str:
    """A copy of `folder` whose text graph has tensor names changed by
    `rename(name) -> name`, the manifest re-signed (the damage is in the
    names only)."""
    shutil.copytree(folder, destination)
    path = destination / "text.tflite"
    model = tflite_file.parse_model(path.read_bytes())
    for tensor in model.subgraphs[0].tensors:
        tensor.name = rename(tensor.name.decode()).encode()
    data = tflite_file.serialize_model(model)
    path.write_bytes(data)
    manifest_path = destination / model_folder.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["graphs"]["text"].update(bytes=len(data), sha256=model_folder.sha256(data))
    manifest_path.write_text(json.dumps(manifest))
    return str(destination)


def test_a_weight_not_found_is_one_line(folders, tmp_path):
    """The conv of encoder block 2 renamed away: the error names the layer, in
    one line, from the library and from the tool."""
    folder = _damaged(folders[2], tmp_path / "renamed",
                      lambda name: name.replace("encoder_1/block_2_1/conv_1", "renamed"))
    with pytest.raises(recover.RecoveryError) as caught:
        recover.recover(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert "'acoustic/encoder/block_2/conv'" in message and "text.tflite" in message
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "recover_checkpoint.py"),
                             f"--model_dir={folder}", f"--output={tmp_path / 'out'}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"recover_checkpoint: {message}"
    assert not (tmp_path / "out").exists()


def test_an_ambiguous_weight_is_one_line(folders, tmp_path):
    """Encoder block 1's conv also carrying block 2's name: two ops claim block 2."""
    def rename(name):
        if name.startswith("encoder_1/block_1_1/Relu;"):
            return name + ";encoder_1/block_2_1/conv_1/BiasAdd"
        return name

    folder = _damaged(folders[2], tmp_path / "ambiguous", rename)
    with pytest.raises(recover.RecoveryError) as caught:
        recover.recover(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert "'acoustic/encoder/block_2/conv'" in message and "ambiguous" in message


# --- The tool -----------------------------------------------------------------

def recovered_by_the_tool(folder, out):
    """tools/recover_checkpoint.py's checkpoint of `folder`, loaded as
    tools/export_tts.py --checkpoint=DIR loads it."""
    from bittts_tf.eval.synthesis import Synthesizer

    result = subprocess.run([sys.executable, str(ROOT / "tools" / "recover_checkpoint.py"),
                             f"--model_dir={folder}", f"--output={out}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "loaded back as tools/export_tts.py loads it" in result.stdout
    return Synthesizer(str(out))


def test_tool_writes_a_checkpoint_export_loads(original, folders, tmp_path):
    config, acoustic, vocoder = original
    loaded = recovered_by_the_tool(folders[1], tmp_path / "ckpt")
    want = effective_weights(acoustic, vocoder)
    got = effective_weights(loaded.acoustic, loaded.generator)
    training_only = {v.path for v in acoustic.aligner.variables}
    for path in want:
        if path not in training_only:
            assert worst_error(got[path], want[path]) <= 1e-6, path


def test_a_checkpoint_that_does_not_load_back_is_not_left_behind(folders, tmp_path):
    """The loader (here one whose first acoustic weight drifts by 1 as it
    loads) disagrees with what was written: the tool says which variable in
    one line and deletes the checkpoint, so --checkpoint=OUT cannot pick up
    an unverified one."""
    tool = str(ROOT / "tools" / "recover_checkpoint.py")
    out = tmp_path / "ckpt"
    script = f"""
import runpy, sys
from bittts_tf.eval import synthesis

class Drifted(synthesis.Synthesizer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        weight = self.acoustic.variables[0]
        weight.assign(weight + 1.0)

synthesis.Synthesizer = Drifted
sys.argv = [{tool!r}, "--model_dir={folders[1]}", "--output={out}"]
runpy.run_path({tool!r}, run_name="__main__")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "does not load back as written" in result.stderr.strip().splitlines()[-1]
    assert checkpoints.of_run(str(out)) == []


# --- The shipped voice --------------------------------------------------------

def test_shipped_voice_is_recovered():
    """models/slt_tiny (format 2): the recovered Keras models speak the first
    evaluation sentence as its graphs do: the text path against the text
    graph, and the whole segment's waveform (Keras, in one piece) against
    the runtime's stream and C inverse STFT."""
    from bittts_tf.eval.evaluation import load_sentences
    from bittts_tf.runtime import TextToSpeech

    start = time.perf_counter()
    recovery = recover.recover(str(SHIPPED))
    assert recovery.manifest["format_version"] == 2
    assert all(path.startswith("acoustic/aligner/") for path in recovery.not_recovered)
    assert len(recovery.not_recovered) == len(recovery.acoustic.aligner.variables)
    tts = TextToSpeech(str(SHIPPED))
    sentence = load_sentences()[0]
    result = tts.synthesize(sentence)
    (ids,) = result.segments
    n = tts.shapes["max_tokens"]
    phonemes = np.zeros((1, n), np.int32)
    phonemes[0, :len(ids)] = ids
    length = np.asarray([len(ids)], np.int32)
    hidden_graph, log_duration_graph = tts.encode(ids)
    hidden, weights = recovery.acoustic.encode(phonemes, length)
    hidden, predictions = recovery.acoustic.variance_adaptor(hidden, weights)
    text_errors = [worst_error(np.asarray(hidden)[0, :len(ids)], hidden_graph),
                   worst_error(np.asarray(predictions["log_duration"])[0, :len(ids)],
                               log_duration_graph)]
    # The runtime's durations, so both sides regulate the same frames.
    (durations,) = result.durations
    regulated = np.asarray(hidden)[0, :len(ids)][np.repeat(np.arange(len(ids)), durations)]
    mask = np.ones((1, len(regulated), 1), np.float32)
    if recovery.acoustic.f0_projection is None:
        mel = recovery.acoustic.decode_frames(regulated[None], mask)
        audio = np.asarray(recovery.vocoder(mel, mask))[0]
    else:
        # A source-phase voice: its vocoder takes the F0 head's frame F0.
        from bittts_tf.models.frame_vocoder import f0_from_head
        mel, frame_f0 = recovery.acoustic.decode_frames(regulated[None], mask, with_f0=True)
        config = recovery.acoustic.config
        f0_hz, features = f0_from_head(frame_f0, config["log_f0_mean"], config["log_f0_std"])
        audio = np.asarray(recovery.vocoder(mel, mask, f0=f0_hz, f0_feature_values=features))[0]
    audio_error = worst_error(audio, result.audio)
    mel_error = worst_error(np.asarray(mel)[0], result.mel)
    seconds = time.perf_counter() - start
    print(f"slt_tiny, {sentence!r}: {len(ids)} phonemes, {len(regulated)} frames; of the peak: "
          f"hidden {text_errors[0]:.2g}, log-durations {text_errors[1]:.2g}, audio "
          f"{audio_error:.2g}, mel {mel_error:.2g} ({seconds:.1f} s)")
    assert max(text_errors) <= 1e-4
    # A source-phase voice's runtime carries the integrated F0 in float32 from
    # frame to frame (bittts_istft_source_phase), Keras integrates it in
    # float64: a harmonic's phase drifts by its index times the summed
    # rounding (this folder: 2.1e-4 of the peak on this sentence).
    audio_bound = 1e-4 if recovery.acoustic.f0_projection is None else 1e-3
    assert audio_error <= audio_bound and mel_error <= 1e-4
