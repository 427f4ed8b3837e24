"""The firmware stub. The C99 stream (firmware_stub/bittts_stream.c, through
ctypes on build/libbittts_stream.so) driven with the LiteRT text and frames
graphs of a small random exported model reproduces TextToSpeech.synthesize's
waveform bit for bit and tools/speak.py's wav sample for sample; durations,
PCM conversion and the model-array check against independent references.
tools/firmware.py's sources build (C99, C++, Cortex-M) and hold the model,
the phrases' ids and a resolver with every op; its errors are one line."""

import ctypes
import json
import pathlib
import shutil
import subprocess
import sys
import traceback
import types
import zlib

import numpy as np
import pytest
import soundfile as sf

from bittts_tf.audio.io import save_wav
from bittts_tf.export import tts_graphs
from bittts_tf.export.runtime import BUILD_DIR
from bittts_tf.runtime import TextToSpeech, firmware_spec, model_folder
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.runtime.tts import SynthesisError, regulate_durations
from tts_models import random_tts
from bittts_tf.text import FrontEnd
from seeds import fresh_seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = BUILD_DIR / "libbittts_stream.so"
MAX_TOKENS = 24
CHUNKS = (1, 3, 8)
TEXTS = ["Hello there.",
         "The quick brown fox, who was rather tired, jumped over the lazy dog by the river."]
OK = firmware_spec.status_code("OK")

# ---- ctypes binding, records from the spec (the C structs' single source) ----

Config = type("Config", (ctypes.Structure,),
              {"_fields_": [(name, ctypes.c_int32) for name, _ in firmware_spec.CONFIG_FIELDS]})
DurationInfo = type("DurationInfo", (ctypes.Structure,),
                    {"_fields_": [(name, ctypes.c_int32)
                                  for name, _ in firmware_spec.DURATION_INFO_FIELDS]})
f32p, i32p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
RUN_FRAMES = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, f32p, f32p,
                              ctypes.POINTER(f32p), ctypes.POINTER(ctypes.c_size_t))
PCM_F32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, f32p, ctypes.c_size_t)
PCM_I16 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16),
                           ctypes.c_size_t)


class Callbacks(ctypes.Structure):
    _fields_ = [("user", ctypes.c_void_p), ("run_frames", RUN_FRAMES), ("pcm_f32", PCM_F32),
                ("pcm_i16", PCM_I16)]


@pytest.fixture(scope="module")
def lib():
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: build it with `make lib`")
    lib = ctypes.CDLL(str(LIBRARY))
    size, vp = ctypes.c_size_t, ctypes.c_void_p
    lib.bittts_text_input.argtypes = [vp, i32p, size, i32p, size, i32p]
    lib.bittts_durations.argtypes = [vp, f32p, size, ctypes.c_int32, ctypes.c_float, i32p, size,
                                     vp]
    lib.bittts_speak_segment.argtypes = [vp, f32p, size, f32p, size, ctypes.c_int32,
                                         ctypes.c_float, i32p, size, f32p, size, f32p, size,
                                         ctypes.POINTER(Callbacks), vp]
    lib.bittts_pcm16.argtypes = [ctypes.c_float]
    lib.bittts_pcm16.restype = ctypes.c_int16
    lib.bittts_check_model.argtypes = [ctypes.c_char_p, size, size, ctypes.c_uint32]
    lib.bittts_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, size]
    lib.bittts_crc32.restype = ctypes.c_uint32
    lib.bittts_stream_status_message.restype = ctypes.c_char_p
    return lib


def ptr(array, kind=f32p):
    return array.ctypes.data_as(kind)


def config_from(shapes: dict, num_symbols: int) -> Config:
    values = dict(shapes, num_symbols=num_symbols)
    return Config(**{name: values[name] for name, _ in firmware_spec.CONFIG_FIELDS})


def c_durations(lib, config, log_d, scale):
    out = np.zeros(len(log_d), np.int32)
    info = DurationInfo()
    status = lib.bittts_durations(ctypes.byref(config), ptr(log_d), len(log_d), len(log_d),
                                  scale, ptr(out, i32p), len(out), ctypes.byref(info))
    assert status == OK, lib.bittts_stream_status_message(status)
    return out, info


