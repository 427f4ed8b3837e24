"""The host build of the engine (build/libbittts_engine.so) through ctypes."""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from bittts_tf.engine import graph, spec
from bittts_tf.litert import native

ENGINE_LIBRARY = native.BUILD_DIR / "libbittts_engine.so"
_DTYPES = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bool": np.bool_}


class EngineError(RuntimeError):
    """The C engine refused a call; the message names the op and the status."""


class Tensor(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("dims", ctypes.c_int32 * spec.MAX_RANK), ("count", ctypes.c_size_t),
                ("bytes", ctypes.c_size_t), ("data", ctypes.c_void_p),
                ("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


class OpArgs(ctypes.Structure):
    _fields_ = [("inputs", ctypes.POINTER(Tensor)), ("n_inputs", ctypes.c_size_t),
                ("outputs", ctypes.POINTER(Tensor)), ("n_outputs", ctypes.c_size_t),
                ("params", ctypes.POINTER(ctypes.c_int32)), ("n_params", ctypes.c_size_t)]


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(native._require(ENGINE_LIBRARY)))
    lib.bittts_engine_run_op.argtypes = [ctypes.c_int32, ctypes.POINTER(OpArgs)]
    lib.bittts_engine_run_op.restype = ctypes.c_int
    lib.bittts_engine_status_message.argtypes = [ctypes.c_int]
    lib.bittts_engine_status_message.restype = ctypes.c_char_p
    return lib


def status_name(status: int) -> str:
    return spec.STATUSES[status][0] if 0 <= status < len(spec.STATUSES) else f"status {status}"


def tensor_view(array: np.ndarray | None) -> Tensor:
    """A view of a C-contiguous array (None: an absent operand)."""
    view = Tensor()
    if array is None:
        return view
    if not array.flags["C_CONTIGUOUS"]:
        raise ValueError("engine views need C-contiguous arrays")
    kind = {np.dtype(v): k for k, v in _DTYPES.items()}[array.dtype]
    if array.ndim > spec.MAX_RANK:
        raise ValueError(f"rank {array.ndim} above {spec.MAX_RANK}")
    view.type = spec.TYPES[kind]
    view.rank = array.ndim
    for d, n in enumerate(array.shape):
        view.dims[d] = n
    view.count = array.size
    view.bytes = array.nbytes
    view.data = array.ctypes.data if array.size else None
    return view


def run_op(opcode: str, inputs: list[np.ndarray | None], outputs: list[np.ndarray],
           params: list[int]) -> int:
    """Runs one op in place on numpy arrays (outputs are written); the status."""
    views_in = (Tensor * max(len(inputs), 1))(*[tensor_view(a) for a in inputs])
    views_out = (Tensor * max(len(outputs), 1))(*[tensor_view(a) for a in outputs])
    words = (ctypes.c_int32 * max(len(params), 1))(*[int(np.int32(p)) for p in params])
    args = OpArgs(views_in, len(inputs), views_out, len(outputs), words, len(params))
    return library().bittts_engine_run_op(spec.OPCODES[opcode], ctypes.byref(args))


def _array(ref, tensors: dict, feeds: dict) -> np.ndarray:
    if isinstance(ref, graph.NewTensor):
        if ref.data is not None:
            return np.ascontiguousarray(np.asarray(ref.data, _DTYPES[ref.type]).reshape(ref.shape))
        return np.zeros(ref.shape, _DTYPES[ref.type])
    info = tensors[ref]
    if ref in feeds:
        return np.ascontiguousarray(np.asarray(feeds[ref], _DTYPES[info.type]).reshape(info.shape))
    if info.data is not None:
        return np.ascontiguousarray(info.data.reshape(info.shape))
    raise KeyError(f"tensor {ref} ({info.name}) is neither fed nor constant")


def run_lowered(lowered: graph.Lowered, tensors: dict, feeds: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Runs one lowered op: its graph inputs from `feeds` (tensor index ->
    array) or their constant data; returns its outputs (scratch dropped)."""
    inputs = [None if ref is None else _array(ref, tensors, feeds) for ref in lowered.inputs]
    outputs = []
    for ref in lowered.outputs:
        if isinstance(ref, graph.NewTensor):
            outputs.append(np.zeros(ref.shape, _DTYPES[ref.type]))
        else:
            info = tensors[ref]
            outputs.append(np.zeros(info.shape, _DTYPES[info.type]))
    status = run_op(lowered.opcode, inputs, outputs, lowered.params)
    if status != 0:
        raise EngineError(f"{lowered.opcode}: {status_name(status)} "
                          f"({library().bittts_engine_status_message(status).decode()})")
    return [a for a, ref in zip(outputs, lowered.outputs) if not isinstance(ref, graph.NewTensor)]


class Engine(ctypes.Structure):
    # bittts_engine (bittts_engine.h): opaque here, sized to hold its fields.
    _fields_ = [("_opaque", ctypes.c_uint8 * 512)]


def _aligned_bytes(n: int) -> np.ndarray:
    """n zeroed bytes on an 8-byte boundary (bittts_engine_open needs it)."""
    return np.zeros((n + 7) // 8, np.uint64).view(np.uint8)[:n]


@functools.lru_cache(maxsize=None)
def _blob_functions() -> ctypes.CDLL:
    lib = library()
    u8p, size_t = ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t
    i32p = ctypes.POINTER(ctypes.c_int32)
    lib.bittts_engine_arena_bytes.argtypes = [u8p, size_t, ctypes.POINTER(size_t)]
    lib.bittts_engine_open.argtypes = [ctypes.POINTER(Engine), u8p, size_t, u8p, size_t, i32p]
    lib.bittts_engine_invoke.argtypes = [ctypes.POINTER(Engine), i32p]
    for name in ("bittts_engine_input", "bittts_engine_output", "bittts_engine_tensor_view"):
        getattr(lib, name).argtypes = [ctypes.POINTER(Engine), size_t, ctypes.POINTER(Tensor)]
    for name in ("bittts_engine_arena_bytes", "bittts_engine_open", "bittts_engine_invoke",
                 "bittts_engine_input", "bittts_engine_output", "bittts_engine_tensor_view"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def _raise(what: str, status: int, op: int = -1) -> None:
    if status != 0:
        where = f" at op {op}" if op >= 0 else ""
        raise EngineError(f"{what}: {status_name(status)}{where} "
                          f"({library().bittts_engine_status_message(status).decode()})")


class BlobEngine:
    """One blob opened on its own arena: inputs by position, invoke, outputs."""

    def __init__(self, blob: bytes, arena_bytes: int | None = None):
        lib = _blob_functions()
        self._blob = _aligned_bytes(len(blob))
        self._blob[:] = np.frombuffer(blob, np.uint8)
        u8p = ctypes.POINTER(ctypes.c_uint8)
        self._blob_ptr = self._blob.ctypes.data_as(u8p)
        needed = ctypes.c_size_t()
        _raise("engine blob", lib.bittts_engine_arena_bytes(self._blob_ptr, len(blob), ctypes.byref(needed)))
        self.arena = _aligned_bytes(max(needed.value if arena_bytes is None else arena_bytes, 1))
        self._engine = Engine()
        failed = ctypes.c_int32(-1)
        _raise("engine blob", lib.bittts_engine_open(ctypes.byref(self._engine), self._blob_ptr, len(blob),
                                                     self.arena.ctypes.data_as(u8p), self.arena.size,
                                                     ctypes.byref(failed)), failed.value)

    def _view(self, function: str, k: int) -> np.ndarray:
        view = Tensor()
        _raise(function, getattr(_blob_functions(), function)(ctypes.byref(self._engine), k, ctypes.byref(view)))
        kind = {v: k for k, v in spec.TYPES.items()}[view.type]
        shape = tuple(view.dims[d] for d in range(view.rank))
        buffer = (ctypes.c_uint8 * view.bytes).from_address(view.data)
        return np.frombuffer(buffer, _DTYPES[kind], count=view.count).reshape(shape)

    def input(self, k: int) -> np.ndarray:
        """The k-th input's bytes in the arena, as a writable array."""
        return self._view("bittts_engine_input", k)

    def output(self, k: int) -> np.ndarray:
        return self._view("bittts_engine_output", k).copy()

    def tensor(self, tensor_id: int) -> np.ndarray:
        return self._view("bittts_engine_tensor_view", tensor_id).copy()

    def invoke(self) -> None:
        failed = ctypes.c_int32(-1)
        _raise("engine invoke", _blob_functions().bittts_engine_invoke(ctypes.byref(self._engine),
                                                                       ctypes.byref(failed)), failed.value)
