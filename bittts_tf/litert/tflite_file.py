"""Reading and checking .tflite files, and the few facts of TFLite's schema
the rest of the package asks about: tensor type codes, which operator codes
are our custom ops, and the names a signature gives tensors."""

from __future__ import annotations

import functools
import pathlib

from bittts_tf.quant import spec

TFLITE_IDENTIFIER = b"TFL3"

# schema.TensorType codes, spelled out so that reading a model needs no
# schema import (the schema only ever adds codes; a test compares them).
FLOAT32, INT32, UINT8, INT64, INT8, INT4 = 0, 2, 3, 4, 9, 17
# A flatbuffer starts with a 4-byte root offset, then the file identifier.
_MIN_SIZE = 8


class TFLiteFileError(ValueError):
    """A file that is not a readable TFLite model; the message names the file."""


def check_tflite_bytes(data: bytes, name: str = "<bytes>") -> None:
    if len(data) < _MIN_SIZE:
        raise TFLiteFileError(f"{name}: not a TFLite model ({len(data)} bytes, too short)")
    if data[4:8] != TFLITE_IDENTIFIER:
        raise TFLiteFileError(
            f"{name}: not a TFLite model (file identifier {data[4:8]!r}, expected {TFLITE_IDENTIFIER!r})")
    root = int.from_bytes(data[0:4], "little")
    if root >= len(data):
        raise TFLiteFileError(f"{name}: truncated TFLite model (root table at {root}, file has {len(data)} bytes)")


def parse_model(data: bytes, name: str = "<bytes>"):
    """The flatbuffer as a mutable `ModelT`; a clear error for a broken file."""
    check_tflite_bytes(data, name)
    from ai_edge_litert.tools import flatbuffer_utils
    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    except Exception as error:  # the generated parser raises whatever it hits
        raise TFLiteFileError(f"{name}: truncated or corrupt TFLite model ({type(error).__name__}: {error})") from None
    if not model.subgraphs:
        raise TFLiteFileError(f"{name}: TFLite model has no subgraphs")
    _check_buffers_in_file(model, len(data), name)
    _check_references(model, name)
    return model


# Operand positions where TFLite writes -1 for "no tensor" (an absent bias);
# anywhere else a -1 reaches kernels that dereference it: LiteRT 2.3.0's MUL
# crashed with SIGSEGV on a graph whose operand was set to -1
# (tools/fuzz_model_folder.py).
_OPTIONAL_OPERANDS = {"CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "FULLY_CONNECTED": (2,),
                      "TRANSPOSE_CONV": (3,)}


# What the ops of the exported graphs read: their options record (by the
# schema's BuiltinOptions name) and how many inputs. An interpreter trusts
# both: a MUL turned into a STRIDED_SLICE (2 inputs where 4 are read, a
# MulOptions record read as StridedSliceOptions) crashed LiteRT with
# SIGSEGV (tools/fuzz_model_folder.py). Ops not listed are not checked.
_OP_RECORDS = {
    "CONV_2D": ("Conv2DOptions", (2, 3)), "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", (2, 3)),
    "FULLY_CONNECTED": ("FullyConnectedOptions", (2, 3)),
    "TRANSPOSE_CONV": ("TransposeConvOptions", (3, 4)),
    "BATCH_MATMUL": ("BatchMatMulOptions", (2,)), "ADD": ("AddOptions", (2,)),
    "SUB": ("SubOptions", (2,)), "MUL": ("MulOptions", (2,)),
    "SQUARED_DIFFERENCE": ("SquaredDifferenceOptions", (2,)), "MEAN": ("ReducerOptions", (2,)),
    "SUM": ("ReducerOptions", (2,)), "STRIDED_SLICE": ("StridedSliceOptions", (4,)),
    "CONCATENATION": ("ConcatenationOptions", None), "RESHAPE": ("ReshapeOptions", (1, 2)),
    "GATHER": ("GatherOptions", (2,)), "SQUEEZE": ("SqueezeOptions", (1,)),
    "EXPAND_DIMS": ("ExpandDimsOptions", (2,)), "TRANSPOSE": ("TransposeOptions", (2,)),
    "PAD": ("PadOptions", (2, 3)), "CAST": ("CastOptions", (1,)),
    "MAXIMUM": ("MaximumMinimumOptions", (2,)), "MINIMUM": ("MaximumMinimumOptions", (2,)),
    "RSQRT": (None, (1,)), "LOGISTIC": (None, (1,)), "RELU": (None, (1,)),
    "QUANTIZE": ("QuantizeOptions", (1,)), "DEQUANTIZE": ("DequantizeOptions", (1,)),
}


@functools.cache
def _options_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}


def _check_record(op_name: str, op, where: str, o: int) -> None:
    expected = _OP_RECORDS.get(op_name)
    if expected is None:
        return
    options, counts = expected
    got = _options_names().get(int(op.builtinOptionsType or 0), "?")
    if got != "NONE" and options is not None and got != options:
        raise TFLiteFileError(f"{where}: operator {o} ({op_name}) carries {got}, not {options}")
    n = len(op.inputs) if op.inputs is not None else 0
    if (counts is None and n < 1) or (counts is not None and n not in counts):
        raise TFLiteFileError(f"{where}: operator {o} ({op_name}) has {n} inputs, not "
                              f"{' or '.join(map(str, counts or (1,)))}")


