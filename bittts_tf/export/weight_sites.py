"""Which op of a converted model computes each ternary layer.

A layer's kernel is found by value: the conv / matmul op whose constant
weight operand holds the layer's effective kernel in the op's layout (or a
scaled copy of it, a folded scalar multiply). Ties between equal kernels are
broken by the op type the layer becomes and by the layer's name in the
tensor names (`_name_score`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from bittts_tf.export import ConversionError, graph_surgery
from bittts_tf.litert import tflite_file


# The operand of each conv / matmul op that holds its weights.
WEIGHT_OPERAND = {
    schema.BuiltinOperator.CONV_2D: 1,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: 1,
    schema.BuiltinOperator.TRANSPOSE_CONV: 1,
    schema.BuiltinOperator.FULLY_CONNECTED: 1,
    schema.BuiltinOperator.BATCH_MATMUL: 1,
}


# The ops each layer type is expected to become; another op with matching
# weights is still accepted (e.g. a one-input-channel conv as DEPTHWISE_CONV_2D).
# The plain Keras names are the layers that bittts_tf.tfmot wraps.
_CONV_OPS = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D}
_MATMUL_OPS = {schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.BATCH_MATMUL}
_EXPECTED_OPS = {
    "QuantConv1D": _CONV_OPS,
    "QuantConv1DTranspose": {schema.BuiltinOperator.TRANSPOSE_CONV},
    "QuantDense": _MATMUL_OPS,
    "Conv1D": _CONV_OPS,
    "Conv2D": _CONV_OPS,
    "DepthwiseConv2D": {schema.BuiltinOperator.DEPTHWISE_CONV_2D},
    "Dense": _MATMUL_OPS,
}


def _candidate_layouts(kernel: np.ndarray, target_shape: tuple[int, ...]):
    """Ways the converter may have laid out `kernel`: axis permutations, then reshape."""
    squeezed = tuple(d for d in target_shape if d != 1)
    for perm in itertools.permutations(range(kernel.ndim)):
        moved = kernel.transpose(perm)
        if tuple(d for d in moved.shape if d != 1) == squeezed:
            yield perm, moved.reshape(target_shape)


@dataclasses.dataclass
class Site:
    """The constant weight operand of one op."""

    subgraph: int
    op: object  # schema.OperatorT
    builtin: int
    tensor: int
    data: np.ndarray  # float32 (dequantized for int8 weights), in the op's layout
    names: tuple[str, ...]  # the weight tensor's and the op's output tensors' names
    quantized: bool = False  # int8 weights with scales in the tensor
    # How far the stored values may be from the layer's kernel: half the
    # coarsest int8 step (the converter rounds a 4-bit kernel's levels to its
    # per-channel int8 grid), 0 for float weights.
    rounding: float = 0.0

    def __post_init__(self):
        # Invariant under every layout: rules out most layer / op pairs
        # without trying any permutation.
        self.max_abs = float(np.abs(self.data).max(initial=0.0))

    def describe(self, model) -> str:
        tensor = model.subgraphs[self.subgraph].tensors[self.tensor]
        return f"{tflite_file.builtin_names().get(self.builtin, self.builtin)} weights {tensor.name.decode()!r}"


def find(model) -> list[Site]:
    """The weight operand of every conv / matmul op whose weights are a float32
    constant or an int8 constant with scales (read as its real values)."""
    sites = []
    for sg_index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            builtin = tflite_file.builtin_code(model, op)
            operand = WEIGHT_OPERAND.get(builtin)
            if operand is None or op.inputs is None or len(op.inputs) <= operand:
                continue
            t_index = int(op.inputs[operand])
            if t_index < 0:
                continue
            tensor = subgraph.tensors[t_index]
            data = graph_surgery.tensor_data(model, tensor)
            quantized = data is None
            rounding = 0.0
            if quantized:
                data = graph_surgery.dequantized(model, tensor)
                if data is not None:
                    rounding = 0.5 * float(np.max(graph_surgery.scales(tensor)))
            if data is None:
                continue
            names = (tensor.name.decode(),) + tuple(
                subgraph.tensors[int(o)].name.decode() for o in (op.outputs or []) if o >= 0)
            sites.append(Site(sg_index, op, builtin, t_index, data, names, quantized, rounding))
    return sites


def _equal_in_some_layout(kernel: np.ndarray, site: Site) -> bool:
    """Whether the op's weights are `kernel` (a layer's effective kernel, Keras
    layout) in some layout, to float32 rounding."""
    if kernel.size != site.data.size:
        return False
    kernel_max = float(np.abs(kernel).max(initial=0.0))
    tolerance = 1e-6 * max(kernel_max, 1e-30) + site.rounding
    if abs(kernel_max - site.max_abs) > tolerance:
        return False
    return any(np.allclose(layout, site.data, rtol=0, atol=tolerance)
               for _, layout in _candidate_layouts(kernel, site.data.shape))


def _scaled_relation(kernel: np.ndarray, data: np.ndarray) -> str | None:
    """When `data` is not `kernel` itself: "scaled" if it is the kernel times
    one factor in some layout (a folded scalar multiply: still ternary),
    "per-channel" if times a factor per slice of one axis (a folded
    BatchNormalization or channel multiply: no longer ternary), else None."""
    if kernel.size != data.size:
        return None
    found = None
    for _, layout in _candidate_layouts(kernel, data.shape):
        nonzero = layout != 0
        if not nonzero.any() or np.any(data[~nonzero] != 0):
            continue
        ratio = np.where(nonzero, data / np.where(nonzero, layout, 1), np.nan)
        values = ratio[nonzero]
        if np.allclose(values, values[0], rtol=1e-5, atol=0):
            return "scaled"
        for axis in range(data.ndim):
            if data.shape[axis] < 2:
                continue
            slices = np.moveaxis(ratio, axis, 0).reshape(data.shape[axis], -1)
            known = ~np.isnan(slices)
            low = np.min(slices, axis=1, initial=np.inf, where=known)
            high = np.max(slices, axis=1, initial=-np.inf, where=known)
            spread_ok = (high - low <= 1e-5 * np.abs(high)) | ~known.any(axis=1)
            if np.all(spread_ok):
                found = "per-channel"
    return found


_NAME_SEPARATORS = "/;:"


def _name_score(layer_name: str, names) -> int:
    """2 when a tensor name has the layer's name as a path component, 1 when
    only with the suffix TensorFlow adds to uniquify a name scope (name_1)."""
    score = 0
    for name in names:
        for part in re.split(f"[{re.escape(_NAME_SEPARATORS)}]", name):
            if part == layer_name:
                score = max(score, 2)
            elif re.fullmatch(re.escape(layer_name) + r"(_\d+)+", part):
                score = max(score, 1)
    return score


def _best_site(layer, matches: list[Site], claimed: set[int]) -> Site:
    """Among ops whose weights match: one no other layer took, of the op type
    the layer becomes, with the layer's name in its tensor names."""
    expected = _EXPECTED_OPS.get(_layer_family(layer), set())
    return max(matches, key=lambda site: (id(site) not in claimed, site.builtin in expected,
                                          _name_score(layer.name, site.names)))


