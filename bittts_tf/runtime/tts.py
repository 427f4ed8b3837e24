"""Text -> speech through an exported model folder with LiteRT: front end ->
text graph -> length regulation (numpy) -> the frames graph's stream, `step`
frames an invoke -> the inverse STFT in C (firmware_stub/bittts_istft.c).

No TensorFlow is imported (a test checks), so a process that only speaks
starts in about a second.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import numpy as np

from bittts_tf.audio.config import AudioConfig
from bittts_tf.litert import native, tflite_file
from bittts_tf.runtime import model_folder as folder_lib
from bittts_tf.runtime.decode_at_load import decode_at_load
from bittts_tf.runtime.istft_c import IstftStream, Source
from bittts_tf.runtime.stream_spec import DURATION_SCALE_MAX, DURATION_SCALE_MIN
from bittts_tf.runtime.stream import GraphRunner, RunnerGraph, StreamShapes, stream_rows
from bittts_tf.text.g2p import FrontEnd
from bittts_tf.text.normalize import TextError
from bittts_tf.text.segment import segment_ids

# Where the ternary weights are decoded: "load" once into constants (fast on
# a desktop: XNNPACK takes the whole graph), "graph" by BitTTSTernaryDecode at
# every invoke (as on a microcontroller).
DECODE_MODES = ("load", "graph")
# What runs the graphs: LiteRT, or the C99 engine (firmware_stub/bittts_engine*.c,
# the int8 variant only: it has no float32 kernels).
ENGINES = ("litert", "c99")


class SynthesisError(ValueError):
    """Bad input to synthesis (unknown speaker, bad duration scale)."""


@dataclasses.dataclass
class Synthesis:
    audio: np.ndarray            # float32 [n_samples]
    mel: np.ndarray              # float32 [n_frames, n_mels], natural-log mel
    sample_rate: int
    segments: list[list[int]]    # phoneme ids of each segment
    durations: list[np.ndarray]  # frames per phoneme of each segment
    notes: list[str]             # caps that bit, said plainly
    time_to_first_audio: float   # seconds from the call to the first chunk
    seconds: float               # wall time of the whole synthesis

    @property
    def real_time_factor(self) -> float:
        return self.seconds / max(len(self.audio) / self.sample_rate, 1e-9)


def regulate_durations(log_durations: np.ndarray, length: int, scale: float,
                       max_per_token: int, max_total: int) -> tuple[np.ndarray, list[str]]:
    """Frames per token: round(scale * (exp(d) - 1)), at least 1, as the
    acoustic model's `durations_from_log`; then the caps. The same arithmetic
    as the firmware's C (firmware_stub/bittts_stream.c), so both give the same
    frames on any machine: exp in float64 rounded to float32 (float32 exp
    differs by an ulp between numpy's SIMD code and C libraries), the rest in
    float32, the cap applied before any integer cast."""
    log_durations = np.asarray(log_durations[:length])
    if not np.all(np.isfinite(log_durations)):
        # The firmware refuses these too (BITTTS_ERR_VALUE): no duration to cap.
        raise SynthesisError(f"the text graph predicted {int(np.sum(~np.isfinite(log_durations)))} "
                             "non-finite log-duration(s): the model is broken")
    with np.errstate(over="ignore"):
        e = np.exp(log_durations.astype(np.float64)).astype(np.float32)
    frames = np.round(np.float32(scale) * (e - np.float32(1.0)))
    notes = []
    over = frames > max_per_token
    if over.any():
        notes.append(f"{int(over.sum())} phoneme(s) predicted longer than {max_per_token} "
                     "frames were shortened to it")
    durations = np.where(over, max_per_token, np.maximum(frames, 1.0)).astype(np.int64)
    if durations.sum() > max_total:
        total = int(durations.sum())
        durations = np.maximum(np.floor(durations * (max_total / total)), 1).astype(np.int64)
        notes.append(f"a segment of {total} frames was sped up to {int(durations.sum())} "
                     f"(the cap is {max_total} frames)")
    return durations, notes


def regulate(hidden: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Encoder states [n_tokens, C] -> one row per frame [sum(durations), C]."""
    return hidden[np.repeat(np.arange(len(durations)), durations)]


class _Graph(RunnerGraph):
    """One interpreter with fixed-shape inputs and named outputs (a
    `stream.GraphRunner`).

    The manifest's SHA-256 proves only that a file is the one the manifest
    lists: a graph from a broken exporter or a hostile sender comes re-signed.
    So whatever the interpreter refuses (a flatbuffer that does not verify, a
    tensor it cannot allocate, an op that fails) and any interface other than
    the expected inputs and outputs is refused here as a ModelFolderError
    naming the file, in both decode modes."""

    def __init__(self, model: bytes, decode: str, num_threads: int, name: str,
                 inputs: dict[str, tuple], outputs: dict[str, tuple], raw=(),
                 engine: str = "litert"):
        self.name = name
        try:
            tflite_file.parse_model(model, name)
            if engine == "c99":
                from bittts_tf.engine.interpreter import Interpreter as EngineInterpreter
                interpreter = EngineInterpreter(model, name)
            elif decode == "load":
                from ai_edge_litert.interpreter import Interpreter
                interpreter = Interpreter(model_content=decode_at_load(model, name),
                                          num_threads=num_threads)
            else:
                interpreter = native.make_interpreter(model, num_threads=num_threads)
            interpreter.allocate_tensors()
            self.runner = GraphRunner(model, interpreter, list(outputs), raw)
            input_details = {d["index"]: d for d in interpreter.get_input_details()}
            output_details = {d["index"]: d for d in interpreter.get_output_details()}
        except tflite_file.TFLiteFileError as e:
            raise folder_lib.ModelFolderError(f"{name}: {e}" if name not in str(e) else str(e)) \
                from None
        except (ValueError, RuntimeError) as e:
            raise self._refused("the interpreter cannot load it", e) from None
        # By the signature's names, which the runner sets inputs by: a byte
        # flip in a signature name leaves the tensor names as they were
        # (seen as a KeyError 'phonemes' at the first synthesis).
        got = {key: _shape_and_type(input_details.get(index))
               for key, index in self.runner.input_index.items()}
        want = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in inputs.items()}
        if got != want:
            raise folder_lib.ModelFolderError(
                f"{name}: inputs {_describe(got)} differ from the expected {_describe(want)}")
        got = {key: _shape_and_type(output_details.get(index))
               for key, index in self.runner.output_index.items()}
        want = {key: (tuple(shape), np.dtype(dtype)) for key, (shape, dtype) in outputs.items()}
        if got != want:
            raise folder_lib.ModelFolderError(
                f"{name}: outputs {_describe(got)} differ from the expected {_describe(want)}")

    def _refused(self, what: str, error: BaseException) -> folder_lib.ModelFolderError:
        reason = " ".join(str(error).split()) or type(error).__name__
        return folder_lib.ModelFolderError(f"{self.name}: {what} ({reason[:300]})")

    failures = (ValueError, RuntimeError)

    def failed(self, error: Exception) -> folder_lib.ModelFolderError:
        return self._refused("the interpreter failed to run it", error)


