"""The engine's blob format and op set: the single source of truth for
Python (bittts_tf.engine.blob writes blobs, bittts_tf.engine.native reads
results) and C (`firmware_stub/bittts_engine_spec.h` is generated from this
module: `python -m bittts_tf.engine.spec --write-header`; a test fails when
the committed header and this module disagree).

Each op's parameter words (int32; a float32 value as its bits) are named by
the lowering module that writes them (`PARAMS` in lower_*.py); the header
gives each name its index, so C reads `params[BITTTS_ENGINE_P_ADD_...]`.
"""

from __future__ import annotations

import importlib
import pathlib
import struct

from bittts_tf import header_cli

HEADER_PATH = pathlib.Path(__file__).resolve().parents[2] / "firmware_stub" / "bittts_engine_spec.h"

MAGIC = b"BTTE"
VERSION = 1
MAX_RANK = 4
# The most inputs (and outputs, scratch included) one op has: CONCATENATION of
# the frames graph's state and new frames takes 2; STRIDED_SLICE 4.
MAX_OP_INPUTS = 8
MAX_OP_OUTPUTS = 2

# The blob (bittts_tf.engine.blob writes it; bittts_engine.c reads it): the
# header's uint32 words in this order, then fixed-size tensor and op records.
HEADER_FIELDS = ("magic", "version", "total_bytes", "crc32", "header_bytes", "n_tensors",
                 "n_ops", "n_inputs", "n_outputs", "arena_bytes", "tensors_offset",
                 "ops_offset", "io_offset", "params_offset", "n_params", "data_offset",
                 "data_bytes", "outputs_end", "reserved_1", "reserved_2")
# Tensor record: uint8 type, rank, storage; int8 zero point; uint16
# dims[MAX_RANK] (1 past the rank); uint32 offset; float32 scale (an int8
# tensor with one scale: its parameters, else 0, 0). 20 bytes: the shipped
# voice's 723 records took 28.9 KB of flash at 40 bytes (int32 dims, a byte
# count, an int32 zero point), 14.5 KB more than now, which the M4 image did
# not have under its 512 KB.
TENSOR_BYTES = 4 + 2 * MAX_RANK + 8
MAX_DIM = 0xFFFF
# Graph input / output record: uint16 tensor id, uint16 0, the name in
# IO_NAME_BYTES bytes (NUL-padded, at most IO_NAME_BYTES - 1 characters).
IO_NAME_BYTES = 16
IO_BYTES = 4 + IO_NAME_BYTES
# Op record: uint16 opcode; uint8 input count, output count; uint32 first
# parameter word, parameter count; uint16 tensor ids, MAX_OP_INPUTS inputs
# then MAX_OP_OUTPUTS outputs (ABSENT where none).
OP_BYTES = 12 + 2 * (MAX_OP_INPUTS + MAX_OP_OUTPUTS)
ABSENT = 0xFFFF
STORAGE_ARENA, STORAGE_CONST = 0, 1
# Every section and constant tensor starts on this boundary (and so must the
# blob in memory, and the arena): int32 and float32 data are read in place.
ALIGN = 8

TYPES = {"float32": 1, "int8": 2, "int32": 3, "bool": 4}
TYPE_BYTES = {"float32": 4, "int8": 1, "int32": 4, "bool": 1}

# The ops of the voice's int8 graphs (text: 15 kinds, frames: 12), numbered
# for the blob; a number is never reused.
OPCODES = {
    "ADD": 1, "SUB": 2, "MUL": 3, "SQUARED_DIFFERENCE": 4, "RSQRT": 5, "LOGISTIC": 6,
    "MEAN": 7, "CONV_2D": 8, "DEPTHWISE_CONV_2D": 9, "TERNARY_CONV": 10, "RESHAPE": 11,
    "STRIDED_SLICE": 12, "CONCATENATION": 13, "GATHER": 14, "QUANTIZE": 15,
    "DEQUANTIZE": 16, "NEG": 17, "CAST": 18, "LESS": 19,
}

STATUSES = (
    ("OK", "ok"),
    ("ERR_NULL", "a required pointer is NULL"),
    ("ERR_SIZE", "a buffer is too small or a shape does not match"),
    ("ERR_INDEX", "an index or a packed byte is out of range"),
    ("ERR_PARAM", "an op's parameters are out of range"),
    ("ERR_BLOB", "the blob is truncated or corrupt"),
    ("ERR_VERSION", "the blob's format version is not this engine's"),
    ("ERR_CRC", "the blob's CRC-32 does not match its bytes"),
    ("ERR_UNSUPPORTED", "an op or type this engine does not run"),
)

_LOWERING_MODULES = ("bittts_tf.engine.lower_arith", "bittts_tf.engine.lower_conv",
                     "bittts_tf.engine.lower_data")


def float_word(value: float) -> int:
    """A float32 value as the int32 word that holds its bits."""
    return struct.unpack("<i", struct.pack("<f", float(value)))[0]


def word_float(word: int) -> float:
    return struct.unpack("<f", struct.pack("<i", int(word)))[0]


