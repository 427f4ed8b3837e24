"""A converted .tflite -> the same graph with its ternary weights packed.

Each ternary layer is found as the conv / matmul op whose weight operand
holds its kernel (`weight_sites`), and that constant is replaced by an int8
index tensor (packed format version 2) and a float32 scale, decoded at run
time by the custom op BitTTSTernaryDecode placed just before the op that
reads the weights, so the decoded weights live only briefly in the arena
(`graph_surgery`).

An integer model (int8 weights with per-channel scales, int32 biases) is
packed the same way by `pack_int8_ternary_weights`: the decode op outputs the
int8 codes {-1, 0, 1}, the kernel's scale moves into the weight tensor's
quantization parameters, and each reader's bias is requantized to match
(`int8_bias`).

Kernels of 4-bit QAT layers (weight_bits=4) are packed by the same functions
into TFLite's own INT4 tensors (`packing.PackedInt4`: two weights a byte,
one scale), which the stock runtimes read: a float graph dequantizes them
with a DEQUANTIZE right before the op (LiteRT; TFLite Micro's DEQUANTIZE
takes no INT4), an integer graph's conv reads them as its filter, with the
scale in every channel and the biases requantized as for ternary kernels.

Layers reach the packers as objects with `.name`, `.is_ternary`,
`.effective_kernel()` (Keras layout) and `.ternary_codes()`: the Keras 3 QAT
layers, or the descriptions `bittts_tf.tfmot` makes of TFMOT-wrapped tf-keras
layers (`pack_ternary_layers`). Keras 3 is imported only by the functions that
take a Keras 3 model: packing a tf-keras model needs none of it.
"""

from __future__ import annotations

import numpy as np

from bittts_tf.export import ConversionError, graph_surgery, int8_bias, weight_sites
from bittts_tf.export.conversion_report import TensorReport
from bittts_tf.export.weight_sites import WEIGHT_OPERAND
from bittts_tf.litert import tflite_file
from bittts_tf.quant import packing


def _codes_and_scale(data: np.ndarray, layers: list, default_scale: float) -> tuple[np.ndarray, float]:
    magnitudes = np.abs(data[data != 0])
    if magnitudes.size == 0:
        return np.zeros(data.shape, np.int8), default_scale
    scale = float(magnitudes.max())
    if not np.allclose(magnitudes, scale, rtol=1e-6, atol=0):
        names = ", ".join(repr(layer.name) for layer in layers)
        raise ConversionError(f"layer{'s' if len(layers) > 1 else ''} {names}: the weights in "
                              f"the converted model are not ternary "
                              f"({np.unique(magnitudes).size} distinct magnitudes)")
    return np.sign(data).astype(np.int8), scale


def _ternary_codes_and_scale(layers: list):
    """The (data, int8 scales, layers) -> (codes, scale) of ternary kernels."""
    default = _default_scale(layers)
    return lambda data, int8_scales, layers: _codes_and_scale(data, layers, default)


def _int4_codes_and_scale(data: np.ndarray, int8_scales: np.ndarray | None, layers: list
                          ) -> tuple[np.ndarray, float]:
    """Codes in -7..7 and the scale of a 4-bit kernel's weights: the absmax
    quantizer puts the largest weight at code 7, so scale = max |w| / 7.
    Each weight must lie on that grid: to float32 rounding, or, for int8
    weights (`int8_scales`, the converter's per-channel steps), within half
    the coarsest int8 step."""
    largest = float(np.abs(data).max(initial=0.0))
    if largest == 0.0:
        return np.zeros(data.shape, np.int8), 1.0
    scale = largest / packing.INT4_MAX_CODE
    codes = np.round(data / scale)
    tolerance = _FLOAT_STEP_TOLERANCE * scale
    if int8_scales is not None:
        tolerance += 0.5 * float(np.max(int8_scales))
    if np.abs(data - codes * scale).max() > tolerance:
        names = ", ".join(repr(layer.name) for layer in layers)
        raise ConversionError(f"layer{'s' if len(layers) > 1 else ''} {names}: the weights in "
                              f"the converted model are not on a 4-bit grid "
                              f"(largest |w| / {packing.INT4_MAX_CODE} = {scale:.6g})")
    return codes.astype(np.int8), scale