# ---- spec --------------------------------------------------------------------


def test_committed_header_is_generated_from_spec():
    assert firmware_spec.HEADER_PATH.read_text() == firmware_spec.c_header(), \
        "firmware_stub/bittts_stream_spec.h is stale: run python -m " \
        "bittts_tf.runtime.firmware_spec --write-header"


def test_duration_scale_range_is_the_runtimes():
    runtime = types.SimpleNamespace(speakers=1)
    for scale in (firmware_spec.DURATION_SCALE_MIN, firmware_spec.DURATION_SCALE_MAX):
        TextToSpeech._check(runtime, 0, scale)
    for scale in (np.nextafter(firmware_spec.DURATION_SCALE_MIN, 0),
                  np.nextafter(firmware_spec.DURATION_SCALE_MAX, 11)):
        with pytest.raises(SynthesisError):
            TextToSpeech._check(runtime, 0, scale)


# ---- durations -----------------------------------------------------------------


def regulate_reference(log_d, scale, max_per_token, max_total):
    """regulate_durations with exp computed in float64 and rounded to float32
    (what the C code does; numpy's float32 exp is a SIMD approximation that
    differs from it by an ulp or two on some inputs, depending on the CPU)."""
    with np.errstate(over="ignore"):
        e = np.exp(log_d.astype(np.float64)).astype(np.float32)
        frames = np.round(np.float32(scale) * (e - np.float32(1.0)))
    capped = int((frames > max_per_token).sum())
    durations = np.minimum(np.maximum(frames, 1.0), max_per_token).astype(np.int64)
    total = int(durations.sum())
    if total > max_total:
        durations = np.maximum(np.floor(durations * (max_total / total)), 1).astype(np.int64)
    return durations, total, capped


def test_durations_random(lib, rng):
    """C == the float64-exp reference exactly, caps and extremes included."""
    for _ in range(300):
        n = int(rng.integers(1, 257))
        log_d = np.where(rng.random(n) < 0.1, rng.uniform(-30, 100, n),
                         rng.uniform(-1, 4, n)).astype(np.float32)
        scale = float(np.float32(rng.choice([1.0, rng.uniform(0.1, 10)])))
        max_per_token = int(rng.integers(1, 300))
        max_total = int(rng.integers(1, 20000))
        config = Config(max_tokens=256, num_symbols=1, encoder_channels=1, chunk_frames=1,
                        left_context=0, right_context=0, hop_length=1,
                        max_frames_per_token=max_per_token, max_frames_per_segment=max_total)
        got, info = c_durations(lib, config, log_d, scale)
        want, total, capped = regulate_reference(log_d, scale, max_per_token, max_total)
        np.testing.assert_array_equal(got, want, err_msg=f"scale {scale} caps {max_per_token} "
                                                         f"{max_total} log_d {log_d.tolist()}")
        assert info.total_frames == want.sum()
        assert info.capped_tokens == capped
        assert info.uncapped_total == (total if total > max_total else 0)


def test_durations_match_regulate_durations(lib, rng):
    """== the runtime's regulate_durations itself, notes included, but for rare
    one-frame differences next to a half frame, where numpy's float32 exp (a
    SIMD approximation) is an ulp or two off exp(d): counted, and bounded."""
    near_ties = checked = 0
    for _ in range(100):
        n = int(rng.integers(1, 257))
        log_d = rng.uniform(-1, 4.5, n).astype(np.float32)
        scale = float(np.float32(rng.choice([1.0, rng.uniform(0.1, 10)])))
        max_per_token = int(rng.integers(20, 100))
        max_total = int(rng.integers(1, 100 * n))
        config = Config(max_tokens=256, num_symbols=1, encoder_channels=1, chunk_frames=1,
                        left_context=0, right_context=0, hop_length=1,
                        max_frames_per_token=max_per_token, max_frames_per_segment=max_total)
        got, info = c_durations(lib, config, log_d, scale)
        runtime, notes = regulate_durations(log_d, n, scale, max_per_token, max_total)
        assert (info.capped_tokens > 0) == any("shortened" in note for note in notes)
        assert (info.uncapped_total > 0) == any("sped up" in note for note in notes)
        differ = int((runtime != got).sum())
        if differ:
            # A one-frame difference before the segment cap can move every
            # sped-up duration; without the cap it must be one frame.
            assert info.uncapped_total > 0 or np.abs(runtime - got).max() == 1
            near_ties += 1
        checked += n
    print(f"{near_ties} of 100 segments ({checked} durations) differ from regulate_durations")
    assert near_ties <= 1


