"""The C99 engine on the shipped voice's int8 graphs against TFLite Micro (the
pinned wheel's reference kernels): every tensor of both graphs bit for bit on
fresh random inputs; the runtime speaking through the engine
(`TextToSpeech(engine="c99")`) gives TFLM's samples exactly; the C voice
(bittts_voice.c: engine and C stream, the board image's code) gives the
runtime's 16-bit wav sample for sample."""

import io

import numpy as np
import pytest
import soundfile as sf

from bittts_tf.engine import check, voice
from bittts_tf.export import tflm
from bittts_tf.litert import tflite_file
from bittts_tf.runtime import TextToSpeech

MODEL = "models/slt_tiny"
SENTENCE = "The battery is low, please plug me in."


@pytest.mark.parametrize("graph", ["text", "frames"])
def test_every_tensor_equals_tflm(graph, seed):
    rng = np.random.default_rng(seed)
    data = tflite_file.read_tflite(f"{MODEL}/{graph}.int8.tflite")
    feeds = {}
    if graph == "text":
        length = int(rng.integers(1, 65))
        feeds = {"phonemes": rng.integers(1, 71, size=(1, 64)).astype(np.int32),
                 "length": np.array([length], np.int32)}
    rows = check.compare_graph(data, check.graph_feeds(data, rng, feeds))
    assert len(rows) > 200
    for op, opcode, index, got, expected in rows:
        assert got.shape == expected.shape, (op, opcode)
        assert np.array_equal(got, expected), f"op {op} ({opcode}), tensor {index}"


def test_runtime_on_the_engine_speaks_tflm_samples():
    engine = TextToSpeech(MODEL, variant="int8", engine="c99").synthesize(SENTENCE).audio
    reference = tflm.tflm_runtime(MODEL, "int8").synthesize(SENTENCE).audio
    assert engine.size == reference.size > 0
    np.testing.assert_array_equal(engine, reference)


def test_c_voice_speaks_the_runtime_wav():
    tts = TextToSpeech(MODEL, variant="int8", engine="c99")
    audio = tts.synthesize(SENTENCE).audio
    wav = io.BytesIO()
    sf.write(wav, audio, tts.sample_rate, subtype="PCM_16", format="WAV")
    wav.seek(0)
    expected, _ = sf.read(wav, dtype="int16")
    speaker = voice.Voice.from_folder(MODEL)
    got = np.concatenate([speaker.speak(ids) for ids in tts.segments(SENTENCE)])
    np.testing.assert_array_equal(got, expected)


def test_engine_refuses_float_variants_in_one_line():
    with pytest.raises(ValueError, match="c99 engine runs the int8 variant"):
        TextToSpeech(MODEL, variant="packed", engine="c99")


def test_c_voice_refuses_bad_calls_by_status(seed):
    """An id out of range, no ids, too many, a short arena or work buffer: a
    status naming the stage, nothing spoken."""
    from bittts_tf.engine import native
    rng = np.random.default_rng(seed)
    speaker = voice.Voice.from_folder(MODEL)
    symbols, max_tokens = speaker.config.num_symbols, speaker.config.max_tokens
    ids = rng.integers(0, symbols, size=int(rng.integers(1, max_tokens + 1)))
    for bad, stage in ((np.append(ids[:-1], symbols), "STREAM"), (ids[:0], "STREAM"),
                       (rng.integers(0, symbols, size=max_tokens + 1), "STREAM")):
        with pytest.raises(voice.VoiceError, match=stage):
            speaker.speak(bad)
    full = speaker.arena
    speaker.arena = native._aligned_bytes(full.size - 8)
    with pytest.raises(voice.VoiceError, match="ENGINE .*ERR_SIZE"):
        speaker.speak(ids)
    speaker.arena = full
    work = speaker.work
    speaker.work = work[:-1].copy()
    with pytest.raises(voice.VoiceError, match="STREAM"):
        speaker.speak(ids)
    speaker.work = work
    assert speaker.speak(ids).size > 0


def test_board_arena_is_the_one_the_c_voice_asks_for():
    """The arena size tools/firmware.py writes into the board's header
    (firmware_data.arena_bytes) is bittts_voice_arena_bytes's: the text
    graph's arena, with the frames graph's after max_tokens rows of int8
    codes; a board given less would be refused, one given more wastes RAM."""
    from bittts_tf.engine import blob as blob_lib, firmware_data
    from bittts_tf.runtime import model_folder
    from bittts_tf.runtime.stream import StreamShapes
    folder = model_folder.load(MODEL)
    shapes = folder.manifest["shapes"]
    names = {"text": voice.TEXT_OUTPUTS,
             "frames": StreamShapes.from_dict(shapes["stream"]).output_names}
    programs = {graph: blob_lib.from_graph(folder.read_graph(graph, "int8"), graph,
                                           output_names=names[graph])[1]
                for graph in ("text", "frames")}
    arenas = firmware_data.arena_bytes(programs, shapes)
    speaker = voice.Voice.from_folder(MODEL)
    assert speaker.arena.size == arenas["total"]
    assert (speaker.layout.text_arena, speaker.layout.frames_offset, speaker.layout.frames_arena) \
        == (arenas["text"], arenas["frames_offset"], arenas["frames"])
    # The int8 codes, not the float32 states, stay below the frames arena.
    assert arenas["frames_offset"] < programs["text"].outputs_end
