"""The exported graphs in TensorFlow Lite Micro, through the pinned
`tflite-micro` wheel's Python interpreter.

Two ways to run a ternary model on an unmodified TFLM:

- the packed graphs (`BitTTSTernaryDecode`, 1.6 bits per weight) with the
  firmware's own kernel, registered into the wheel by
  `build/libbittts_tflm_py.so` (see tflite/bittts_tflm_wheel.cc);
- the *LUT* form: every ternary kernel stored as TFLM's own compressed
  tensor (2-bit indices into a table of its three values, decoded by the
  stock `DECODE` op), which needs no custom code at all, at 2.0 bits per
  weight plus the tables.

Also the smallest arena each graph runs in, found by bisection.

The module is long because it is one thing, a graph in the wheel's
interpreter: the LUT form is made for that interpreter's DECODE op and is
only trusted after running there (its arena, against the packed graph and
against LiteRT), so it stays beside the interpreter it is checked in.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import functools
import io
import os
import re
import warnings

import numpy as np

from bittts_tf.litert import native, tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT8, INT32, INT64, UINT8
from bittts_tf.quant import spec
from bittts_tf.runtime.stream import GraphRunner, RunnerGraph

# Builtin op -> its MicroMutableOpResolver method (TFLite Micro as of
# 2026-08, commit 90b983c; methods have been added, never renamed).
TFLM_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# The wheel whose layouts tflite/tflm_wheel_abi/ declares (TFLM g06f0b46).
# The earlier nightlies nearest the TFLM source we read do not import on
# Python 3.11 (their _runtime.so calls the 3.13-only PyObject_ClearManagedDict);
# later ones moved TFLM into namespace tflite::micro, so the registerer's
# symbol lookups fail there, loudly.
WHEEL_VERSION = spec.TFLM_WHEEL_VERSION
LIBRARY = native.BUILD_DIR / "libbittts_tflm_py.so"

_ARENA_ALIGNMENT = 16   # TFLM aligns arena allocations to 16 bytes
_MAX_ARENA = 1 << 30


class TFLMError(RuntimeError):
    """The TFLM interpreter refused a model, an arena or the registration."""


def wheel_version() -> str:
    from tflite_micro.python.tflite_micro import _version
    return _version.__version__.split("-")[0]


def check_wheel() -> None:
    version = wheel_version()
    if version != WHEEL_VERSION:
        raise TFLMError(f"tflite-micro {version} is installed; the registerer is checked against "
                        f"{WHEEL_VERSION} (requirements.lock)")


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    check_wheel()
    # RTLD_GLOBAL: the wheel finds the registerer with dlsym(RTLD_DEFAULT, ...).
    lib = ctypes.CDLL(str(native._require(LIBRARY)), mode=ctypes.RTLD_GLOBAL)
    lib.bittts_tflm_wheel_error.restype = ctypes.c_char_p
    lib.bittts_tflm_wheel_message.restype = ctypes.c_char_p
    return lib


def registerer():
    """The registerer as a ctypes function (tests call it on fake resolvers)."""
    fn = getattr(_library(), spec.TFLM_REGISTERER_SYMBOL)
    fn.argtypes = [ctypes.c_void_p]
    fn.restype = ctypes.c_bool
    return fn


def register_error() -> str:
    return _library().bittts_tflm_wheel_error().decode()


def kernel_message() -> str:
    return _library().bittts_tflm_wheel_message().decode()


def _has_our_ops(model: bytes) -> bool:
    parsed = tflite_file.parse_model(model)
    return any(tflite_file.custom_opcodes(parsed, name)
               for name in (spec.OP_NAME, spec.CONV_OP_NAME))


@contextlib.contextmanager
def _quiet_stderr(enabled: bool):
    """TFLM logs each refused allocation on the C stderr; a bisection makes
    dozens on purpose."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def make_interpreter(model: bytes, arena_size: int, quiet: bool = False,
                     preserve_all_tensors: bool = False):
    """A TFLM interpreter with tensors allocated in an arena of `arena_size`
    bytes; our registerer is used when the model has BitTTSTernaryDecode or
    BitTTSTernaryConv. preserve_all_tensors: no two tensors share arena bytes,
    so `GetTensor(index, 0)` reads any tensor after an invoke."""
    from tflite_micro.python.tflite_micro import runtime
    registerers = []
    if _has_our_ops(model):
        _library()
        registerers = [spec.TFLM_REGISTERER_SYMBOL]
    else:
        check_wheel()
    try:
        with _quiet_stderr(quiet):
            config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
                      else runtime.InterpreterConfig.kAllocationRecording)
            return runtime.Interpreter.from_bytes(bytes(model), custom_op_registerers=registerers,
                                                  arena_size=int(arena_size),
                                                  intrepreter_config=config)
    except RuntimeError as error:
        detail = register_error() if registerers else ""
        if not detail and registerers and kernel_message():
            detail = kernel_message()
        raise TFLMError(f"{error}" + (f" ({detail})" if detail else "")) from None


