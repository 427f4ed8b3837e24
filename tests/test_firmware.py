"""The firmware stub. The C99 stream (firmware_stub/bittts_stream.c and
bittts_istft.c, through ctypes on build/libbittts_stream.so) driving the
LiteRT text and frames graphs of a small random exported model reproduces
TextToSpeech.synthesize's waveform bit for bit, float32 and int8 graphs,
steps 1, 4 and 40 (below and above the graph's delay), and tools/speak.py's
wav sample for sample; durations, PCM conversion and the model-array check
against independent references. tools/firmware.py's sources build (C99, C++,
Cortex-M) and hold the model, the stream's shapes, states and int8
parameters as the graphs have them, the phrases' ids and a resolver with
every op; its errors are one line."""

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
from bittts_tf.export import tflm
from bittts_tf.litert import tflite_file
from bittts_tf.litert.native import BUILD_DIR, make_interpreter
from bittts_tf.runtime import TextToSpeech, model_folder, stream_c, stream_spec
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.runtime.stream import GraphRunner, StreamShapes
from bittts_tf.runtime.tts import SynthesisError, regulate_durations
from tts_models import SHARED_FOLDERS, SHARED_VOICE_MAX_TOKENS, shared_voice_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = BUILD_DIR / "libbittts_stream.so"
MAX_TOKENS = 24
STEPS = (1, 4, 40)   # the tiny preset's delay is 34
INT8_STEP = 4        # the folder that also holds the int8 graphs (tts_models.SHARED_FOLDERS)
TEXTS = ["Hello there.",
         "The quick brown fox, who was rather tired, jumped over the lazy dog by the river."]
OK = stream_spec.status_code("OK")

# ctypes records of bittts_stream.h (bittts_tf.runtime.stream_c, from the spec).
Config, DurationInfo, Quant, StateSlot, FramesIO = (
    stream_c.Config, stream_c.DurationInfo, stream_c.Quant, stream_c.StateSlot, stream_c.FramesIO)
RUN_FRAMES, PCM_F32, PCM_I16, Callbacks = (
    stream_c.RUN_FRAMES, stream_c.PCM_F32, stream_c.PCM_I16, stream_c.Callbacks)
f32p, i32p, vp, size_t = stream_c.f32p, stream_c.i32p, stream_c.vp, stream_c.size_t
config_from = stream_c.config_from


@pytest.fixture(scope="module")
def lib():
    return load_library()


def load_library() -> ctypes.CDLL:
    """build/libbittts_stream.so with its functions' argument types."""
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: build it with `make lib`")
    lib = ctypes.CDLL(str(LIBRARY))
    lib.bittts_text_input.argtypes = [vp, i32p, size_t, i32p, size_t, i32p]
    lib.bittts_durations.argtypes = [vp, f32p, size_t, ctypes.c_int32, ctypes.c_float, i32p,
                                     size_t, vp]
    lib.bittts_speak_segment.argtypes = [vp, f32p, size_t, f32p, size_t, ctypes.c_int32,
                                         ctypes.c_float, i32p, size_t, ctypes.POINTER(FramesIO),
                                         f32p, size_t, ctypes.POINTER(Callbacks), vp]
    lib.bittts_stream_work_len.argtypes = [vp, ctypes.c_int32]
    lib.bittts_stream_work_len.restype = size_t
    lib.bittts_pcm16.argtypes = [ctypes.c_float]
    lib.bittts_pcm16.restype = ctypes.c_int16
    lib.bittts_check_model.argtypes = [ctypes.c_char_p, size_t, size_t, ctypes.c_uint32]
    lib.bittts_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, size_t]
    lib.bittts_crc32.restype = ctypes.c_uint32
    lib.bittts_stream_status_message.restype = ctypes.c_char_p
    return lib


def ptr(array, kind=f32p):
    return array.ctypes.data_as(kind)


def durations_config(max_tokens: int, max_per_token: int, max_total: int) -> Config:
    """A valid config for bittts_durations: the stream's fields barely matter."""
    shapes = {"max_tokens": max_tokens, "encoder_channels": 1, "hop_length": 1, "n_fft": 4,
              "max_frames_per_token": max_per_token, "max_frames_per_segment": max_total,
              "stream": {"step": 1, "delay": 0, "channels": 1, "head_width": 6, "states": []}}
    return config_from(shapes, 1)


