"""Checkpoints: every variable of the trained models and of both optimizers
(Adam moments, step counter), the dropout seed states and a JSON manifest
(step, data position, configs, symbol table), in one .npz written atomically.

Each model's variables are stored under its own name and in its own order,
so synthesis can restore one model without building the others.
"""

from __future__ import annotations

import glob
import json
import os
import re
import zipfile

import numpy as np

from bittts_tf import fileio

MANIFEST_KEY = "__manifest__"
_NAME = re.compile(r"ckpt-(\d{8})\.npz$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or does not fit the models given."""


def _groups(models: dict, optimizers: dict) -> dict[str, list]:
    groups = {f"model/{name}": list(model.variables) for name, model in models.items()}
    groups.update({f"optimizer/{name}": list(opt.variables)
                   for name, opt in optimizers.items() if opt is not None})
    return groups


def checkpoint_path(directory: str, step: int) -> str:
    return os.path.join(directory, f"ckpt-{int(step):08d}.npz")


def save(directory: str, step: int, models: dict, optimizers: dict, manifest: dict,
         keep: int = 3) -> str:
    os.makedirs(directory, exist_ok=True)
    arrays, layout = {}, {}
    for group, variables in _groups(models, optimizers).items():
        layout[group] = [[v.path, list(v.shape)] for v in variables]
        for i, v in enumerate(variables):
            arrays[f"{group}/{i:05d}"] = np.asarray(v.numpy())
    path = write(checkpoint_path(directory, step), arrays,
                 {**manifest, "step": int(step), "layout": layout})
    for old in list_checkpoints(directory)[:-keep] if keep else []:
        os.unlink(old)
    return path


def write(path: str, arrays: dict[str, np.ndarray], manifest: dict) -> str:
    """Writes `arrays` (keyed "<group>/<index>") and the manifest to `path` atomically."""
    arrays = {**arrays, MANIFEST_KEY: np.frombuffer(json.dumps(manifest).encode(), np.uint8)}
    fileio.atomic_write(path, lambda tmp: _save_npz_durably(tmp, arrays), suffix=".npz")
    return path


def _save_npz_durably(path: str, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def list_checkpoints(directory: str) -> list[str]:
    paths = [p for p in glob.glob(os.path.join(directory, "ckpt-*.npz")) if _NAME.search(p)]
    return sorted(paths, key=lambda p: int(_NAME.search(p).group(1)))


def of_run(directory: str) -> list[str]:
    """The checkpoints of a run directory (in its checkpoints/ folder) or of a
    checkpoints directory, oldest first; empty when it holds none."""
    return (list_checkpoints(os.path.join(directory, "checkpoints"))
            or list_checkpoints(directory))


def latest(directory: str) -> str | None:
    paths = list_checkpoints(directory)
    return paths[-1] if paths else None


def _open(path: str):
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = np.load(path)
        manifest = json.loads(bytes(data[MANIFEST_KEY]).decode())
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError,
            UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {e}") from None
    return data, manifest


def read_arrays(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """Every stored array, keyed "<group>/<index>", and the manifest."""
    data, manifest = _open(path)
    with data:
        try:
            arrays = {key: data[key] for key in data.files if key != MANIFEST_KEY}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {e}") from None
    return arrays, manifest


def read_manifest(path: str) -> dict:
    data, manifest = _open(path)
    data.close()
    return manifest


def restore(path: str, models: dict, optimizers: dict | None = None) -> dict:
    """Loads the named models (and optimizers) from `path`; returns the manifest."""
    data, manifest = _open(path)
    with data:
        for group, variables in _groups(models, optimizers or {}).items():
            stored = manifest["layout"].get(group)
            if stored is None:
                raise CheckpointError(f"checkpoint {path} has no {group!r} "
                                      f"(it holds {sorted(manifest['layout'])})")
            if len(stored) != len(variables):
                raise CheckpointError(f"checkpoint {path}: {group} has {len(stored)} variables, "
                                      f"the model has {len(variables)} (another config?)")
            values = []
            for i, (v, (stored_path, shape)) in enumerate(zip(variables, stored)):
                if list(v.shape) != shape:
                    raise CheckpointError(f"checkpoint {path}: {group} variable {i} "
                                          f"{stored_path} has shape {shape}, the model's "
                                          f"{v.path} has {list(v.shape)}")
                try:
                    value = data[f"{group}/{i:05d}"]
                except (KeyError, zipfile.BadZipFile, OSError, ValueError) as e:
                    raise CheckpointError(f"checkpoint {path} is corrupt at {group}/{i}: {e}")
                if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                    raise CheckpointError(f"checkpoint {path}: {stored_path} holds NaN/Inf")
                values.append(value)
            for v, value in zip(variables, values):
                v.assign(value)
    return manifest
