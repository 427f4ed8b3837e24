"""A model folder -> the Keras models it was exported from, every weight read
back from its two packed graphs (a re-export when the training checkpoints
are gone).

Both folder formats are read: 1 (a stateless frames graph over a window of
frames, the shipped voice's) and 2 (the frames graph as a stream). The models
are built from the manifest's model_config, as the checkpoint loader builds
them. Each layer is then found in the graph that runs it:

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

How each weight comes back (in the graph's terms):

- Ternary kernels: the conv's weight operand is the output of a
  BitTTSTernaryDecode op; its int8 input holds the codes (`packing.decode`)
  and its float32 input the scale beta (`decode_at_load` gives the same
  floats: checked). The latent kernel is set to W = codes * c, with c moved
  ulp by ulp until the quantizer's beta' = mean|W| + epsilon is beta: then
  round-clip(W / beta') gives the codes back and the forward pass's kernel
  is codes * beta exactly.
- Float kernels (and a uniform k-bit layer's, whose quantizer maps its
  quantized values to themselves up to the 1e-8 scale epsilon): the conv's
  float32 constant weight operand.
- Layouts: CONV_2D and TRANSPOSE_CONV hold `[out, 1, taps, in]` (Keras
  Conv1D `[taps, in, out]`, Conv1DTranspose `[taps, out, in]`), a Dense run
  as a 1x1 CONV_2D `[out, 1, 1, in]` (Keras `[in, out]`), FULLY_CONNECTED
  `[out, in]`, DEPTHWISE_CONV_2D `[1, 1, taps, in * multiplier]` (Keras
  DepthwiseConv1D `[taps, in, multiplier]`; a one-input-channel Conv1D may
  become one too).
- Biases: the conv's bias operand (a fused ReLU changes only the op's name);
  an absent operand (-1) is a zero bias.
- Layer norms, gamma and beta, `[1, 1, C]` or `[C]` constants whose names may
  be another layer's (the converter shares equal constants):
  format 1 (Keras' own norm): MUL(RSQRT(var + eps), gamma) = g, then
  ADD(MUL(NEG(mean), g), beta);
  format 2 (streaming._layer_norm): MUL(MUL(SUB(x, mean), RSQRT(...)), gamma),
  then ADD(..., beta).
  The converter drops a multiply by ones and an add of zeros: a missing
  gamma MUL (the RSQRT read directly) is read as ones, a missing beta ADD as
  zeros, and both are noted.
- Embeddings: the constant table of the GATHER with the embedding's shape
  (named `GatherV2/ReadVariableOp/resource`, not after the layer; with
  several tables of one shape, the graph input the indices come from
  decides: `phonemes` or `speaker`).

Folds undone:

- The mel projection is followed by `* mel_std + mel_mean` in both frames
  graphs. The converter folds the MUL by the scalar into the CONV_2D's
  filter and bias, then the ADD into the bias: CONV_2D(filter = K * std,
  bias = b * std + mean), with no MUL / ADD by those scalars after the op
  (it is read by the mask's MUL). Seen so, K = filter / std and
  b = (bias - mean) / std (exact to float32 rounding at |mean|). A graph
  that still has the MUL / ADD after the op keeps its weights as they are.

Weights no graph runs (the acoustic model's aligner: training only) keep
their initial values and are listed in `Recovery.not_recovered`; the dropout
layers' seed states are not weights and are listed apart (`states`). The
discriminators are not built.

The manifest's `quantize` scope can disagree with the graphs: a voice whose
acoustic checkpoint said "acoustic" and whose vocoder checkpoint said
"vocoder" was exported with the acoustic checkpoint's config and ternary
kernels in both. The graphs decide: a model whose kernels are packed is
ternary, and the returned config says so (noted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np

from bittts_tf.litert import tflite_file
from bittts_tf.litert.tflite_file import FLOAT32, INT8
from bittts_tf.quant import packing, quantizers, spec
from bittts_tf.runtime import decode_at_load
from bittts_tf.runtime import model_folder as folder_lib

# Folder formats this recovery reads: 1, a stateless frames graph over a
# window; 2, the frames graph as a stream.
FORMAT_VERSIONS = (1, 2)
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_BIAS_OPERAND = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_WEIGHT_OPERAND = 1
# Shape-only ops that may sit between a conv and the ops reading its output.
_PASS_THROUGH = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
# The graph inputs that feed each embedding's GATHER (tts_graphs.text_function).
_EMBEDDING_INPUTS = {"phone_embedding": "phonemes", "speaker_embedding": "speaker"}
# The acoustic model's layers each graph runs, in the order it runs them
# (tts_graphs.text_function, frames_function); the frames graph runs the
# vocoder after them. Every other acoustic layer is training-only.
_TEXT_LAYERS = ("phone_embedding", "speaker_embedding", "encoder", "variance_adaptor")
_FRAMES_LAYERS = ("decoder_input", "decoder", "mel_projection")


class RecoveryError(ValueError):
    """A model folder whose weights cannot all be read back; the message names
    the layer or tensor."""


@dataclasses.dataclass
class RecoveredWeight:
    variable: str   # the Keras variable's path
    graph: str      # the graph file it was read from
    tensor: str     # the tensor holding it ("" when the converter dropped it)
    how: str        # "packed ternary", "float constant", a fold undone, ...


@dataclasses.dataclass
class Recovery:
    model_config: object        # configs.ModelConfig the models were built from
    front_end: object           # text.FrontEnd of the manifest
    acoustic: object
    vocoder: object
    manifest: dict
    recovered: list             # RecoveredWeight rows, one per variable set
    not_recovered: list         # variable paths no graph holds (training-only weights)
    states: list                # non-weight variables left as built (dropout seed states)
    folds: list                 # folds undone, one line each
    notes: list                 # the rest worth saying (config corrected, dropped constants)

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for row in self.recovered:
            kinds[row.how] = kinds.get(row.how, 0) + 1
        return {"model_config": self.model_config.to_dict(), "recovered": len(self.recovered),
                "by_kind": kinds, "not_recovered": list(self.not_recovered),
                "states": len(self.states), "folds": list(self.folds),
                "notes": list(self.notes)}


# --- The graphs ---------------------------------------------------------------

@dataclasses.dataclass
class _Weight:
    values: np.ndarray           # float32 in the op's layout
    tensor: str
    codes: np.ndarray | None     # int8 codes in the op's layout, when packed
    beta: float | None


class _Graph:
    """One packed graph: its ops, their names and the tensors between them."""

    def __init__(self, role: str, file: str, data: bytes):
        self.role = role  # "text" or "frames"
        self.file = file
        self.model = tflite_file.parse_model(data, file)
        if len(self.model.subgraphs) != 1:
            raise RecoveryError(f"{file}: {len(self.model.subgraphs)} subgraphs; an exported "
                                "graph has one")
        self.subgraph = self.model.subgraphs[0]
        self.tensors = self.subgraph.tensors
        self.ops = list(self.subgraph.operators or [])
        names = tflite_file.builtin_names()
        decode_codes = tflite_file.custom_opcodes(self.model)
        self.kinds = [spec.OP_NAME if op.opcodeIndex in decode_codes
                      else names.get(tflite_file.builtin_code(self.model, op), "CUSTOM")
                      for op in self.ops]
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for k, op in enumerate(self.ops):
            for t in op.outputs if op.outputs is not None else []:
                self.producer[int(t)] = k
            for t in op.inputs if op.inputs is not None else []:
                if int(t) >= 0:
                    self.consumers.setdefault(int(t), []).append(k)
        self._constants: dict[int, np.ndarray | None] = {}
        # Each op's output names, split where the converter joined fused ops' names.
        self.output_names = [[part for o in (op.outputs if op.outputs is not None else [])
                              for part in self.name(int(o)).split(";") if part]
                             for op in self.ops]

    def name(self, tensor: int) -> str:
        return self.tensors[tensor].name.decode(errors="replace")

    def input(self, k: int, position: int) -> int:
        inputs = self.ops[k].inputs
        return int(inputs[position]) if inputs is not None and len(inputs) > position else -1

    def output(self, k: int) -> int:
        return int(self.ops[k].outputs[0])

    def made_by(self, tensor: int) -> str | None:
        """The kind of op computing `tensor` (None for a constant or an input)."""
        return self.kinds[self.producer[tensor]] if tensor in self.producer else None

    def other_input(self, k: int, tensor: int) -> int:
        """The other input of a binary op `k` that reads `tensor`."""
        a, b = self.input(k, 0), self.input(k, 1)
        return b if a == tensor else a

    def constant(self, tensor: int) -> np.ndarray | None:
        """A float32 constant's values, else None."""
        if tensor not in self._constants:
            self._constants[tensor] = self._read_constant(tensor)
        return self._constants[tensor]

    def _read_constant(self, tensor: int) -> np.ndarray | None:
        if tensor < 0:
            return None
        t = self.tensors[tensor]
        data = self.model.buffers[t.buffer].data
        if t.type != FLOAT32 or data is None or len(data) == 0:
            return None
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        values = np.frombuffer(bytes(data), np.float32)
        if values.size != int(np.prod(shape, dtype=np.int64)):
            raise RecoveryError(f"{self.file}: constant {self.name(tensor)!r} holds {values.size} "
                                f"floats for its shape {list(shape)}")
        return values.reshape(shape)

    def has_weights(self, k: int) -> bool:
        """A conv / matmul op whose weights are constant or decoded from packed ones."""
        t = self.input(k, _WEIGHT_OPERAND)
        return t >= 0 and (self.made_by(t) == spec.OP_NAME or self.constant(t) is not None)

    def weight(self, tensor: int, what: str) -> _Weight:
        """The weights in tensor `tensor`: decoded from a BitTTSTernaryDecode
        op (codes and beta kept), or a float32 constant."""
        if self.made_by(tensor) == spec.OP_NAME:
            op = self.ops[self.producer[tensor]]
            indices_tensor = self.tensors[int(op.inputs[0])]
            shape = tuple(int(d) for d in self.tensors[tensor].shape)
            raw = self.model.buffers[indices_tensor.buffer].data
            scale = self.constant(int(op.inputs[1]))
            if indices_tensor.type != INT8 or raw is None or scale is None or scale.size != 1:
                raise RecoveryError(f"{self.file}: {what}: the decode op of {self.name(tensor)!r} "
                                    "has no int8 indices and float32 scale")
            try:
                codes = packing.decode(np.asarray(raw, np.uint8).view(np.int8),
                                       int(np.prod(shape))).reshape(shape)
                _, values = decode_at_load.decoded_weights(self.model, op, self.subgraph)
            except (packing.PackingError, tflite_file.TFLiteFileError) as e:
                raise RecoveryError(f"{self.file}: {what}: packed weights "
                                    f"{self.name(tensor)!r} do not decode ({e})") from None
            beta = float(scale.reshape(-1)[0])
            if not np.array_equal(values, codes.astype(np.float32) * np.float32(beta)):
                raise RecoveryError(f"{self.file}: {what}: the numpy decode of "
                                    f"{self.name(tensor)!r} disagrees with decode_at_load")
            return _Weight(values, self.name(tensor), codes, beta)
        values = self.constant(tensor)
        if values is None:
            raise RecoveryError(f"{self.file}: {what}: tensor {self.name(tensor)!r} is neither a "
                                "float32 constant nor decoded from packed weights")
        return _Weight(values, self.name(tensor), None, None)

    def readers(self, tensor: int) -> list[int]:
        """The ops reading `tensor`, looking through shape-only ops."""
        found = []
        for k in self.consumers.get(tensor, []):
            if self.kinds[k] in _PASS_THROUGH and self.input(k, 0) == tensor:
                found.extend(self.readers(self.output(k)))
            else:
                found.append(k)
        return found

    def graph_inputs_feeding(self, tensor: int) -> set[str]:
        """Names of the graph inputs `tensor` is computed from."""
        inputs = {int(i) for i in self.subgraph.inputs}
        seen, todo, found = set(), [tensor], set()
        while todo:
            t = todo.pop()
            if t in seen or t < 0:
                continue
            seen.add(t)
            if t in inputs:
                found.add(self.name(t))
            if t in self.producer:
                todo.extend(int(i) for i in self.ops[self.producer[t]].inputs)
        return found

    def ancestors(self) -> list[int]:
        """Per op, a bit set of the ops it depends on (ops are stored in an
        order they can run in, so one pass sees every producer first)."""
        found = []
        for op in self.ops:
            bits = 0
            for t in op.inputs if op.inputs is not None else []:
                p = self.producer.get(int(t))
                if p is not None:
                    bits |= found[p] | (1 << p)
            found.append(bits)
        return found


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