def c_durations(lib, config, log_d, scale):
    out = np.zeros(len(log_d), np.int32)
    info = DurationInfo()
    status = lib.bittts_durations(ctypes.byref(config), ptr(log_d), len(log_d), len(log_d),
                                  scale, ptr(out, i32p), len(out), ctypes.byref(info))
    assert status == OK, lib.bittts_stream_status_message(status)
    return out, info


# ---- spec --------------------------------------------------------------------


def test_committed_header_is_generated_from_spec():
    assert stream_spec.HEADER_PATH.read_text() == stream_spec.c_header(), \
        "firmware_stub/bittts_stream_spec.h is stale: run python -m " \
        "bittts_tf.runtime.stream_spec --write-header"


def test_duration_scale_range_is_the_runtimes():
    runtime = types.SimpleNamespace(speakers=1)
    for scale in (stream_spec.DURATION_SCALE_MIN, stream_spec.DURATION_SCALE_MAX):
        TextToSpeech._check(runtime, 0, scale)
    for scale in (np.nextafter(stream_spec.DURATION_SCALE_MIN, 0),
                  np.nextafter(stream_spec.DURATION_SCALE_MAX, 11)):
        with pytest.raises(SynthesisError):
            TextToSpeech._check(runtime, 0, scale)


def test_config_and_work_length_agree_with_c(lib):
    """config_values fills a record C accepts, and the work buffer the
    generated header sizes (stream_spec.work_len) is C's."""
    shapes = {"max_tokens": 64, "encoder_channels": 128, "hop_length": 256, "n_fft": 1024,
              "max_frames_per_token": 75, "max_frames_per_segment": 1500,
              "stream": {"step": 4, "delay": 34, "channels": 128, "head_width": 1026,
                         "states": [["state_00", 4, 96], ["state_01", 34, 1]]}}
    config = config_from(shapes, 71)
    assert lib.bittts_check_config(ctypes.byref(config)) == OK
    assert ctypes.sizeof(config) == 4 * (len(stream_spec.CONFIG_FIELDS)
                                         + 2 * stream_spec.MAX_STATES
                                         + len(stream_spec.CONFIG_SOURCE_FIELDS))
    for int8 in (0, 1):
        assert lib.bittts_stream_work_len(ctypes.byref(config), int8) == \
            stream_spec.work_len(1024, 256, 1026, bool(int8))
    too_many = dict(shapes, stream=dict(shapes["stream"], states=[["s", 1, 1]] * 33))
    with pytest.raises(ValueError, match="at most 32"):
        stream_spec.config_values(too_many, 71)


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
        config = durations_config(256, max_per_token, max_total)
        got, info = c_durations(lib, config, log_d, scale)
        want, total, capped = regulate_reference(log_d, scale, max_per_token, max_total)
        np.testing.assert_array_equal(got, want, err_msg=f"scale {scale} caps {max_per_token} "
                                                         f"{max_total} log_d {log_d.tolist()}")
        assert info.total_frames == want.sum()
        assert info.capped_tokens == capped
        assert info.uncapped_total == (total if total > max_total else 0)


def test_durations_match_regulate_durations(lib, rng):
    """== the runtime's regulate_durations itself, frames and notes: both round
    exp(d) from double to float32, so no near-tie is left to allow for."""
    for _ in range(100):
        n = int(rng.integers(1, 257))
        log_d = rng.uniform(-1, 4.5, n).astype(np.float32)
        scale = float(np.float32(rng.choice([1.0, rng.uniform(0.1, 10)])))
        max_per_token = int(rng.integers(20, 100))
        max_total = int(rng.integers(1, 100 * n))
        config = durations_config(256, max_per_token, max_total)
        got, info = c_durations(lib, config, log_d, scale)
        runtime, notes = regulate_durations(log_d, n, scale, max_per_token, max_total)
        assert (info.capped_tokens > 0) == any("shortened" in note for note in notes)
        assert (info.uncapped_total > 0) == any("sped up" in note for note in notes)
        np.testing.assert_array_equal(got, runtime, err_msg=f"scale {scale}, caps "
                                      f"{max_per_token} and {max_total} frames")


