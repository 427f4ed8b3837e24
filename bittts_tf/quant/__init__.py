"""Ternary / k-bit quantization-aware training and weight indexing.

The QAT layers need TensorFlow; the packed format (`spec`, `packing`) needs
only numpy. Names are loaded on first use, so `bittts_tf.quant.packing` can
be imported where TensorFlow is not installed (bittts_tf.runtime).
"""

import importlib

_EXPORTS = {
    "bittts_tf.quant.layers": ("QuantConv1D", "QuantConv1DTranspose", "QuantDense",
                               "TernaryConv1D", "TernaryConv1DTranspose", "TernaryDense",
                               "WeightPrecision", "quantized_layers"),
    "bittts_tf.quant.packing": ("PackedTernary", "PackingError", "decode", "encode", "pack",
                                "unpack"),
    "bittts_tf.quant.bits": ("FLOAT_BITS", "TERNARY_BITS", "normalize_bits"),
    "bittts_tf.quant.quantizers": ("absmax_activation_quantize", "quantize_weights",
                                   "ternary_quantize", "uniform_quantize"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'bittts_tf.quant' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