# --- Layers -------------------------------------------------------------------

@dataclasses.dataclass
class _Layer:
    layer: object
    model: object
    kind: str                  # "conv", "norm" or "embedding"
    path: str                  # "acoustic/decoder/block_2/conv": what errors name
    parts: list[re.Pattern]    # the path below the model, as name patterns
    model_pattern: re.Pattern


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


def _graph_layers(acoustic, vocoder) -> dict[str, list[_Layer]]:
    """The layers with weights each graph runs, in the order it runs them."""
    roots = {"text": [(acoustic, getattr(acoustic, name)) for name in _TEXT_LAYERS],
             "frames": [(acoustic, getattr(acoustic, name)) for name in _FRAMES_LAYERS]
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
                    items.append(_Layer(layer, model, kind, f"{model.name}/{relative}",
                                        _scope_pattern(relative.split("/")), model_pattern))
        found[role] = items
    return found


def _walk(layer):
    """`layer` and its sublayers depth first, each layer's in the order it made
    them (Keras' own `_flatten_layers` reverses siblings): for the frames
    graph's layers, the order the model runs them."""
    yield layer
    for sub in getattr(layer, "_layers", None) or []:
        yield from _walk(sub)


def _training_only(acoustic) -> list:
    """The acoustic model's layers no graph runs (the aligner)."""
    used = {id(getattr(acoustic, name)) for name in _TEXT_LAYERS + _FRAMES_LAYERS}
    return [layer for layer in acoustic._flatten_layers(include_self=False, recursive=False)
            if id(layer) not in used]


def _anchor_ops(graph: _Graph, item: _Layer) -> list[int]:
    """The ops a layer of this kind is found at: its conv, or its norm's RSQRT."""
    if item.kind == "norm":
        return [k for k, kind in enumerate(graph.kinds) if kind == "RSQRT"]
    import keras

    kinds = (("DEPTHWISE_CONV_2D",) if isinstance(item.layer, keras.layers.DepthwiseConv1D)
             else _CONV_OPS)
    return [k for k, kind in enumerate(graph.kinds) if kind in kinds and graph.has_weights(k)]


def _locate_by_name(graph: _Graph, items: list[_Layer]) -> dict[int, int]:
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


def _locate_by_order(graph: _Graph, items: list[_Layer]) -> dict[int, int]:
    """Convs and norms in graph order = the layers in the order the model
    runs them, each depending on the one before."""
    wanted = [item for item in items if item.kind != "embedding"]
    anchors = [k for k, kind in enumerate(graph.kinds)
               if (kind in _CONV_OPS and graph.has_weights(k)) or kind == "RSQRT"]
    if len(anchors) != len(wanted):
        raise RecoveryError(f"{graph.file}: carries no layer names, and its {len(anchors)} conv "
                            f"and layer-norm ops are not the model's {len(wanted)} conv and norm "
                            "layers (a weight missing, or another model?)")
    ancestors = graph.ancestors()
    located = {}
    for n, (item, k) in enumerate(zip(wanted, anchors)):
        is_norm = graph.kinds[k] == "RSQRT"
        if is_norm != (item.kind == "norm"):
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file} at its place in "
                                f"the run order is a {graph.kinds[k]}")
        if n and not ancestors[k] >> anchors[n - 1] & 1:
            raise RecoveryError(f"layer {item.path!r}: op {k} of {graph.file} at its place in "
                                f"the run order does not depend on op {anchors[n - 1]} before "
                                "it, so the order says nothing")
        located[id(item)] = k
    return located


