"""Parameter counts and storage sizes of a model at its deployed precision.

Storage rule: a ternary kernel costs 1.6 bits per weight (five trits per
byte, the paper's weight indexing) plus a 4-byte float scale per tensor; a
k-bit kernel (2, 4, 8) costs k bits per weight plus its 4-byte scale;
everything else (biases, norms, embeddings, float layers) costs 32 bits.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from bittts_tf.quant import quantized_layers
from bittts_tf.quant.bits import FLOAT_BITS, TERNARY_BITS
# The packed format's constants, from the one spec the encoder, the C
# decoder and the converter share.
from bittts_tf.quant.spec import SCALE_BYTES, TRITS_PER_BYTE


@dataclasses.dataclass
class SizeReport:
    params: int
    conv_params: int         # kernel weights of Conv1D / Conv1DTranspose layers
    quantized_params: int    # kernel weights stored below 32 bits
    float32_bytes: int
    deployed_bytes: int

    def __add__(self, other: "SizeReport") -> "SizeReport":
        return SizeReport(*(a + b for a, b in zip(dataclasses.astuple(self),
                                                  dataclasses.astuple(other))))


def kernel_bytes(count: int, bits: float) -> int:
    if bits == FLOAT_BITS:
        return 4 * count
    if bits == TERNARY_BITS:
        return math.ceil(count / TRITS_PER_BYTE) + SCALE_BYTES
    return math.ceil(count * bits / 8) + SCALE_BYTES


def size_report(model: keras.Model, exclude_prefixes: tuple[str, ...] = ()) -> SizeReport:
    """Sizes of `model`'s variables, minus those whose path starts with one of
    `exclude_prefixes` (e.g. the training-only aligner)."""
    def excluded(path):
        return any(path.startswith(p) for p in exclude_prefixes)

    kernels = {}
    conv_params = 0
    for layer in quantized_layers(model):
        if excluded(layer.path):
            continue
        variable = getattr(layer, "_kernel", None)
        count = int(np.prod(layer.kernel.shape))
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv1DTranspose)):
            conv_params += count
        kernels[variable.path] = (count, layer.weight_bits)
    params = float_bytes = deployed = quantized = 0
    for variable in model.weights:
        if excluded(variable.path):
            continue
        count = int(np.prod(variable.shape))
        params += count
        float_bytes += 4 * count
        if variable.path in kernels:
            _, bits = kernels[variable.path]
            deployed += kernel_bytes(count, bits)
            quantized += count if bits != FLOAT_BITS else 0
        else:
            deployed += 4 * count
    return SizeReport(params, conv_params, quantized, float_bytes, deployed)