def test_duration_ties_round_half_to_even(lib):
    """scale * (e - 1) exactly k + 1/2: numpy and C both go to the even k."""
    config = durations_config(1, 1000, 1000)
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
    data[0:8] = (16).to_bytes(4, "little") + stream_spec.TFLITE_IDENTIFIER
    for length in (0, 1, 7, 8, 9, 100, 4999, 5000):
        assert lib.bittts_crc32(0, bytes(data[:length]), length) == zlib.crc32(data[:length])
    crc = zlib.crc32(data)
    assert lib.bittts_check_model(bytes(data), len(data), len(data), crc) == OK
    model_error = stream_spec.status_code("MODEL")
    assert lib.bittts_check_model(bytes(data[:-1]), len(data) - 1, len(data), crc) == model_error
    data[int(rng.integers(8, len(data)))] ^= 0x10
    assert lib.bittts_check_model(bytes(data), len(data), len(data), crc) == model_error


# ---- the whole stream against the runtime -------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Folders of one random tiny model at each step; the INT8_STEP one also
    has the int8 graphs (calibrated on random phonemes). The model is the
    run's shared random voice (tts_models.shared_voice_folder, a fresh
    printed seed), its folders exported once for test_tflm and
    test_export_tts too."""
    assert SHARED_VOICE_MAX_TOKENS == MAX_TOKENS and SHARED_FOLDERS[INT8_STEP]["int8"]
    return {step: shared_voice_folder(tmp_path_factory, step)
            for step in STEPS}


def litert(model: bytes, decode: str):
    """An interpreter as the runtime makes it in decode mode `decode`: same
    bytes, same interpreter, one thread, so its outputs are the runtime's
    bit for bit."""
    if decode == "load":
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_content=decode_at_load(model), num_threads=1)
    else:
        interpreter = make_interpreter(model, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


class CSpeaker:
    """Text -> samples with C between and after the graphs: bittts_text_input,
    the text graph, then bittts_speak_segment calling the frames graph back
    (its outputs as the graph wrote them: int8 codes stay codes) and the C
    inverse STFT."""

    def __init__(self, lib, folder: str, variant: str = "packed", decode: str = "load"):
        tts = TextToSpeech(folder, variant=variant)
        self.lib, self.segments, self.shapes = lib, tts.segments, tts.shapes
        self.stream = StreamShapes.from_dict(self.shapes["stream"])
        self.config = config_from(self.shapes, len(tts.front_end.symbols), tts.sample_rate)
        assert lib.bittts_check_config(ctypes.byref(self.config)) == OK
        loaded = model_folder.load(folder)
        text = loaded.read_graph("text", variant)
        self.text = GraphRunner(text, litert(text, decode), ["hidden", "log_duration"])
        frames = loaded.read_graph("frames", variant)
        self.frames = GraphRunner(frames, litert(frames, decode), self.stream.output_names,
                                  raw=self.stream.output_names)
        int8 = variant == "int8"
        dtype = np.int8 if int8 else np.float32
        s, channels = self.stream, self.stream.channels
        self.frames_in = np.zeros((1, 1, s.step, channels), dtype)
        self.mask_in = np.zeros((1, 1, s.step, 1), dtype)
        self.state_in = [np.zeros((1, 1, f, c), dtype) for _, f, c in s.states]
        self.state_out = [np.zeros((1, 1, f, c), dtype) for _, f, c in s.states]
        self.slots = (StateSlot * max(1, len(s.states)))()
        for i, (name, f, c) in enumerate(s.states):
            zero = self.frames.zero(name, (1,))[0]
            self.slots[i] = StateSlot(self.state_in[i].ctypes.data, self.state_out[i].ctypes.data,
                                      f * c, int(zero))

        def quant(tensor):
            q = GraphRunner._parameters(tensor)
            return Quant(0.0, 0) if q is None else Quant(float(q[0]), q[1])

        self.io = FramesIO(self.frames_in.ctypes.data, self.frames_in.size,
                           self.mask_in.ctypes.data, self.mask_in.size, int(int8),
                           quant(self.frames.tensor["frames"]), quant(self.frames.tensor["mask"]),
                           quant(self.frames.output_tensor["spectrum"]),
                           ctypes.cast(self.slots, ctypes.POINTER(StateSlot)), len(s.states))
        # A source-phase graph's frame F0 rows, where the graph leaves them (as
        # its output states).
        self.frame_f0 = np.zeros((1, 1, s.step, 2), dtype) if s.frame_f0 else None
        if s.frame_f0:
            self.io.frame_f0, self.io.frame_f0_len = self.frame_f0.ctypes.data, self.frame_f0.size
            self.io.frame_f0_quant = quant(self.frames.output_tensor["frame_f0"])
        self.work = np.zeros(lib.bittts_stream_work_len(ctypes.byref(self.config), int(int8)),
                             np.float32)
        self.samples, self.pcm16, self.alive, self.invokes = [], [], [], 0
        self.callbacks = Callbacks(None, RUN_FRAMES(self._run_frames), PCM_F32(self._pcm_f32),
                                   PCM_I16(self._pcm_i16))

    def _run_frames(self, user, frames, mask, spectrum, spectrum_len):
        try:
            assert frames == self.frames_in.ctypes.data and mask == self.mask_in.ctypes.data
            inputs = {"frames": self.frames_in, "mask": self.mask_in}
            inputs.update({name: state for (name, _, _), state
                           in zip(self.stream.states, self.state_in)})
            out = self.frames.run(**inputs)
            for (name, _, _), state in zip(self.stream.states, self.state_out):
                np.copyto(state, out[name])
            if self.frame_f0 is not None:
                np.copyto(self.frame_f0, out["frame_f0"])
            rows = np.ascontiguousarray(out["spectrum"]).reshape(-1)
            self.alive = [rows]  # C reads it after the callback returns
            spectrum[0] = rows.ctypes.data
            spectrum_len[0] = rows.size
            self.invokes += 1
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
        self.samples, self.pcm16, self.invokes = [], [], 0
        all_durations = []
        for ids in self.segments(text):
            ids = np.asarray(ids, np.int32)
            phonemes = np.full((1, s["max_tokens"]), -1, np.int32)
            length = np.zeros(1, np.int32)
            status = lib.bittts_text_input(ctypes.byref(self.config), ptr(ids, i32p), len(ids),
                                           ptr(phonemes, i32p), phonemes.size, ptr(length, i32p))
            assert status == OK, lib.bittts_stream_status_message(status)
            out = self.text.run(phonemes=phonemes, length=length)
            hidden = np.ascontiguousarray(out["hidden"].reshape(-1), np.float32)
            log_duration = np.ascontiguousarray(out["log_duration"].reshape(-1), np.float32)
            durations = np.zeros(s["max_tokens"], np.int32)
            status = lib.bittts_speak_segment(
                ctypes.byref(self.config), ptr(hidden), hidden.size, ptr(log_duration),
                log_duration.size, int(length[0]), duration_scale, ptr(durations, i32p),
                durations.size, ctypes.byref(self.io), ptr(self.work), self.work.size,
                ctypes.byref(self.callbacks), None)
            assert status == OK, lib.bittts_stream_status_message(status)
            all_durations.append(durations[:length[0]])
        return np.concatenate(self.samples), np.concatenate(self.pcm16), all_durations


def check_against_the_runtime(speaker: CSpeaker, tts: TextToSpeech, cases) -> list:
    """Each (text, scale): the same durations, and the same float32 samples bit
    for bit (int16 as libsndfile converts them); the invokes per segment."""
    report = []
    for text, scale in cases:
        samples, pcm16, durations = speaker.speak(text, scale)
        expected = tts.synthesize(text, duration_scale=scale)
        assert len(durations) == len(expected.durations)
        for got, want in zip(durations, expected.durations):
            np.testing.assert_array_equal(got, want)
        frames = [int(d.sum()) for d in durations]
        step, delay = speaker.stream.step, speaker.stream.delay
        assert speaker.invokes == sum(-(-(t + delay) // step) for t in frames)
        assert samples.dtype == expected.audio.dtype == np.float32
        n_samples = sum(frames) * speaker.shapes["hop_length"]
        assert samples.shape == expected.audio.shape == (n_samples,)
        differ = int(np.sum(samples.view(np.uint32) != expected.audio.view(np.uint32)))
        report.append((text[:12], scale, len(samples), differ,
                       float(np.abs(samples - expected.audio).max()),
                       float(np.abs(samples).max())))
        assert differ == 0, report[-1]
        assert report[-1][-1] > 1e-4, report[-1]  # a model that speaks, not silence
        assert np.array_equal(pcm16, pcm16_reference(samples))
        assert len(expected.segments) > 1 or text != TEXTS[1]  # the long text is split
    print(report)
    return report


@pytest.mark.parametrize("step", STEPS)
def test_c_stream_reproduces_the_runtime_exactly(lib, exported, step):
    check_against_the_runtime(CSpeaker(lib, exported[step]), TextToSpeech(exported[step]),
                              [(TEXTS[0], 1.0), (TEXTS[1], 1.0), (TEXTS[0], 1.7)])


@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_c_stream_reproduces_the_runtime_in_graph_decode_mode(lib, exported, variant):
    """The int8 stream is int8 at every input and output: C quantizes the
    frames and mask, carries the states' codes and dequantizes the spectrum
    as the runtime's GraphRunner does. In the decode mode a microcontroller
    runs (BitTTSTernaryDecode in the graph); the int8 text graph of some
    random models fails XNNPACK's delegation when decoded at load."""
    folder = exported[INT8_STEP]
    check_against_the_runtime(CSpeaker(lib, folder, variant, decode="graph"),
                              TextToSpeech(folder, variant=variant, decode="graph"),
                              [(TEXTS[0], 1.0), (TEXTS[1], 0.8)])