def _check_references(model, name: str) -> None:
    """Every index the graph holds (operator codes, tensors, buffers) points
    at something that exists: interpreters trust them."""
    names = builtin_names()
    n_codes, n_buffers = len(model.operatorCodes or []), len(model.buffers or [])
    for s, subgraph in enumerate(model.subgraphs):
        tensors = subgraph.tensors or []
        where = f"{name}: subgraph {s}"
        for t, tensor in enumerate(tensors):
            if not 0 <= tensor.buffer < max(n_buffers, 1):
                raise TFLiteFileError(f"{where}: tensor {t} names buffer {tensor.buffer} of "
                                      f"{n_buffers}")
        for what, indices in (("input", subgraph.inputs), ("output", subgraph.outputs)):
            bad = [int(i) for i in (indices if indices is not None else []) if not 0 <= i < len(tensors)]
            if bad:
                raise TFLiteFileError(f"{where}: graph {what} tensor {bad[0]} of {len(tensors)}")
        for o, op in enumerate(subgraph.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise TFLiteFileError(f"{where}: operator {o} has operator code {op.opcodeIndex} "
                                      f"of {n_codes}")
            op_name = names.get(builtin_code(model, op), "?")
            _check_record(op_name, op, where, o)
            optional = _OPTIONAL_OPERANDS.get(op_name, ())
            for position, index in enumerate(op.inputs if op.inputs is not None else []):
                if not (0 <= index < len(tensors) or (index == -1 and position in optional)):
                    raise TFLiteFileError(f"{where}: operator {o} ({op_name}) input {position} "
                                          f"is tensor {index} of {len(tensors)}")
            for index in (op.outputs if op.outputs is not None else []):
                if not 0 <= index < len(tensors):
                    raise TFLiteFileError(f"{where}: operator {o} ({op_name}) output is tensor "
                                          f"{index} of {len(tensors)}")


def _check_buffers_in_file(model, size: int, name: str) -> None:
    # Large models keep buffers past the flatbuffer, addressed by offset.
    for index, buffer in enumerate(model.buffers or []):
        offset = getattr(buffer, "offset", 0) or 0
        length = getattr(buffer, "size", 0) or 0
        if offset > 1 and offset + length > size:
            raise TFLiteFileError(f"{name}: truncated TFLite model (buffer {index} ends past the file)")


def read_tflite(path) -> bytes:
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TFLiteFileError(f"{path}: cannot read ({error.strerror})") from None
    parse_model(data, str(path))
    return data


def serialize_model(model) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def builtin_code(model, op) -> int:
    """The builtin operator code of `op`: schema v3 files keep codes < 127 in
    deprecatedBuiltinCode, newer ones in builtinCode; the larger is the real one."""
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


@functools.cache
def builtin_names() -> dict[int, str]:
    """Builtin operator code -> its schema name (CONV_2D, ...)."""
    from ai_edge_litert import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


@functools.cache
def type_names() -> dict[int, str]:
    """Tensor type code -> its lower-case schema name (float32, int8, ...)."""
    from ai_edge_litert import schema_py_generated as schema
    return {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def custom_opcodes(model, op_name: str = spec.OP_NAME) -> set[int]:
    """The indices of the operator codes of custom op `op_name`, by default
    our decode op BitTTSTernaryDecode. Compared as bytes: a damaged name is
    simply not ours."""
    wanted = op_name.encode()
    return {i for i, code in enumerate(model.operatorCodes or [])
            if code.customCode is not None and bytes(code.customCode) == wanted}


def signature_input_name(detail_name: str) -> str:
    """An interpreter's input detail name ("serving_default_phonemes:0") as
    the exported function named the input ("phonemes")."""
    return detail_name.removeprefix("serving_default_").split(":")[0]


def signature_tensors(model) -> tuple[dict[str, int], list[int]]:
    """(input name -> tensor index, output tensor indices in the exported
    function's order) from the first signature. A tf.function's dict of
    outputs is flattened in sorted key order and named output_0, output_1,
    ...; the subgraph's own output list and its "PartitionedCall:<i>" names
    may follow another order (seen with 18 outputs)."""
    if not model.signatureDefs:
        raise TFLiteFileError("the model has no signature")
    signature = model.signatureDefs[0]
    inputs = {t.name.decode(): int(t.tensorIndex) for t in signature.inputs}
    numbered = {}
    for t in signature.outputs:
        name = t.name.decode()
        if not (name.startswith("output_") and name[7:].isdigit()):
            raise TFLiteFileError(f"signature output {name!r} is not output_<i>")
        numbered[int(name[7:])] = int(t.tensorIndex)
    if sorted(numbered) != list(range(len(numbered))):
        raise TFLiteFileError("signature outputs are not output_0 .. output_<n-1>")
    return inputs, [numbered[i] for i in range(len(numbered))]


def graph_ops(model) -> tuple[list[str], list[str]]:
    """(builtin op names, custom op codes) the graph's operators use."""
    names = builtin_names()
    builtins, customs = set(), set()
    for op in (op for sg in model.subgraphs for op in sg.operators):
        builtin = builtin_code(model, op)
        if names.get(builtin) == "CUSTOM":
            code = model.operatorCodes[op.opcodeIndex]
            customs.add(bytes(code.customCode).decode("utf-8", "replace"))
        else:
            builtins.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(builtins), sorted(customs)


def strip_tensor_names(data: bytes, name: str = "<bytes>") -> bytes:
    """The model with every tensor name emptied except those of the graph's
    inputs and outputs. Names are for people: interpreters find tensors by
    index and signature. The converter's names ("add_63;depthwise_7;...")
    were 22 KB of the shipped voice's int8 text graph and 7 KB of its frames
    graph, 4% of the flash budget."""
    model = parse_model(data, name)
    for subgraph in model.subgraphs:
        keep = {int(i) for i in list(subgraph.inputs) + list(subgraph.outputs)}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep:
                tensor.name = b""
    return serialize_model(model)
