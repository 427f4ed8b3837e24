"""Weight indexing: 5 ternary weights in one int8 (see `spec` for the layout);
and 4-bit weights 2 in a byte, in TFLite's own INT4 tensor layout."""

from __future__ import annotations

import dataclasses

import numpy as np

from bittts_tf.quant import bits, spec

_TRIT_TABLE = spec.trit_table()
_DIGIT_WEIGHTS = (3 ** np.arange(spec.TRITS_PER_BYTE)).astype(np.int32)


class PackingError(ValueError):
    """Raised for packed data that cannot be decoded."""


class _PackedWeights:
    """What a packed tensor costs: its stored bytes (`payload`) plus one
    float32 scale, for the weights of its shape."""

    @property
    def num_weights(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return int(self.payload.size) + spec.SCALE_BYTES

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / max(self.num_weights, 1)


@dataclasses.dataclass(frozen=True)
class PackedTernary(_PackedWeights):
    """One ternary tensor packed for storage: indices, scale and shape."""

    indices: np.ndarray  # int8 [ceil(n / 5)], balanced ternary (format version 2)
    scale: float
    shape: tuple[int, ...]

    @property
    def payload(self) -> np.ndarray:
        return self.indices


def packed_size(num_weights: int) -> int:
    """Bytes of indices for `num_weights` ternary weights."""
    return -(-int(num_weights) // spec.TRITS_PER_BYTE)


def encode(codes: np.ndarray) -> np.ndarray:
    """Packs ternary codes (any shape, values in {-1, 0, 1}) into int8 indices."""
    codes = np.asarray(codes)
    flat = codes.reshape(-1)
    if flat.size and not np.isin(flat, (-1, 0, 1)).all():
        bad = flat[~np.isin(flat, (-1, 0, 1))][0]
        raise PackingError(f"ternary codes must be -1, 0 or 1; found {bad!r}")
    pad = packed_size(flat.size) * spec.TRITS_PER_BYTE - flat.size
    trits = np.concatenate(
        [flat.astype(np.int32), np.full(pad, spec.PADDING_TRIT, np.int32)])
    groups = trits.reshape(-1, spec.TRITS_PER_BYTE)
    return (groups @ _DIGIT_WEIGHTS).astype(np.int8)


def decode(indices: np.ndarray, num_weights: int) -> np.ndarray:
    """Unpacks int8 indices into `num_weights` int8 codes (table look-up, no division)."""
    indices = np.asarray(indices)
    if indices.dtype != np.int8 or indices.ndim != 1:
        raise PackingError(
            f"packed indices must be a 1-D int8 array (format version {spec.FORMAT_VERSION}), "
            f"got {indices.dtype} {indices.shape}")
    if indices.size != packed_size(num_weights):
        raise PackingError(
            f"{num_weights} weights need {packed_size(num_weights)} packed bytes, "
            f"got {indices.size}")
    invalid = np.abs(indices.astype(np.int16)) > spec.MAX_INDEX
    if invalid.any():
        where = int(np.argmax(invalid))
        raise PackingError(
            f"packed byte {where} is {int(indices[where])}, outside "
            f"{spec.MIN_INDEX}..{spec.MAX_INDEX}")
    rows = indices.astype(np.intp) + spec.INDEX_OFFSET
    return _TRIT_TABLE[rows].reshape(-1)[:num_weights]


def pack(codes: np.ndarray, scale: float) -> PackedTernary:
    codes = np.asarray(codes)
    return PackedTernary(encode(codes), float(scale), tuple(int(d) for d in codes.shape))


def unpack(packed: PackedTernary) -> np.ndarray:
    """float32 weights of `packed` in its stored shape."""
    codes = decode(packed.indices, packed.num_weights)
    return (codes.astype(np.float32) * np.float32(packed.scale)).reshape(packed.shape)


# --- 4-bit weights ----------------------------------------------------------
# The symmetric 4-bit quantizer's codes are -7..7 (`bits.uniform_levels(4)`).
# They are stored as TFLite stores an INT4 tensor (schema TensorType INT4):
# two's-complement nibbles, two weights a byte, weight 2i in the low nibble
# and 2i + 1 in the high one, an odd count's last high nibble zero. LiteRT
# 2.3.0 and the tflite-micro wheel read that layout in their own kernels (an
# int8 CONV_2D's filter; LiteRT's DEQUANTIZE too), so it needs no op of ours.
# The nibble 0b1000 (-8) is outside the quantizer's range and refused.
INT4_MAX_CODE = bits.uniform_levels(4)
INT4_WEIGHTS_PER_BYTE = 2


@dataclasses.dataclass(frozen=True)
class PackedInt4(_PackedWeights):
    """One 4-bit tensor packed for storage: nibbles, scale and shape."""

    data: np.ndarray  # uint8 [ceil(n / 2)]
    scale: float
    shape: tuple[int, ...]

    @property
    def payload(self) -> np.ndarray:
        return self.data


def int4_packed_size(num_weights: int) -> int:
    return -(-int(num_weights) // INT4_WEIGHTS_PER_BYTE)


def encode_int4(codes: np.ndarray) -> np.ndarray:
    """Packs 4-bit codes (any shape, values in -7..7) into uint8 bytes."""
    flat = np.asarray(codes).reshape(-1)
    if flat.size and (not np.array_equal(flat, np.round(flat))
                      or np.abs(flat).max() > INT4_MAX_CODE):
        bad = flat[(flat != np.round(flat)) | (np.abs(flat) > INT4_MAX_CODE)][0]
        raise PackingError(f"4-bit codes must be integers in {-INT4_MAX_CODE}..{INT4_MAX_CODE}; "
                           f"found {bad!r}")
    nibbles = np.zeros(int4_packed_size(flat.size) * INT4_WEIGHTS_PER_BYTE, np.uint8)
    nibbles[:flat.size] = flat.astype(np.int64) & 0x0F
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def decode_int4(data: np.ndarray, num_weights: int) -> np.ndarray:
    """Unpacks bytes of nibbles into `num_weights` int8 codes in -7..7."""
    data = np.asarray(data)
    if data.dtype not in (np.uint8, np.int8) or data.ndim != 1:
        raise PackingError(f"packed 4-bit weights must be a 1-D array of bytes, got "
                           f"{data.dtype} {data.shape}")
    if data.size != int4_packed_size(num_weights):
        raise PackingError(f"{num_weights} 4-bit weights need {int4_packed_size(num_weights)} "
                           f"bytes, got {data.size}")
    raw = data.view(np.uint8)
    nibbles = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1)[:num_weights].astype(np.int8)
    codes = np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8)
    invalid = codes < -INT4_MAX_CODE
    if invalid.any():
        where = int(np.argmax(invalid))
        raise PackingError(f"4-bit weight {where} is -8, outside "
                           f"{-INT4_MAX_CODE}..{INT4_MAX_CODE}")
    return codes


def pack_int4(codes: np.ndarray, scale: float) -> PackedInt4:
    codes = np.asarray(codes)
    return PackedInt4(encode_int4(codes), float(scale), tuple(int(d) for d in codes.shape))


def unpack_int4(packed: PackedInt4) -> np.ndarray:
    """float32 weights of `packed` in its stored shape."""
    codes = decode_int4(packed.data, packed.num_weights)
    return (codes.astype(np.float32) * np.float32(packed.scale)).reshape(packed.shape)