def test_duration_ties_round_half_to_even(lib):
    """scale * (e - 1) exactly k + 1/2: numpy and C both go to the even k."""
    config = Config(max_tokens=1, num_symbols=1, encoder_channels=1, chunk_frames=1,
                    left_context=0, right_context=0, hop_length=1, max_frames_per_token=1000,
                    max_frames_per_segment=1000)
    cases = {1.5: (3.0, 5.0, 7.0), 1.75: (2.0, 6.0, 10.0), 2.0: (0.5, 2.5, 4.5),
             3.0: (0.75, 1.25, 2.25), 9.0: (0.3125, 0.5625), 1.125: (4.0,)}
    found = 0
    for target, scales in cases.items():
        near = np.float32(np.log(target)).view(np.int32) + np.arange(-64, 65, dtype=np.int32)
        candidates = near.view(np.float32)
        exact = candidates[(np.exp(candidates) == np.float32(target)) &
                           (np.exp(candidates.astype(np.float64)).astype(np.float32) ==
                            np.float32(target))]
        if not len(exact):
            continue
        found += 1
        for scale in scales:
            value = np.float32(scale) * (np.float32(target) - np.float32(1))
            assert value % 1 == 0.5, (target, scale)
            even = int(np.floor(value)) + int(np.floor(value)) % 2
            log_d = exact[:1]
            got, _ = c_durations(lib, config, log_d, scale)
            runtime, _ = regulate_durations(log_d, 1, scale, 1000, 1000)
            assert got[0] == runtime[0] == max(even, 1), (target, scale, got[0], runtime[0])
    assert found >= 4, "too few float32 d with numpy's exp(d) exactly a tie target"


# ---- PCM and model arrays ------------------------------------------------------


def pcm16_reference(samples):
    """libsndfile's float -> PCM_16: int32 by rint(x * 2**31), then >> 16."""
    z = np.clip(samples, -1, 1).astype(np.float64) * 2**31
    return (np.minimum(np.rint(z), 2**31 - 1).astype(np.int64) >> 16).astype(np.int16)


def test_pcm16_is_what_save_wav_writes(lib, rng, tmp_path):
    near = [(np.float32(k / 32768).view(np.int32) + np.arange(-300, 301, dtype=np.int32)
             ).view(np.float32) for k in range(-20, 21) if k]
    ties = [np.float32((m + 0.5) / 2**31) for k in range(-3, 4) for m in (65536 * k - 1, 65536 * k)]
    samples = np.concatenate([rng.uniform(-1.2, 1.2, 20000), rng.uniform(-1e-4, 1e-4, 5000),
                              *near, ties,
                              [1.0, -1.0, 0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 0.99999994,
                               -0.99999994, 2.0**-15, -(2.0**-15), 2.0**-16, -(2.0**-16)]]
                             ).astype(np.float32)
    save_wav(str(tmp_path / "x.wav"), samples, 16000)
    written, _ = sf.read(tmp_path / "x.wav", dtype="int16")
    assert np.array_equal(pcm16_reference(samples), written)  # the reference is libsndfile's
    converted = np.array([lib.bittts_pcm16(float(x)) for x in samples], np.int16)
    bad = np.nonzero(converted != written)[0]
    assert not len(bad), [(float(samples[i]), int(converted[i]), int(written[i]))
                          for i in bad[:5]]