def test_c_stream_int16_equals_speak_wav(lib, exported, tmp_path):
    wav = tmp_path / "speak.wav"
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "speak.py"),
                          f"--model_dir={exported[40]}", f"--text={TEXTS[1]}", f"--output={wav}"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    written, _ = sf.read(wav, dtype="int16")
    _, pcm16, _ = CSpeaker(lib, exported[40]).speak(TEXTS[1])
    assert pcm16.dtype == np.int16 and np.array_equal(pcm16, written)


def test_model_check_on_exported_graphs(lib, exported):
    folder = model_folder.load(exported[INT8_STEP])
    for graph in model_folder.GRAPHS:
        for variant in ("packed", "int8"):
            data = folder.read_graph(graph, variant)
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
  static const int32_t state_lengths[] = BITTTS_MODEL_STATE_LENGTHS;
  int32_t phonemes[BITTTS_MODEL_MAX_TOKENS], length;
  int p, s, k, offset;
  printf("text %d %d\n", bittts_check_model(bittts_model_text, BITTTS_MODEL_TEXT_BYTES,
         BITTTS_MODEL_TEXT_BYTES, BITTTS_MODEL_TEXT_CRC32),
         (int)((uintptr_t)bittts_model_text % 16));
  printf("frames %d %d\n", bittts_check_model(bittts_model_frames, BITTTS_MODEL_FRAMES_BYTES,
         BITTTS_MODEL_FRAMES_BYTES, BITTTS_MODEL_FRAMES_CRC32),
         (int)((uintptr_t)bittts_model_frames % 16));
  printf("config %d\n", bittts_check_config(&config));
  printf("work %u %d\n", (unsigned)bittts_stream_work_len(&config, BITTTS_MODEL_FRAMES_INT8),
         BITTTS_MODEL_STREAM_WORK_FLOATS);
  printf("states %d", BITTTS_MODEL_NUM_STATES == config.num_states);
  for (k = 0; k < BITTTS_MODEL_NUM_STATES; ++k)
    printf(" %d", state_lengths[k] == config.state_frames[k] * config.state_channels[k]);
  printf("\n");
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
    """The sources of the INT8_STEP folder, packed and int8 graphs."""
    out = {}
    for variant in ("packed", "int8"):
        out[variant] = tmp_path_factory.mktemp(f"firmware_{variant}")
        result = run_tool(f"--model_dir={exported[INT8_STEP]}", f"--out_dir={out[variant]}",
                          f"--variant={variant}", "--allow_missing_ops", *phrase_flags())
        assert result.returncode == 0, result.stderr
        out[f"{variant}_stdout"] = result.stdout
    return out


