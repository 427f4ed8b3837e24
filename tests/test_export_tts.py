"""Exported TTS graphs and the LiteRT runtime: streamed synthesis against the
Keras whole-utterance path, fixed shapes, no TensorFlow in the runtime, and
one-line errors for bad input and damaged model folders."""

import json
import os
import shutil
import subprocess
import sys
import pathlib

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import tts_graphs
from bittts_tf.litert import tflite_file
from bittts_tf.quant import spec
from bittts_tf.runtime import ModelFolderError, SynthesisError, TextToSpeech, model_folder
from bittts_tf.text import FrontEnd, TextError
from tts_models import SHARED_VOICE_MAX_TOKENS, random_tts, shared_voice, shared_voice_folder
from seeds import fresh_seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_TOKENS = 24
TEXTS = ["Hello there.",
         "The quick brown fox, who was rather tired, jumped over the lazy dog by the river."]


@pytest.fixture(scope="module")
def trained_looking_model(tmp_path_factory):
    """The run's shared random voice (tts_models.shared_voice: a fresh printed
    seed; durations and a mel as a trained model's), built in this process."""
    _, config, acoustic, vocoder, _ = shared_voice(tmp_path_factory)
    return config, acoustic, vocoder


@pytest.fixture(scope="module")
def exported(trained_looking_model, tmp_path_factory):
    """Model folders of that voice whose frames stream takes 1 (the
    smallest), 4 and 40 frames an invoke (above the delay of 34), shared with
    test_firmware (tts_models.SHARED_FOLDERS: the 4-frame one also holds int8
    graphs, the 40-frame one a size report against float32 graphs)."""
    assert SHARED_VOICE_MAX_TOKENS == MAX_TOKENS
    return {step: shared_voice_folder(tmp_path_factory, step) for step in (1, 4, 40)}


def keras_whole(acoustic, vocoder, segments):
    """Each segment through the training graph in one piece, concatenated."""
    audio = []
    for ids in segments:
        mel, lengths, _ = acoustic.infer(np.asarray([ids], np.int32),
                                         np.asarray([len(ids)], np.int32))
        audio.append(np.asarray(vocoder(mel[:, :int(lengths[0])])[0]))
    return np.concatenate(audio)


@pytest.mark.parametrize("step", [1, 4, 40])
def test_streamed_litert_equals_keras_whole(trained_looking_model, exported, step):
    _, acoustic, vocoder = trained_looking_model
    for decode in ("load", "graph"):
        tts = TextToSpeech(exported[step], decode=decode)
        for text in TEXTS:
            result = tts.synthesize(text)
            expected = keras_whole(acoustic, vocoder, result.segments)
            assert result.audio.shape == expected.shape
            error = np.abs(result.audio - expected).max() / np.abs(expected).max()
            assert error <= 1e-4, (step, decode, text, error)
    assert len(result.segments) > 1  # the long text was split


def test_graphs_have_fixed_shapes_and_only_our_custom_op(exported):
    folder = model_folder.load(exported[4])
    for graph in model_folder.GRAPHS:
        model = tflite_file.parse_model(folder.read_graph(graph), graph)
        customs = {bytes(code.customCode).decode() for code in model.operatorCodes
                   if code.builtinCode == schema.BuiltinOperator.CUSTOM}
        assert customs == {spec.OP_NAME}, customs
        for subgraph in model.subgraphs:
            for tensor in subgraph.tensors:
                signature = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
                assert signature is None or all(int(d) >= 0 for d in signature), tensor.name


def test_size_report(exported):
    with open(os.path.join(exported[40], model_folder.SIZE_REPORT)) as f:
        total = json.load(f)["total"]
    assert total["bits_per_ternary_weight"] <= 1.61
    assert total["packed_graph_bytes"] < 0.35 * total["float32_graph_bytes"]