def _lowering_tables(attribute: str):
    """(module name, its `attribute` table) of each lowering module there is."""
    for module_name in _LOWERING_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        yield module_name, getattr(module, attribute, {})


def params() -> dict[str, tuple[str, ...]]:
    """Opcode name -> its parameter words' names, from the lowering modules."""
    table: dict[str, tuple[str, ...]] = {}
    for module_name, entries in _lowering_tables("PARAMS"):
        for opcode, names in entries.items():
            if opcode not in OPCODES or opcode in table:
                raise ValueError(f"{module_name}: PARAMS names {opcode!r} twice or unknown")
            table[opcode] = tuple(names)
    return table


def const_inputs() -> dict[str, tuple[int, ...]]:
    """Opcode name -> the inputs its check reads and its eval trusts, which
    the blob must hold as constants (`CONST_INPUTS` in lower_*.py)."""
    table: dict[str, tuple[int, ...]] = {}
    for module_name, entries in _lowering_tables("CONST_INPUTS"):
        for opcode, inputs in entries.items():
            if opcode not in OPCODES or opcode in table or not all(
                    0 <= k < MAX_OP_INPUTS for k in inputs):
                raise ValueError(f"{module_name}: CONST_INPUTS names {opcode!r} twice or unknown, "
                                 f"or an input outside 0..{MAX_OP_INPUTS - 1}")
            table[opcode] = tuple(inputs)
    return table


def lowerings() -> dict:
    """Graph op name (builtin or custom code) -> its lowering function."""
    table = {}
    for module_name, entries in _lowering_tables("LOWER"):
        for op_name, function in entries.items():
            if op_name in table:
                raise ValueError(f"{module_name}: LOWER names {op_name!r} twice")
            table[op_name] = function
    return table


def c_header() -> str:
    lines = [
        "/* Generated by bittts_tf/engine/spec.py (python -m bittts_tf.engine.spec",
        " * --write-header); edit that module, not this file. */",
        "#ifndef BITTTS_ENGINE_SPEC_H_",
        "#define BITTTS_ENGINE_SPEC_H_",
        "",
        f"#define BITTTS_ENGINE_MAGIC \"{MAGIC.decode()}\"",
        f"#define BITTTS_ENGINE_VERSION {VERSION}",
        f"#define BITTTS_ENGINE_MAX_RANK {MAX_RANK}",
        f"#define BITTTS_ENGINE_MAX_OP_INPUTS {MAX_OP_INPUTS}",
        f"#define BITTTS_ENGINE_MAX_OP_OUTPUTS {MAX_OP_OUTPUTS}",
        f"#define BITTTS_ENGINE_TENSOR_BYTES {TENSOR_BYTES}",
        f"#define BITTTS_ENGINE_OP_BYTES {OP_BYTES}",
        f"#define BITTTS_ENGINE_IO_BYTES {IO_BYTES}",
        f"#define BITTTS_ENGINE_IO_NAME_BYTES {IO_NAME_BYTES}",
        f"#define BITTTS_ENGINE_ABSENT {ABSENT}",
        f"#define BITTTS_ENGINE_STORAGE_ARENA {STORAGE_ARENA}",
        f"#define BITTTS_ENGINE_STORAGE_CONST {STORAGE_CONST}",
        f"#define BITTTS_ENGINE_ALIGN {ALIGN}",
        f"#define BITTTS_ENGINE_HEADER_WORDS {len(HEADER_FIELDS)}",
        "",
    ]
    lines += [f"#define BITTTS_ENGINE_H_{name.upper()} {k}" for k, name in enumerate(HEADER_FIELDS)]
    lines += [""]
    lines += [f"#define BITTTS_ENGINE_TYPE_{name.upper()} {code}" for name, code in TYPES.items()]
    lines += [""] + [f"#define BITTTS_ENGINE_OP_{name} {code}" for name, code in OPCODES.items()]
    lines += ["", "typedef enum {"]
    lines += [f"  BITTTS_ENGINE_{name} = {k},  /* {text} */" for k, (name, text) in enumerate(STATUSES)]
    lines += ["} bittts_engine_status;", ""]
    lines += ["#define BITTTS_ENGINE_STATUS_MESSAGES \\"]
    lines += [f"  \"{text}\", \\" for _, text in STATUSES]
    lines += ["", "/* Parameter words of each op (params[...]) and their count. */"]
    for opcode, names in params().items():
        for k, name in enumerate(names):
            lines.append(f"#define BITTTS_ENGINE_P_{opcode}_{name.upper()} {k}")
        lines.append(f"#define BITTTS_ENGINE_P_{opcode}_COUNT {len(names)}")
    constants = const_inputs()
    lines += ["", "/* Each op's inputs that must be constants of the blob (bit k: input k). */"]
    for opcode in OPCODES:
        mask = sum(1 << k for k in constants.get(opcode, ()))
        lines.append(f"#define BITTTS_ENGINE_CONST_INPUTS_{opcode} 0x{mask:02x}u")
    lines += ["", "#endif  /* BITTTS_ENGINE_SPEC_H_ */", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    return header_cli.main(__doc__.splitlines()[0], HEADER_PATH, c_header, argv)


if __name__ == "__main__":
    raise SystemExit(main())
