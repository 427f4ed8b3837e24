"""Weight indexing: 5 ternary weights in one byte (see `spec` for the layout)."""

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

    indices: np.ndarray  # uint8 [ceil(n / 5)]
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
    """Packs ternary codes (any shape, values in {-1, 0, 1}) into uint8 indices."""
    codes = np.asarray(codes)
    flat = codes.reshape(-1)
    if flat.size and not np.isin(flat, (-1, 0, 1)).all():
        bad = flat[~np.isin(flat, (-1, 0, 1))][0]
        raise PackingError(f"ternary codes must be -1, 0 or 1; found {bad!r}")
    pad = packed_size(flat.size) * spec.TRITS_PER_BYTE - flat.size
    digits = np.concatenate(
        [flat.astype(np.int32) + 1, np.full(pad, spec.PADDING_TRIT + 1, np.int32)])
    groups = digits.reshape(-1, spec.TRITS_PER_BYTE)
    return (groups @ _DIGIT_WEIGHTS).astype(np.uint8)


def decode(indices: np.ndarray, num_weights: int) -> np.ndarray:
    """Unpacks uint8 indices into `num_weights` int8 codes (table look-up, no division)."""
    indices = np.asarray(indices)
    if indices.dtype != np.uint8 or indices.ndim != 1:
        raise PackingError(
            f"packed indices must be a 1-D uint8 array, got {indices.dtype} {indices.shape}")
    if indices.size != packed_size(num_weights):
        raise PackingError(
            f"{num_weights} weights need {packed_size(num_weights)} packed bytes, "
            f"got {indices.size}")
    if indices.size and int(indices.max()) > spec.MAX_INDEX:
        where = int(np.argmax(indices > spec.MAX_INDEX))
        raise PackingError(
            f"packed byte {where} is {int(indices[where])}, above the largest index "
            f"{spec.MAX_INDEX}")
    return _TRIT_TABLE[indices].reshape(-1)[:num_weights]


def pack(codes: np.ndarray, scale: float) -> PackedTernary:
    codes = np.asarray(codes)
    return PackedTernary(encode(codes), float(scale), tuple(int(d) for d in codes.shape))


def unpack(packed: PackedTernary) -> np.ndarray:
    """float32 weights of `packed` in its stored shape."""
    codes = decode(packed.indices, packed.num_weights)
    return (codes.astype(np.float32) * np.float32(packed.scale)).reshape(packed.shape)
