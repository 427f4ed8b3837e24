"""Ternary / k-bit quantization-aware training and weight indexing.

The QAT layers need TensorFlow; the packed format (`spec`, `packing`) needs
only numpy. Names are loaded on first use, so `bittts_tf.quant.packing` can
be imported where TensorFlow is not installed (bittts_tf.runtime).
"""

from bittts_tf import lazy_exports

__getattr__, __all__ = lazy_exports.exports(__name__, {
    "bittts_tf.quant.layers": ("QuantConv1D", "QuantConv1DTranspose", "QuantDense",
                               "TernaryConv1D", "TernaryConv1DTranspose", "TernaryDense",
                               "WeightPrecision", "quantized_layers"),
    "bittts_tf.quant.packing": ("PackedInt4", "PackedTernary", "PackingError", "decode",
                                "encode", "pack", "pack_int4", "unpack", "unpack_int4"),
    "bittts_tf.quant.bits": ("FLOAT_BITS", "TERNARY_BITS", "normalize_bits"),
    "bittts_tf.quant.quantizers": ("absmax_activation_quantize", "quantize_weights",
                                   "ternary_quantize", "uniform_quantize"),
})