# float32 rounding of code * scale, relative to the scale
_FLOAT_STEP_TOLERANCE = 1e-5


def _is_ternary(layer) -> bool:
    return getattr(layer, "is_ternary", False)


def _is_int4(layer) -> bool:
    return getattr(layer, "weight_bits", None) == 4


def _default_scale(layers) -> float:
    """The scale stored for an all-zero kernel: any finite value decodes to zeros."""
    for layer in layers:
        beta = layer.ternary_codes()[1]
        if np.isfinite(beta) and beta > 0:
            return float(beta)
    return 1.0


def _int8_adopter(model, layers: list, refusals: dict, codes_and_scale):
    """The `adopt` of `graph_surgery.replace_constant` for int8 weights: an int8 tensor
    holding the packed buffer is decoded when it is symmetric, of the packed
    kind in value (`codes_and_scale(data, its scales, layers)` does not
    raise) and read only as the weight operand of conv / matmul ops; it then
    gets its kernel's one scale for every channel, and each reader's bias
    follows; an all-zero tensor keeps the converter's largest scale. Why a
    tensor was left is noted in `refusals` (tensor index -> reason)."""
    names = ", ".join(repr(name) for name in dict.fromkeys(layer.name for layer in layers))

    def adopt(subgraph, index: int) -> bool:
        tensor = subgraph.tensors[index]
        scales = graph_surgery.scales(tensor)
        readers = graph_surgery.readers(subgraph, index)
        outputs = [int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])]
        reason = None
        if scales is None or np.any(scales <= 0) or np.any(graph_surgery.zero_points(tensor) != 0):
            reason = "its int8 weights are not symmetric with positive scales"
        elif index in outputs or any(
                [int(i) for i in op.inputs].count(index) != 1
                or WEIGHT_OPERAND.get(tflite_file.builtin_code(model, op)) is None
                or int(op.inputs[WEIGHT_OPERAND[tflite_file.builtin_code(model, op)]]) != index
                for op in readers):
            reason = "its int8 weights are also read elsewhere than as a conv / matmul's weights"
        else:
            data = graph_surgery.dequantized(model, tensor)
            try:
                _, own_beta = codes_and_scale(data, scales, layers)
            except ConversionError as error:
                reason = str(error).split(": ", 1)[-1]
            if not data.any():
                # Any scale decodes to zeros; the converter's largest keeps the
                # readers' biases within int32 (a ternary beta of 1e-8 would not).
                own_beta = float(scales.max())
        if reason is not None:
            refusals[index] = reason
            return False
        for op in readers:
            int8_bias.requantize(model, subgraph, op, own_beta, names)
        tensor.quantization.scale = np.full(len(scales), own_beta, np.float32)
        tensor.quantization.zeroPoint = np.zeros(len(scales), np.int64)
        return True

    return adopt


def _quantized_layers(keras_model) -> list:
    from bittts_tf.quant import layers as qlayers

    return qlayers.quantized_layers(keras_model)