def test_runtime_imports_no_tensorflow(exported):
    code = ("import sys\nfrom bittts_tf.runtime import TextToSpeech\n"
            f"r = TextToSpeech({exported[4]!r}).synthesize('Hello.')\n"
            "assert r.audio.size > 0\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_bad_text_and_speaker_are_named(exported):
    tts = TextToSpeech(exported[4])
    for text in ("", "?!... ,"):
        with pytest.raises(TextError, match="no pronounceable words"):
            tts.synthesize(text)
    with pytest.raises(SynthesisError, match="speaker 3 is unknown"):
        tts.synthesize("Hello.", speaker=3)
    # Arguments of the wrong type are refused by name, not by a TypeError
    # deep in numpy, nor taken (a speaker of 0.5).
    for speaker in ("0", 0.5, None, True):
        with pytest.raises(SynthesisError, match=f"speaker {speaker!r} is not an integer"):
            tts.synthesize("Hello.", speaker=speaker)
    for scale in ("1", None, [1.0]):
        with pytest.raises(SynthesisError, match="is not a number"):
            tts.synthesize("Hello.", duration_scale=scale)
    for threads in (0, -5, 1.5, "2"):
        with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
            TextToSpeech(exported[4], num_threads=threads)


def damaged_copies(source, tmp_path):
    """(what is wrong, folder) pairs."""
    def copy(name):
        path = tmp_path / name
        shutil.copytree(source, path)
        return path

    missing = copy("missing")
    os.remove(missing / "frames.tflite")
    truncated = copy("truncated")
    data = (truncated / "text.tflite").read_bytes()
    (truncated / "text.tflite").write_bytes(data[:len(data) // 2])
    corrupt = copy("corrupt")
    data = bytearray((corrupt / "frames.tflite").read_bytes())
    data[len(data) // 2] ^= 0x55
    (corrupt / "frames.tflite").write_bytes(bytes(data))
    newer = copy("newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = model_folder.FORMAT_VERSION + 1
    (newer / "manifest.json").write_text(json.dumps(manifest))
    no_manifest = copy("no_manifest")
    os.remove(no_manifest / "manifest.json")
    older = copy("older")
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["format_version"] = 1
    (older / "manifest.json").write_text(json.dumps(manifest))
    bad_stream = copy("bad_stream")
    manifest = json.loads((bad_stream / "manifest.json").read_text())
    manifest["shapes"]["stream"]["states"][0][1] = -3
    (bad_stream / "manifest.json").write_text(json.dumps(manifest))
    return [("frames.tflite: cannot read", missing), ("truncated", truncated),
            ("corrupt", corrupt), ("newer than this runtime", newer), ("missing", no_manifest),
            ("no longer read; export the model again", older),
            ("shapes.stream.states", bad_stream)]


def test_damaged_model_folders_are_refused_by_name(exported, tmp_path):
    for problem, folder in damaged_copies(exported[4], tmp_path):
        with pytest.raises(ModelFolderError, match=problem):
            TextToSpeech(str(folder))


def speak(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "speak.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_speak_writes_a_wav_and_fails_in_one_line(exported, tmp_path):
    out = tmp_path / "hello.wav"
    ok = speak(f"--model_dir={exported[4]}", "--text=Hello there.", f"--output={out}")
    assert ok.returncode == 0, ok.stderr
    assert out.exists() and "real-time factor" in ok.stdout
    damaged = dict((p, f) for p, f in damaged_copies(exported[4], tmp_path / "damaged"))
    cases = [([f"--model_dir={exported[4]}", "--text=...!"], "no pronounceable words"),
             ([f"--model_dir={exported[4]}", "--text=Hi.", "--speaker=2"], "speaker 2 is unknown"),
             ([f"--model_dir={damaged['corrupt']}", "--text=Hi."], "corrupt"),
             ([f"--model_dir={damaged['newer than this runtime']}", "--text=Hi."], "newer")]
    for args, message in cases:
        bad_out = tmp_path / "bad.wav"
        result = speak(*args, f"--output={bad_out}")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and message in lines[0], result.stderr
        assert lines[0].startswith("speak: ")
        assert not bad_out.exists()


def test_speak_refuses_flags_it_would_ignore(tmp_path):
    """Flags the chosen mode would not read, and a thread count LiteRT cannot
    use (was reported as a failure of the model's file), are refused in one
    line before anything is loaded; --list_speakers alone still lists."""
    voice = f"--model_dir={ROOT / 'models' / 'slt_tiny'}"
    out = tmp_path / "never.wav"
    cases = [([voice, "--list_speakers", "Hello."], "drop the text"),
             ([voice, "--list_speakers", "--text=Hello."], "drop --text"),
             ([voice, "--list_speakers", "-o", str(out)], "drop --output"),
             ([voice, "--list_speakers", "--speaker=0"], "drop --speaker"),
             ([voice, "--engine=c99", "--variant=int8", "--decode=graph", "Hi.", "-o", str(out)],
              "--engine=c99 does not read --decode"),
             ([voice, "--engine=c99", "--variant=int8", "--num_threads=1", "Hi.", "-o", str(out)],
              "--engine=c99 does not read --num_threads"),
             ([voice, "--num_threads=0", "Hi.", "-o", str(out)], "--num_threads=0"),
             ([voice, "--num_threads=-2", "Hi.", "-o", str(out)], "--num_threads=-2")]
    for args, message in cases:
        result = speak(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("speak: ") and message in lines[0], (args, lines[0])
        assert not out.exists() and not result.stdout, args
    listed = speak(voice, "--list_speakers")
    assert listed.returncode == 0 and listed.stdout.split() == ["0"], listed.stderr


def test_ternary_spectral_head_is_packed_and_streams_as_keras(tmp_path):
    """quantize_head: the vocoder's spectral head (128 x 1026 weights, 131 KB
    as int8) is packed like the convs, and the stream still gives the Keras
    whole-utterance samples."""
    config, acoustic, vocoder = random_tts(fresh_seed("test_export_tts model"), {"quantize_head": True})
    head = vocoder.head
    tts_graphs.export_model_folder(str(tmp_path), acoustic, vocoder, config, FrontEnd(),
                                   MAX_TOKENS, 4, {"test": True}, float32_baseline=False)
    model = tflite_file.parse_model((tmp_path / "frames.tflite").read_bytes())
    largest_float = max(len(model.buffers[t.buffer].data) // 4
                        for t in model.subgraphs[0].tensors
                        if t.type == schema.TensorType.FLOAT32
                        and model.buffers[t.buffer].data is not None)
    assert largest_float < int(np.prod(head.kernel.shape))
    tts = TextToSpeech(str(tmp_path))
    result = tts.synthesize(TEXTS[0])
    expected = keras_whole(acoustic, vocoder, result.segments)
    error = np.abs(result.audio - expected).max() / np.abs(expected).max()
    assert error <= 1e-4, error


def test_export_tool_refuses_before_converting_what_would_fail_or_be_ignored(tmp_path):
    """Flags that serve a flag not given, a file where the folder goes, and
    segments too short for a word: one line each, before any checkpoint is
    read (the checkpoint named here does not exist)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    base = [f"--checkpoint={tmp_path / 'no_such_run'}"]
    cases = [([f"--out_dir={tmp_path / 'v'}", "--int8_utterances=3"],
              "--int8_utterances serves --int8_corpus"),
             ([f"--out_dir={tmp_path / 'v'}", "--tflm_lut_validate_texts=1"],
              "--tflm_lut_validate_texts serves --tflm_lut_dir"),
             ([f"--out_dir={a_file}"], f"--out_dir={a_file}: {a_file} is a file"),
             ([f"--out_dir={tmp_path / 'v'}", f"--tflm_lut_dir={a_file}"],
              f"--tflm_lut_dir={a_file}: {a_file} is a file"),
             ([f"--out_dir={tmp_path / 'v'}", "--max_tokens=2"], "--max_tokens=2"),
             ([f"--out_dir={tmp_path / 'v'}", "--step=0"], "--step=0")]
    for args, message in cases:
        result = subprocess.run([sys.executable, str(ROOT / "tools" / "export_tts.py"), *base,
                                 *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and message in lines[0], \
            (args, result.stderr[-2000:])
    assert not (tmp_path / "v").exists()
