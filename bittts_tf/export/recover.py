"""A model folder -> the Keras models it was exported from, every weight read
back from its two packed graphs (a re-export when the training checkpoints
are gone).

Both folder formats are read: 1 (a stateless frames graph over a window of
frames, the shipped voice's) and 2 (the frames graph as a stream). The models
are built from the manifest's model_config, as the checkpoint loader builds
them. Each layer is then found in the graph that runs it (`recover_layers`:
by name, or by dataflow order where the graph carries no layer names), its
weights are read from that op into the layer's Keras layout
(`recover_weights`, over the graph reader `recover_graph`), and set here: a
ternary kernel as a latent kernel whose quantization gives the graph's codes
and beta back exactly (`ternary_latent`).

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

import numpy as np

from bittts_tf.export.recover_graph import Graph, RecoveryError
from bittts_tf.export.recover_layers import LayerRef, graph_layers, training_only
from bittts_tf.export.recover_weights import Plan, model_folds, plan_graph
from bittts_tf.litert import tflite_file
from bittts_tf.quant import bits, quantizers, spec
from bittts_tf.runtime import model_folder as folder_lib

# Folder formats this recovery reads: 1, a stateless frames graph over a
# window; 2, the frames graph as a stream.
FORMAT_VERSIONS = (1, 2)

# RecoveryError is raised by every recover_* module; callers catch it from here.
__all__ = ["FORMAT_VERSIONS", "RecoveredWeight", "Recovery", "RecoveryError", "checkpoint_manifest",
           "models_from_folder", "read_manifest", "recover", "ternary_latent", "write_checkpoint"]


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


def uniform_latent(values: np.ndarray, weight_bits: float) -> np.ndarray:
    """A latent kernel W whose k-bit quantization is `values` (a k-bit kernel
    as the graphs hold it: codes times one scale s), to the bit.

    The layer's scale is float32 max|W| / Qn + epsilon, so W = values would
    come back with s + epsilon (5e-6 of the peak on a small kernel). Only the
    largest |W| sets the scale: those weights get the float32 magnitude m
    whose scale is s (bisection over the float32 numbers), the others stay at
    values, which round to their codes. The largest code is Qn, or fewer
    where epsilon is a large part of a tiny scale (an 8-bit kernel at
    s = 2e-6 has Qn - 1): found as the one that puts every value on a grid;
    s is the float32 step that gives the values exactly (`_grid_step`). Over
    150 random 2-, 4- and 8-bit kernels of 49,152 weights (scales 1.7e-6 to
    1.1) the codes and the scale came back exact in all; should float32 skip
    s, the nearest scale reached is taken."""
    values = np.asarray(values, np.float32)
    levels = bits.uniform_levels(weight_bits)
    largest = np.float32(np.abs(values).max(initial=0.0))
    if largest == 0:
        return values
    top = next((code for code in range(levels, 0, -1)
                if np.allclose(values * np.float32(code / largest),
                               np.round(values * np.float32(code / largest)), rtol=0, atol=1e-3)),
               levels)
    target = _grid_step(values, np.float32(largest / np.float32(top)))
    flat = values.reshape(-1)
    is_top = np.abs(flat) == largest

    def latent(pattern: int) -> np.ndarray:
        w = flat.copy()
        w[is_top] = np.sign(flat[is_top]) * np.int32(pattern).view(np.float32)
        return w.reshape(values.shape)

    def scale(pattern: int) -> np.float32:
        return _uniform_scale(latent(pattern), weight_bits)

    # The smallest magnitude whose scale reaches s, bisected over the float32
    # bit patterns in [0, 2 * largest] (positive floats sort as their patterns
    # do; with a top code below Qn, m lies above the largest value).
    lo, hi = 0, int(np.float32(2 * largest).view(np.int32))
    while lo < hi:
        mid = (lo + hi) // 2
        if scale(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    nearest = min((lo - 1, lo), key=lambda p: abs(float(scale(p)) - float(target)))
    return latent(nearest)


def _grid_step(values: np.ndarray, approx: np.float32) -> np.float32:
    """The float32 step s with codes * s == values (float32 products, as the
    quantizer makes them) for the most weights, within 3 float32 steps of
    `approx`: largest / top is itself rounded, one step off in some kernels."""
    codes = np.round(values / approx).astype(np.float32)
    candidates = [approx]
    for direction in (np.inf, -np.inf):
        value = approx
        for _ in range(3):
            value = np.nextafter(value, np.float32(direction), dtype=np.float32)
            candidates.append(value)
    return max(candidates, key=lambda c: (np.count_nonzero(codes * c == values), -abs(c - approx)))


def _uniform_scale(w: np.ndarray, weight_bits: float) -> np.float32:
    """The k-bit scale as the layer computes it (TensorFlow's float32)."""
    import tensorflow as tf

    return np.float32(quantizers.uniform_scale(tf.constant(w), weight_bits).numpy())


def _assign(variable, value: np.ndarray, item: LayerRef) -> None:
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


def _read_graph(model_dir: str, manifest: dict, role: str) -> Graph:
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
        return Graph(role, entry["file"], data)
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
    _check_source_phase(model_dir, manifest, config)
    return manifest, graphs, config, front_end


def _check_source_phase(model_dir: str, manifest: dict, config) -> None:
    """The exporter wrote shapes.source_phase's log-F0 statistics from the
    model_config, whose values the f0_input fold is undone with (the runtime
    reads the manifest's): two values mean an edited manifest."""
    source = (manifest.get("shapes") or {}).get("source_phase")
    if not isinstance(source, dict):
        return
    for key in ("log_f0_mean", "log_f0_std"):
        value, wanted = source.get(key), getattr(config.acoustic, key)
        if not isinstance(value, (int, float)) or float(value) != float(wanted):
            raise RecoveryError(f"{model_dir}/{folder_lib.MANIFEST}: shapes.source_phase.{key} "
                                f"is {value!r}, the model_config's acoustic {key} {wanted!r}; "
                                "the F0 standardization the graphs were exported with is "
                                "unknown")


def _scope(acoustic_packed: bool, vocoder_packed: bool, config) -> tuple[str, float]:
    """The quantize scope and weight bits that give the graphs' packed models."""
    ternary, float_bits = bits.TERNARY_BITS, bits.FLOAT_BITS
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
        return config.quantize, config.weight_bits  # k-bit kernels: float constants or INT4
    return "none", config.weight_bits


def _plan_models(graphs: dict, acoustic, vocoder, notes: list, fold_log: list) -> list[Plan]:
    layers = graph_layers(acoustic, vocoder)
    folds = model_folds(acoustic, vocoder)
    plans = []
    for role, graph in graphs.items():
        graph_plans, how = plan_graph(graph, layers[role], folds, fold_log, notes)
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
    scope, weight_bits = _scope(packed[id(acoustic)], packed[id(vocoder)], config)
    corrections = []
    if (scope, weight_bits) != (config.quantize, config.weight_bits):
        corrections.append(f"the manifest's model_config says quantize={config.quantize!r}, "
                           f"weight_bits={config.weight_bits}, but the graphs pack "
                           f"{ {'all': 'both models', 'none': 'no model'}.get(scope, scope)} "
                           f"ternary: the recovered config says quantize={scope!r}, "
                           f"weight_bits={weight_bits}")
        old = config
        config = dataclasses.replace(config, quantize=scope, weight_bits=weight_bits)
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
            elif attribute == "kernel" and getattr(layer, "weight_bits", None) not in (
                    None, bits.TERNARY_BITS, bits.FLOAT_BITS):
                value = uniform_latent(value, layer.weight_bits)
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

    training_ids = {id(v) for layer in training_only(acoustic) for v in layer.variables}
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