def header_defines(path) -> dict:
    """#define NAME VALUE of a generated header (continued lines joined)."""
    text = pathlib.Path(path).read_text().replace("\\\n", " ")
    defines = {}
    for line in text.splitlines():
        if line.startswith("#define "):
            parts = line.split(None, 2)
            defines[parts[1]] = parts[2].split("/*")[0].strip() if len(parts) > 2 else ""
    return defines


def c_table(value: str) -> list[int]:
    return [int(v) for v in value.strip("{} ").split(",")]


@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_firmware_sources_build_and_hold_the_model(exported, generated, tmp_path, variant):
    out = generated[variant]
    (tmp_path / "check.c").write_text(CHECK_PROGRAM)
    program = tmp_path / "check"
    sources = [str(tmp_path / "check.c"), str(out / "bittts_model_data.c"),
               str(ROOT / "firmware_stub" / "bittts_stream.c"),
               str(ROOT / "firmware_stub" / "bittts_istft.c")]
    build_cmd = ["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic",
                 f"-I{out}", f"-I{ROOT / 'firmware_stub'}", "-o", str(program), *sources, "-lm"]
    built = subprocess.run(build_cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    lines = subprocess.run([str(program)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0] == "text 0 0" and lines[1] == "frames 0 0", lines[:2]
    assert lines[2] == "config 0", lines[2]
    work = lines[3].split()
    assert work[1] == work[2], lines[3]
    assert set(lines[4].split()[1:]) == {"1"}, lines[4]
    tts = TextToSpeech(exported[INT8_STEP])
    phrases, current = [], None
    for line in lines[5:]:
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
    # C++ (a TFLM application) compiles the same files, the config too.
    for source in ("bittts_model_data.c", "check.c"):
        path = out / source if source != "check.c" else tmp_path / source
        cxx = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-x", "c++",
                              "-c", f"-I{out}", f"-I{ROOT / 'firmware_stub'}", "-o",
                              str(tmp_path / "d.o"), str(path)], capture_output=True, text=True)
        assert cxx.returncode == 0, cxx.stderr


