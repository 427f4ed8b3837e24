"""A source-phase voice (shapes.source_phase: the frames graph's frame_f0
output, bittts_istft_source_phase before the inverse STFT) through the
firmware's C parts, against the Python runtime on a fresh random voice: the
C stream between the LiteRT graphs (float32 and int8 graphs) gives
TextToSpeech's samples bit for bit; tools/firmware.py's sources carry the
source fields and the frame_f0 output; the C99 engine runs the graph as
TFLite Micro does and the C voice (bittts_voice.c) gives the runtime's 16-bit
samples on the host and in QEMU (Cortex-M7 exactly, Cortex-M4 within a step).
Each source field out of range is refused by status, and a refused call
writes nothing."""

import ctypes
import io
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from bittts_tf.engine import board, voice
from bittts_tf.export import tflm, tts_graphs
from bittts_tf.runtime import TextToSpeech, model_folder, stream_spec
from bittts_tf.runtime.stream import GraphRunner, StreamShapes
from bittts_tf.text import FrontEnd
from seeds import fresh_seed
from tts_models import random_tts
from test_engine_board import assert_board_pcm_is_the_host_pcm
from test_firmware import (MAX_TOKENS, OK, TEXTS, CSpeaker, check_against_the_runtime,
                           header_defines, i32p, load_library, ptr, run_tool)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE_FIELDS = [name for name, _ in stream_spec.CONFIG_SOURCE_FIELDS]
CONFIG_ERROR = stream_spec.status_code("CONFIG")
PHRASE = "Hello there."