def _locate(graph: _Graph, items: list[_Layer]) -> tuple[dict[int, int], str]:
    """(id(item) -> op index of its conv or RSQRT, "name" or "order")."""
    located = [item for item in items if item.kind != "embedding"]
    named = any(_carries(graph.output_names[k], item.parts, item.model_pattern)
                for item in located for k in _anchor_ops(graph, item))
    if named or not located:
        return _locate_by_name(graph, located), "name"
    return _locate_by_order(graph, located), "order"


# --- Reading one layer --------------------------------------------------------

@dataclasses.dataclass
class _Plan:
    """What one layer's weights are, before any is assigned."""
    item: _Layer
    values: dict          # variable attribute -> value in Keras layout
    codes: np.ndarray | None
    beta: float | None
    rows: list            # (attribute, graph, tensor, how)

    @property
    def packed(self) -> bool:
        return self.codes is not None


def _to_keras_layout(item: _Layer, kind: str, values: np.ndarray, shape) -> np.ndarray:
    """A kernel in the op's layout -> the layer's Keras layout `shape`."""
    import keras

    from bittts_tf.quant import layers as qlayers

    layer = item.layer
    shape = tuple(int(d) for d in shape)
    w = values
    try:
        if isinstance(layer, keras.layers.DepthwiseConv1D):
            if kind != "DEPTHWISE_CONV_2D":
                raise ValueError(kind)
            w = w.reshape(shape)  # [1, 1, taps, in * multiplier] -> [taps, in, multiplier]
        elif isinstance(layer, qlayers.QuantDense):
            if kind == "CONV_2D":
                w = w.reshape(w.shape[0], -1).T          # [out, 1, 1, in] -> [in, out]
            elif kind == "FULLY_CONNECTED":
                w = w.T                                  # [out, in] -> [in, out]
            else:
                raise ValueError(kind)
        elif isinstance(layer, qlayers.QuantConv1DTranspose):
            if kind != "TRANSPOSE_CONV" or 1 not in w.shape[1:3]:
                raise ValueError(kind)
            w = w.reshape(w.shape[0], -1, w.shape[-1]).transpose(1, 0, 2)  # -> [taps, out, in]
        elif isinstance(layer, qlayers.QuantConv1D):
            if kind == "CONV_2D" and 1 in w.shape[1:3]:
                w = w.reshape(w.shape[0], -1, w.shape[-1]).transpose(1, 2, 0)  # -> [taps, in, out]
            elif kind == "DEPTHWISE_CONV_2D" and shape[1] == 1:
                w = w.reshape(shape)  # one input channel: [1, 1, taps, out] -> [taps, 1, out]
            else:
                raise ValueError(kind)
        else:
            raise ValueError(kind)
    except ValueError:
        raise RecoveryError(f"layer {item.path!r}: its {kind} weights {list(values.shape)} do "
                            f"not lay out as its kernel {list(shape)}") from None
    if tuple(w.shape) != shape:
        raise RecoveryError(f"layer {item.path!r}: its {kind} weights {list(values.shape)} give "
                            f"a kernel {list(w.shape)}, the model has {list(shape)} "
                            "(another config?)")
    return np.ascontiguousarray(w)