@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_firmware_header_describes_the_stream(exported, generated, variant):
    """Tensor positions, state sizes, zero points and int8 scales in the
    header are the graphs' own (the interpreter's input(i) / output(i))."""
    defines = header_defines(generated[variant] / "bittts_model_data.h")
    folder = model_folder.load(exported[INT8_STEP])
    stream = StreamShapes.from_dict(folder.shapes["stream"])
    data = folder.read_graph("frames", variant)
    runner = GraphRunner(data, None, stream.output_names)
    int8 = variant == "int8"
    assert defines["BITTTS_MODEL_FRAMES_INT8"] == str(int(int8))
    assert int(defines["BITTTS_MODEL_STEP"]) == stream.step
    assert int(defines["BITTTS_MODEL_DELAY"]) == stream.delay
    assert int(defines["BITTTS_MODEL_HEAD_WIDTH"]) == stream.head_width
    assert int(defines["BITTTS_MODEL_NUM_STATES"]) == len(stream.states)
    names = stream.state_names
    assert c_table(defines["BITTTS_MODEL_STATE_INPUTS"]) == \
        [runner.input_position[n] for n in names]
    assert c_table(defines["BITTTS_MODEL_STATE_OUTPUTS"]) == \
        [runner.output_position[n] for n in names]
    assert c_table(defines["BITTTS_MODEL_STATE_LENGTHS"]) == [f * c for _, f, c in stream.states]
    for name in ["frames", "mask"] + names:
        assert int(defines[f"BITTTS_MODEL_FRAMES_INPUT_{name.upper()}"]) == \
            runner.input_position[name]
    for name in stream.output_names:
        assert int(defines[f"BITTTS_MODEL_FRAMES_OUTPUT_{name.upper()}"]) == \
            runner.output_position[name]
    zero_points = [int(runner.zero(n, (1,))[0]) for n in names]
    assert c_table(defines["BITTTS_MODEL_STATE_ZERO_POINTS"]) == zero_points
    assert any(zero_points) == int8
    for define, tensor in (("FRAMES_INPUT_FRAMES", runner.tensor["frames"]),
                           ("FRAMES_INPUT_MASK", runner.tensor["mask"]),
                           ("FRAMES_OUTPUT_SPECTRUM", runner.output_tensor["spectrum"])):
        q = GraphRunner._parameters(tensor)
        scale = defines[f"BITTTS_MODEL_{define}_SCALE"]
        assert scale.endswith("f")
        # The literal reads back as the tensor's float32 scale exactly.
        assert np.float32(scale[:-1]) == (q[0] if int8 else 0.0), (define, scale)
        assert int(defines[f"BITTTS_MODEL_{define}_ZERO_POINT"]) == (q[1] if int8 else 0)