def _shape_and_type(detail: dict | None) -> tuple:
    """A tensor detail's (shape, dtype), or a note in place of the dtype for a
    signature entry whose tensor the interpreter does not list."""
    if detail is None:
        return (), "not an input or output of the graph"
    return tuple(int(n) for n in detail["shape"]), np.dtype(detail["dtype"])


def _describe(signature: dict) -> str:
    return ", ".join(f"{name} {list(shape)} {dtype}" for name, (shape, dtype)
                     in sorted(signature.items())) or "none"


class TextToSpeech:
    def __init__(self, model_dir: str, variant: str = "packed", decode: str = "load",
                 num_threads: int = 1, engine: str = "litert"):
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if engine == "c99" and variant != "int8":
            raise ValueError(f"the c99 engine runs the int8 variant, not {variant!r}")
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
        self.engine = engine
        self.folder = folder_lib.load(model_dir)
        manifest = self.folder.manifest
        try:
            self.audio_config = AudioConfig.from_dict(manifest["audio"])
            self.front_end = FrontEnd.from_dict(manifest["front_end"])
        except (KeyError, TypeError, ValueError) as e:
            raise folder_lib.ModelFolderError(
                f"{model_dir}/{folder_lib.MANIFEST}: bad audio or front-end settings ({e})") from None
        self.shapes = dict(manifest["shapes"])
        self.stream_shapes = StreamShapes.from_dict(self.shapes["stream"])
        self.speakers = int(manifest["speakers"])
        source = self.shapes.get("source_phase")
        self.source = (None if source is None else Source(
            float(self.audio_config.sample_rate), float(source["cutoff"]),
            float(source["log_f0_mean"]), float(source["log_f0_std"])))
        self.variant, self.decode, self.num_threads = variant, decode, num_threads
        # Read and checked now; the interpreters start at the first synthesis,
        # after the text has been checked (their start-up logs nothing then).
        self._models = {graph: self.folder.read_graph(graph, variant)
                        for graph in folder_lib.GRAPHS}
        self._graphs = {}

    def _graph(self, name: str) -> _Graph:
        if name not in self._graphs:
            file = folder_lib.graph_file(name, self.variant)
            inputs, outputs, raw = self._interface(name)
            self._graphs[name] = _Graph(self._models[name], self.decode, self.num_threads,
                                        f"{self.folder.path}/{file}", inputs, outputs, raw,
                                        self.engine)
        return self._graphs[name]

    def _interface(self, name: str) -> tuple[dict, dict, list]:
        """The inputs (name -> shape, dtype), outputs (name -> shape, dtype, in
        signature order) and raw outputs (states) the exporter writes for
        graph `name`, from the manifest's shapes. The int8 variant's stream
        is int8 from end to end; its text graph has float32 edges."""
        s = self.shapes
        if name == "text":
            inputs = {"phonemes": ((1, s["max_tokens"]), np.int32), "length": ((1,), np.int32)}
            if self.speakers > 1:
                inputs["speaker"] = ((1,), np.int32)
            return inputs, {"hidden": ((1, s["max_tokens"], s["encoder_channels"]), np.float32),
                            "log_duration": ((1, s["max_tokens"]), np.float32)}, []
        dtype = np.int8 if self.variant == "int8" else np.float32
        outputs = self.stream_shapes.outputs()
        return (self.stream_shapes.inputs(dtype),
                {key: (outputs[key], dtype) for key in self.stream_shapes.output_names},
                self.stream_shapes.state_names)
    @property
    def sample_rate(self) -> int:
        return self.audio_config.sample_rate

    def segments(self, text: str) -> list[list[int]]:
        return segment_ids(self.front_end, text, self.shapes["max_tokens"])

    def _check(self, speaker: int, duration_scale: float) -> None:
        if isinstance(speaker, bool) or not isinstance(speaker, (int, np.integer)):
            raise SynthesisError(f"speaker {speaker!r} is not an integer id")
        if isinstance(duration_scale, bool) or not isinstance(duration_scale,
                                                               (int, float, np.number)):
            raise SynthesisError(f"duration scale {duration_scale!r} is not a number")
        if not 0 <= speaker < self.speakers:
            raise SynthesisError(f"speaker {speaker} is unknown: this model has "
                                 f"{self.speakers} speaker(s), ids 0..{self.speakers - 1}")
        if not (np.isfinite(duration_scale)
                and DURATION_SCALE_MIN <= duration_scale <= DURATION_SCALE_MAX):
            raise SynthesisError(f"duration scale {duration_scale} is outside "
                                 f"{DURATION_SCALE_MIN:g}..{DURATION_SCALE_MAX:g}")

    def encode(self, ids: list[int], speaker: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Text graph: (encoder states [n, C], log-durations [n]) of one segment."""
        n = len(ids)
        padded = np.zeros((1, self.shapes["max_tokens"]), np.int32)
        padded[0, :n] = ids
        inputs = {"phonemes": padded, "length": np.asarray([n], np.int32)}
        if self.speakers > 1:
            inputs["speaker"] = np.asarray([speaker], np.int32)
        out = self._graph("text").run(**inputs)
        return out["hidden"][0, :n], out["log_duration"][0, :n]

    def frame_chunks(self, regulated: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The frames graph's stream over regulated frames [F, C], then the
        inverse STFT: yields (samples, mel) as each invoke completes frames;
        in all exactly F * hop samples and F mel frames."""
        graph = self._graph("frames")
        zero = {name: graph.zero(name, (1, 1, frames, channels))
                for name, frames, channels in self.stream_shapes.states}
        istft = IstftStream(self.shapes["n_fft"], self.shapes["hop_length"], self.source)
        for spectrum, mel, frame_f0 in stream_rows(graph.run, self.stream_shapes, regulated, zero):
            yield istft.push_frames(spectrum, frame_f0=frame_f0), mel
        yield istft.finish(), np.zeros((0, self.stream_shapes.n_mels), np.float32)
    def stream(self, text: str, speaker: int = 0, duration_scale: float = 1.0,
               notes: list | None = None, segments_out: list | None = None,
               durations_out: list | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields (samples, mel frames) as each chunk is computed."""
        self._check(speaker, duration_scale)
        for ids in self.segments(text):
            hidden, log_duration = self.encode(ids, speaker)
            durations, segment_notes = regulate_durations(
                log_duration, len(ids), duration_scale, self.shapes["max_frames_per_token"],
                self.shapes["max_frames_per_segment"])
            if notes is not None:
                notes.extend(segment_notes)
            if segments_out is not None:
                segments_out.append(ids)
            if durations_out is not None:
                durations_out.append(durations)
            yield from self.frame_chunks(regulate(hidden, durations))

    def synthesize(self, text: str, speaker: int = 0, duration_scale: float = 1.0) -> Synthesis:
        start = time.perf_counter()
        first = None
        notes, segments, durations, audio, mel = [], [], [], [], []
        for samples, frames in self.stream(text, speaker, duration_scale, notes, segments,
                                           durations):
            if first is None and len(samples):
                first = time.perf_counter() - start
            audio.append(samples)
            mel.append(frames)
        seconds = time.perf_counter() - start
        return Synthesis(np.concatenate(audio).astype(np.float32), np.concatenate(mel),
                         self.sample_rate, segments, durations, notes, first or seconds, seconds)


__all__ = ["TextToSpeech", "Synthesis", "SynthesisError", "TextError", "regulate",
           "regulate_durations", "DECODE_MODES", "ENGINES"]