@pytest.fixture(scope="module")
def lib():
    return load_library()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A random source-phase voice's folder with its int8 graphs; the step
    below or above the graph's delay (34), with or without the F0 input
    features (source_f0_input), drawn with the voice."""
    seed = fresh_seed("test_firmware_source_phase voice")
    rng = np.random.default_rng(seed)
    step, f0_input = int(rng.choice([4, 40])), bool(rng.integers(2))
    print(f"step {step}, source_f0_input {f0_input}")
    config, acoustic, vocoder = random_tts(seed, vocoder_overrides={"source_f0_input": f0_input},
                                           source_phase=True)
    utterances = [{"phonemes": rng.integers(1, 71, int(rng.integers(8, MAX_TOKENS + 1)))}
                  for _ in range(4)]
    path = str(tmp_path_factory.mktemp("source_phase"))
    tts_graphs.export_model_folder(path, acoustic, vocoder, config, FrontEnd(), MAX_TOKENS, step,
                                   {"test": True}, float32_baseline=False,
                                   int8_utterances=utterances)
    return path


def without_source(config):
    """The config as a voice without a source phase would have it."""
    for name in SOURCE_FIELDS:
        setattr(config, name, 0.0)


# ---- the C stream between the LiteRT graphs ------------------------------------


@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_c_stream_applies_the_source_phase_as_the_runtime(lib, folder, variant):
    """Bit for bit, in the decode mode a microcontroller runs for int8 (as
    test_firmware's int8 case); and the source phase changes the samples
    (so the comparison would see it dropped)."""
    decode = "graph" if variant == "int8" else "load"
    speaker = CSpeaker(lib, folder, variant, decode=decode)
    tts = TextToSpeech(folder, variant=variant, decode=decode)
    source = tts.shapes["source_phase"]
    assert [getattr(speaker.config, name) for name in SOURCE_FIELDS] == [
        np.float32(v) for v in (tts.sample_rate, source["cutoff"], source["log_f0_mean"],
                                source["log_f0_std"])]
    check_against_the_runtime(speaker, tts, [(TEXTS[0], 1.0), (TEXTS[1], 0.8)])
    with_source, _, _ = speaker.speak(TEXTS[0])
    without_source(speaker.config)
    speaker.io.frame_f0, speaker.io.frame_f0_len = None, 0
    plain, _, _ = speaker.speak(TEXTS[0])
    assert plain.shape == with_source.shape
    changed = np.mean(plain != with_source)
    print(f"the source phase changes {changed:.1%} of the samples")
    assert changed > 0.1


def test_c_stream_refuses_source_fields_and_frame_f0_out_of_range(lib, folder, rng):
    """Each source field out of range (bittts_check_config), and a frame_f0
    buffer that does not fit the config: a status, and neither durations nor
    samples written."""
    speaker = CSpeaker(lib, folder, "int8", decode="graph")
    good = type(speaker.config).from_buffer_copy(speaker.config)
    assert lib.bittts_check_config(ctypes.byref(good)) == OK
    ids = np.asarray(speaker.segments(TEXTS[0])[0], np.int32)
    phonemes = np.zeros((1, speaker.shapes["max_tokens"]), np.int32)
    length = np.zeros(1, np.int32)
    assert lib.bittts_text_input(ctypes.byref(good), ptr(ids, i32p), len(ids), ptr(phonemes, i32p),
                                 phonemes.size, ptr(length, i32p)) == OK
    out = speaker.text.run(phonemes=phonemes, length=length)
    hidden = np.ascontiguousarray(out["hidden"].reshape(-1), np.float32)
    log_duration = np.ascontiguousarray(out["log_duration"].reshape(-1), np.float32)

    def speak(config, io) -> int:
        durations = np.full(speaker.shapes["max_tokens"], -5, np.int32)
        speaker.samples, speaker.pcm16, speaker.invokes = [], [], 0
        status = lib.bittts_speak_segment(
            ctypes.byref(config), ptr(hidden), hidden.size, ptr(log_duration), log_duration.size,
            int(length[0]), 1.0, ptr(durations, i32p), durations.size, ctypes.byref(io),
            ptr(speaker.work), speaker.work.size, ctypes.byref(speaker.callbacks), None)
        if status != OK:
            assert np.all(durations == -5) and not speaker.samples and not speaker.pcm16
            assert speaker.invokes == 0
        return status

    assert speak(good, speaker.io) == OK
    bad_values = {
        "source_sample_rate": [0.0, -16000.0, np.nan, np.inf],
        "source_cutoff": [-1.0, np.nan, np.inf, -np.inf],
        "source_log_f0_mean": [np.nan, np.inf, -np.inf],
        "source_log_f0_std": [0.0, -0.3, np.nan, np.inf],
    }
    for name, values in bad_values.items():
        for value in [v for v in values if rng.random() < 0.75] or values[:1]:
            config = type(good).from_buffer_copy(good)
            setattr(config, name, value)
            assert lib.bittts_check_config(ctypes.byref(config)) == CONFIG_ERROR, (name, value)
            assert lib.bittts_stream_work_len(ctypes.byref(config), 1) == 0
            assert speak(config, speaker.io) == CONFIG_ERROR, (name, value)
    # A cut-off of 0 is no source phase: the other fields must then be 0 too.
    config = type(good).from_buffer_copy(good)
    config.source_cutoff = 0.0
    assert speak(config, speaker.io) == CONFIG_ERROR
    # The frame_f0 buffer: missing, of another length, with a bad scale, or
    # given to a config without a source phase.
    io = type(speaker.io).from_buffer_copy(speaker.io)
    io.frame_f0 = None
    assert speak(good, io) == stream_spec.status_code("NULL")
    io = type(speaker.io).from_buffer_copy(speaker.io)
    io.frame_f0_len += int(rng.choice([-1, 1]))
    assert speak(good, io) == stream_spec.status_code("SIZE")
    io = type(speaker.io).from_buffer_copy(speaker.io)
    io.frame_f0_quant.scale = float(rng.choice([0.0, -0.1, np.nan]))
    assert speak(good, io) == stream_spec.status_code("QUANT")
    config = type(good).from_buffer_copy(good)
    without_source(config)
    assert lib.bittts_check_config(ctypes.byref(config)) == OK
    assert speak(config, speaker.io) == stream_spec.status_code("SIZE")
    assert speak(good, speaker.io) == OK


def test_config_values_and_work_length_of_a_source_phase(lib, folder):
    """config_values takes the manifest's source and sample rate (and wants
    the rate); the work buffer holds a spectrum row for the float graphs too."""
    shapes = model_folder.load(folder).shapes
    with pytest.raises(ValueError, match="sample rate"):
        stream_spec.config_values(shapes, 71)
    no_source = dict(shapes, stream=dict(shapes["stream"], frame_f0=False))
    with pytest.raises(ValueError, match="go together"):
        stream_spec.config_values(no_source, 71, 16000)
    speaker = CSpeaker(lib, folder)
    for int8 in (0, 1):
        assert lib.bittts_stream_work_len(ctypes.byref(speaker.config), int8) == \
            stream_spec.work_len(shapes["n_fft"], shapes["hop_length"],
                                   shapes["stream"]["head_width"], bool(int8), True) == \
            stream_spec.work_len(shapes["n_fft"], shapes["hop_length"],
                                   shapes["stream"]["head_width"], True)


# ---- tools/firmware.py -----------------------------------------------------------

CONFIG_PROGRAM = r"""
#include <stdio.h>
#include "bittts_model_data.h"
#include "bittts_stream.h"