def _unmatched_error(model, layer, sites: list[Site]) -> ConversionError:
    kernel = layer.effective_kernel()
    folded = [site for site in sites if _scaled_relation(kernel, site.data) == "per-channel"]
    if folded:
        return ConversionError(
            f"layer {layer.name!r}: the TFLite converter folded a per-channel factor (a "
            f"BatchNormalization or constant multiply after the layer) into its kernel "
            f"({folded[0].describe(model)}), which is no longer ternary; put a nonlinearity "
            f"between them, or fold the factor into the next layer, before converting")
    return ConversionError(
        f"layer {layer.name!r}: no CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV / "
        f"FULLY_CONNECTED / BATCH_MATMUL in the converted model has its kernel (shape "
        f"{list(kernel.shape)}) as constant weights (is the layer unused in this graph?)")


def assign(model, layers: list, sites: list[Site]) -> list[Site]:
    """The op (weight site) of each layer. Layers whose kernel appears as it is
    choose first, so that a layer matching only a scaled copy (a folded scalar
    multiply) cannot take the op of a layer with the same codes."""
    chosen: dict[int, Site] = {}
    claimed: set[int] = set()
    pending = []
    for i, layer in enumerate(layers):
        kernel = layer.effective_kernel()
        matches = [site for site in sites if _equal_in_some_layout(kernel, site)]
        if matches:
            chosen[i] = _best_site(layer, matches, claimed)
            claimed.add(id(chosen[i]))
        else:
            pending.append(i)
    for i in pending:
        kernel = layers[i].effective_kernel()
        matches = [site for site in sites if _scaled_relation(kernel, site.data) == "scaled"]
        if not matches:
            raise _unmatched_error(model, layers[i], sites)
        chosen[i] = _best_site(layers[i], matches, claimed)
        claimed.add(id(chosen[i]))
    return [chosen[i] for i in range(len(layers))]


def _layer_family(layer) -> str:
    """The key of `_EXPECTED_OPS` for a layer: its class or a base class, or
    for a layer description, the class it names in `.layer_type`."""
    names = [getattr(layer, "layer_type", None)] + [cls.__name__ for cls in type(layer).__mro__]
    return next((name for name in names if name in _EXPECTED_OPS), "")