class Graph(RunnerGraph):
    """One TFLM interpreter addressed as bittts_tf.runtime's graphs are:
    inputs by name, outputs by the names `output_names` gives the signature's
    outputs (default output_0, ...); int8 edges (de)quantized except `raw`."""

    def __init__(self, model: bytes, arena_size: int, output_names: list[str] | None = None,
                 raw=()):
        if output_names is None:
            count = len(tflite_file.signature_tensors(tflite_file.parse_model(model))[1])
            output_names = [f"output_{i}" for i in range(count)]
        self.runner = GraphRunner(model, make_interpreter(model, arena_size), output_names, raw,
                                  tflm=True)
        self.inputs = self.runner.input_index

    failures = (RuntimeError,)

    def failed(self, error: Exception) -> TFLMError:
        return TFLMError(f"{error} ({kernel_message()})")


def zero_inputs(model: bytes) -> list[np.ndarray]:
    """Inputs of the model's shapes and types, all zero (what the arena
    search invokes with: allocation does not depend on values)."""
    parsed = tflite_file.parse_model(model)
    subgraph = parsed.subgraphs[0]
    dtypes = {FLOAT32: np.float32, INT32: np.int32, INT8: np.int8, UINT8: np.uint8, INT64: np.int64}
    inputs = []
    for i in subgraph.inputs:
        tensor = subgraph.tensors[i]
        if tensor.type not in dtypes:
            raise TFLMError(f"input {tensor.name!r} has tensor type {tensor.type}")
        inputs.append(np.zeros([int(d) for d in tensor.shape], dtypes[tensor.type]))
    return inputs


def _runs_here(model: bytes, arena_size: int, inputs: list[np.ndarray]) -> bool:
    try:
        interpreter = make_interpreter(model, arena_size, quiet=True)
        for i, value in enumerate(inputs):
            interpreter.set_input(value, i)
        with _quiet_stderr(True):
            interpreter.invoke()
    except (TFLMError, RuntimeError):
        return False
    return True


def runs_in(model: bytes, arena_size: int, inputs: list[np.ndarray] | None = None) -> bool:
    """Whether the model allocates and invokes in an arena of that size.

    Tried in a forked child: some TFLM kernels do not check a failed
    temporary allocation (MEAN's Prepare dereferences it), so an arena a
    little too small can crash the interpreter instead of failing."""
    inputs = zero_inputs(model) if inputs is None else inputs
    _library()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only a status
        faulthandler.disable()  # a crash here is an answer, not a report
        try:
            ok = _runs_here(model, arena_size, inputs)
        except BaseException:  # noqa: BLE001 -- anything is "does not run"
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def unsupported_reason(model: bytes) -> str | None:
    """Why the pinned wheel cannot run `model`, when that is known without
    trying: its DEQUANTIZE takes int8, int16 and uint8 inputs, not the INT4
    kernels of a 4-bit float graph (measured: Prepare fails on
    tflite-micro 0.dev20260930204519; LiteRT runs them)."""
    parsed = tflite_file.parse_model(model)
    names = tflite_file.builtin_names()
    for subgraph in parsed.subgraphs:
        for op in subgraph.operators:
            if (names.get(tflite_file.builtin_code(parsed, op)) == "DEQUANTIZE"
                    and subgraph.tensors[int(op.inputs[0])].type == tflite_file.INT4):
                return (f"TFLite Micro's DEQUANTIZE takes no INT4 input (tflite-micro "
                        f"{WHEEL_VERSION}): the 4-bit kernels of a float graph run in LiteRT only")
    return None


