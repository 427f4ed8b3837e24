"""Recovering a source-phase voice (bittts_tf/export/recover.py): its frames
graph runs f0_projection beside mel_projection and, with source_f0_input,
the vocoder's f0_input on a windowed feature pair with a 2x2 map folded
into its kernel. Every weight of a random such voice comes back from its
model folder, through the library and the tool, and a layer the graph does
not hold is a one-line error naming it."""

import json
import shutil

import numpy as np
import pytest
from seeds import fresh_seed
from test_export_recover import (assert_same_ternary_codes, effective_weights, move_off_defaults,
                                 recovered_by_the_tool, worst_error)
from tts_models import random_tts

from bittts_tf.export import recover, tts_graphs
from bittts_tf.runtime import model_folder
from bittts_tf.text import FrontEnd

MAX_TOKENS = 24
STEP = 4


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """source_f0_input -> (config, acoustic, vocoder, its format-2 folder),
    made on first use."""
    cache = {}

    def get(f0_input: bool):
        if f0_input not in cache:
            seed = fresh_seed(f"recover: source-phase model, source_f0_input={f0_input}")
            config, acoustic, vocoder = random_tts(
                seed, vocoder_overrides={"source_f0_input": f0_input}, source_phase=True)
            move_off_defaults(acoustic, vocoder, np.random.default_rng(seed))
            folder = str(tmp_path_factory.mktemp(f"source_phase_{f0_input}"))
            tts_graphs.export_model_folder(folder, acoustic, vocoder, config, FrontEnd(),
                                           MAX_TOKENS, STEP, {"test": "source phase"},
                                           float32_baseline=False)
            cache[f0_input] = config, acoustic, vocoder, folder
        return cache[f0_input]

    return get


def assert_same_weights(original, recovered, what: str) -> None:
    """Every weight the graphs hold (all but the aligner's) as the original
    model's, the float F0 head bit for bit (no fold touches it)."""
    acoustic, vocoder = original
    want = effective_weights(acoustic, vocoder)
    got = effective_weights(*recovered)
    assert set(got) == set(want)
    training_only = {v.path for v in acoustic.aligner.variables}
    errors = {path: worst_error(got[path], want[path])
              for path in want if path not in training_only}
    worst = max(errors, key=errors.get)
    f0_paths = sorted(path for path in want if "/f0_" in path)
    print(f"{what}: {len(errors)} weights recovered, worst {errors[worst]:.2g} of the peak "
          f"({worst}); " + ", ".join(f"{path} {errors[path]:.2g}" for path in f0_paths))
    assert errors[worst] <= 1e-6, worst
    for attribute in ("kernel", "bias"):
        path = getattr(acoustic.f0_projection, attribute).path
        np.testing.assert_array_equal(got[path], want[path], err_msg=path)


@pytest.mark.parametrize("f0_input", [False, True], ids=["no_f0_input", "f0_input"])
def test_every_source_phase_weight_comes_back(voices, f0_input):
    config, acoustic, vocoder, folder = voices(f0_input)
    recovery = recover.recover(folder)
    assert recovery.model_config.to_dict() == config.to_dict()
    assert set(recovery.not_recovered) == {v.path for v in acoustic.aligner.variables}
    assert (recovery.vocoder.f0_input is not None) == f0_input
    folded = sorted(line.split(":")[0] for line in recovery.folds)
    assert folded == ["acoustic/mel_projection"] + (["generator/f0_input"] if f0_input else [])
    assert_same_weights((acoustic, vocoder), (recovery.acoustic, recovery.vocoder),
                        f"source_f0_input={f0_input}")
    assert_same_ternary_codes((acoustic, vocoder), (recovery.acoustic, recovery.vocoder))


def test_tool_recovers_the_shipping_configuration(voices, tmp_path):
    """source_f0_input=false, the configuration that ships: the tool's
    checkpoint, loaded as tools/export_tts.py loads it, holds the original
    weights."""
    _, acoustic, vocoder, folder = voices(False)
    loaded = recovered_by_the_tool(folder, tmp_path / "ckpt")
    assert_same_weights((acoustic, vocoder), (loaded.acoustic, loaded.generator),
                        "the tool's checkpoint")


def test_a_side_branch_the_graph_lacks_is_one_line(voices, tmp_path):
    """A folder exported without f0_input whose model_config says it has one:
    no conv of the frames graph has f0_input's kernel shape."""
    folder = tmp_path / "claims_f0_input"
    shutil.copytree(voices(False)[3], folder)
    path = folder / model_folder.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["model_config"]["vocoder"]["source_f0_input"] = True
    path.write_text(json.dumps(manifest))
    with pytest.raises(recover.RecoveryError) as caught:
        recover.recover(str(folder))
    message = str(caught.value)
    print(message)
    assert "\n" not in message
    assert "'generator/f0_input'" in message and "frames.tflite" in message
    assert "0 conv ops" in message


def test_manifest_and_config_f0_statistics_disagreeing_is_one_line(voices, tmp_path, rng):
    """The f0_input fold is undone with the model_config's log-F0 statistics;
    a manifest whose shapes.source_phase says otherwise is refused."""
    folder = tmp_path / "edited"
    shutil.copytree(voices(True)[3], folder)
    path = folder / model_folder.MANIFEST
    manifest = json.loads(path.read_text())
    key = str(rng.choice(["log_f0_mean", "log_f0_std"]))
    manifest["shapes"]["source_phase"][key] *= float(rng.uniform(1.01, 1.5))
    path.write_text(json.dumps(manifest))
    with pytest.raises(recover.RecoveryError) as caught:
        recover.recover(str(folder))
    message = str(caught.value)
    print(message)
    assert "\n" not in message and f"shapes.source_phase.{key}" in message