def test_model_check_is_zlib_crc32(lib, rng):
    data = bytearray(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    data[0:8] = (16).to_bytes(4, "little") + firmware_spec.TFLITE_IDENTIFIER
    for length in (0, 1, 7, 8, 9, 100, 4999, 5000):
        assert lib.bittts_crc32(0, bytes(data[:length]), length) == zlib.crc32(data[:length])
    crc = zlib.crc32(data)
    assert lib.bittts_check_model(bytes(data), len(data), len(data), crc) == OK
    model_error = firmware_spec.status_code("MODEL")
    assert lib.bittts_check_model(bytes(data[:-1]), len(data) - 1, len(data), crc) == model_error
    data[int(rng.integers(8, len(data)))] ^= 0x10
    assert lib.bittts_check_model(bytes(data), len(data), len(data), crc) == model_error


# ---- the whole stream against the runtime -------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    seed = fresh_seed("model")
    config, acoustic, vocoder = random_tts(seed)
    folders = {}
    for chunk in CHUNKS:
        path = str(tmp_path_factory.mktemp(f"chunk{chunk}"))
        tts_graphs.export_model_folder(path, acoustic, vocoder, config, FrontEnd(), MAX_TOKENS,
                                       chunk, {"test": True}, float32_baseline=False)
        folders[chunk] = path
    return folders


class LiteRTGraph:
    """A graph as the runtime's decode-at-load mode runs it: same bytes, same
    interpreter, one thread, so its outputs are the runtime's bit for bit."""

    def __init__(self, model: bytes):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_content=decode_at_load(model), num_threads=1)
        self.interpreter.allocate_tensors()
        self.inputs = {d["name"].removeprefix("serving_default_").split(":")[0]: d
                       for d in self.interpreter.get_input_details()}
        self.outputs = sorted(self.interpreter.get_output_details(),
                              key=lambda d: int(d["name"].rsplit(":", 1)[-1]))

    def run(self, **inputs):
        for name, value in inputs.items():
            detail = self.inputs[name]
            self.interpreter.set_tensor(detail["index"], value.reshape(detail["shape"]))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self.outputs]


class CSpeaker:
    """Text -> samples with C between the graphs: bittts_text_input, the text
    graph, then bittts_speak_segment calling the frames graph back."""

    def __init__(self, lib, folder: str):
        tts = TextToSpeech(folder)
        self.lib, self.segments = lib, tts.segments
        self.shapes = tts.shapes
        self.config = config_from(tts.shapes, len(tts.front_end.symbols))
        assert lib.bittts_check_config(ctypes.byref(self.config)) == OK
        loaded = model_folder.load(folder)
        self.text_graph = LiteRTGraph(loaded.read_graph("text"))
        self.frames_graph = LiteRTGraph(loaded.read_graph("frames"))
        s = self.shapes
        window = s["left_context"] + s["chunk_frames"] + s["right_context"]
        self.frames = np.zeros((window, s["encoder_channels"]), np.float32)
        self.mask = np.zeros(window, np.float32)
        self.samples, self.pcm16, self.alive = [], [], []
        self.callbacks = Callbacks(None, RUN_FRAMES(self._run_frames), PCM_F32(self._pcm_f32),
                                   PCM_I16(self._pcm_i16))

    def _run_frames(self, user, frames, mask, audio, audio_len):
        try:
            assert ctypes.addressof(frames.contents) == self.frames.ctypes.data
            out = self.frames_graph.run(frames=self.frames, mask=self.mask)[0]
            out = np.ascontiguousarray(out.reshape(-1), np.float32)
            self.alive = [out]  # C reads it after the callback returns
            audio[0] = ptr(out)
            audio_len[0] = out.size
            return 0
        except Exception:  # an exception must not cross into C
            traceback.print_exc()
            return 1

    def _pcm_f32(self, user, samples, n):
        self.samples.append(np.ctypeslib.as_array(samples, (n,)).copy())
        return 0

    def _pcm_i16(self, user, samples, n):
        self.pcm16.append(np.ctypeslib.as_array(samples, (n,)).copy())
        return 0

    def speak(self, text: str, duration_scale: float = 1.0):
        s, lib = self.shapes, self.lib
        self.samples, self.pcm16 = [], []
        all_durations = []
        for ids in self.segments(text):
            ids = np.asarray(ids, np.int32)
            phonemes = np.full(s["max_tokens"], -1, np.int32)
            length = ctypes.c_int32()
            status = lib.bittts_text_input(ctypes.byref(self.config), ptr(ids, i32p), len(ids),
                                           ptr(phonemes, i32p), len(phonemes),
                                           ctypes.byref(length))
            assert status == OK, lib.bittts_stream_status_message(status)
            hidden, log_duration = self.text_graph.run(phonemes=phonemes,
                                                       length=np.asarray([length.value], np.int32))
            hidden = np.ascontiguousarray(hidden.reshape(-1), np.float32)
            log_duration = np.ascontiguousarray(log_duration.reshape(-1), np.float32)
            durations = np.zeros(s["max_tokens"], np.int32)
            status = lib.bittts_speak_segment(
                ctypes.byref(self.config), ptr(hidden), hidden.size, ptr(log_duration),
                log_duration.size, length, duration_scale, ptr(durations, i32p), durations.size,
                ptr(self.frames), self.frames.size, ptr(self.mask), self.mask.size,
                ctypes.byref(self.callbacks), None)
            assert status == OK, lib.bittts_stream_status_message(status)
            all_durations.append(durations[:length.value])
        return np.concatenate(self.samples), np.concatenate(self.pcm16), all_durations


