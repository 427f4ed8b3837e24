"""The packed-ternary format shared by Python and C: the single source of truth.

`tflite/bittts_spec.h` is generated from this module (`python -m
bittts_tf.quant.spec --write-header`); a test fails when the committed header
and this module disagree.

Format version 2 (balanced ternary). The ternary codes t in {-1, 0, +1} of one
weight tensor are flattened in C order of the layout the consuming TFLite op
reads (so decoding needs no transpose). Group g holds weights 5g .. 5g+4 and is
stored as one int8

    byte_g = sum_k t[5g + k] * 3**k        (k = 0..4, weight 5g first)

so bytes range over -121..121 (3**5 = 243 patterns) and negating the five
weights negates the byte; -128..-122 and 122..127 are invalid. The last group
of a tensor whose size is not a multiple of 5 is padded with zero weights;
decoders ignore the padding. A tensor of n weights takes ceil(n / 5) bytes plus
one float32 scale.

Version 1 stored the unsigned byte sum_k (t_k + 1) * 3**k (0..242), which is
byte_g + 121: decoders add INDEX_OFFSET and reuse the unsigned digit tricks.
"""

from __future__ import annotations

import itertools
import pathlib

import numpy as np

from bittts_tf import header_cli

FORMAT_VERSION = 2
OP_NAME = "BitTTSTernaryDecode"
REGISTERER_SYMBOL = "BitTTS_RegisterOps"
# The tflite-micro wheel's Python interpreter calls registerers by name too.
TFLM_REGISTERER_SYMBOL = "BitTTS_RegisterTFLMOps"
# The runtimes whose ABI tflite/litert_abi.h and tflite/tflm_wheel_abi declare
# (pinned in requirements.lock); the C layout guards name them when they refuse.
LITERT_VERSION = "2.3.0"
TFLM_WHEEL_VERSION = "0.dev20260930204519"
TRITS_PER_BYTE = 5
NUM_PATTERNS = 3**TRITS_PER_BYTE  # 243
MAX_INDEX = (NUM_PATTERNS - 1) // 2  # 121
MIN_INDEX = -MAX_INDEX
INDEX_OFFSET = MAX_INDEX  # byte + INDEX_OFFSET is the unsigned base-3 number of digits t + 1
PADDING_TRIT = 0
SCALE_BYTES = 4  # one float32 scale per tensor

# Division-free digit extraction: with u = byte + INDEX_OFFSET,
# q = ceil(u * 256 / 243) puts the base-3 number in a uint8 as a fraction of
# 256, and digit 4 - k of u is ((uint8)(q * 3**k) * 3) >> 8. q itself is one
# multiply-add-shift, q = (byte * PRESCALE_MUL + PRESCALE_ADD) >> PRESCALE_SHIFT,
# exact for every valid byte (found by a brute-force search; see
# prescale_is_exact, which a test runs).
PRESCALE_MUL = 8631
PRESCALE_ADD = INDEX_OFFSET * PRESCALE_MUL + 8043
PRESCALE_SHIFT = 13

HEADER_PATH = pathlib.Path(__file__).resolve().parents[2] / "tflite" / "bittts_spec.h"

