"""Checkpoints: every variable of the trained models and of both optimizers
(Adam moments, step counter), the dropout seed states and a JSON manifest
(step, data position, configs, symbol table), in one .npz written atomically.

Each model's variables are stored under its own name and in its own order,
so synthesis can restore one model without building the others. Restoring
checks every variable's path and shape against the stored ones, so a model
whose same-shaped layers were reordered or renamed is refused rather than
loaded into the wrong variables.
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


def _keras_auto_names(models: dict, optimizers: dict) -> set[str]:
    """The Keras auto-names among these objects' names, without their counter.

    An object built without a name is named after its class in snake case,
    then `_1`, `_2`, ... from a process-wide counter, so an unnamed layer,
    seed generator or optimizer changes its path from one build of the same
    config to the next in one process (`seed_generator_6` where the
    checkpoint says `seed_generator`; `adam_w_1` for a second optimizer). A
    name is taken for an auto-name when, without a `_<n>` tail, it spells
    its class's name (ignoring case and underscores)."""
    objects = []
    for model in models.values():
        # Keras 3 has no public walk over nested layers; _flatten_layers and
        # _seed_generators are what Layer itself uses to collect variables.
        for layer in model._flatten_layers(include_self=True, recursive=True):
            objects.append(layer)
            objects.extend(getattr(layer, "_seed_generators", []))
    objects.extend(opt for opt in optimizers.values() if opt is not None)
    names = set()
    for obj in objects:
        base = re.sub(r"_\d+$", "", obj.name)
        if base.replace("_", "").lower() == type(obj).__name__.lower():
            names.add(base)
    return names


def _without_counters(path: str, auto_names: set[str]) -> str:
    """`path` with the counter dropped from every Keras auto-name in it, as a
    path component (`seed_generator_3/...`) or inside an optimizer variable's
    name (`adam_w/sequential_1_conv1d_2_kernel_momentum`). Names given in the
    code (`block_0`, `conv_post`) stay as they are."""
    if not auto_names:
        return path
    alternatives = "|".join(sorted(map(re.escape, auto_names), key=len, reverse=True))
    return re.sub(rf"(?<![A-Za-z0-9])({alternatives})_\d+(?![A-Za-z0-9])", r"\1", path)


def _comparable_path(path: str, auto_names: set[str], owner_prefixes: list[tuple]) -> str:
    """The path compared between checkpoint and model: without counters, and
    relative to its owners. A path starts with its model's name only when
    the variable was created inside the model's name scope: a sublayer built
    in the model's constructor has none (`phone_embedding/embeddings`), the
    same one built in the model's first call has it
    (`acoustic/phone_embedding/embeddings`, as checkpoints written before the
    embedding was built in the constructor hold it). An optimizer's slots
    carry the optimizer's name, then the model variable's path with `_` for
    `/`. `owner_prefixes` holds, in order, the alternatives to strip."""
    path = _without_counters(path, auto_names)
    for alternatives in owner_prefixes:
        for prefix in alternatives:
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
    return path


def _owner_prefixes(models: dict, optimizers: dict, auto_names: set[str]) -> dict[str, list]:
    model_names = tuple(_without_counters(m.name, auto_names) for m in models.values())
    prefixes = {f"model/{name}": [(_without_counters(model.name, auto_names) + "/",)]
                for name, model in models.items()}
    prefixes.update({f"optimizer/{name}": [(_without_counters(opt.name, auto_names) + "/",),
                                           tuple(m + "_" for m in model_names)]
                     for name, opt in optimizers.items() if opt is not None})
    return prefixes


def _check_layout(path: str, group: str, stored: list, variables: list, auto_names: set[str],
                  owner_prefixes: list[tuple]) -> None:
    """Refuses the first variable whose path or shape differs from the
    checkpoint's at the same position: values are loaded by position, so a
    difference means they would land in another variable."""
    for i in range(max(len(stored), len(variables))):
        if i >= len(stored):
            raise CheckpointError(f"checkpoint {path}: {group} has {len(stored)} variables; the "
                                  f"model's variable {i} {variables[i].path} is not in it "
                                  f"(another config?)")
        stored_path, stored_shape = stored[i][0], list(stored[i][1])
        if i >= len(variables):
            raise CheckpointError(f"checkpoint {path}: {group} variable {i} {stored_path} has "
                                  f"no counterpart in the model ({len(variables)} variables; "
                                  f"another config?)")
        model_path, model_shape = variables[i].path, list(variables[i].shape)
        if (_comparable_path(stored_path, auto_names, owner_prefixes)
                != _comparable_path(model_path, auto_names, owner_prefixes)
                or stored_shape != model_shape):
            raise CheckpointError(f"checkpoint {path}: {group} variable {i} is {stored_path} "
                                  f"{stored_shape} in the checkpoint but {model_path} "
                                  f"{model_shape} in the model (layers renamed or reordered, "
                                  f"or another config?)")


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


def resolve(path: str, what: str | None = None) -> str:
    """A checkpoint file, or a run / checkpoints directory (its newest
    checkpoint). `what` names the input in the error (e.g. "--init_from=DIR");
    the path does when it is left out."""
    if os.path.isdir(path):
        found = of_run(path)
        if not found:
            raise CheckpointError(f"{what or path}: no checkpoint in this directory")
        return found[-1]
    return path