@pytest.mark.parametrize("chunk", CHUNKS)
def test_c_stream_reproduces_the_runtime_exactly(lib, exported, chunk):
    speaker, tts = CSpeaker(lib, exported[chunk]), TextToSpeech(exported[chunk])
    for text, scale in [(TEXTS[0], 1.0), (TEXTS[1], 1.0), (TEXTS[0], 1.7)]:
        samples, pcm16, durations = speaker.speak(text, scale)
        expected = tts.synthesize(text, duration_scale=scale)
        assert len(durations) == len(expected.durations)
        for got, want in zip(durations, expected.durations):
            np.testing.assert_array_equal(got, want)
        assert samples.dtype == expected.audio.dtype == np.float32
        assert samples.shape == expected.audio.shape, (chunk, text)
        assert np.array_equal(samples.view(np.uint32), expected.audio.view(np.uint32)), \
            (chunk, text, float(np.abs(samples - expected.audio).max()))
        assert np.array_equal(pcm16, pcm16_reference(samples))
        assert len(expected.segments) > 1 or text != TEXTS[1]  # the long text is split


def test_c_stream_int16_equals_speak_wav(lib, exported, tmp_path):
    wav = tmp_path / "speak.wav"
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "speak.py"),
                          f"--model_dir={exported[8]}", f"--text={TEXTS[1]}", f"--output={wav}"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    written, _ = sf.read(wav, dtype="int16")
    _, pcm16, _ = CSpeaker(lib, exported[8]).speak(TEXTS[1])
    assert pcm16.dtype == np.int16 and np.array_equal(pcm16, written)


def test_model_check_on_exported_graphs(lib, exported):
    folder = model_folder.load(exported[8])
    for graph in model_folder.GRAPHS:
        data = folder.read_graph(graph)
        assert lib.bittts_check_model(data, len(data), len(data), zlib.crc32(data)) == OK


# ---- tools/firmware.py ------------------------------------------------------

PHRASES = ["Hello there.", TEXTS[1], 'Say "caf\u00e9", then stop.']
CHECK_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include "bittts_model_data.h"
#include "bittts_stream.h"