def _pack(layers: list, tflite_bytes: bytes, integer: bool):
    """Shared by the float and the integer packers (see their docstrings)."""
    model = tflite_file.parse_model(tflite_bytes, "converted model")
    layers = [layer for layer in layers if _is_ternary(layer) or _is_int4(layer)]
    if not layers:
        raise ConversionError("the model has no ternary or 4-bit layers to pack")
    groups: dict[tuple[int, bool, bool], list] = {}  # (buffer, int8 weights, 4-bit) -> [(layer, site)]
    for layer, site in zip(layers, weight_sites.assign(model, layers, weight_sites.find(model))):
        if site.quantized and not integer:
            raise ConversionError(f"layer {layer.name!r}: its weights in the converted model are "
                                  f"int8 ({site.describe(model)}); pack an integer model with "
                                  f"pack_int8_ternary_weights")
        buffer_index = model.subgraphs[site.subgraph].tensors[site.tensor].buffer
        groups.setdefault((buffer_index, site.quantized, _is_int4(layer)), []).append((layer, site))
    opcode_index = {False: None, True: None}  # 4-bit -> the decode op's code, added on first use
    reports = []
    for (buffer_index, quantized, int4), members in groups.items():
        layers = [layer for layer, _ in members]
        site = members[0][1]
        data = site.data
        codes_and_scale = _int4_codes_and_scale if int4 else _ternary_codes_and_scale(layers)
        tensor = model.subgraphs[site.subgraph].tensors[site.tensor]
        codes, scale = codes_and_scale(data, graph_surgery.scales(tensor) if quantized else None,
                                       layers)
        packed = packing.pack_int4(codes, scale) if int4 else packing.pack(codes, scale)
        if not int4 and not np.allclose(packing.unpack(packed), data, rtol=1e-6, atol=0):
            raise ConversionError(f"layer {layers[0].name!r}: packed weights do not decode "
                                  f"to the converted model's weights")
        if opcode_index[int4] is None and not (int4 and quantized):
            opcode_index[int4] = (graph_surgery.dequantize_opcode_index(model) if int4
                                  else graph_surgery.decode_opcode_index(model))
        refusals: dict[int, str] = {}
        adopt = _int8_adopter(model, layers, refusals, codes_and_scale) if quantized else None
        name = graph_surgery.replace_constant(model, buffer_index, packed, opcode_index[int4],
                                              adopt)
        for layer, site in members:
            if model.subgraphs[site.subgraph].tensors[site.tensor].buffer == buffer_index:
                raise ConversionError(f"layer {layer.name!r}: {site.describe(model)} cannot hold "
                                      f"{'4-bit' if int4 else 'int8'} codes: "
                                      f"{refusals.get(site.tensor, 'not decoded')}")
        names = []
        for layer in layers:
            if layer.name not in names:
                names.append(layer.name)
        reports.append(TensorReport(name, ", ".join(names), [int(d) for d in data.shape],
                                    packed.num_weights, packed.nbytes,
                                    round(packed.bits_per_weight, 4),
                                    "int4" if int4 else "ternary-indexed"))
    return tflite_file.serialize_model(model), reports


def pack_ternary_weights(keras_model, float_tflite: bytes):
    """Rewrites `float_tflite`: ternary kernels -> packed indices + decode op.

    Each ternary layer of `keras_model` (a keras.Model or any layer holding the
    layers of the graph) is mapped to the op that computes it: the conv / matmul
    op whose constant weight operand holds the layer's effective kernel in the
    op's layout (ties between equal kernels broken by the layer's name in the
    tensor names). Returns (tflite bytes, list of TensorReport for the packed
    tensors); raises ConversionError naming the layer that cannot be packed."""
    return _pack(_quantized_layers(keras_model), float_tflite, integer=False)


def pack_int8_ternary_weights(keras_model, int8_tflite: bytes):
    """Rewrites an integer model (TFLite's int8 conversion): ternary kernels ->
    packed indices + a decode op whose output holds the int8 codes {-1, 0, 1}.

    Layers are mapped to ops as in `pack_ternary_weights`, matching the real
    values of each op's int8 weights (int8 * per-channel scale). The decoded
    tensor keeps its zero points and quantized dimension and gets the
    kernel's scale beta for every channel; each reader's int32 bias is
    requantized to input scale * beta (TFLite's int8 kernels require that
    product), rounding its values to the 127x coarser step. Weights an op
    reads in float (a float fallback) are packed as by `pack_ternary_weights`.
    Returns (tflite bytes, TensorReport rows); raises ConversionError naming
    the layer whose weights are not exactly ternary or cannot be rewritten."""
    return _pack(_quantized_layers(keras_model), int8_tflite, integer=True)


def pack_ternary_layers(layers: list, float_tflite: bytes):
    """`pack_ternary_weights` for a list of layers or layer descriptions, each
    with `.name`, `.is_ternary`, `.effective_kernel()` (Keras layout),
    `.ternary_codes()` and optionally `.layer_type` (the Keras class name,
    which tells the TFLite ops the layer may become)."""
    return _pack(list(layers), float_tflite, integer=False)


def pack_int8_ternary_layers(layers: list, int8_tflite: bytes):
    """`pack_int8_ternary_weights` for a list of layers or layer descriptions
    (see `pack_ternary_layers`)."""
    return _pack(list(layers), int8_tflite, integer=True)