def test_firmware_refuses_states_whose_codes_change_scale(exported, tmp_path):
    """A state output quantized unlike its input could not be carried as codes."""
    source = model_folder.load(exported[INT8_STEP])
    stream = StreamShapes.from_dict(source.shapes["stream"])
    data = source.read_graph("frames", "int8")
    model = tflite_file.parse_model(data)
    _, outputs = tflite_file.signature_tensors(model)
    tensor = model.subgraphs[0].tensors[outputs[stream.output_names.index("state_03")]]
    tensor.quantization.scale = [float(tensor.quantization.scale[0]) * 2]
    damaged = tmp_path / "damaged"
    shutil.copytree(exported[INT8_STEP], damaged)
    frames = tflite_file.serialize_model(model)
    (damaged / "frames.int8.tflite").write_bytes(frames)
    manifest = json.loads((damaged / model_folder.MANIFEST).read_text())
    manifest["graphs"]["frames.int8"].update(bytes=len(frames), sha256=model_folder.sha256(frames))
    (damaged / model_folder.MANIFEST).write_text(json.dumps(manifest))
    result = run_tool(f"--model_dir={damaged}", f"--out_dir={tmp_path / 'out'}",
                      "--variant=int8", "--allow_missing_ops")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("firmware: ") and "\n" not in message, message
    assert "state_03 leaves the graph with quantization" in message, message


def test_firmware_model_arrays_stay_in_flash(exported, generated, tmp_path):
    """On Cortex-M the graphs are const data (.rodata, flash), nothing in RAM."""
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size")):
        pytest.skip("arm-none-eabi-gcc is not installed (make apt installs it)")
    out = generated["packed"]
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
    folder = model_folder.load(exported[INT8_STEP])
    graph_bytes = sum(len(folder.read_graph(g)) for g in model_folder.GRAPHS)
    assert sizes.get(".rodata", 0) >= graph_bytes
    assert sizes.get(".data", 0) == 0 and sizes.get(".bss", 0) == 0, sizes


