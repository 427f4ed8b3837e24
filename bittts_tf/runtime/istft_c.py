"""The frame vocoder's inverse STFT through the C99 implementation
(firmware_stub/bittts_istft.c, build/libbittts_istft.so from `make lib`):
head frames (log-magnitudes then phases, as the vocoder's spectral head emits
them) in, samples out. Imports no TensorFlow.

    samples = istft_stream(head, mask)     # whole utterance: [T, n_fft + 2] -> [T * hop]
    stream = IstftStream()                 # frame by frame
    for frame, m in zip(head, mask):
        play(stream.push(frame, m))        # 0 samples for the first delay_frames pushes, then hop
    play(stream.finish())                  # delay_frames masked frames: the last samples

Alignment (see firmware_stub/bittts_istft.h): push p puts out samples
[(p - R) hop, (p - R + 1) hop) of the utterance, R = n_fft / (2 hop), and
nothing for p < R; T frames and R flushes give exactly T * hop samples.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from bittts_tf import install_layout
from bittts_tf.audio import istft_spec
from bittts_tf.litert.native import BUILD_DIR

LIBRARY = BUILD_DIR / "libbittts_istft.so"
OK = istft_spec.status_code("OK")

_f32p = ctypes.POINTER(ctypes.c_float)
_size = ctypes.c_size_t


class IstftError(RuntimeError):
    """The C inverse STFT refused its input (the message is its status)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(install_layout.require_library(LIBRARY)))
    i32 = ctypes.c_int32
    rec = ctypes.c_void_p   # the bittts_istft record, opaque here
    lib.bittts_istft_status_message.argtypes = [ctypes.c_int]
    lib.bittts_istft_status_message.restype = ctypes.c_char_p
    lib.bittts_istft_check.argtypes = [i32, i32]
    for name, args in (("bittts_istft_head_len", [i32]), ("bittts_istft_scratch_len", [i32]),
                       ("bittts_istft_state_len", [i32, i32])):
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = _size
    lib.bittts_istft_delay_frames.argtypes = [i32, i32]
    lib.bittts_istft_delay_frames.restype = i32
    lib.bittts_istft_begin.argtypes = [rec, i32, i32, _f32p, _size]
    lib.bittts_istft_push.argtypes = [rec, _f32p, _size, ctypes.c_float, _f32p, _size, _f32p,
                                      _size, ctypes.POINTER(_size)]
    lib.bittts_istft_flush.argtypes = [rec, _f32p, _size, ctypes.POINTER(_size)]
    lib.bittts_istft_irfft.argtypes = [i32, _f32p, _size, _f32p, _size]
    lib.bittts_istft_record_size.argtypes = []
    lib.bittts_istft_record_size.restype = _size
    lib.bittts_istft_source_phase.argtypes = [_f32p, _size, i32, i32, _f32p, _size,
                                              ctypes.POINTER(Source), _f32p]
    return lib


class Source(ctypes.Structure):
    """bittts_istft_source: a source-phase vocoder's cut-off and how to read
    the acoustic model's frame F0 head."""
    _fields_ = [("sample_rate", ctypes.c_float), ("cutoff", ctypes.c_float),
                ("log_f0_mean", ctypes.c_float), ("log_f0_std", ctypes.c_float)]


def _check(status: int) -> None:
    if status != OK:
        raise IstftError(status, library().bittts_istft_status_message(status).decode())


def _ptr(array: np.ndarray):
    return array.ctypes.data_as(_f32p)


def irfft(spectrum_real, spectrum_imag, n_fft: int = istft_spec.N_FFT) -> np.ndarray:
    """The C inverse real FFT: n_fft / 2 + 1 bins (x2) -> n_fft samples, as np.fft.irfft."""
    spectrum = np.ascontiguousarray(
        np.concatenate([np.asarray(spectrum_real, np.float32).reshape(-1),
                        np.asarray(spectrum_imag, np.float32).reshape(-1)]))
    out = np.zeros(max(n_fft, 0), np.float32)
    _check(library().bittts_istft_irfft(n_fft, _ptr(spectrum), spectrum.size, _ptr(out),
                                        out.size))
    return out