#ifndef BITTTS_MODEL_FRAMES_INT8
#define BITTTS_MODEL_FRAMES_INT8 1 /* --target=engine: the int8 graphs */
#endif

int main(void) {
  static const bittts_stream_config config = BITTTS_MODEL_STREAM_CONFIG;
  printf("%d %u %d\n", bittts_check_config(&config),
         (unsigned)bittts_stream_work_len(&config, BITTTS_MODEL_FRAMES_INT8),
         BITTTS_MODEL_STREAM_WORK_FLOATS);
  printf("%.9g %.9g %.9g %.9g\n", config.source_sample_rate, config.source_cutoff,
         config.source_log_f0_mean, config.source_log_f0_std);
  return 0;
}
"""


@pytest.mark.parametrize("target", ["tflm", "engine"])
def test_firmware_sources_carry_the_source_phase(folder, tmp_path, target):
    """Both targets' config holds the manifest's source fields, and C accepts
    it and sizes the work buffer as the header does; the TFLM header names
    the frame_f0 output and its int8 parameters as the graph has them."""
    out = tmp_path / "generated"
    # --allow_missing_ops is the TFLM resolver's; the engine target refuses it.
    missing_ops = ["--allow_missing_ops"] if target == "tflm" else []
    result = run_tool(f"--model_dir={folder}", f"--out_dir={out}", "--variant=int8",
                      f"--target={target}", *missing_ops, f"--phrase={PHRASE}")
    assert result.returncode == 0, result.stderr
    (tmp_path / "check.c").write_text(CONFIG_PROGRAM)
    program = tmp_path / "check"
    built = subprocess.run(
        ["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{out}",
         f"-I{ROOT / 'firmware_stub'}", f"-I{ROOT / 'tflite'}", "-o", str(program),
         str(tmp_path / "check.c"), str(ROOT / "firmware_stub" / "bittts_stream.c"),
         str(ROOT / "firmware_stub" / "bittts_istft.c"), "-lm"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    status, work, header_work, *source = subprocess.run(
        [str(program)], capture_output=True, text=True, check=True).stdout.split()
    assert status == "0" and work == header_work
    loaded = model_folder.load(folder)
    expected = loaded.shapes["source_phase"]
    assert [np.float32(v) for v in source] == [
        np.float32(v) for v in (loaded.manifest["audio"]["sample_rate"], expected["cutoff"],
                                expected["log_f0_mean"], expected["log_f0_std"])]
    if target == "tflm":
        defines = header_defines(out / "bittts_model_data.h")
        runner = GraphRunner(loaded.read_graph("frames", "int8"), None,
                             StreamShapes.from_dict(loaded.shapes["stream"]).output_names)
        assert defines["BITTTS_MODEL_FRAME_F0"] == "1"
        assert int(defines["BITTTS_MODEL_FRAMES_OUTPUT_FRAME_F0"]) == \
            runner.output_position["frame_f0"]
        scale, zero_point = GraphRunner._parameters(runner.output_tensor["frame_f0"])
        assert np.float32(defines["BITTTS_MODEL_FRAMES_OUTPUT_FRAME_F0_SCALE"][:-1]) == scale
        assert int(defines["BITTTS_MODEL_FRAMES_OUTPUT_FRAME_F0_ZERO_POINT"]) == zero_point


# ---- the C99 engine and the C voice ----------------------------------------------


def runtime_pcm16(tts: TextToSpeech, text: str) -> np.ndarray:
    """The runtime's samples as its 16-bit wav holds them."""
    wav = io.BytesIO()
    sf.write(wav, tts.synthesize(text).audio, tts.sample_rate, subtype="PCM_16", format="WAV")
    wav.seek(0)
    return sf.read(wav, dtype="int16")[0]


