"""The weight precisions QAT offers, by their bits per weight.

Kept apart from the quantizers, which need TensorFlow: model configs, flags
and reports name a precision in processes that never load TensorFlow (a tool
that refuses a bad flag does so before a 4-second TensorFlow import).
"""

from __future__ import annotations

FLOAT_BITS = 32
TERNARY_BITS = 1.58
SUPPORTED_WEIGHT_BITS = (TERNARY_BITS, 2, 4, 8, FLOAT_BITS)


def normalize_bits(bits) -> float:
    """Maps user spellings ('1.58', 1.58, '4', None, 32) to a supported value."""
    if bits is None:
        return FLOAT_BITS
    value = float(bits)
    for supported in SUPPORTED_WEIGHT_BITS:
        if abs(value - supported) < 1e-6:
            return supported
    raise ValueError(
        f"weight bits must be one of {SUPPORTED_WEIGHT_BITS} (or None for float), got {bits!r}")


def uniform_levels(bits: float) -> int:
    """Largest integer level Qn of a symmetric k-bit quantizer: codes in [-Qn, Qn]."""
    return 2 ** (int(bits) - 1) - 1
