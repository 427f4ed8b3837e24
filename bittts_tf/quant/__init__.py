"""Ternary / k-bit quantization-aware training and weight indexing."""

from bittts_tf.quant.layers import (QuantConv1D, QuantConv1DTranspose, QuantDense,
                                    TernaryConv1D, TernaryConv1DTranspose, TernaryDense,
                                    WeightPrecision, quantized_layers)
from bittts_tf.quant.packing import PackedTernary, PackingError, decode, encode, pack, unpack
from bittts_tf.quant.quantizers import (FLOAT_BITS, TERNARY_BITS, absmax_activation_quantize,
                                        normalize_bits, quantize_weights, ternary_quantize,
                                        uniform_quantize)