@dataclasses.dataclass
class _Fold:
    """`layer(x) * scale + shift` in the model, which the converter may fold
    into the layer's filter and bias."""
    scale: float
    shift: float
    why: str


def _folds(acoustic) -> dict[int, _Fold]:
    c = acoustic.config
    return {id(acoustic.mel_projection): _Fold(float(c["mel_std"]), float(c["mel_mean"]),
                                               "mel_projection(x) * mel_std + mel_mean")}


def _scalar_reader(graph: _Graph, tensor: int, kind: str, value: float) -> int | None:
    """The op of `kind` reading `tensor` (through shape-only ops) with a
    one-element constant: its index, None if there is none, -1 when its
    constant is not `value`."""
    for k in graph.readers(tensor):
        if graph.kinds[k] != kind:
            continue
        consts = [graph.constant(int(i)) for i in graph.ops[k].inputs]
        consts = [c for c in consts if c is not None and c.size == 1]
        if consts:
            if not np.isclose(float(consts[0].reshape(-1)[0]), value, rtol=1e-6, atol=0):
                return -1
            return k
    return None


def _undo_fold(graph: _Graph, k: int, item: _Layer, fold: _Fold, kernel: np.ndarray,
               bias, folds: list):
    """(kernel, bias) with `fold` taken out of them if the converter folded it."""
    output = graph.output(k)
    mul = _scalar_reader(graph, output, "MUL", fold.scale)
    if mul == -1:
        raise RecoveryError(f"layer {item.path!r}: {graph.file} multiplies its output by a "
                            f"constant other than the {fold.scale:g} of {fold.why}")
    add = _scalar_reader(graph, graph.output(mul) if mul is not None else output, "ADD",
                         fold.shift)
    if add == -1:
        raise RecoveryError(f"layer {item.path!r}: {graph.file} adds a constant other than "
                            f"the {fold.shift:g} of {fold.why} to its output")
    if mul is not None and add is None and fold.shift != 0.0:
        # The ADD cannot move into the bias across the MUL standing between.
        raise RecoveryError(f"layer {item.path!r}: {graph.file} keeps the MUL of {fold.why} but "
                            "not the ADD; a fold this recovery does not know")
    if mul is not None and (add is not None or fold.shift == 0.0):
        return kernel, bias
    scale = 1.0 if mul is not None else fold.scale
    shift = 0.0 if add is not None else fold.shift
    if scale == 0.0:
        raise RecoveryError(f"layer {item.path!r}: {fold.why} with a scale of 0 leaves nothing "
                            "to recover")
    if bias is None:
        raise RecoveryError(f"layer {item.path!r}: {fold.why} is folded into {graph.file}'s "
                            "op, but the layer has no bias to take it back from")
    kernel = (kernel.astype(np.float64) / scale).astype(np.float32)
    bias = ((bias.astype(np.float64) - shift) / scale).astype(np.float32)
    folds.append(f"{item.path}: {fold.why} folded into {graph.file}'s {graph.kinds[k]} "
                 f"{graph.name(output)[:50]!r} (no MUL / ADD by the scalars after it): "
                 f"kernel / {scale:g}, (bias - {shift:g}) / {scale:g}")
    return kernel, bias


