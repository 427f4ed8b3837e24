"""Checkpoints restore by variable path and shape: a model whose same-shaped
layers were reordered is refused by name, and a rebuild of the same model in
the same process (Keras numbers unnamed objects from a process-wide counter)
restores exactly."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from bittts_tf.models import configs
from bittts_tf.text import FrontEnd
from bittts_tf.training import checkpoints, run
from bittts_tf.training.config import TrainingConfig


class TwoConvs(keras.Model):
    """Two same-shaped named convs; `swapped` creates (and so orders) them the
    other way round, as a refactoring that reorders layers would."""

    def __init__(self, swapped=False, **kwargs):
        super().__init__(name="two_convs", **kwargs)
        # The order of assignment decides the order of the model's variables.
        if swapped:
            self.second = keras.layers.Conv1D(4, 3, padding="same", name="second")
            self.first = keras.layers.Conv1D(4, 3, padding="same", name="first")
        else:
            self.first = keras.layers.Conv1D(4, 3, padding="same", name="first")
            self.second = keras.layers.Conv1D(4, 3, padding="same", name="second")

    def call(self, x):
        return self.second(self.first(x))


def build_two_convs(swapped=False):
    model = TwoConvs(swapped)
    model(np.zeros((1, 5, 4), np.float32))
    return model


def values(model):
    return [np.array(v.numpy()) for v in model.variables]


def test_swapped_same_shaped_layers_are_refused_by_name(tmp_path):
    saved = build_two_convs()
    path = checkpoints.save(str(tmp_path), 1, {"net": saved}, {}, {})
    swapped = build_two_convs(swapped=True)
    assert [v.path for v in swapped.variables][:2] == ["two_convs/second/kernel",
                                                       "two_convs/second/bias"]
    before = values(swapped)
    with pytest.raises(checkpoints.CheckpointError) as refused:
        checkpoints.restore(path, {"net": swapped})
    print(refused.value)
    assert str(refused.value) == (
        f"checkpoint {path}: model/net variable 0 is two_convs/first/kernel [3, 4, 4] in the "
        f"checkpoint but two_convs/second/kernel [3, 4, 4] in the model (layers renamed or "
        f"reordered, or another config?)")
    for got, want in zip(values(swapped), before):  # nothing was loaded
        np.testing.assert_array_equal(got, want)
    # The same order restores, every value in place.
    same = build_two_convs()
    checkpoints.restore(path, {"net": same})
    for got, want in zip(values(same), values(saved)):
        np.testing.assert_array_equal(got, want)


def test_a_missing_or_extra_variable_is_named(tmp_path):
    saved = build_two_convs()
    path = checkpoints.save(str(tmp_path), 1, {"net": saved}, {}, {})
    manifest = checkpoints.read_manifest(path)
    arrays, _ = checkpoints.read_arrays(path)
    manifest["layout"]["model/net"].pop()
    del arrays["model/net/00003"]
    shorter = checkpoints.write(str(tmp_path / "shorter.npz"), arrays, manifest)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"model/net has 3 variables; the model's variable 3 "
                             r"two_convs/second/bias is not in it"):
        checkpoints.restore(shorter, {"net": build_two_convs()})


def unnamed_model():
    """Nothing named: Keras numbers the model, the layers, the dropout's seed
    generator and the optimizer from its process-wide counters."""
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Conv1D(5, 3),
                              keras.layers.Dropout(0.2), keras.layers.Conv1D(5, 3)])
    optimizer = keras.optimizers.AdamW()
    optimizer.build(model.trainable_variables)
    return model, optimizer


def test_a_rebuild_with_renumbered_unnamed_objects_restores(tmp_path, rng):
    first, first_optimizer = unnamed_model()
    for v in first.variables + first_optimizer.variables:
        v.assign(rng.normal(size=v.shape).astype(v.dtype) if v.dtype == "float32"
                 else np.full(v.shape, 7, v.dtype))
    path = checkpoints.save(str(tmp_path), 1, {"net": first}, {"opt": first_optimizer}, {})
    second, second_optimizer = unnamed_model()
    first_paths = [v.path for v in first.variables + first_optimizer.variables]
    second_paths = [v.path for v in second.variables + second_optimizer.variables]
    assert len(set(first_paths) & set(second_paths)) < len(first_paths) // 2, second_paths
    checkpoints.restore(path, {"net": second}, {"opt": second_optimizer})
    for got, want in zip(second.variables + second_optimizer.variables,
                         first.variables + first_optimizer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(second(x).numpy(), first(x).numpy())


def test_the_trainer_rebuilt_in_one_process_restores(tmp_path, rng):
    """The real acoustic model and its optimizer, built twice in one process
    (its dropout seed generators and optimizer get new numbers)."""
    model_config = configs.preset("tiny", quantize="acoustic", n_symbols=len(FrontEnd().symbols))
    training_config = TrainingConfig(mode="acoustic")
    first = run.build_trainer(model_config, training_config)
    for v in first.models["acoustic"].trainable_variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    # An optimizer with state to restore (built at compile): every slot non-zero.
    for v in first.optimizer.variables:
        v.assign(rng.normal(size=v.shape).astype(v.dtype) if v.dtype == "float32"
                 else np.full(v.shape, 7, v.dtype))
    path = checkpoints.save(str(tmp_path), 3, first.models, {"generator_side": first.optimizer},
                            {})
    second = run.build_trainer(model_config, training_config)
    assert first.optimizer.name != second.optimizer.name
    checkpoints.restore(path, second.models, {"generator_side": second.optimizer})
    for got, want in zip(second.models["acoustic"].variables, first.models["acoustic"].variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    assert len(second.optimizer.variables) == len(first.optimizer.variables) > 2
    for got, want in zip(second.optimizer.variables, first.optimizer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)


def test_paths_written_inside_the_models_scope_restore(tmp_path, rng):
    """Checkpoints written when a sublayer was built in the model's call hold
    `<model>/<layer>/...`; built in the constructor, the same variable's path
    has no model prefix. Both name the same variable."""
    model = build_two_convs()
    model.first.kernel.assign(rng.normal(size=model.first.kernel.shape).astype(np.float32))
    optimizer = keras.optimizers.AdamW(name="opt")
    optimizer.build(model.trainable_variables)
    path = checkpoints.save(str(tmp_path), 1, {"net": model}, {"opt": optimizer}, {})
    arrays, manifest = checkpoints.read_arrays(path)
    # Rewrite the stored paths as a model without the scope would have written them.
    for group in manifest["layout"].values():
        for entry in group:
            entry[0] = entry[0].replace("two_convs/", "").replace("/two_convs_", "/")
    assert manifest["layout"]["model/net"][0][0] == "first/kernel"
    assert manifest["layout"]["optimizer/opt"][2][0] == "opt/first_kernel_momentum"
    unscoped = checkpoints.write(str(tmp_path / "unscoped.npz"), arrays,
                                 json.loads(json.dumps(manifest)))
    fresh = build_two_convs()
    fresh_optimizer = keras.optimizers.AdamW(name="opt")
    fresh_optimizer.build(fresh.trainable_variables)
    checkpoints.restore(unscoped, {"net": fresh}, {"opt": fresh_optimizer})
    np.testing.assert_array_equal(fresh.first.kernel.numpy(), model.first.kernel.numpy())


def _damaged(config: dict, path: list, value):
    config = json.loads(json.dumps(config))
    *parents, last = path
    target = config
    for key in parents:
        target = target[key]
    target[last] = value
    return config


@pytest.mark.parametrize("preset", sorted(configs.PRESETS))
def test_a_damaged_stored_model_config_is_refused_naming_the_checkpoint(preset):
    """A checkpoint whose arrays are whole but whose stored config is not:
    every reader gets a CheckpointError naming the file (it was a KeyError,
    or a ValueError from deep in Keras for a negative channel count)."""
    config = configs.preset(preset).to_dict()
    front_end = FrontEnd().to_dict()
    path = "runs/x/checkpoints/ckpt-00000007.npz"
    assert checkpoints.model_config(path, {"model_config": config}).to_dict() == config
    assert checkpoints.front_end(path, {"front_end": front_end}).to_dict() == front_end
    vocoder_size = "channels" if config["vocoder"]["kind"] == "frame" else "initial_channel"
    damages = {
        "no model_config": None,
        "a string": "tiny",
        "negative vocoder width": _damaged(config, ["vocoder", vocoder_size], -4),
        "zero encoder blocks": _damaged(config, ["acoustic", "encoder_blocks"], 0),
        "fractional kernel": _damaged(config, ["acoustic", "encoder_kernel"], 2.5),
        "unknown vocoder kind": _damaged(config, ["vocoder", "kind"], "wavenet"),
        "unknown field": _damaged(config, ["acoustic", "no_such_field"], 1),
        "no audio": _damaged(config, ["audio"], None),
    }
    for what, damaged in damages.items():
        manifest = {} if damaged is None else {"model_config": damaged}
        with pytest.raises(checkpoints.CheckpointError) as refused:
            checkpoints.model_config(path, manifest)
        assert str(refused.value).startswith(f"{path}: "), (what, refused.value)
    for damaged in (None, "x", {"symbols": 3}):
        manifest = {} if damaged is None else {"front_end": damaged}
        with pytest.raises(checkpoints.CheckpointError, match=f"^{path}: "):
            checkpoints.front_end(path, manifest)


def test_a_damaged_stored_training_config_is_refused_naming_the_checkpoint():
    """A resumed run reads the stored TrainingConfig: a missing, mistyped or
    out-of-range one is a CheckpointError naming the file (it was a bare
    KeyError or TypeError)."""
    path = "runs/x/checkpoints/ckpt-00000007.npz"
    stored = dataclasses.asdict(TrainingConfig(mode="vocoder", batch_size=3))
    assert checkpoints.training_config(path, {"training_config": stored}) == TrainingConfig(
        mode="vocoder", batch_size=3)
    damages = {
        "missing": None,
        "a list": [1, 2],
        "unknown field": {**stored, "no_such_field": 1},
        "unknown mode": {**stored, "mode": "sing"},
        "decay rate 0": {**stored, "lr_decay_rate": 0.0},
    }
    for what, damaged in damages.items():
        manifest = {} if damaged is None else {"training_config": damaged}
        with pytest.raises(checkpoints.CheckpointError) as refused:
            checkpoints.training_config(path, manifest)
        assert str(refused.value).startswith(f"{path}: "), (what, refused.value)
