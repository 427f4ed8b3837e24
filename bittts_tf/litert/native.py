"""Our C libraries from Python: the decoder through ctypes, and a LiteRT
interpreter with BitTTSTernaryDecode registered."""

from __future__ import annotations

import ctypes
import functools
import pathlib

import numpy as np

from bittts_tf import install_layout
from bittts_tf.quant import packing, spec

# Every C library of ours is loaded from here (install_layout.library_dir()).
BUILD_DIR = install_layout.library_dir()
CORE_LIBRARY = BUILD_DIR / "libbittts_ternary.so"
LITERT_LIBRARY = BUILD_DIR / "libbittts_litert.so"

STATUS_OK, STATUS_NULL, STATUS_SIZE, STATUS_INDEX = 0, 1, 2, 3


class DecodeError(RuntimeError):
    """The C decoder rejected its input."""


def _require(path: pathlib.Path) -> pathlib.Path:
    return install_layout.require_library(path)


F32_DECODERS = {"fast": "bittts_decode_f32", "lut": "bittts_decode_f32_lut",
                "mulshift": "bittts_decode_f32_mulshift", "naive": "bittts_decode_f32_naive"}


@functools.lru_cache(maxsize=None)
def core_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_require(CORE_LIBRARY)))
    i8p, f32p = ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_float)
    size_t, size_tp = ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)
    for name in F32_DECODERS.values():
        fn = getattr(lib, name)
        fn.argtypes = [i8p, size_t, ctypes.c_float, f32p, size_t, size_tp]
        fn.restype = ctypes.c_int
    lib.bittts_decode_i8.argtypes = [i8p, size_t, i8p, size_t, size_tp]
    lib.bittts_decode_i8.restype = ctypes.c_int
    lib.bittts_packed_size.argtypes = [size_t]
    lib.bittts_packed_size.restype = size_t
    lib.bittts_status_message.argtypes = [ctypes.c_int]
    lib.bittts_status_message.restype = ctypes.c_char_p
    lib.bittts_op_name.restype = ctypes.c_char_p
    for name in ("bittts_format_version", "bittts_trits_per_byte", "bittts_min_index",
                 "bittts_max_index"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def _pointer(array: np.ndarray, ctype):
    return array.ctypes.data_as(ctypes.POINTER(ctype))


def _packed_indices(indices) -> np.ndarray:
    """The int8 index array, refusing other dtypes instead of casting them
    (a uint8 array is most likely format version 1, whose bytes mean other weights)."""
    indices = np.asarray(indices)
    if indices.dtype != np.int8 or indices.ndim != 1:
        raise ValueError(f"packed indices must be a 1-D int8 array (format version "
                         f"{spec.FORMAT_VERSION}), got {indices.dtype} {indices.shape}")
    return np.ascontiguousarray(indices)


def _check(status: int, indices: np.ndarray, bad: ctypes.c_size_t) -> None:
    if status == STATUS_OK:
        return
    message = core_library().bittts_status_message(status).decode()
    if status == STATUS_INDEX:
        message += f" (byte {bad.value} is {int(indices[bad.value])})"
    raise DecodeError(f"C decode failed: {message}")


def c_decode_f32(indices: np.ndarray, scale: float, num_weights: int,
                 naive: bool = False, out: np.ndarray | None = None,
                 decoder: str = "fast") -> np.ndarray:
    """float32 weights decoded by a C decoder: `decoder` is one of F32_DECODERS
    ("fast" is the one the LiteRT kernel uses); naive=True means "naive"."""
    indices = _packed_indices(indices)
    if decoder not in F32_DECODERS:
        raise ValueError(f"decoder must be one of {sorted(F32_DECODERS)}, got {decoder!r}")
    if out is None:
        out = np.empty(num_weights, np.float32)
    elif out.dtype != np.float32 or not out.flags.c_contiguous or out.size < num_weights:
        raise ValueError(f"out must be a contiguous float32 array of at least {num_weights} "
                         f"elements, got {out.dtype} {out.shape}")
    fn = getattr(core_library(), F32_DECODERS["naive" if naive else decoder])
    bad = ctypes.c_size_t(0)
    status = fn(_pointer(indices, ctypes.c_int8), indices.size, scale,
                _pointer(out, ctypes.c_float), num_weights, ctypes.byref(bad))
    _check(status, indices, bad)
    return out


def c_decode_i8(indices: np.ndarray, num_weights: int) -> np.ndarray:
    indices = _packed_indices(indices)
    out = np.empty(num_weights, np.int8)
    bad = ctypes.c_size_t(0)
    status = core_library().bittts_decode_i8(
        _pointer(indices, ctypes.c_int8), indices.size, _pointer(out, ctypes.c_int8),
        num_weights, ctypes.byref(bad))
    _check(status, indices, bad)
    return out


def c_spec() -> dict:
    """The constants as the compiled C library sees them (tested against `spec`)."""
    lib = core_library()
    return {"op_name": lib.bittts_op_name().decode(),
            "format_version": lib.bittts_format_version(),
            "trits_per_byte": lib.bittts_trits_per_byte(),
            "min_index": lib.bittts_min_index(),
            "max_index": lib.bittts_max_index(),
            "packed_size_of_11": lib.bittts_packed_size(11)}


@functools.lru_cache(maxsize=None)
def _load_litert_op_library() -> ctypes.CDLL:
    # RTLD_LOCAL: none of our symbols enters the global namespace, so none can
    # interpose on the runtime's (the library also exports only the
    # registerer, its diagnostics and the kernel's guards). The interpreter
    # gets the registerer as a function (litert_registerers), not by name.
    lib = ctypes.CDLL(str(_require(LITERT_LIBRARY)), mode=ctypes.RTLD_LOCAL)
    lib.bittts_litert_register_error.restype = ctypes.c_char_p
    lib.bittts_litert_kernel_error.restype = ctypes.c_char_p
    register = getattr(lib, spec.REGISTERER_SYMBOL)
    register.argtypes, register.restype = [ctypes.c_void_p], None
    return lib


def litert_register_error() -> str:
    """Why the last BitTTS_RegisterOps call could not register the op ("" when it did)."""
    return _load_litert_op_library().bittts_litert_register_error().decode()


def litert_kernel_error() -> str:
    """The kernel's last refusal ("" if none), also when the runtime could not show it."""
    return _load_litert_op_library().bittts_litert_kernel_error().decode()


def _register_ops(resolver_address: int) -> None:
    getattr(_load_litert_op_library(), spec.REGISTERER_SYMBOL)(resolver_address)


def litert_registerers() -> list:
    """custom_op_registerers for a LiteRT interpreter: our registerer as a
    Python function of the resolver's address (the interpreter calls it with
    the MutableOpResolver* while it builds its op resolver)."""
    _load_litert_op_library()
    return [_register_ops]


def make_interpreter(model_content: bytes, num_threads: int = 1,
                     preserve_all_tensors: bool = False):
    """A LiteRT interpreter that runs BitTTSTernaryDecode with our C kernel.

    Needs only ai-edge-litert and build/libbittts_litert.so (no TensorFlow):
    the registerer takes MutableOpResolver::AddCustom from the interpreter's
    own library (see tflite/bittts_litert_register.c)."""
    registerers = litert_registerers()
    import warnings
    from ai_edge_litert.interpreter import InterpreterWithCustomOps
    with warnings.catch_warnings():
        # preserve_all_tensors is wanted here: validation reads intermediates.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        interpreter = InterpreterWithCustomOps(
            model_content=bytes(model_content),
            custom_op_registerers=registerers,
            num_threads=num_threads,
            experimental_preserve_all_tensors=preserve_all_tensors)
    error = litert_register_error()
    if error:
        raise RuntimeError(error)
    return interpreter


def run_interpreter(interpreter, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Resizes the inputs to the given arrays, invokes, returns every output."""
    details = interpreter.get_input_details()
    if len(details) != len(inputs):
        raise ValueError(f"model takes {len(details)} inputs, got {len(inputs)}")
    for detail, value in zip(details, inputs):
        if tuple(detail["shape"]) != value.shape:
            interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def numpy_decode_f32(indices: np.ndarray, scale: float, num_weights: int) -> np.ndarray:
    return packing.decode(indices, num_weights).astype(np.float32) * np.float32(scale)