@pytest.mark.parametrize("variant", ["packed", "int8"])
def test_firmware_resolver_has_every_op(exported, generated, variant):
    out, stdout = generated[variant], generated[f"{variant}_stdout"]
    resolver = (out / "bittts_op_resolver.h").read_text()
    folder = model_folder.load(exported[INT8_STEP])
    expected, missing, customs_seen = set(), set(), set()
    for graph in model_folder.GRAPHS:
        builtins, customs = tflite_file.graph_ops(
            tflite_file.parse_model(folder.read_graph(graph, variant)))
        customs_seen |= set(customs)
        for op in builtins:
            (expected if op in tflm.TFLM_METHODS else missing).add(op)
    # The int8 graphs ship with the fused conv (a decode op only where no
    # CONV_2D reads the kernel); the float graphs decode.
    ours = {"packed": ["BitTTSTernaryDecode"], "int8": ["BitTTSTernaryConv"]}[variant]
    assert set(ours) <= customs_seen <= {"BitTTSTernaryDecode", "BitTTSTernaryConv"}
    calls = [line.split("resolver.")[1].split("(")[0] for line in resolver.splitlines()
             if "resolver.Add" in line]
    n = len(customs_seen)
    assert sorted(calls[:-n]) == sorted(tflm.TFLM_METHODS[op] for op in expected)
    assert calls[-n:] == ["AddCustom"] * n
    for name in customs_seen:
        assert f"Register_{name}()" in resolver
    assert f"kNumOps = {len(calls)};" in resolver
    for op in missing:
        assert f"no kernel for: {op}" in resolver or f", {op} (" in resolver
        assert f"warning: TFLite Micro has no kernel for {op}" in stdout


def test_firmware_tool_errors_are_one_line(exported, generated, tmp_path):
    source = pathlib.Path(exported[INT8_STEP])
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
         f"--out_dir={a_file}: {a_file} is a file, not a folder"),
        ([f"--model_dir={exported[1]}", f"--out_dir={tmp_path / 'o4'}", "--variant=int8"],
         "no int8 text graph"),
    ]
    if "no kernel for" in (generated["packed"] / "bittts_op_resolver.h").read_text():
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
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(program),
                    str(ROOT / "tests/c/test_stream.c"),
                    str(ROOT / "firmware_stub/bittts_stream.c"),
                    str(ROOT / "firmware_stub/bittts_istft.c"), "-lm"], check=True)
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


VOICE = ROOT / "models" / "slt_tiny"


def resigned_copy(tmp_path, graph: str, data: bytes) -> pathlib.Path:
    """A copy of the shipped voice (never the voice itself) whose packed
    `graph` is `data`, with the manifest re-signed to vouch for it."""
    copy = tmp_path / "voice"
    shutil.copytree(VOICE, copy)
    (copy / f"{graph}.tflite").write_bytes(data)
    manifest = json.loads((copy / model_folder.MANIFEST).read_text())
    manifest["graphs"][graph].update(bytes=len(data), sha256=model_folder.sha256(data))
    (copy / model_folder.MANIFEST).write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("direction", ["input", "output"])
def test_firmware_refuses_a_signature_naming_a_tensor_the_graph_does_not_list(tmp_path, direction):
    """A re-signed graph whose signature points an entry at an inner tensor:
    the firmware addresses it by its place in the graph's inputs or outputs,
    where it has none (was a ValueError from list.index)."""
    model = tflite_file.parse_model((VOICE / "text.tflite").read_bytes())
    subgraph, signature = model.subgraphs[0], model.signatureDefs[0]
    listed = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
    inner = next(i for i in range(len(subgraph.tensors)) if i not in listed)
    entry = (signature.inputs if direction == "input" else signature.outputs)[0]
    entry.tensorIndex = inner
    copy = resigned_copy(tmp_path, "text", tflite_file.serialize_model(model))
    result = run_tool(f"--model_dir={copy}", f"--out_dir={tmp_path / 'out'}", "--allow_missing_ops")
    assert result.returncode == 1, result.stdout
    message = result.stderr.strip()
    assert message.startswith("firmware: ") and "\n" not in message, message
    assert f"text.tflite: signature {direction} '{entry.name.decode()}'" in message, message
    assert f"tensor {inner}" in message, message
    assert not (tmp_path / "out").exists()


def test_firmware_engine_target_refuses_allow_missing_ops(tmp_path):
    """The engine has no op resolver: --allow_missing_ops would be ignored."""
    result = run_tool(f"--model_dir={VOICE}", f"--out_dir={tmp_path / 'out'}", "--variant=int8",
                      "--target=engine", "--allow_missing_ops")
    assert result.returncode == 1, result.stdout
    message = result.stderr.strip()
    assert message.startswith("firmware: ") and "\n" not in message, message
    assert "--allow_missing_ops" in message and "--target=engine" in message, message
    assert not (tmp_path / "out").exists()