int main(void) {
  static const bittts_stream_config config = BITTTS_MODEL_STREAM_CONFIG;
  int32_t phonemes[BITTTS_MODEL_MAX_TOKENS], length;
  int p, s, k, offset;
  printf("text %d %d\n", bittts_check_model(bittts_model_text, BITTTS_MODEL_TEXT_BYTES,
         BITTTS_MODEL_TEXT_BYTES, BITTTS_MODEL_TEXT_CRC32), (int)((uintptr_t)bittts_model_text % 16));
  printf("frames %d %d\n", bittts_check_model(bittts_model_frames, BITTTS_MODEL_FRAMES_BYTES,
         BITTTS_MODEL_FRAMES_BYTES, BITTTS_MODEL_FRAMES_CRC32),
         (int)((uintptr_t)bittts_model_frames % 16));
  printf("window %u %d\n", (unsigned)bittts_window_frames(&config), BITTTS_MODEL_WINDOW_FRAMES);
  for (p = 0; p < BITTTS_MODEL_NUM_PHRASES; ++p) {
    printf("phrase %s\n", bittts_model_phrases[p].text);
    for (s = 0, offset = 0; s < bittts_model_phrases[p].num_segments; ++s) {
      const int n = bittts_model_phrases[p].segment_lengths[s];
      int status = bittts_text_input(&config, bittts_model_phrases[p].ids + offset, (size_t)n,
                                     phonemes, BITTTS_MODEL_MAX_TOKENS, &length);
      printf("segment %d", status);
      for (k = 0; k < length; ++k) printf(" %d", (int)phonemes[k]);
      printf("\n");
      offset += n;
    }
  }
  return 0;
}
"""


def run_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "firmware.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


def phrase_flags():
    return [f"--phrase={text}" for text in PHRASES]


@pytest.fixture(scope="module")
def generated(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("firmware")
    result = run_tool(f"--model_dir={exported[3]}", f"--out_dir={out}", "--allow_missing_ops",
                      *phrase_flags())
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_firmware_sources_build_and_hold_the_model(exported, generated, tmp_path):
    out, _ = generated
    (tmp_path / "check.c").write_text(CHECK_PROGRAM)
    program = tmp_path / "check"
    build_cmd = ["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic",
                 f"-I{out}", f"-I{ROOT / 'firmware_stub'}", "-o", str(program),
                 str(tmp_path / "check.c"), str(out / "bittts_model_data.c"),
                 str(ROOT / "firmware_stub" / "bittts_stream.c"), "-lm"]
    built = subprocess.run(build_cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    lines = subprocess.run([str(program)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0] == "text 0 0" and lines[1] == "frames 0 0", lines[:2]
    window = lines[2].split()
    assert window[1] == window[2]
    tts = TextToSpeech(exported[3])
    phrases, current = [], None
    for line in lines[3:]:
        if line.startswith("phrase "):
            current = (line[len("phrase "):], [])
            phrases.append(current)
        else:
            status, *ids = line.split()[1:]
            assert status == "0", line
            current[1].append([int(i) for i in ids])
    assert [text for text, _ in phrases] == PHRASES
    for text, segments in phrases:
        assert segments == tts.segments(text), text
    # C++ (a TFLM application) compiles the same file.
    cxx = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-x", "c++", "-c",
                          f"-I{out}", f"-I{ROOT / 'firmware_stub'}", "-o", str(tmp_path / "d.o"),
                          str(out / "bittts_model_data.c")], capture_output=True, text=True)
    assert cxx.returncode == 0, cxx.stderr


def test_firmware_model_arrays_stay_in_flash(exported, generated, tmp_path):
    """On Cortex-M the graphs are const data (.rodata, flash), nothing in RAM."""
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size")):
        pytest.skip("arm-none-eabi-gcc is not installed (make apt installs it)")
    out, _ = generated
    obj = tmp_path / "data.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-mcpu=cortex-m4", "-mthumb", f"-I{out}", f"-I{ROOT / 'firmware_stub'}", "-c",
                    "-o", str(obj), str(out / "bittts_model_data.c")], check=True)
    sizes = {}
    for line in subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    folder = model_folder.load(exported[3])
    graph_bytes = sum(len(folder.read_graph(g)) for g in model_folder.GRAPHS)
    assert sizes.get(".rodata", 0) >= graph_bytes
    assert sizes.get(".data", 0) == 0 and sizes.get(".bss", 0) == 0, sizes


def test_firmware_resolver_has_every_op(exported, generated):
    out, stdout = generated
    resolver = (out / "bittts_op_resolver.h").read_text()
    folder = model_folder.load(exported[3])
    from bittts_tf.export import tflite_file
    expected, missing = set(), set()
    for graph in model_folder.GRAPHS:
        builtins, customs = tflite_file.graph_ops(tflite_file.parse_model(folder.read_graph(graph)))
        assert customs == ["BitTTSTernaryDecode"]
        for op in builtins:
            (expected if op in firmware_spec.TFLM_METHODS else missing).add(op)
    calls = [line.split("resolver.")[1].split("(")[0] for line in resolver.splitlines()
             if "resolver.Add" in line]
    assert sorted(calls[:-1]) == sorted(firmware_spec.TFLM_METHODS[op] for op in expected)
    assert calls[-1] == "AddCustom" and "Register_BitTTSTernaryDecode()" in resolver
    assert f"kNumOps = {len(calls)};" in resolver
    for op in missing:
        assert f"no kernel for: {op}" in resolver or f", {op} (" in resolver
        assert f"warning: TFLite Micro has no kernel for {op}" in stdout


def test_firmware_tool_errors_are_one_line(exported, generated, tmp_path):
    source = pathlib.Path(exported[3])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(source, corrupt)
    data = bytearray((corrupt / "frames.tflite").read_bytes())
    data[len(data) // 2] ^= 0x55
    (corrupt / "frames.tflite").write_bytes(bytes(data))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        ([f"--model_dir={tmp_path / 'nowhere'}", f"--out_dir={tmp_path / 'o1'}"],
         "not a model folder"),
        ([f"--model_dir={corrupt}", f"--out_dir={tmp_path / 'o2'}", "--allow_missing_ops"],
         "corrupt"),
        ([f"--model_dir={source}", f"--out_dir={tmp_path / 'o3'}", "--allow_missing_ops",
          "--phrase=?!"], "--phrase '?!'"),
        ([f"--model_dir={source}", f"--out_dir={a_file}", "--allow_missing_ops"],
         "not a directory"),
        ([f"--model_dir={source}", f"--out_dir={tmp_path / 'o4'}", "--variant=int8"],
         "no int8 text graph"),
    ]
    if "no kernel for" in (generated[0] / "bittts_op_resolver.h").read_text():
        cases.append(([f"--model_dir={source}", f"--out_dir={tmp_path / 'o5'}"],
                      "re-export without it, or pass --allow_missing_ops"))
    for args, problem in cases:
        result = run_tool(*args)
        assert result.returncode == 1, (args, result.stdout)
        message = result.stderr.strip()
        assert message.startswith("firmware: ") and "\n" not in message, message
        assert problem in message, (problem, message)


def test_cortex_m_decode_benchmark(tmp_path):
    """tools/bench_decode_cortex_m.py: every decoder checked on the target and
    counted; the naive decoder costs most, the table least of ours."""
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed (make apt installs them)")
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_decode_cortex_m.py"),
                             f"--out={out}"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for cpu in ("m4", "m7"):
        assert report[cpu]["instructions_per_tick"] > 0
        cost = {name: row["instructions_per_weight"]
                for name, row in report[cpu]["decoders"].items()}
        assert cost["f32_naive"] > cost["f32_mulshift"] > cost["f32_table_prefilled"] > 0
        assert cost["f32_static_table"] > 0  # the trit table times the scale, no RAM table
        assert cost["i8_table"] > 0 and cost["f32_2bit_unpack"] > 0


def test_exp_sweep_hash_is_numpys(tmp_path):
    """The hash test_stream.c prints (and make test-cortex-m compares between
    the host and QEMU) is numpy's float64 exp rounded to float32: the C
    durations' e is the same number on numpy, glibc and newlib."""
    program = tmp_path / "test_stream"
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(program), str(ROOT / "tests/c/test_stream.c"),
                    str(ROOT / "firmware_stub/bittts_stream.c"), "-lm"], check=True)
    line = next(line for line in subprocess.run([str(program), "1"], capture_output=True,
                                                text=True).stdout.splitlines()
                if line.startswith("exp sweep"))
    d = np.concatenate([np.arange(0xC1A00000, 0x80000000, -4099),
                        np.arange(0, 0x41000000, 4099)]).astype(np.uint32).view(np.float32)
    bits = np.exp(d.astype(np.float64)).astype(np.float32).view(np.uint32)
    digest = 2166136261
    for b in bits.tolist():
        digest = ((digest ^ b) * 16777619) & 0xFFFFFFFF
    assert line == f"exp sweep {len(d)} values hash {digest:08x}", line
