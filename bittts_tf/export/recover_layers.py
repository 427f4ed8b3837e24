"""Which Keras layers with weights each packed graph runs, and the op that
runs each (its conv, or its layer norm's RSQRT).

A layer is found in the graph that runs it:

- by name, where the graph has its layers' names (the text graph, and
  format 1's frames graph): TensorFlow names an op's outputs after the name
  scopes it ran in, so `decoder/block_2/conv` is the CONV_2D whose output is
  `decoder_1/block_2_1/conv_1/BiasAdd;...` (a `_<n>` suffix on any
  component; `generator_1/` before the vocoder's layers). A layer no op
  carries, or two ops carry, is an error naming it;
- by dataflow order, where the graph carries no layer name (format 2's
  frames graph calls the layers' kernels directly, so its ops are `Conv2D_3`,
  `Rsqrt_5`): its convs and layer-norm RSQRTs, in graph order, are the frames
  layers' convs and norms in the order the model runs them (decoder_input,
  the decoder's blocks, mel_projection, then the vocoder's), each depending
  on the one before (checked), each kernel of the layer's shape (checked).
  A source-phase voice's frames graph also runs side branches off that
  chain (streaming.frames_stream_function): f0_projection reads the
  decoder's output beside mel_projection, and the vocoder's f0_input reads
  f0_projection's output and is added after conv_in. Graph order says
  nothing about where a branch sits, so each is found as the one weighted
  conv whose weights have its kernel's shape, then checked to depend on the
  layer whose output it reads and on no layer of the chain after that one;
  the chain is located by order without them.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from bittts_tf.export.recover_graph import CONV_OPS, WEIGHT_OPERAND, Graph, RecoveryError

# The acoustic model's layers each graph runs, in the order it runs them
# (tts_graphs.text_function, frames_function); the frames graph runs the
# vocoder after them. Every other acoustic layer is training-only.
_TEXT_LAYERS = ("phone_embedding", "speaker_embedding", "encoder", "variance_adaptor")
_FRAMES_LAYERS = ("decoder_input", "decoder", "mel_projection", "f0_projection")


@dataclasses.dataclass
class LayerRef:
    """A layer with weights, the model it is in and its name scopes."""
    layer: object
    model: object
    kind: str                  # "conv", "norm" or "embedding"
    path: str                  # "acoustic/decoder/block_2/conv": what errors name
    parts: list[re.Pattern]    # the path below the model, as name patterns
    model_pattern: re.Pattern
    # A side branch of the frames graph: the layer whose output it reads.
    reads: LayerRef | None = None


def _relative_path(layer, model) -> str:
    prefix = model.name + "/"
    return layer.path[len(prefix):] if layer.path.startswith(prefix) else layer.path


def _layer_kind(layer) -> str | None:
    import keras

    from bittts_tf.quant import layers as qlayers

    if isinstance(layer, (*qlayers.QUANTIZED_LAYER_TYPES, keras.layers.DepthwiseConv1D)):
        return "conv"
    if isinstance(layer, keras.layers.LayerNormalization):
        return "norm"
    if isinstance(layer, keras.layers.Embedding):
        return "embedding"
    return None


def graph_layers(acoustic, vocoder) -> dict[str, list[LayerRef]]:
    """The layers with weights each graph runs, in the order it runs them."""
    roots = {"text": [(acoustic, getattr(acoustic, name)) for name in _TEXT_LAYERS],
             "frames": [(acoustic, getattr(acoustic, name, None)) for name in _FRAMES_LAYERS]
             + [(vocoder, vocoder)]}
    found = {}
    for role, pairs in roots.items():
        items = []
        for model, root in pairs:
            if root is None:
                continue
            model_pattern = _scope_pattern([model.name])[0]
            for layer in _walk(root):
                kind = _layer_kind(layer)
                if kind is not None:
                    relative = _relative_path(layer, model)
                    items.append(LayerRef(layer, model, kind, f"{model.name}/{relative}",
                                        _scope_pattern(relative.split("/")), model_pattern))
        found[role] = items
    _link_side_branches(acoustic, vocoder, found["frames"])
    return found


def _side_branches(acoustic, vocoder) -> list[tuple[object, object]]:
    """(layer, the layer or block whose output it reads) for each layer the
    frames graph runs off its chain (streaming.frames_stream_function)."""
    projection = getattr(acoustic, "f0_projection", None)
    pairs = [(projection, acoustic.decoder), (getattr(vocoder, "f0_input", None), projection)]
    return [(layer, source) for layer, source in pairs if layer is not None]


def _link_side_branches(acoustic, vocoder, items: list[LayerRef]) -> None:
    by_layer = {id(item.layer): item for item in items}
    for layer, source in _side_branches(acoustic, vocoder):
        item = by_layer[id(layer)]
        if source is None:
            raise RecoveryError(f"layer {item.path!r}: reads the acoustic model's frame F0, "
                                "which the model_config does not give (AcousticConfig.frame_f0)")
        # A block's output is that of the last layer with weights run in it.
        inside = {id(sub) for sub in _walk(source)}
        sources = [other for other in items if id(other.layer) in inside]
        if item.kind != "conv" or not sources:
            raise RecoveryError(f"layer {item.path!r}: a side branch of the frames graph this "
                                "recovery does not know")
        item.reads = sources[-1]


def _walk(layer):
    """`layer` and its sublayers depth first, each layer's in the order it made
    them (Keras' own `_flatten_layers` reverses siblings): for the frames
    graph's layers, the order the model runs them."""
    yield layer
    for sub in getattr(layer, "_layers", None) or []:
        yield from _walk(sub)


def training_only(acoustic) -> list:
    """The acoustic model's layers no graph runs (the aligner)."""
    used = {id(getattr(acoustic, name, None)) for name in _TEXT_LAYERS + _FRAMES_LAYERS}
    return [layer for layer in acoustic._flatten_layers(include_self=False, recursive=False)
            if id(layer) not in used]


def _anchor_ops(graph: Graph, item: LayerRef) -> list[int]:
    """The ops a layer of this kind is found at: its conv, or its norm's RSQRT."""
    if item.kind == "norm":
        return [k for k, kind in enumerate(graph.kinds) if kind == "RSQRT"]
    import keras

    kinds = (("DEPTHWISE_CONV_2D",) if isinstance(item.layer, keras.layers.DepthwiseConv1D)
             else CONV_OPS)
    return [k for k, kind in enumerate(graph.kinds) if kind in kinds and graph.has_weights(k)]


def _locate_by_name(graph: Graph, items: list[LayerRef]) -> dict[int, int]:
    located = {}
    for item in items:
        ops = [k for k in _anchor_ops(graph, item)
               if _carries(graph.output_names[k], item.parts, item.model_pattern)]
        what = "layer-norm RSQRT" if item.kind == "norm" else "conv / matmul"
        if not ops:
            raise RecoveryError(f"layer {item.path!r}: no {what} op of {graph.file} carries its "
                                "name, so its weights cannot be found (a tensor renamed, or "
                                "another model?)")
        if len(ops) > 1:
            names = ", ".join(repr(graph.name(graph.output(k))[:60]) for k in ops[:3])
            raise RecoveryError(f"layer {item.path!r}: {len(ops)} {what} ops of {graph.file} "
                                f"carry its name ({names}); ambiguous")
        located[id(item)] = ops[0]
    return located


def _locate_by_order(graph: Graph, items: list[LayerRef]) -> dict[int, int]:
    """Convs and norms in graph order = the layers in the order the model
    runs them, each depending on the one before; side branches apart."""
    wanted = [item for item in items if item.kind != "embedding"]
    anchors = [k for k, kind in enumerate(graph.kinds)
               if (kind in CONV_OPS and graph.has_weights(k)) or kind == "RSQRT"]
    branches = [item for item in wanted if item.reads is not None]
    located = {id(item): _locate_by_shape(graph, item, anchors) for item in branches}
    taken = set(located.values())
    chain = [item for item in wanted if item.reads is None]
    anchors = [k for k in anchors if k not in taken]
    if len(anchors) + len(taken) != len(wanted):
        raise RecoveryError(f"{graph.file}: carries no layer names, and its "
                            f"{len(anchors) + len(taken)} conv and layer-norm ops are not the "
                            f"model's {len(wanted)} conv and norm layers (a weight missing, or "
                            "another model?)")
    ancestors = graph.ancestors()
    for n, (item, k) in enumerate(zip(chain, anchors)):
        is_norm = graph.kinds[k] == "RSQRT"
        if is_norm != (item.kind == "norm"):
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file} at its place in "
                                f"the run order is a {graph.kinds[k]}")
        if n and not ancestors[k] >> anchors[n - 1] & 1:
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file} at its place in "
                                f"the run order does not depend on op {anchors[n - 1]} before "
                                "it, so the order says nothing")
        located[id(item)] = k
    for item in branches:
        k, source = located[id(item)], located[id(item.reads)]
        if not ancestors[k] >> source & 1:
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file}, the one conv of "
                                f"its kernel's shape, does not depend on op {source} of "
                                f"{item.reads.path!r}, whose output it reads")
        later = [c for c in anchors if ancestors[c] >> source & 1 and ancestors[k] >> c & 1]
        if later:
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file}, the one conv of "
                                f"its kernel's shape, reads {item.reads.path!r} through op "
                                f"{later[0]} of a later layer, not beside it")
    return located