# The fused op BitTTSTernaryConv (tflite/bittts_ternary_conv.h): a 1-D CONV_2D
# that reads the packed kernel itself, so no decoded kernel sits in the arena.
# Inputs: activations, packed int8 indices, float32 scale, optional bias. Its
# op version is the packed format's, as the decode op's; its custom options
# are a FlexBuffer typed vector of CONV_OPTION_NAMES as uint32 (32-bit
# elements, 1-byte root: CONV_OPTIONS_BYTES bytes exactly, which the C parser
# checks, so a layout change needs a new length or version).
CONV_OP_NAME = "BitTTSTernaryConv"
CONV_OP_VERSION = FORMAT_VERSION
CONV_OPTION_NAMES = ("kernel_size", "stride", "dilation", "padding", "activation")
CONV_PADDING_SAME, CONV_PADDING_VALID = 0, 1  # the schema's Padding values
# The schema's ActivationFunctionType values the op fuses.
CONV_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
CONV_MAX_OPTION = 65535  # kernel size, stride and dilation
# K * Cin at most: the int8 accumulator sums K * Cin products of at most 255,
# and 255 * 2^22 < 2^31 keeps it exact in int32.
CONV_MAX_ROW = 1 << 22
_FLEX_VECTOR_UINT, _FLEX_BIT_WIDTH_32 = 12, 2  # FlexBuffers type and width codes
CONV_OPTIONS_TYPE_BYTE = (_FLEX_VECTOR_UINT << 2) | _FLEX_BIT_WIDTH_32
CONV_OPTIONS_BYTES = 4 * (1 + len(CONV_OPTION_NAMES)) + 3


def trit_table() -> np.ndarray:
    """[243, 5] int8: row byte + INDEX_OFFSET holds the weights of that byte."""
    table = np.zeros((NUM_PATTERNS, TRITS_PER_BYTE), np.int8)
    for trits in itertools.product((-1, 0, 1), repeat=TRITS_PER_BYTE):
        value = sum(t * 3**k for k, t in enumerate(trits))
        table[value + INDEX_OFFSET] = trits
    return table


def prescaled(byte: int) -> int:
    return (byte * PRESCALE_MUL + PRESCALE_ADD) >> PRESCALE_SHIFT