def smallest_arena(model: bytes, granularity: int = _ARENA_ALIGNMENT) -> int:
    """The smallest arena (a multiple of `granularity` bytes) the model
    allocates and invokes in, by doubling then bisection. A model that
    fails for another reason (an op the wheel lacks) fails at any size: that
    is an error, not an arena."""
    inputs = zero_inputs(model)
    high = 1 << 16
    while not runs_in(model, high, inputs):
        if high >= _MAX_ARENA:
            make_interpreter(model, _MAX_ARENA)  # raises with TFLM's reason
            raise TFLMError(f"the model does not run even with a {_MAX_ARENA}-byte arena")
        high *= 2
    low = 0  # fails (or is empty)
    while high - low > granularity:
        middle = (low + high) // 2 // granularity * granularity
        if middle <= low:
            break
        if runs_in(model, middle, inputs):
            high = middle
        else:
            low = middle
    return high


_ALLOCATION = re.compile(r"\[RecordingMicroAllocator\] (?:Arena allocation (\w+) (\d+) bytes"
                         r"|'([^']+)' used (\d+) bytes)")


def arena_breakdown(model: bytes, arena_size: int) -> dict:
    """Where the arena goes, from the wheel's own allocation record
    (`print_allocations`, which writes to the C stderr; read in a forked
    child): "head" (activations and scratch, reused between ops), "tail"
    (persistent: per-op data, tensor records, node structs) and the tail's
    parts by name, in bytes."""
    inputs = zero_inputs(model)
    _library()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its stdout and stderr are the pipe
        faulthandler.disable()
        os.close(read_end)
        try:
            interpreter = make_interpreter(model, arena_size, quiet=True)
            for i, value in enumerate(inputs):
                interpreter.set_input(value, i)
            interpreter.invoke()
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            interpreter.print_allocations()
            os._exit(0)
        except BaseException:  # noqa: BLE001 -- reported as no record
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "r", errors="replace") as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        raise TFLMError(f"the model does not run in a {arena_size}-byte arena")
    out: dict = {"parts": {}}
    for match in _ALLOCATION.finditer(text):
        if match.group(1):
            out[match.group(1)] = int(match.group(2))
        else:
            out["parts"][match.group(3)] = int(match.group(4))
    return out


# --- TFLM's own compression: the LUT form --------------------------------

def ternary_tensors(decoded: bytes, kernels: list[int]) -> dict[int, dict]:
    """Tensor index -> {"name", "type", "shape", "quantized_dimension"} of
    each ternary kernel of a graph decoded at load (`kernels`: the indices
    decode_at_load reported, subgraph 0)."""
    model = tflite_file.parse_model(decoded)
    if len(model.subgraphs) != 1:
        raise TFLMError(f"expected one subgraph, the model has {len(model.subgraphs)}")
    subgraph = model.subgraphs[0]
    found = {}
    for index in kernels:
        tensor = subgraph.tensors[index]
        quantization = tensor.quantization
        found[index] = {
            "name": (tensor.name or b"").decode(), "type": int(tensor.type),
            "shape": [int(d) for d in tensor.shape],
            "quantized_dimension": int(quantization.quantizedDimension)
            if quantization is not None and quantization.scale is not None
            and len(quantization.scale) > 1 else None}
    return found


def lut_axis(tensor: dict) -> int | None:
    """None (one table) for float kernels, whose three values are one scale
    times -1, 0, 1; the channel axis for int8 kernels with per-channel
    scales: a single table for per-channel int8 kernels gave wrong outputs in
    TFLM."""
    if tensor["type"] == INT8 and tensor["quantized_dimension"] is not None:
        axis = tensor["quantized_dimension"]
        if axis not in (0, len(tensor["shape"]) - 1):
            raise TFLMError(f"tensor {tensor['name']!r}: per-channel axis {axis} of shape "
                            f"{tensor['shape']} is not one TFLM's DECODE supports (first or last)")
        return axis
    if tensor["type"] not in (FLOAT32, INT8):
        raise TFLMError(f"tensor {tensor['name']!r} has tensor type {tensor['type']}, "
                        "not float32 or int8")
    return None


