"""Checkpoint averaging: one checkpoint whose model weights are the mean of
several checkpoints of the same run.

The weights of a model still training jitter from step to step; a ternary
model's more than a float one's, since a latent weight near a rounding
threshold flips its code back and forth. The mean of the last few
checkpoints' weights sits in the middle of that jitter (as in stochastic
weight averaging), and a ternary model re-quantizes the mean latent weights.
"""

from __future__ import annotations

import os

import numpy as np

from bittts_tf.training import checkpoints

MODEL_PREFIX = "model/"


def _model_layout(manifest: dict) -> dict:
    return {group: layout for group, layout in manifest["layout"].items()
            if group.startswith(MODEL_PREFIX)}


def average(paths: list[str]) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and manifest of the average of `paths` (oldest first).

    Float model variables are averaged. Everything else (integer seed states,
    the optimizer, the step) comes from the newest checkpoint, so the result
    is a regular checkpoint that synthesis and export load as they load any.
    """
    if len(paths) < 2:
        raise checkpoints.CheckpointError(
            f"averaging needs at least two checkpoints, got {len(paths)}")
    loaded = [checkpoints.read_arrays(path) for path in paths]
    for path, (_, manifest) in zip(paths, loaded):
        if not isinstance(manifest.get("step"), int) or not isinstance(manifest.get("layout"),
                                                                        dict):
            raise checkpoints.CheckpointError(f"checkpoint {path} has no step or layout in its "
                                              "manifest (not a training checkpoint)")
    newest = max(range(len(paths)), key=lambda i: loaded[i][1]["step"])
    newest_path, (arrays, manifest) = paths[newest], loaded[newest]
    reference = _model_layout(manifest)
    for path, (_, other) in zip(paths, loaded):
        if (_model_layout(other) != reference
                or other.get("model_config") != manifest.get("model_config")):
            raise checkpoints.CheckpointError(
                f"{path} holds other models than {newest_path}; only checkpoints of one run "
                "can be averaged")
    steps = [other["step"] for _, other in loaded]
    if len(set(steps)) != len(steps):
        raise checkpoints.CheckpointError(f"the checkpoints repeat a step: {sorted(steps)}")

    averaged = dict(arrays)
    for key, value in arrays.items():
        if key.startswith(MODEL_PREFIX) and value.dtype.kind == "f":
            total = np.zeros(value.shape, np.float64)
            for path, (stored, _) in zip(paths, loaded):
                if key not in stored or stored[key].shape != value.shape:
                    raise checkpoints.CheckpointError(
                        f"checkpoint {path}: {key} is "
                        f"{list(stored[key].shape) if key in stored else 'missing'} where "
                        f"{newest_path} has {list(value.shape)} (corrupt, or another run)")
                total += stored[key]
            averaged[key] = (total / len(loaded)).astype(value.dtype)
    manifest = {**manifest, "averaged_from": [os.path.abspath(p) for p in paths],
                "averaged_steps": sorted(steps)}
    return averaged, manifest


def last_checkpoints(directory: str, count: int) -> list[str]:
    """The `count` newest checkpoints of a run (or checkpoints) directory, oldest first."""
    found = checkpoints.of_run(directory)
    if not found:
        raise checkpoints.CheckpointError(f"{directory}: no checkpoint in this directory")
    if len(found) < count:
        raise checkpoints.CheckpointError(f"{directory} holds {len(found)} checkpoints, "
                                          f"fewer than the {count} asked for")
    return found[-count:]


def write_average(paths: list[str], output: str) -> str:
    """Averages `paths` into `output` (written atomically); refuses to write
    among a run's own checkpoints, where a resume would take it for the newest."""
    for path in paths:
        if os.path.dirname(os.path.abspath(output)) == os.path.dirname(os.path.abspath(path)):
            raise checkpoints.CheckpointError(
                f"--output={output} is in the directory of {path}: a resumed run would pick "
                "the average up as its newest checkpoint; write it elsewhere")
    arrays, manifest = average(paths)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    return checkpoints.write(output, arrays, manifest)
