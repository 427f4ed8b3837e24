"""A model folder whose graph was damaged and whose manifest was re-signed
(what a broken exporter or a hostile sender produces) is refused in one line
naming the file, in both decode modes: never a traceback, never a crash.
Each case runs the real runtime in a forked child (folder_fuzz), so a crash
fails the test instead of ending the suite. A manifest whose fields have the
wrong type or range is refused by model_folder.load, naming the field."""

import json
import os
import shutil

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from bittts_tf.litert import tflite_file
from bittts_tf.quant import spec
from bittts_tf.runtime import DECODE_MODES, folder_fuzz, model_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOICE = os.path.join(ROOT, "models", "slt_tiny")


@pytest.fixture(scope="module")
def voice():
    folder = model_folder.load(VOICE)
    return folder, {g: folder.read_graph(g) for g in model_folder.GRAPHS}


def speak_damaged(tmp_path, voice, graph, data, decode):
    folder, graphs = voice
    path = str(tmp_path / f"damaged_{decode}")
    folder_fuzz.write_damaged_folder(folder, "packed", {**graphs, graph: data}, path)
    return folder_fuzz.run_in_child(path, "packed", decode, "Hi.", timeout=120)


def unverifiable_graph(rng, data):
    """Byte flips that LiteRT's flatbuffer verifier refuses (`The model is
    not a valid Flatbuffer buffer`, a traceback before issue 27) although the
    Python schema reader parses them."""
    for _ in range(2000):
        damaged = folder_fuzz.MUTATIONS["flip_bytes"](data, rng, {})
        try:
            tflite_file.parse_model(damaged)
        except tflite_file.TFLiteFileError:
            continue
        try:
            Interpreter(model_content=damaged)
        except ValueError as error:
            if "Flatbuffer" in str(error):
                return damaged
    pytest.fail("no byte flip gave a flatbuffer that only LiteRT's verifier refuses")


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_a_graph_only_the_interpreter_refuses_is_refused_in_one_line(tmp_path, voice, rng, decode):
    data = unverifiable_graph(rng, voice[1]["text"])
    outcome, message = speak_damaged(tmp_path, voice, "text", data, decode)
    if decode == "load" and outcome == "spoke":
        # Decoding at load rewrites the graph from what the schema reader
        # parsed, so the interpreter sees a well-formed flatbuffer.
        return
    assert outcome == "refused", message
    assert "text.tflite" in message and "\n" not in message


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_an_operand_of_minus_one_is_refused_before_the_interpreter(tmp_path, voice, rng, decode):
    """tools/fuzz_model_folder.py found it: LiteRT's MUL dereferences an
    input of -1 (no tensor) and the process died with SIGSEGV."""
    model = tflite_file.parse_model(voice[1]["frames"])
    names = tflite_file.builtin_names()
    muls = [op for op in model.subgraphs[0].operators
            if names[tflite_file.builtin_code(model, op)] == "MUL"]
    op = muls[int(rng.integers(len(muls)))]
    op.inputs = np.array([-1] + [int(i) for i in op.inputs[1:]], np.int32)
    outcome, message = speak_damaged(tmp_path, voice, "frames",
                                     tflite_file.serialize_model(model), decode)
    assert outcome == "refused", message
    assert "frames.tflite" in message and "MUL" in message and "-1" in message


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_a_renamed_signature_input_is_refused_by_its_interface(tmp_path, voice, rng, decode):
    """CI found it (seed 954442383 of the byte-flip test above): a flip in a
    signature's input name, the tensor names intact, passed the interface
    check and raised KeyError 'phonemes' at the first synthesis."""
    model = tflite_file.parse_model(voice[1]["text"])
    entry = model.signatureDefs[0].inputs[int(rng.integers(len(model.signatureDefs[0].inputs)))]
    name = bytearray(entry.name)
    at = int(rng.integers(len(name)))
    name[at] = ord("X") if name[at] != ord("X") else ord("Y")
    entry.name = bytes(name)
    outcome, message = speak_damaged(tmp_path, voice, "text",
                                     tflite_file.serialize_model(model), decode)
    assert outcome == "refused", message
    assert "text.tflite" in message and bytes(name).decode() in message and "\n" not in message


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_an_op_turned_into_the_decode_op_is_refused(tmp_path, voice, rng, decode):
    """tools/fuzz_model_folder.py found it: an operator whose opcode became
    BitTTSTernaryDecode's, with one input, raised IndexError in decode at load."""
    model = tflite_file.parse_model(voice[1]["text"])
    decode_code = next(i for i, c in enumerate(model.operatorCodes)
                       if c.customCode is not None and bytes(c.customCode).decode() == spec.OP_NAME)
    single = [op for op in model.subgraphs[0].operators
              if op.inputs is not None and len(op.inputs) == 1]
    single[int(rng.integers(len(single)))].opcodeIndex = decode_code
    outcome, message = speak_damaged(tmp_path, voice, "text",
                                     tflite_file.serialize_model(model), decode)
    assert outcome == "refused", message
    assert "text.tflite" in message and "\n" not in message


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_an_op_given_another_ops_code_is_refused(tmp_path, voice, rng, decode):
    """tools/fuzz_model_folder.py found it: a MUL whose opcode became
    STRIDED_SLICE's (two inputs where four are read, MulOptions read as
    StridedSliceOptions) crashed LiteRT with SIGSEGV in graph mode."""
    model = tflite_file.parse_model(voice[1]["frames"])
    names = tflite_file.builtin_names()
    codes = {names[tflite_file.builtin_code(model, op)]: op.opcodeIndex
             for op in model.subgraphs[0].operators}
    muls = [op for op in model.subgraphs[0].operators if op.opcodeIndex == codes["MUL"]]
    muls[int(rng.integers(len(muls)))].opcodeIndex = codes["STRIDED_SLICE"]
    outcome, message = speak_damaged(tmp_path, voice, "frames",
                                     tflite_file.serialize_model(model), decode)
    assert outcome == "refused", message
    assert "frames.tflite" in message and "STRIDED_SLICE" in message


