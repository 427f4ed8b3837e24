"""bittts_stream.h's records for ctypes: the config and duration records
from bittts_tf.runtime.stream_spec (their single source), the io records
and callback types as the header declares them (pointers: not in the spec).
Used by the tests that drive the C stream and by the C99 voice's host build
(bittts_tf.engine.voice)."""

from __future__ import annotations

import ctypes

from bittts_tf.runtime import stream_spec

Config = type("Config", (ctypes.Structure,), {"_fields_": (
    [(name, ctypes.c_int32) for name, _ in stream_spec.CONFIG_FIELDS]
    + [(name, ctypes.c_int32 * stream_spec.MAX_STATES)
       for name, _ in stream_spec.CONFIG_ARRAYS]
    + [(name, ctypes.c_float) for name, _ in stream_spec.CONFIG_SOURCE_FIELDS])})
DurationInfo = type("DurationInfo", (ctypes.Structure,),
                    {"_fields_": [(name, ctypes.c_int32)
                                  for name, _ in stream_spec.DURATION_INFO_FIELDS]})
f32p, i32p, vp = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32), ctypes.c_void_p
size_t = ctypes.c_size_t


class Quant(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


class StateSlot(ctypes.Structure):
    _fields_ = [("input", vp), ("output", vp), ("len", size_t), ("zero_point", ctypes.c_int32)]


class FramesIO(ctypes.Structure):
    _fields_ = [("frames", vp), ("frames_len", size_t), ("mask", vp), ("mask_len", size_t),
                ("int8", ctypes.c_int32), ("frames_quant", Quant), ("mask_quant", Quant),
                ("spectrum_quant", Quant), ("states", ctypes.POINTER(StateSlot)),
                ("n_states", size_t), ("frame_f0", vp), ("frame_f0_len", size_t),
                ("frame_f0_quant", Quant)]


RUN_FRAMES = ctypes.CFUNCTYPE(ctypes.c_int, vp, vp, vp, ctypes.POINTER(vp),
                              ctypes.POINTER(size_t))
PCM_F32 = ctypes.CFUNCTYPE(ctypes.c_int, vp, f32p, size_t)
PCM_I16 = ctypes.CFUNCTYPE(ctypes.c_int, vp, ctypes.POINTER(ctypes.c_int16), size_t)


class Callbacks(ctypes.Structure):
    _fields_ = [("user", vp), ("run_frames", RUN_FRAMES), ("pcm_f32", PCM_F32),
                ("pcm_i16", PCM_I16)]


def config_from(shapes: dict, num_symbols: int, sample_rate: float | None = None) -> Config:
    """The config record of a model folder's shapes (manifest["shapes"]);
    a source-phase vocoder's needs the sample rate (manifest["audio"])."""
    values = stream_spec.config_values(shapes, num_symbols, sample_rate)
    config = Config()
    for name, _ in stream_spec.CONFIG_FIELDS + stream_spec.CONFIG_SOURCE_FIELDS:
        setattr(config, name, values[name])
    for name, _ in stream_spec.CONFIG_ARRAYS:
        getattr(config, name)[:] = values[name]
    return config