def _plan_conv(graph: _Graph, k: int, item: _Layer, folds: dict, fold_log: list) -> _Plan:
    layer = item.layer
    kind = graph.kinds[k]
    weight = graph.weight(graph.input(k, _WEIGHT_OPERAND), f"layer {item.path!r}")
    kernel = _to_keras_layout(item, kind, weight.values, layer.kernel.shape)
    codes, beta = weight.codes, weight.beta
    if codes is not None:
        codes = _to_keras_layout(item, kind, codes, layer.kernel.shape)
    rows = [("kernel", graph.file, weight.tensor,
             "packed ternary" if codes is not None else "float constant")]
    bias = None
    if layer.use_bias:
        bias_tensor = graph.input(k, _BIAS_OPERAND[kind])
        if bias_tensor < 0:
            bias = np.zeros(layer.bias.shape, np.float32)
            rows.append(("bias", graph.file, "", "absent bias operand: zeros"))
        else:
            bias = graph.constant(bias_tensor)
            if bias is None:
                raise RecoveryError(f"layer {item.path!r}: the bias of {graph.file}'s {kind} "
                                    f"{graph.name(bias_tensor)!r} is not a float32 constant")
            bias = bias.reshape(-1)
            rows.append(("bias", graph.file, graph.name(bias_tensor), "float constant"))
    fold = folds.get(id(layer))
    if fold is not None:
        logged = len(fold_log)
        kernel, bias = _undo_fold(graph, k, item, fold, kernel, bias, fold_log)
        if len(fold_log) > logged:
            rows = [(a, f, t, how + ", fold undone") for a, f, t, how in rows]
            if codes is not None:
                # A scalar folded into a ternary kernel keeps it ternary: the
                # codes flip with its sign, beta takes its size.
                codes = (codes * np.sign(fold.scale)).astype(np.int8)
                beta = beta / abs(fold.scale)
    values = {"kernel": kernel}
    if bias is not None:
        values["bias"] = bias
    return _Plan(item, values, codes, beta, rows)


def _constant_reader(graph: _Graph, tensor: int, kind: str, size: int,
                     item: _Layer) -> tuple[int | None, int]:
    """(constant tensor, output) of the one op of `kind` reading `tensor` with
    a float32 constant of `size` values; (None, tensor) when there is none."""
    found = [r for r in graph.consumers.get(tensor, []) if graph.kinds[r] == kind
             and (c := graph.constant(graph.other_input(r, tensor))) is not None
             and c.size == size]
    if len(found) > 1:
        raise RecoveryError(f"layer {item.path!r}: {len(found)} {kind} ops of {graph.file} read "
                            f"{graph.name(tensor)!r} with a constant; ambiguous")
    if not found:
        return None, tensor
    return graph.other_input(found[0], tensor), graph.output(found[0])


def _plan_norm(graph: _Graph, k: int, item: _Layer, notes: list) -> _Plan:
    size = int(item.layer.gamma.shape[0])
    inv = graph.output(k)
    muls = [m for m in graph.consumers.get(inv, []) if graph.kinds[m] == "MUL"]
    rows = []
    if (len(muls) == 1 and graph.constant(graph.other_input(muls[0], inv)) is None
            and graph.made_by(graph.other_input(muls[0], inv)) == "SUB"):
        # (x - mean) * rsqrt, then * gamma, then + beta (streaming._layer_norm).
        gamma_tensor, scaled = _constant_reader(graph, graph.output(muls[0]), "MUL", size, item)
        beta_tensor, _ = _constant_reader(graph, scaled, "ADD", size, item)
        beta_dropped = beta_tensor is None
    else:
        # Keras: rsqrt * gamma = g; -mean * g + beta; x * g + that.
        gamma_tensor, scaled = _constant_reader(graph, inv, "MUL", size, item)
        if gamma_tensor is None and len(muls) != 2:
            raise RecoveryError(f"layer {item.path!r}: {graph.file}'s RSQRT "
                                f"{graph.name(inv)!r} is not read as a layer norm's")
        centred = [m for m in graph.consumers.get(scaled, []) if graph.kinds[m] == "MUL"
                   and graph.made_by(graph.other_input(m, scaled)) == "NEG"]
        if len(centred) != 1:
            raise RecoveryError(f"layer {item.path!r}: {graph.file} has no MUL(NEG(mean), "
                                f"{graph.name(scaled)!r}) of a layer norm")
        shifted = graph.output(centred[0])
        adds = [a for a in graph.consumers.get(shifted, []) if graph.kinds[a] == "ADD"]
        if len(adds) != 1:
            raise RecoveryError(f"layer {item.path!r}: {graph.file} adds {len(adds)} terms to "
                                f"{graph.name(shifted)!r}; a layer norm adds one")
        beta_tensor = graph.other_input(adds[0], shifted)
        beta_dropped = graph.made_by(beta_tensor) == "MUL"  # x * g + (-mean * g): no beta
        if not beta_dropped and graph.constant(beta_tensor) is None:
            raise RecoveryError(f"layer {item.path!r}: {graph.file}'s beta "
                                f"{graph.name(beta_tensor)!r} is not a float32 constant")
    values = {}
    for name, tensor, default, dropped in (("gamma", gamma_tensor, 1.0, "MUL by ones"),
                                           ("beta", beta_tensor, 0.0, "ADD of zeros")):
        if tensor is None or (name == "beta" and beta_dropped):
            values[name] = np.full(size, default, np.float32)
            rows.append((name, graph.file, "", f"{dropped} dropped by the converter"))
            notes.append(f"{item.path}: {graph.file} has no {name} ({dropped} is dropped by "
                         f"the converter): {name} = {default:g}")
            continue
        value = graph.constant(tensor).reshape(-1)
        if value.size != size:
            raise RecoveryError(f"layer {item.path!r}: {graph.file} gives {value.size} {name} "
                                f"values, the layer has {size}")
        values[name] = value
        rows.append((name, graph.file, graph.name(tensor), f"layer-norm {name} constant"))
    return _Plan(item, values, None, None, rows)


