"""Weight indexing: 5 ternary weights in one int8 (see `spec` for the layout)."""

from __future__ import annotations

import dataclasses

import numpy as np

from bittts_tf.quant import spec

_TRIT_TABLE = spec.trit_table()
_DIGIT_WEIGHTS = (3 ** np.arange(spec.TRITS_PER_BYTE)).astype(np.int32)


class PackingError(ValueError):
    """Raised for packed data that cannot be decoded."""


@dataclasses.dataclass(frozen=True)
class PackedTernary:
    """One ternary tensor packed for storage: indices, scale and shape."""

    indices: np.ndarray  # int8 [ceil(n / 5)], balanced ternary (format version 2)
    scale: float
    shape: tuple[int, ...]

    @property
    def num_weights(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return int(self.indices.size) + spec.SCALE_BYTES

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / max(self.num_weights, 1)


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