@pytest.mark.parametrize("decode", DECODE_MODES)
def test_a_swapped_graph_is_refused_by_its_interface(tmp_path, voice, decode):
    outcome, message = speak_damaged(tmp_path, voice, "text", voice[1]["frames"], decode)
    assert outcome == "refused", message
    assert "text.tflite" in message and ("inputs" in message or "outputs" in message)


def test_the_intact_folder_speaks_in_a_child(tmp_path, voice):
    """The harness itself: an undamaged folder written the same way speaks."""
    for decode in DECODE_MODES:
        outcome, message = speak_damaged(tmp_path, voice, "text", voice[1]["text"], decode)
        assert outcome == "spoke", message


def test_fuzz_smoke_no_traceback_no_crash(tmp_path, seed):
    """A short run of tools/fuzz_model_folder.py's loop (the closing note's
    run is 1,000 tries per decode mode)."""
    results = folder_fuzz.fuzz(VOICE, str(tmp_path), 8, DECODE_MODES, None, seed)
    bad = [r for r in results if r.outcome in folder_fuzz.BAD]
    assert len(results) == 16
    assert not bad, bad


DELETE = object()


def _set(path, value):
    """A damage: the manifest with the field at `path` set to `value`
    (DELETE: removed)."""
    def damage(manifest):
        *parents, last = path
        for key in parents:
            manifest = manifest[key]
        if value is DELETE:
            del manifest[last]
        else:
            manifest[last] = value
    return damage