def _plan_embedding(graph: _Graph, item: _Layer) -> _Plan:
    layer = item.layer
    shape = tuple(int(d) for d in layer.embeddings.shape)
    candidates = []
    for k, kind in enumerate(graph.kinds):
        # GATHER(params, indices); EMBEDDING_LOOKUP(ids, params).
        positions = {"GATHER": (0, 1), "EMBEDDING_LOOKUP": (1, 0)}.get(kind)
        if positions is None:
            continue
        table = graph.constant(graph.input(k, positions[0]))
        if table is not None and table.shape == shape:
            candidates.append((k, graph.input(k, positions[0]), graph.input(k, positions[1]),
                               table))
    wanted = _EMBEDDING_INPUTS.get(layer.name)
    if len(candidates) > 1 and wanted:
        candidates = [c for c in candidates
                      if any(wanted in name for name in graph.graph_inputs_feeding(c[2]))]
    if len(candidates) != 1:
        raise RecoveryError(f"layer {item.path!r}: {len(candidates)} lookups of a {list(shape)} "
                            f"table in {graph.file}; {'ambiguous' if candidates else 'none'}")
    k, tensor, _, table = candidates[0]
    return _Plan(item, {"embeddings": table}, None, None,
                 [("embeddings", graph.file, graph.name(tensor), f"{graph.kinds[k]} table")])


def _plan_graph(graph: _Graph, items: list[_Layer], folds: dict, fold_log: list,
                notes: list) -> tuple[list[_Plan], str]:
    located, how = _locate(graph, items)
    plans = []
    for item in items:
        if item.kind == "embedding":
            plans.append(_plan_embedding(graph, item))
        elif item.kind == "norm":
            if not (item.layer.scale and item.layer.center) or item.layer.rms_scaling:
                raise RecoveryError(f"layer {item.path!r}: only layer norms with gamma and beta "
                                    "are recovered")
            plans.append(_plan_norm(graph, located[id(item)], item, notes))
        else:
            plans.append(_plan_conv(graph, located[id(item)], item, folds, fold_log))
    return plans, how


# --- Setting the weights ------------------------------------------------------

def ternary_latent(codes: np.ndarray, beta: float) -> np.ndarray:
    """A latent kernel W whose ternary quantization is codes * beta, to the bit.

    W = codes * c with mean|W| = beta - epsilon gives the codes back, but the
    layer's float32 mean moves in steps of many ulps as c moves (20-30 on a
    27 k-weight kernel), so it may miss beta. The mean is monotone in each
    |W|, though: W starts a little below, and a few free weights (zero codes,
    kept under half a step so they still round to 0) are raised by one value
    v found by bisection over the float32 numbers."""
    codes = np.asarray(codes).astype(np.float32)
    nonzero = int(np.count_nonzero(codes))
    if nonzero == 0:
        return np.zeros_like(codes)
    target = np.float32(beta)
    start = (float(target) - quantizers.SCALE_EPSILON) * codes.size / nonzero
    if not start > 0:
        raise ValueError(f"scale {beta:g} is not above the quantizer's epsilon "
                         f"{quantizers.SCALE_EPSILON:g}")
    latent = codes * np.float32(start)
    if _ternary_scale(latent) == target:
        return latent
    shortfall = 1e-6
    while _ternary_scale(low := codes * np.float32(start * (1 - shortfall))) >= target:
        shortfall *= 2
        if shortfall > 1e-2:
            raise ValueError(f"no latent kernel gives the scale {beta:g}")
    flat = codes.reshape(-1)
    free = np.flatnonzero(flat == 0)
    if free.size == 0:  # every code nonzero: grow some magnitudes instead
        free = np.arange(flat.size)
    limit = np.float32(0.4 * target)  # a zero code stays 0, a nonzero one stays +-1
    missing = (float(target) - float(_ternary_scale(low))) * flat.size
    count = min(free.size, max(1, int(np.ceil(2 * missing / float(limit)))))
    while True:
        chosen = free[np.linspace(0, free.size - 1, count).round().astype(int)]
        signs = np.where(flat[chosen] == 0, 1.0, flat[chosen]).astype(np.float32)

        def raised(v):
            w = low.copy().reshape(-1)
            w[chosen] += signs * np.float32(v)
            return w.reshape(codes.shape)

        if _ternary_scale(raised(limit)) >= target or count == free.size:
            break
        count = min(free.size, 2 * count)
    # Bisection over the float32 numbers in [0, limit] (their bit patterns sort as they do).
    lo, hi = 0, int(np.float32(limit).view(np.int32))
    while lo < hi:
        mid = (lo + hi) // 2
        if _ternary_scale(raised(np.int32(mid).view(np.float32))) < target:
            lo = mid + 1
        else:
            hi = mid
    return raised(np.int32(lo).view(np.float32))


def _ternary_scale(w: np.ndarray) -> np.float32:
    """beta as the layer computes it (TensorFlow's float32 mean, not numpy's)."""
    import tensorflow as tf

    return np.float32(quantizers.ternary_scale(tf.constant(w)).numpy())