def prescale_is_exact() -> bool:
    """Whether the multiply-add-shift equals ceil(u * 256 / 243) on every valid byte
    and the digit extraction from it returns the trit table."""
    table = trit_table()
    for byte in range(MIN_INDEX, MAX_INDEX + 1):
        u = byte + INDEX_OFFSET
        q = prescaled(byte)
        if q != -(-u * 256 // NUM_PATTERNS) or not 0 <= q <= 255:
            return False
        digits = [(((q * 3**k) & 0xFF) * 3) >> 8 for k in range(TRITS_PER_BYTE)]
        if [d - 1 for d in reversed(digits)] != table[u].tolist():
            return False
    return True


def conv_options(kernel_size: int, stride: int = 1, dilation: int = 1,
                 padding: int = CONV_PADDING_VALID, activation: int = 0) -> bytes:
    """The custom options of a BitTTSTernaryConv op (see CONV_OPTION_NAMES)."""
    values = [kernel_size, stride, dilation, padding, activation]
    if not all(1 <= v <= CONV_MAX_OPTION for v in values[:3]):
        raise ValueError(f"kernel size, stride and dilation must be in 1..{CONV_MAX_OPTION}, "
                         f"got {values[:3]}")
    if padding not in (CONV_PADDING_SAME, CONV_PADDING_VALID):
        raise ValueError(f"padding {padding} is not SAME ({CONV_PADDING_SAME}) or VALID "
                         f"({CONV_PADDING_VALID})")
    if activation not in CONV_ACTIVATIONS.values():
        raise ValueError(f"activation {activation} is not one of {CONV_ACTIVATIONS}")
    vector = np.asarray([len(values), *values], "<u4").tobytes()
    # The root: the vector's offset back from the root byte, its type, 1-byte root width.
    return vector + bytes([len(values) * 4, CONV_OPTIONS_TYPE_BYTE, 1])


def parse_conv_options(data: bytes) -> dict:
    """conv_options read back (a ValueError for any other layout)."""
    data = bytes(data)
    if (len(data) != CONV_OPTIONS_BYTES or data[-1] != 1 or data[-2] != CONV_OPTIONS_TYPE_BYTE
            or data[-3] != 4 * len(CONV_OPTION_NAMES)):
        raise ValueError(f"not {CONV_OP_NAME} options: {data.hex()}")
    count, *values = np.frombuffer(data[:-3], "<u4").tolist()
    if count != len(CONV_OPTION_NAMES):
        raise ValueError(f"{CONV_OP_NAME} options hold {count} values, not "
                         f"{len(CONV_OPTION_NAMES)}")
    return dict(zip(CONV_OPTION_NAMES, values))


def c_header() -> str:
    rows = ",\n".join(
        f"    /* {value:4d} */ {{" + ", ".join(f"{v:2d}" for v in row) + "}"
        for value, row in zip(range(MIN_INDEX, MAX_INDEX + 1), trit_table())
    )
    option_indices = "\n".join(f"#define BITTTS_CONV_OPTION_{name.upper()} {i}"
                               for i, name in enumerate(CONV_OPTION_NAMES))
    activations = "\n".join(f"#define BITTTS_CONV_ACT_{name} {value}"
                            for name, value in CONV_ACTIVATIONS.items())
    return f"""/* Generated by `python -m bittts_tf.quant.spec --write-header`. Do not edit:
 * bittts_tf/quant/spec.py is the source of truth and a test checks they agree. */
#ifndef BITTTS_SPEC_H_
#define BITTTS_SPEC_H_

#include <stdint.h>

#define BITTTS_FORMAT_VERSION {FORMAT_VERSION}
#define BITTTS_OP_NAME "{OP_NAME}"
#define BITTTS_REGISTERER_SYMBOL {REGISTERER_SYMBOL}
#define BITTTS_TFLM_REGISTERER_SYMBOL {TFLM_REGISTERER_SYMBOL}
#define BITTTS_PINNED_RUNTIMES_TEXT "ai-edge-litert {LITERT_VERSION}, tflite-micro {TFLM_WHEEL_VERSION}"
#define BITTTS_TRITS_PER_BYTE {TRITS_PER_BYTE}
#define BITTTS_NUM_PATTERNS {NUM_PATTERNS}
#define BITTTS_MIN_INDEX ({MIN_INDEX})
#define BITTTS_MAX_INDEX {MAX_INDEX}
#define BITTTS_INDEX_OFFSET {INDEX_OFFSET}
#define BITTTS_INDEX_RANGE_TEXT "{MIN_INDEX}..{MAX_INDEX}"
#define BITTTS_PRESCALE_MUL {PRESCALE_MUL}
#define BITTTS_PRESCALE_ADD {PRESCALE_ADD}
#define BITTTS_PRESCALE_SHIFT {PRESCALE_SHIFT}

/* The fused op BitTTSTernaryConv and its custom options (spec.py CONV_*). */
#define BITTTS_CONV_OP_NAME "{CONV_OP_NAME}"
#define BITTTS_CONV_OP_VERSION {CONV_OP_VERSION}
#define BITTTS_CONV_OPTION_COUNT {len(CONV_OPTION_NAMES)}
{option_indices}
#define BITTTS_CONV_OPTIONS_TYPE_BYTE {CONV_OPTIONS_TYPE_BYTE}
#define BITTTS_CONV_OPTIONS_BYTES {CONV_OPTIONS_BYTES}
#define BITTTS_CONV_MAX_OPTION {CONV_MAX_OPTION}
#define BITTTS_CONV_MAX_ROW {CONV_MAX_ROW}
#define BITTTS_CONV_PADDING_SAME {CONV_PADDING_SAME}
#define BITTTS_CONV_PADDING_VALID {CONV_PADDING_VALID}
{activations}

/* BITTTS_TRIT_TABLE[byte + BITTTS_INDEX_OFFSET][k] is weight k (in -1..1) of a
 * packed int8 byte in BITTTS_MIN_INDEX..BITTTS_MAX_INDEX. */
static const int8_t BITTTS_TRIT_TABLE[BITTTS_NUM_PATTERNS][BITTTS_TRITS_PER_BYTE] = {{
{rows}
}};

#endif  /* BITTTS_SPEC_H_ */
"""


def main(argv=None) -> int:
    return header_cli.main(__doc__.splitlines()[0], HEADER_PATH, c_header, argv)


if __name__ == "__main__":
    raise SystemExit(main())