LUT_INDEX_BITS = 2  # three values need two bits in TFLM's LUT


def lut_compress(packed: bytes, name: str = "model") -> tuple[bytes, dict]:
    """The packed graph rewritten for stock TFLM: each BitTTSTernaryDecode
    replaced by the kernel it decodes to, stored LUT-compressed (2-bit
    indices) and decoded by TFLM's own DECODE op. Returns the model and a
    size summary."""
    from bittts_tf.runtime.decode_at_load import decode_at_load
    check_wheel()
    from tflite_micro.tensorflow.lite.micro.compression import compress as tflm_compress  # the function
    from tflite_micro.tensorflow.lite.micro.compression import spec as tflm_spec
    kernels = []
    decoded = decode_at_load(packed, name, kernels)
    if not kernels:
        raise TFLMError(f"{name}: no {spec.OP_NAME} or {spec.CONV_OP_NAME} op: nothing to compress")
    tensors = ternary_tensors(decoded, kernels)
    specs = []
    for index, tensor in sorted(tensors.items()):
        axis = lut_axis(tensor)
        mode = tflm_spec.PerTensor() if axis is None else tflm_spec.PerChannel(axis=axis)
        specs.append(tflm_spec.Tensor(subgraph=0, tensor=index, compression=[
            tflm_spec.LookUpTableCompression(index_bitwidth=LUT_INDEX_BITS, mode=mode)]))
    # The compressor prints a warning for each table with fewer than four
    # values (all of them: ternary kernels have three), and warns when a
    # kernel of a few dozen weights grows by its tables (the summary counts them).
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Compression of tensor .* resulted in expansion")
        compressed = bytes(tflm_compress(decoded, specs))
    weights = stored = 0
    table_len = 2 ** LUT_INDEX_BITS
    for tensor in tensors.values():
        count = int(np.prod(tensor["shape"]))
        axis = lut_axis(tensor)
        tables = 1 if axis is None else tensor["shape"][axis]
        value_bytes = 1 if tensor["type"] == INT8 else 4
        weights += count
        stored += -(-count * LUT_INDEX_BITS // 8) + tables * table_len * value_bytes
    summary = {"bytes": len(compressed), "ternary_tensors": len(tensors),
               "ternary_weights": weights, "index_bits_per_weight": LUT_INDEX_BITS,
               "stored_bytes_with_tables": stored,
               "bits_per_ternary_weight": round(8 * stored / weights, 4),
               "per_channel_tensors": sum(lut_axis(t) is not None for t in tensors.values())}
    return compressed, summary


# --- TFLM against LiteRT on the runtime's own inputs ----------------------

def output_steps(runner) -> dict[str, float | None]:
    """Each output's quantization step (None for a float output): int8
    outputs come back dequantized, so a difference over its step is in steps;
    raw outputs (states) are codes, whose step is 1."""
    steps = {}
    for name, tensor in runner.output_tensor.items():
        q = runner._parameters(tensor)
        steps[name] = None if q is None else (1.0 if name in runner.raw else float(q[0]))
    return steps


class _Both:
    """Runs one graph in LiteRT and in TFLM on the same inputs, keeps the
    largest difference of each output, and hands LiteRT's outputs on (so the
    runtime's durations and states come from the reference path)."""

    def __init__(self, litert_graph, tflm_graph: Graph, steps: dict[str, float | None]):
        self.litert, self.tflm, self.steps = litert_graph, tflm_graph, steps
        self.max_error = dict.fromkeys(steps, 0.0)
        self.peak = dict.fromkeys(steps, 0.0)
        self.calls = 0

    def zero(self, name: str, shape) -> np.ndarray:
        return self.litert.zero(name, shape)

    def run(self, **inputs):
        expected = self.litert.run(**inputs)
        got = self.tflm.run(**inputs)
        for k, e in expected.items():
            g = got[k]
            if e.shape != g.shape:
                raise TFLMError(f"output {k}: LiteRT shape {e.shape}, TFLM {g.shape}")
            difference = np.abs(e.astype(np.float64) - g.astype(np.float64))
            self.max_error[k] = max(self.max_error[k], float(difference.max(initial=0.0)))
            self.peak[k] = max(self.peak[k], float(np.abs(e.astype(np.float64)).max(initial=0.0)))
        self.calls += 1
        return expected

    def report(self) -> dict:
        return {"invocations": self.calls,
                "outputs": {k: {"max_abs_error": self.max_error[k], "peak": self.peak[k],
                                "step": self.steps[k],
                                "max_error_in_steps": (self.max_error[k] / self.steps[k]
                                                       if self.steps[k] else None)}
                            for k in self.steps}}


class _ReferenceKernels(RunnerGraph):
    """A LiteRT graph on LiteRT's reference kernels (BUILTIN_REF), addressed
    as bittts_tf.runtime's graphs are."""

    def __init__(self, runtime_graph, model: bytes):
        from ai_edge_litert.interpreter import InterpreterWithCustomOps, OpResolverType
        interpreter = InterpreterWithCustomOps(
            model_content=bytes(model), custom_op_registerers=native.litert_registerers(),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
        runner = runtime_graph.runner
        self.runner = GraphRunner(model, interpreter, list(runner.output_index), runner.raw)


LITERT_KERNELS = ("default", "reference")


def compare_with_litert(model_dir: str, variant: str, texts: list[str],
                        arenas: dict[str, int] | None = None, decode: str = "graph",
                        litert_kernels: str = "default",
                        tflm_graphs: dict[str, bytes] | None = None,
                        engine: str = "litert") -> dict:
    """Speaks `texts` with bittts_tf.runtime (LiteRT) while every text-graph
    and frames-graph invocation (every segment, every step of the stream)
    also runs in TFLM; returns the largest output differences per graph.

    `litert_kernels="reference"` runs LiteRT on its reference kernels
    (what TFLM's kernels are ported from) instead of its default optimized
    ones; the runtime's durations still come from the latter.
    `tflm_graphs` gives TFLM other graphs to run (the LUT forms) in place
    of the folder's. `engine="c99"`: the runtime (and so the reference)
    runs on the C99 engine instead of LiteRT."""
    from bittts_tf.runtime import TextToSpeech, model_folder
    if litert_kernels not in LITERT_KERNELS:
        raise ValueError(f"litert_kernels must be one of {LITERT_KERNELS}, got {litert_kernels!r}")
    tts = TextToSpeech(model_dir, variant=variant, decode=decode, engine=engine)
    both = {}
    for graph in model_folder.GRAPHS:
        model = tts.folder.read_graph(graph, variant)
        tflm_model = (tflm_graphs or {}).get(graph, model)
        arena = (arenas or {}).get(graph) or smallest_arena(tflm_model)
        runtime_graph = tts._graph(graph)
        reference = runtime_graph
        if litert_kernels == "reference" and engine == "litert":
            reference = _ReferenceKernels(runtime_graph, model)
        runner = runtime_graph.runner
        both[graph] = _Both(reference, Graph(tflm_model, arena, list(runner.output_index),
                                             runner.raw), output_steps(runner))
        tts._graphs[graph] = both[graph]
    for text in texts:
        tts.synthesize(text)
    return {graph: pair.report() for graph, pair in both.items()}


def tflm_runtime(model_dir: str, variant: str, arenas: dict[str, int] | None = None):
    """A TextToSpeech whose graphs run in TFLM (each in its smallest arena,
    or `arenas`)."""
    from bittts_tf.runtime import TextToSpeech, model_folder
    tts = TextToSpeech(model_dir, variant=variant, decode="graph")
    for graph in model_folder.GRAPHS:
        model = tts.folder.read_graph(graph, variant)
        runner = tts._graph(graph).runner
        arena = (arenas or {}).get(graph) or smallest_arena(model)
        tts._graphs[graph] = Graph(model, arena, list(runner.output_index), runner.raw)
    return tts


def lut_file(graph: str, variant: str) -> str:
    """text.lut.tflite, frames.int8.lut.tflite, ..."""
    from bittts_tf.runtime import model_folder
    return f"{model_folder.graph_key(graph, variant)}.lut.tflite"


def write_lut_graphs(model_dir: str, out_dir: str, texts: list[str]) -> dict:
    """The LUT form of each variant of a model folder ("packed" and, when
    present, "int8"), written to `out_dir` with lut_report.json. With
    texts, each LUT graph is validated in the wheel (no custom op
    registered) on every invocation of speaking them: against the packed
    graph in TFLM (the same kernels, so exactly) and against LiteRT."""
    from bittts_tf import fileio
    from bittts_tf.runtime import model_folder
    folder = model_folder.load(model_dir)
    report, files = {"tflite_micro": WHEEL_VERSION, "variants": {}}, {}
    for variant in ("packed", "int8"):
        if variant not in folder.variants:
            continue
        packed = {g: folder.read_graph(g, variant) for g in model_folder.GRAPHS}
        lut = {g: lut_compress(m, g) for g, m in packed.items()}
        entry = {"graphs": {g: {**summary, "file": lut_file(g, variant),
                                "packed_bytes": len(packed[g])}
                            for g, (_, summary) in lut.items()}}
        files.update({lut_file(g, variant): m for g, (m, _) in lut.items()})
        if texts:
            models = {g: m for g, (m, _) in lut.items()}
            # int8: LiteRT's optimized int8 kernels round differently from
            # its reference ones, which TFLM's are ported from.
            kernels = "reference" if variant == "int8" else "default"
            entry["vs_litert"] = compare_with_litert(model_dir, variant, texts, tflm_graphs=models,
                                                     litert_kernels=kernels)
            entry["vs_litert"]["litert_kernels"] = kernels
            entry["vs_packed_in_tflm"] = compare_packed_in_tflm(packed, models)
        report["variants"][variant] = entry
    os.makedirs(out_dir, exist_ok=True)
    for name, data in files.items():
        fileio.atomic_write_bytes(os.path.join(out_dir, name), data)
    fileio.atomic_write_json(os.path.join(out_dir, "lut_report.json"), report)
    return report


def compare_packed_in_tflm(packed: dict[str, bytes], lut: dict[str, bytes],
                           count: int = 4, seed: int = 0) -> dict:
    """Largest output difference between each packed graph (our kernel) and
    its LUT form (TFLM's DECODE), both in TFLM, on random inputs of the
    graphs' shapes (phoneme ids in range, a full mask)."""
    rng = np.random.default_rng(seed)
    result = {}
    for graph, model in packed.items():
        a = Graph(model, smallest_arena(model))
        b = Graph(lut[graph], smallest_arena(lut[graph]))
        error = 0.0
        for _ in range(count):
            parsed = tflite_file.parse_model(model)
            names = {t: n for n, t in tflite_file.signature_tensors(parsed)[0].items()}
            order = [names[int(i)] for i in parsed.subgraphs[0].inputs]
            inputs = dict(zip(order, zero_inputs(model)))
            tokens = inputs["phonemes"].shape[-1] if "phonemes" in inputs else 1
            feed = {}
            for name, value in inputs.items():
                if name == "length":
                    feed[name] = rng.integers(1, tokens + 1, value.shape).astype(np.int32)
                elif name == "speaker":
                    feed[name] = value
                elif value.dtype == np.int32:
                    feed[name] = rng.integers(1, 40, value.shape).astype(np.int32)
                elif name == "mask":
                    feed[name] = np.ones(value.shape, np.float32)
                else:
                    feed[name] = rng.normal(0, 1, value.shape).astype(np.float32)
            got_a, got_b = a.run(**feed), b.run(**feed)
            error = max(error, *(float(np.abs(got_a[k].astype(np.float64)
                                              - got_b[k].astype(np.float64)).max())
                                 for k in got_a))
        result[graph] = {"inputs": count, "max_abs_error": error}
    return result