def _assign(variable, value: np.ndarray, item: _Layer) -> None:
    value = np.asarray(value, np.float32)
    if tuple(value.shape) != tuple(variable.shape):
        raise RecoveryError(f"layer {item.path!r}: {variable.path} is {list(variable.shape)} in "
                            f"the model, the graph gives {list(value.shape)}")
    if not np.all(np.isfinite(value)):
        raise RecoveryError(f"layer {item.path!r}: {variable.path} would hold NaN/Inf")
    variable.assign(value)


# --- The whole folder ---------------------------------------------------------

def read_manifest(model_dir: str) -> dict:
    """The manifest of a model folder of a format this recovery reads (the
    runtime reads only the newest format, so its loader is not used here)."""
    path = os.path.join(model_dir, folder_lib.MANIFEST)
    if not os.path.isdir(model_dir):
        raise RecoveryError(f"{model_dir}: not a model folder (no such directory)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise RecoveryError(f"{path}: missing; not a model folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecoveryError(f"{path}: not a readable JSON manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != folder_lib.FORMAT_NAME:
        raise RecoveryError(f"{path}: not a {folder_lib.FORMAT_NAME} manifest")
    if manifest.get("format_version") not in FORMAT_VERSIONS:
        raise RecoveryError(f"{path}: format version {manifest.get('format_version')!r}; this "
                            f"recovery reads versions {', '.join(map(str, FORMAT_VERSIONS))}")
    for key in ("graphs", "model_config", "front_end"):
        if not isinstance(manifest.get(key), dict):
            raise RecoveryError(f"{path}: no {key}, so the models cannot be rebuilt")
    return manifest


def _read_graph(model_dir: str, manifest: dict, role: str) -> _Graph:
    """The packed graph `role`, checked against the manifest's size and SHA-256."""
    entry = manifest["graphs"].get(role)
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise RecoveryError(f"{model_dir}/{folder_lib.MANIFEST}: no {role} graph listed")
    path = os.path.join(model_dir, entry["file"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RecoveryError(f"{path}: cannot read the {role} graph ({e.strerror})") from None
    if len(data) != entry.get("bytes") or folder_lib.sha256(data) != entry.get("sha256"):
        raise RecoveryError(f"{path}: differs from the manifest's size or SHA-256 (corrupt or "
                            "replaced)")
    try:
        return _Graph(role, entry["file"], data)
    except tflite_file.TFLiteFileError as e:
        raise RecoveryError(str(e)) from None


def _read_folder(model_dir: str):
    from bittts_tf.models import configs
    from bittts_tf.text.g2p import FrontEnd

    manifest = read_manifest(model_dir)
    graphs = {role: _read_graph(model_dir, manifest, role) for role in folder_lib.GRAPHS}
    try:
        config = configs.ModelConfig.from_dict(manifest["model_config"])
        front_end = FrontEnd.from_dict(manifest["front_end"])
    except (KeyError, TypeError, ValueError) as e:
        raise RecoveryError(f"{model_dir}/{folder_lib.MANIFEST}: bad model_config or front_end "
                            f"({e})") from None
    if config.vocoder.kind != "frame":
        raise RecoveryError(f"{model_dir}: the model_config's vocoder is {config.vocoder.kind!r}; "
                            "exported folders hold the frame-rate vocoder")
    return manifest, graphs, config, front_end


def _scope(acoustic_packed: bool, vocoder_packed: bool, config) -> tuple[str, float]:
    """The quantize scope and weight bits that give the graphs' packed models."""
    ternary, float_bits = quantizers.TERNARY_BITS, quantizers.FLOAT_BITS
    uniform = config.weight_bits not in (ternary, float_bits) and config.quantize != "none"
    if acoustic_packed or vocoder_packed:
        if uniform and ((config.acoustic_bits != float_bits and not acoustic_packed)
                        or (config.vocoder_bits != float_bits and not vocoder_packed)):
            raise RecoveryError(f"the graphs pack one model ternary while the model_config "
                                f"quantizes the other to {config.weight_bits} bits; one config "
                                "cannot say both")
        scope = {(True, True): "all", (True, False): "acoustic",
                 (False, True): "vocoder"}[(acoustic_packed, vocoder_packed)]
        return scope, ternary
    if uniform:
        return config.quantize, config.weight_bits  # k-bit kernels stay float constants
    return "none", config.weight_bits


def _plan_models(graphs: dict, acoustic, vocoder, notes: list, fold_log: list) -> list[_Plan]:
    layers = _graph_layers(acoustic, vocoder)
    folds = _folds(acoustic)
    plans = []
    for role, graph in graphs.items():
        graph_plans, how = _plan_graph(graph, layers[role], folds, fold_log, notes)
        if how == "order":
            notes.append(f"{graph.file} carries no layer names: its convs and layer norms were "
                         "matched to the layers in the order the model runs them")
        plans.extend(graph_plans)
    return plans


def recover(model_dir: str) -> Recovery:
    """The Keras models of a model folder, every weight the graphs hold set
    from them; a RecoveryError names the first layer or tensor that fails."""
    from bittts_tf.models import build

    manifest, graphs, config, front_end = _read_folder(model_dir)
    acoustic, vocoder = build.build_acoustic(config), build.build_generator(config)
    notes, fold_log = [], []
    plans = _plan_models(graphs, acoustic, vocoder, notes, fold_log)
    packed = {id(m): any(p.packed for p in plans if p.item.model is m) for m in (acoustic, vocoder)}
    scope, bits = _scope(packed[id(acoustic)], packed[id(vocoder)], config)
    corrections = []
    if (scope, bits) != (config.quantize, config.weight_bits):
        corrections.append(f"the manifest's model_config says quantize={config.quantize!r}, "
                           f"weight_bits={config.weight_bits}, but the graphs pack "
                           f"{ {'all': 'both models', 'none': 'no model'}.get(scope, scope)} "
                           f"ternary: the recovered config says quantize={scope!r}, "
                           f"weight_bits={bits}")
        old = config
        config = dataclasses.replace(config, quantize=scope, weight_bits=bits)
        if config.acoustic_bits != old.acoustic_bits:
            acoustic = build.build_acoustic(config)
        if config.vocoder_bits != old.vocoder_bits:
            vocoder = build.build_generator(config)
        notes, fold_log = [], []
        plans = _plan_models(graphs, acoustic, vocoder, notes, fold_log)
    notes = corrections + notes

    recovered, done = [], set()
    for plan in plans:
        layer = plan.item.layer
        ternary = getattr(layer, "is_ternary", False)
        if plan.packed != ternary:
            raise RecoveryError(f"layer {plan.item.path!r}: its kernel is "
                                f"{'packed ternary' if plan.packed else 'float'} in the graphs "
                                f"but {'ternary' if ternary else 'not ternary'} in the model "
                                "(a model packed only in part?)")
        for attribute, value in plan.values.items():
            if attribute == "kernel" and plan.packed:
                try:
                    value = ternary_latent(plan.codes, plan.beta)
                except ValueError as e:
                    raise RecoveryError(f"layer {plan.item.path!r}: {e}") from None
            variable = getattr(layer, attribute)
            _assign(variable, value, plan.item)
            done.add(id(variable))
        recovered.extend(RecoveredWeight(getattr(layer, attribute).path, file, tensor, how)
                         for attribute, file, tensor, how in plan.rows)
        if plan.packed:
            target = plan.codes.astype(np.float32) * np.float32(plan.beta)
            got = layer.effective_kernel()
            if not np.allclose(got, target, rtol=0, atol=1e-6 * max(float(plan.beta), 1e-30)):
                raise RecoveryError(f"layer {plan.item.path!r}: its quantized kernel does not "
                                    "come back as codes * beta")
            if not np.array_equal(got, target):
                notes.append(f"{plan.item.path}: ternary scale reproduced to within "
                             f"{float(np.max(np.abs(got - target))):.2g}, not bit-exact")
    _check_every_packed_kernel_used(graphs.values(), recovered)

    training_ids = {id(v) for layer in _training_only(acoustic) for v in layer.variables}
    not_recovered, states = [], []
    for model in (acoustic, vocoder):
        for variable in model.variables:
            if id(variable) in done:
                continue
            if not np.issubdtype(np.dtype(variable.dtype), np.floating):
                states.append(variable.path)
            elif id(variable) in training_ids:
                not_recovered.append(variable.path)
            else:
                raise RecoveryError(f"variable {variable.path}: no rule reads it from the graphs "
                                    "(a layer type this recovery does not know)")
    return Recovery(config, front_end, acoustic, vocoder, manifest, recovered, not_recovered,
                    states, list(fold_log), notes)


def _check_every_packed_kernel_used(graphs, recovered: list) -> None:
    """A packed kernel no layer took means a layer of another architecture."""
    used = {(row.graph, row.tensor) for row in recovered if row.how.startswith("packed")}
    for graph in graphs:
        for k, kind in enumerate(graph.kinds):
            if kind == spec.OP_NAME and graph.consumers.get(graph.output(k)):
                tensor = graph.name(graph.output(k))
                if (graph.file, tensor) not in used:
                    raise RecoveryError(f"{graph.file}: packed kernel {tensor!r} belongs to no "
                                        "layer of the model_config (another architecture?)")


def models_from_folder(model_dir: str):
    """(model_config, acoustic, vocoder) of a model folder, every weight the
    graphs hold set from them (`recover` also says what was not)."""
    recovery = recover(model_dir)
    return recovery.model_config, recovery.acoustic, recovery.vocoder


# --- Checkpoints --------------------------------------------------------------

CHECKPOINT_STEP = 0


def checkpoint_manifest(recovery: Recovery, model_dir: str) -> dict:
    """What synthesis and export read from a checkpoint's manifest
    (model_config, front_end), and where the weights came from."""
    graphs = recovery.manifest.get("graphs", {})
    return {"model_config": recovery.model_config.to_dict(),
            "front_end": recovery.front_end.to_dict(),
            "recovered_from": {"model_dir": os.path.abspath(model_dir),
                               "format_version": recovery.manifest.get("format_version"),
                               "graphs": {key: entry.get("sha256")
                                          for key, entry in graphs.items()},
                               "source": recovery.manifest.get("source"),
                               "not_recovered": list(recovery.not_recovered),
                               "folds": list(recovery.folds), "notes": list(recovery.notes)}}


def write_checkpoint(recovery: Recovery, output_dir: str, model_dir: str) -> str:
    """One checkpoint holding both models, `output_dir/ckpt-00000000.npz` (a
    joint checkpoint: export takes its vocoder too); refuses a directory
    holding other checkpoints, whose newest a loader would take instead."""
    from bittts_tf.training import checkpoints

    path = checkpoints.checkpoint_path(output_dir, CHECKPOINT_STEP)
    others = [p for p in checkpoints.of_run(output_dir)
              if os.path.abspath(p) != os.path.abspath(path)]
    if others:
        raise RecoveryError(f"{output_dir}: holds other checkpoints "
                            f"({os.path.basename(others[-1])}); write the recovered one elsewhere")
    return checkpoints.save(output_dir, CHECKPOINT_STEP,
                            {"acoustic": recovery.acoustic, "generator": recovery.vocoder}, {},
                            checkpoint_manifest(recovery, model_dir), keep=0)