def _locate_by_shape(graph: Graph, item: LayerRef, anchors: list[int]) -> int:
    """The one weighted conv among `anchors` whose weights have `item`'s kernel
    shape: [out, ...] with as many weights as the kernel (every layout of
    recover_weights puts the output channels first)."""
    shape = [int(d) for d in item.layer.kernel.shape]
    size = int(np.prod(shape))
    found = []
    for k in anchors:
        if graph.kinds[k] not in CONV_OPS:
            continue
        dims = graph.tensors[graph.input(k, WEIGHT_OPERAND)].shape
        dims = [int(d) for d in dims] if dims is not None else []
        if dims and dims[0] == shape[-1] and int(np.prod(dims)) == size:
            found.append(k)
    if len(found) != 1:
        raise RecoveryError(f"layer {item.path!r}: {len(found)} conv ops of {graph.file} have "
                            f"its kernel's shape {shape} "
                            f"({'ambiguous' if found else 'none'}; the graph carries no layer "
                            "names, so this side branch is found by shape)")
    return found[0]


def locate(graph: Graph, items: list[LayerRef]) -> tuple[dict[int, int], str]:
    """(id(item) -> op index of its conv or RSQRT, "name" or "order")."""
    located = [item for item in items if item.kind != "embedding"]
    named = any(_carries(graph.output_names[k], item.parts, item.model_pattern)
                for item in located for k in _anchor_ops(graph, item))
    if named or not located:
        return _locate_by_name(graph, located), "name"
    return _locate_by_order(graph, located), "order"


def _scope_pattern(parts: list[str]) -> list[re.Pattern]:
    # TensorFlow uniquifies a name scope entered twice with _1, _2, ...
    return [re.compile(re.escape(part) + r"(?:_\d+)*") for part in parts]


def _carries(names: list[str], parts: list[re.Pattern], model: re.Pattern) -> bool:
    """Whether one of `names` runs through the scopes `parts` (a layer's path
    below its model), starting the name or right after the model's scope, with
    an op's own name after them."""
    n = len(parts)
    for name in names:
        components = name.split("/")
        for i in range(len(components) - n):
            if i > 0 and not model.fullmatch(components[i - 1]):
                continue
            if all(p.fullmatch(c) for p, c in zip(parts, components[i:i + n])):
                return True
    return False
