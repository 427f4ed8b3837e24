"""Reading and checking .tflite files."""

from __future__ import annotations

import functools
import pathlib

TFLITE_IDENTIFIER = b"TFL3"
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
    return model


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