# (field the message must name, damage). Each was a TypeError, ValueError,
# KeyError or AttributeError in some reader, or a nonsense message later.
MANIFEST_DAMAGES = {
    "speakers as text": ("'speakers'", _set(["speakers"], "two")),
    "speakers null": ("'speakers'", _set(["speakers"], None)),
    "no speakers": ("'speakers'", _set(["speakers"], 0)),
    "speakers true": ("'speakers'", _set(["speakers"], True)),
    "shapes null": ("'shapes'", _set(["shapes"], None)),
    "stream a list": ("'shapes.stream'", _set(["shapes", "stream"], [])),
    "graphs a list": ("'graphs'", _set(["graphs"], [])),
    "graph entry a string": ("'graphs.text'", _set(["graphs", "text"], "text.tflite")),
    "graph without file": ("'graphs.text.file'", _set(["graphs", "text", "file"], DELETE)),
    "graph file a path": ("'graphs.frames.file'",
                          _set(["graphs", "frames", "file"], "../slt_tiny/frames.tflite")),
    "graph bytes as text": ("'graphs.text.bytes'", _set(["graphs", "text", "bytes"], "205496")),
    "graph without sha256": ("'graphs.frames.int8.sha256'",
                             _set(["graphs", "frames.int8", "sha256"], DELETE)),
    "graph sha256 a number": ("'graphs.text.sha256'", _set(["graphs", "text", "sha256"], 12)),
    "max_tokens 1": ("shapes.max_tokens", _set(["shapes", "max_tokens"], 1)),
    "max_tokens 2": ("shapes.max_tokens", _set(["shapes", "max_tokens"], 2)),
    "audio null": ("'audio'", _set(["audio"], None)),
    "no sample rate": ("'audio.sample_rate'", _set(["audio", "sample_rate"], DELETE)),
    "sample rate as text": ("'audio.sample_rate'", _set(["audio", "sample_rate"], "16000")),
    "sample rate 0": ("'audio.sample_rate'", _set(["audio", "sample_rate"], 0)),
    "hop length negative": ("'audio.hop_length'", _set(["audio", "hop_length"], -256)),
    "n_fft fractional": ("'audio.n_fft'", _set(["audio", "n_fft"], 1024.5)),
    "front end a list": ("'front_end'", _set(["front_end"], [])),
    # The runtime allocates from shapes before it reads a graph (numpy was
    # asked for 3.6 TiB), and the inverse STFT takes n_fft + 2 values a row.
    "max_tokens 10^12": ("shapes.max_tokens", _set(["shapes", "max_tokens"], 10**12)),
    "segment frames 2^40": ("shapes.max_frames_per_segment",
                            _set(["shapes", "max_frames_per_segment"], 1 << 40)),
    "n_fft not the head's": ("shapes.stream.head_width", _set(["shapes", "n_fft"], 512)),
    "hop the C inverse STFT refuses": ("shapes.n_fft / shapes.hop_length",
                                       _set(["shapes", "hop_length"], 100)),
}


@pytest.mark.parametrize("damage", sorted(MANIFEST_DAMAGES))
def test_a_damaged_manifest_field_is_refused_by_name(tmp_path, damage):
    """A copy of the shipped voice (never the voice itself) with one field of
    its manifest damaged: model_folder.load, which every tool calls first,
    refuses it in one line naming the manifest and the field."""
    field, change = MANIFEST_DAMAGES[damage]
    copy = tmp_path / "voice"
    shutil.copytree(VOICE, copy)
    manifest_path = copy / model_folder.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    change(manifest)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(model_folder.ModelFolderError) as refused:
        model_folder.load(str(copy))
    message = str(refused.value)
    assert str(manifest_path) in message and field in message and "\n" not in message, message


def test_the_undamaged_manifest_copy_loads(tmp_path):
    copy = tmp_path / "voice"
    shutil.copytree(VOICE, copy)
    folder = model_folder.load(str(copy))
    assert folder.manifest["speakers"] >= 1
    assert folder.read_graph("text") == model_folder.load(VOICE).read_graph("text")


def test_a_manifest_nested_too_deep_for_json_is_refused_in_one_line(tmp_path):
    copy = tmp_path / "voice"
    shutil.copytree(VOICE, copy)
    depth = 200_000
    (copy / model_folder.MANIFEST).write_text("[" * depth + "]" * depth)
    with pytest.raises(model_folder.ModelFolderError, match="nested too deep"):
        model_folder.load(str(copy))
