"""One layer's weights read from the op that runs it, in the layer's Keras
layout, before anything is assigned.

How each weight comes back (in the graph's terms):

- Ternary kernels: the conv's weight operand is the output of a
  BitTTSTernaryDecode op; its int8 input holds the codes (`packing.decode`)
  and its float32 input the scale beta (`decode_at_load` gives the same
  floats: checked). `recover.ternary_latent` sets the latent kernel to
  W = codes * c, with c moved ulp by ulp until the quantizer's
  beta' = mean|W| + epsilon is beta: then round-clip(W / beta') gives the
  codes back and the forward pass's kernel is codes * beta exactly.
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
- A source-phase vocoder's f0_input reads f0_features(log-F0, voicing),
  which are pair @ M for pair = voicing * [standardized log-F0, 1]; the
  frames graph windows the pair and runs f0_input as one 1x1 conv of
  kernel M @ W (streaming.f0_input_map gives M to both, so the map undone
  is the one the exporter folds), always; W = M^-1 (M @ W) in float64, the bias as it is
  (within 2.2e-7 of the kernel's peak on random voices: the graph holds
  M @ W rounded to float32).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bittts_tf.export.recover_graph import BIAS_OPERAND, WEIGHT_OPERAND, Graph, RecoveryError
from bittts_tf.export.recover_layers import LayerRef, locate

# The graph inputs that feed each embedding's GATHER (tts_graphs.text_function).
_EMBEDDING_INPUTS = {"phone_embedding": "phonemes", "speaker_embedding": "speaker"}


@dataclasses.dataclass
class Plan:
    """What one layer's weights are, before any is assigned."""
    item: LayerRef
    values: dict          # variable attribute -> value in Keras layout
    codes: np.ndarray | None
    beta: float | None
    rows: list            # (attribute, graph, tensor, how)

    @property
    def packed(self) -> bool:
        return self.codes is not None


def _to_keras_layout(item: LayerRef, kind: str, values: np.ndarray, shape) -> np.ndarray:
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


@dataclasses.dataclass
class _InputMap:
    """`layer(pair @ matrix)` in the model, which the graph runs as one conv
    of kernel matrix @ W on `pair`."""
    matrix: np.ndarray   # float32 [in, in]
    why: str


def model_folds(acoustic, vocoder) -> dict[int, _Fold | _InputMap]:
    c = acoustic.config
    folds = {id(acoustic.mel_projection): _Fold(float(c["mel_std"]), float(c["mel_mean"]),
                                                "mel_projection(x) * mel_std + mel_mean")}
    f0_input = getattr(vocoder, "f0_input", None)
    if f0_input is not None:
        from bittts_tf.export import streaming

        folds[id(f0_input)] = _InputMap(streaming.f0_input_map(c), "f0_input(f0_features) run "
                                        "on voicing * [standardized log-F0, 1]")
    return folds


def _undo_input_map(graph: Graph, k: int, item: LayerRef, fold: _InputMap, kernel: np.ndarray,
                    codes, folds: list) -> np.ndarray:
    """The layer's kernel W from the graph's M @ W."""
    matrix = fold.matrix.astype(np.float64)
    if codes is not None or kernel.shape[0] != matrix.shape[0]:
        raise RecoveryError(f"layer {item.path!r}: {graph.file} holds a "
                            f"{'packed' if codes is not None else list(kernel.shape)} kernel; "
                            f"{fold.why} folds a {matrix.shape[0]}-input float one")
    if not abs(np.linalg.det(matrix)) > 0:
        raise RecoveryError(f"layer {item.path!r}: the map of {fold.why} is singular "
                            "(log_f0_std of 0?), so its kernel cannot be taken back")
    folds.append(f"{item.path}: {fold.why}, its map folded into {graph.file}'s "
                 f"{graph.kinds[k]} {graph.name(graph.output(k))[:50]!r}: kernel = map^-1 @ "
                 "kernel")
    return np.linalg.solve(matrix, kernel.astype(np.float64)).astype(np.float32)


def _scalar_reader(graph: Graph, tensor: int, kind: str, value: float) -> int | None:
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


def _undo_fold(graph: Graph, k: int, item: LayerRef, fold: _Fold, kernel: np.ndarray,
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


def _plan_conv(graph: Graph, k: int, item: LayerRef, folds: dict, fold_log: list) -> Plan:
    layer = item.layer
    kind = graph.kinds[k]
    weight = graph.weight(graph.input(k, WEIGHT_OPERAND), f"layer {item.path!r}")
    kernel = _to_keras_layout(item, kind, weight.values, layer.kernel.shape)
    codes, beta = weight.codes, weight.beta
    if codes is not None:
        codes = _to_keras_layout(item, kind, codes, layer.kernel.shape)
    rows = [("kernel", graph.file, weight.tensor,
             "packed ternary" if codes is not None else "float constant")]
    bias = None
    if layer.use_bias:
        bias_tensor = graph.input(k, BIAS_OPERAND[kind])
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
    if isinstance(fold, _InputMap):
        kernel = _undo_input_map(graph, k, item, fold, kernel, codes, fold_log)
        rows = [(a, f, t, how + (", fold undone" if a == "kernel" else ""))
                for a, f, t, how in rows]
    elif fold is not None:
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
    return Plan(item, values, codes, beta, rows)


def _constant_reader(graph: Graph, tensor: int, kind: str, size: int,
                     item: LayerRef) -> tuple[int | None, int]:
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


def _plan_norm(graph: Graph, k: int, item: LayerRef, notes: list) -> Plan:
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
    return Plan(item, values, None, None, rows)


def _plan_embedding(graph: Graph, item: LayerRef) -> Plan:
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
    return Plan(item, {"embeddings": table}, None, None,
                 [("embeddings", graph.file, graph.name(tensor), f"{graph.kinds[k]} table")])


def plan_graph(graph: Graph, items: list[LayerRef], folds: dict, fold_log: list,
                notes: list) -> tuple[list[Plan], str]:
    located, how = locate(graph, items)
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