def latest(directory: str) -> str | None:
    paths = list_checkpoints(directory)
    return paths[-1] if paths else None


def _open(path: str):
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = np.load(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {e}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):   # a bare .npy (or pickle) under the name
        raise CheckpointError(f"checkpoint {path} is not a checkpoint: one array, not an .npz "
                              "archive of them")
    try:
        manifest = json.loads(bytes(data[MANIFEST_KEY]).decode())
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError,
            UnicodeDecodeError) as e:
        data.close()
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {e}") from None
    if not isinstance(manifest, dict):
        data.close()
        raise CheckpointError(f"checkpoint {path} is corrupt: its manifest is a "
                              f"{type(manifest).__name__}, not an object")
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


def model_config(path: str, manifest: dict | None = None):
    """The ModelConfig checkpoint `path` was trained with (from its manifest,
    read here unless given); a CheckpointError naming the file when it is
    missing or unusable."""
    from bittts_tf.models import configs
    manifest = read_manifest(path) if manifest is None else manifest
    if "model_config" not in manifest:
        raise CheckpointError(f"{path}: its manifest has no model_config")
    try:
        return configs.ModelConfig.from_dict(manifest["model_config"])
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: its model_config is unusable: {error}") from None


def training_config(path: str, manifest: dict | None = None):
    """The TrainingConfig stored with checkpoint `path`, as model_config()
    (a resumed run would otherwise fail with a bare KeyError or TypeError)."""
    from bittts_tf.training.config import TrainingConfig
    manifest = read_manifest(path) if manifest is None else manifest
    stored = manifest.get("training_config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: its manifest has no training_config object")
    try:
        return TrainingConfig(**stored)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: its training_config is unusable: {error}") from None


def front_end(path: str, manifest: dict | None = None):
    """The FrontEnd stored with checkpoint `path`, as model_config()."""
    from bittts_tf.text import FrontEnd
    manifest = read_manifest(path) if manifest is None else manifest
    if "front_end" not in manifest:
        raise CheckpointError(f"{path}: its manifest has no front_end")
    try:
        return FrontEnd.from_dict(manifest["front_end"])
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: its front_end is unusable: {error}") from None


def _match_new_variables(path: str, group: str, stored: list, variables: list,
                         auto_names: set[str], owner_prefixes: list[tuple]) -> list:
    """The model variables the stored ones load into, matched by path:
    every stored variable needs one of its shape; model variables left over
    are new (listed on stdout, they keep their values). Paths that repeat
    (auto-named seed generators without their counters) match in order."""
    by_path: dict[str, list] = {}
    for v in variables:
        by_path.setdefault(_comparable_path(v.path, auto_names, owner_prefixes), []).append(v)
    matched = []
    for stored_path, stored_shape in stored:
        candidates = by_path.get(_comparable_path(stored_path, auto_names, owner_prefixes), [])
        variable = candidates.pop(0) if candidates else None
        if variable is None or list(variable.shape) != list(stored_shape):
            raise CheckpointError(f"checkpoint {path}: {group} variable {stored_path} "
                                  f"{list(stored_shape)} has no counterpart of that shape in "
                                  f"the model (another config?)")
        matched.append(variable)
    for variable in (v for left in by_path.values() for v in left):
        print(f"{group}: {variable.path} {list(variable.shape)} is new (not in {path})")
    return matched


def restore(path: str, models: dict, optimizers: dict | None = None,
            new_variables_ok: bool = False) -> dict:
    """Loads the named models (and optimizers) from `path`; returns the
    manifest. `new_variables_ok` (no optimizers): model variables the
    checkpoint lacks keep their values; the rest load by path."""
    if new_variables_ok and optimizers:
        raise ValueError("new variables are for models alone: optimizer slots would not match")
    data, manifest = _open(path)
    auto_names = _keras_auto_names(models, optimizers or {})
    owner_prefixes = _owner_prefixes(models, optimizers or {}, auto_names)
    with data:
        for group, variables in _groups(models, optimizers or {}).items():
            stored = manifest["layout"].get(group)
            if stored is None:
                raise CheckpointError(f"checkpoint {path} has no {group!r} "
                                      f"(it holds {sorted(manifest['layout'])})")
            if new_variables_ok:
                variables = _match_new_variables(path, group, stored, variables, auto_names,
                                                 owner_prefixes[group])
            else:
                _check_layout(path, group, stored, variables, auto_names, owner_prefixes[group])
            values = []
            for i, stored_path in enumerate(entry[0] for entry in stored):
                try:
                    value = data[f"{group}/{i:05d}"]
                except (KeyError, zipfile.BadZipFile, OSError, ValueError) as e:
                    raise CheckpointError(f"checkpoint {path} is corrupt at {group}/{i}: {e}")
                if list(value.shape) != list(variables[i].shape):
                    raise CheckpointError(f"checkpoint {path} is corrupt at {group}/{i}: "
                                          f"{stored_path} holds shape {list(value.shape)}, its "
                                          f"layout says {list(variables[i].shape)}")
                if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                    raise CheckpointError(f"checkpoint {path}: {stored_path} holds NaN/Inf")
                values.append(value)
            for v, value in zip(variables, values):
                v.assign(value)
    return manifest
