"""The C99 voice (firmware_stub/bittts_voice.c: the engine plus the stream)
on the host through ctypes: a model folder's int8 graphs as engine blobs,
one segment's phoneme ids to int16 PCM, as the board image speaks them."""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from bittts_tf.engine import blob as blob_lib
from bittts_tf.engine import native
from bittts_tf.runtime import model_folder, stream_c
from bittts_tf.runtime.stream import StreamShapes

# The text graph's outputs in signature order: its dict of outputs, sorted.
TEXT_OUTPUTS = ["hidden", "log_duration"]
VOICE_STATUSES = ("OK", "ENGINE", "STREAM", "GRAPH")


class VoiceError(RuntimeError):
    """The C voice refused; the message names the stage and the status."""


class VoiceModel(ctypes.Structure):
    _fields_ = [("config", ctypes.POINTER(stream_c.Config)), ("text_blob", ctypes.c_void_p),
                ("text_blob_len", ctypes.c_size_t), ("frames_blob", ctypes.c_void_p),
                ("frames_blob_len", ctypes.c_size_t), ("on_op", ctypes.c_void_p),
                ("on_op_user", ctypes.c_void_p)]


class VoiceReport(ctypes.Structure):
    _fields_ = [("engine_status", ctypes.c_int32), ("stream_status", ctypes.c_int32),
                ("graph", ctypes.c_int32), ("failed_op", ctypes.c_int32),
                ("text_arena", ctypes.c_size_t), ("frames_offset", ctypes.c_size_t),
                ("frames_arena", ctypes.c_size_t),
                ("durations", stream_c.DurationInfo)]


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    lib = native.library()
    lib.bittts_voice_arena_bytes.argtypes = [ctypes.POINTER(VoiceModel), ctypes.POINTER(ctypes.c_size_t),
                                             ctypes.POINTER(VoiceReport)]
    lib.bittts_voice_speak.argtypes = [
        ctypes.POINTER(VoiceModel), stream_c.i32p, ctypes.c_size_t, ctypes.c_float, ctypes.c_void_p,
        ctypes.c_size_t, stream_c.f32p, ctypes.c_size_t, stream_c.i32p, ctypes.c_size_t,
        ctypes.POINTER(stream_c.Callbacks), ctypes.POINTER(VoiceReport)]
    lib.bittts_stream_work_len.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.bittts_stream_work_len.restype = ctypes.c_size_t
    for name in ("bittts_voice_arena_bytes", "bittts_voice_speak"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def folder_blobs(model_dir: str) -> tuple[bytes, bytes, dict, int, float]:
    """(text blob, frames blob, shapes, symbol count, sample rate) of a model
    folder's int8 graphs."""
    folder = model_folder.load(model_dir)
    shapes = dict(folder.manifest["shapes"])
    stream = StreamShapes.from_dict(shapes["stream"])
    text, _ = blob_lib.from_graph(folder.read_graph("text", "int8"), f"{model_dir}/text.int8",
                                  output_names=TEXT_OUTPUTS)
    frames, _ = blob_lib.from_graph(folder.read_graph("frames", "int8"), f"{model_dir}/frames.int8",
                                    output_names=stream.output_names)
    from bittts_tf.text.g2p import FrontEnd
    return (text, frames, shapes, len(FrontEnd.from_dict(folder.manifest["front_end"]).symbols),
            float(folder.manifest["audio"]["sample_rate"]))


class Voice:
    """The C voice on two blobs and a config; `speak(ids)` -> int16 PCM."""

    def __init__(self, text_blob: bytes, frames_blob: bytes, shapes: dict, num_symbols: int,
                 sample_rate: float | None = None):
        self.config = stream_c.config_from(shapes, num_symbols, sample_rate)
        self._blobs = [native._aligned_bytes(len(b)) for b in (text_blob, frames_blob)]
        for target, data in zip(self._blobs, (text_blob, frames_blob)):
            target[:] = np.frombuffer(data, np.uint8)
        self.model = VoiceModel(ctypes.pointer(self.config), self._blobs[0].ctypes.data, len(text_blob),
                                self._blobs[1].ctypes.data, len(frames_blob))
        needed, report = ctypes.c_size_t(), VoiceReport()
        status = _library().bittts_voice_arena_bytes(ctypes.byref(self.model), ctypes.byref(needed),
                                                     ctypes.byref(report))
        self._raise(status, report)
        self.layout = report   # text_arena, frames_offset, frames_arena
        self.arena = native._aligned_bytes(needed.value)
        self.work = np.zeros(_library().bittts_stream_work_len(ctypes.byref(self.config), 1), np.float32)
        self.durations = np.zeros(shapes["max_tokens"], np.int32)

    @classmethod
    def from_folder(cls, model_dir: str) -> "Voice":
        return cls(*folder_blobs(model_dir))

    @staticmethod
    def _raise(status: int, report: VoiceReport) -> None:
        if status == 0:
            return
        stage = VOICE_STATUSES[status] if status < len(VOICE_STATUSES) else str(status)
        raise VoiceError(f"C voice: {stage} (engine {native.status_name(report.engine_status)} "
                         f"in graph {report.graph} op {report.failed_op}, stream status "
                         f"{report.stream_status})")

    def speak(self, ids, duration_scale: float = 1.0) -> np.ndarray:
        """One segment's ids -> int16 samples."""
        chunks = []

        def pcm(_, samples, n):
            chunks.append(np.ctypeslib.as_array(samples, (n,)).copy())
            return 0

        ids = np.ascontiguousarray(ids, np.int32)
        callback = stream_c.PCM_I16(pcm)
        callbacks = stream_c.Callbacks(None, stream_c.RUN_FRAMES(), stream_c.PCM_F32(), callback)
        report = VoiceReport()
        status = _library().bittts_voice_speak(
            ctypes.byref(self.model), ids.ctypes.data_as(stream_c.i32p), ids.size, duration_scale,
            self.arena.ctypes.data, self.arena.size, self.work.ctypes.data_as(stream_c.f32p),
            self.work.size, self.durations.ctypes.data_as(stream_c.i32p), self.durations.size,
            ctypes.byref(callbacks), ctypes.byref(report))
        self._raise(status, report)
        self.last_report = report
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