def test_c_voice_speaks_the_runtime_samples(folder):
    """The engine runs the source-phase graph as TFLite Micro does (the
    runtime on each gives the same samples), and the C voice gives the
    runtime's 16-bit samples exactly; without its source the voice would not."""
    engine = TextToSpeech(folder, variant="int8", engine="c99")
    reference = tflm.tflm_runtime(folder, "int8").synthesize(TEXTS[1]).audio
    np.testing.assert_array_equal(engine.synthesize(TEXTS[1]).audio, reference)
    speaker = voice.Voice.from_folder(folder)
    for text in TEXTS:
        expected = runtime_pcm16(engine, text)
        got = np.concatenate([speaker.speak(ids) for ids in engine.segments(text)])
        assert got.size == expected.size > 0
        print(f"{text[:12]}: {np.count_nonzero(got != expected)} of {got.size} samples differ")
        np.testing.assert_array_equal(got, expected)
    without_source(speaker.config)
    plain = np.concatenate([speaker.speak(ids) for ids in engine.segments(TEXTS[0])])
    assert np.mean(plain != runtime_pcm16(engine, TEXTS[0])) > 0.1


def test_c_voice_refuses_a_bad_source_by_status(folder, rng):
    """A source field out of range: the stream's CONFIG status, nothing spoken."""
    speaker = voice.Voice.from_folder(folder)
    ids = TextToSpeech(folder, variant="int8", engine="c99").segments(PHRASE)[0]
    assert speaker.speak(ids).size > 0
    name = str(rng.choice(SOURCE_FIELDS))
    # A log-F0 mean may be any finite number (-1.0 is a mean of 0.37 Hz);
    # the rates and the deviation must be positive too.
    bad = [np.nan, np.inf] + ([] if name == "source_log_f0_mean" else [-1.0])
    setattr(speaker.config, name, float(rng.choice(bad)))
    with pytest.raises(voice.VoiceError, match=f"STREAM .* stream status {CONFIG_ERROR}"):
        speaker.speak(ids)


@pytest.mark.parametrize("cpu", ["m7", "m4"])
def test_board_image_speaks_the_source_phase(folder, cpu, tmp_path):
    """The board image of the random voice in QEMU: the host's samples, as
    test_engine_board requires of the shipped voice."""
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed (make apt installs them)")
    images = pathlib.Path(folder).parent / "images"
    elf = str(images / f"speak_{cpu}.elf")
    board.build(elf, {"SPEAK_DIR": images, "VOICE_MODEL": folder,
                      "VOICE_DATA": images / "voice_data", "VOICE_PHRASE": PHRASE})
    pcm = tmp_path / "speech.pcm"
    print(board.run(elf, cpu, ("speak", str(pcm), "0"), timeout=600, count_instructions=False))
    tts = TextToSpeech(folder, variant="int8", engine="c99")
    host = np.concatenate([voice.Voice.from_folder(folder).speak(ids)
                           for ids in tts.segments(PHRASE)])
    assert_board_pcm_is_the_host_pcm(cpu, np.fromfile(pcm, np.int16), host)


# A seed that once failed: it set source_log_f0_mean to -1.0, a finite mean
# the stream rightly takes.
@pytest.mark.replay_seed(1966873994)
def test_c_voice_refuses_a_bad_source_replayed_seed(folder, rng):
    test_c_voice_refuses_a_bad_source_by_status(folder, rng)