class IstftStream:
    """One utterance's inverse STFT, frame by frame (buffers owned here).
    With a `source` (a source-phase vocoder), each frame's phases first take
    the source phase of its frame F0 (bittts_istft_source_phase), and the
    integrated F0 is kept here from frame to frame."""

    def __init__(self, n_fft: int = istft_spec.N_FFT, hop: int = istft_spec.HOP_LENGTH,
                 source: Source | None = None):
        lib = library()
        self.source = source
        self._theta = np.zeros(1, np.float32)
        _check(lib.bittts_istft_check(n_fft, hop))
        self.n_fft, self.hop = n_fft, hop
        self.delay_frames = lib.bittts_istft_delay_frames(n_fft, hop)
        self._state = np.zeros(lib.bittts_istft_state_len(n_fft, hop), np.float32)
        self._scratch = np.zeros(lib.bittts_istft_scratch_len(n_fft), np.float32)
        self._out = np.zeros(hop, np.float32)
        self._n_out = _size(0)
        # The record, opaque: 8-byte aligned storage of sizeof(bittts_istft).
        self._record = (ctypes.c_uint64 * -(-lib.bittts_istft_record_size() // 8))()
        self.reset()

    def reset(self) -> None:
        """Starts a new utterance."""
        _check(library().bittts_istft_begin(self._record, self.n_fft, self.hop,
                                            _ptr(self._state), self._state.size))
        self._theta[0] = 0.0

    def push(self, head_frame, mask: float = 1.0, frame_f0=None) -> np.ndarray:
        """One frame's head output ([n_fft + 2]) -> 0 or hop samples;
        `frame_f0` ([2]) with a source, which then needs it."""
        head = np.array(head_frame, np.float32).reshape(-1)   # a copy: the phases change
        if self.source is not None:
            if frame_f0 is None:
                raise ValueError("a source-phase stream needs each frame's F0 head")
            f0 = np.ascontiguousarray(frame_f0, np.float32).reshape(-1)
            _check(library().bittts_istft_source_phase(
                _ptr(head), head.size, self.n_fft, self.hop, _ptr(f0), f0.size,
                ctypes.byref(self.source), _ptr(self._theta)))
        _check(library().bittts_istft_push(
            self._record, _ptr(head), head.size, float(mask), _ptr(self._scratch),
            self._scratch.size, _ptr(self._out), self._out.size, ctypes.byref(self._n_out)))
        return self._out[:self._n_out.value].copy()

    def push_frames(self, head_frames, mask=None, frame_f0=None) -> np.ndarray:
        """Several frames ([k, n_fft + 2], mask [k] or [k, 1], default 1,
        frame_f0 [k, 2] with a source), e.g. one invoke of a streaming graph
        -> their samples, concatenated."""
        head = np.asarray(head_frames, np.float32).reshape(-1, self.n_fft + 2)
        masks = (np.ones(len(head), np.float32) if mask is None
                 else np.asarray(mask, np.float32).reshape(-1))
        if masks.size != len(head):
            raise ValueError(f"{masks.size} mask values for {len(head)} frames")
        f0_rows = ([None] * len(head) if frame_f0 is None
                   else np.asarray(frame_f0, np.float32).reshape(-1, 2))
        if len(f0_rows) != len(head):
            raise ValueError(f"{len(f0_rows)} frame F0 rows for {len(head)} frames")
        parts = [self.push(frame, m, f) for frame, m, f in zip(head, masks, f0_rows)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """A masked frame -> 0 or hop samples."""
        _check(library().bittts_istft_flush(self._record, _ptr(self._out),
                                            self._out.size, ctypes.byref(self._n_out)))
        return self._out[:self._n_out.value].copy()

    def finish(self) -> np.ndarray:
        """delay_frames flushes: the utterance's last samples."""
        parts = [self.flush() for _ in range(self.delay_frames)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def istft_stream(head_frames, mask=None, n_fft: int = istft_spec.N_FFT,
                 hop: int = istft_spec.HOP_LENGTH, source: Source | None = None,
                 frame_f0=None) -> np.ndarray:
    """Whole utterance through the stream: head [T, n_fft + 2], mask [T] (or
    [T, 1]; default all 1), and with a `source` frame_f0 [T, 2] -> [T * hop]
    samples."""
    head = np.asarray(head_frames, np.float32)
    if head.ndim != 2 or head.shape[1] != n_fft + 2:
        raise ValueError(f"head_frames must be [T, {n_fft + 2}], got shape {head.shape}")
    stream = IstftStream(n_fft, hop, source)
    return np.concatenate([stream.push_frames(head, mask, frame_f0), stream.finish()])
