"""tools/pair_checkpoints.py: an acoustic checkpoint and a vocoder checkpoint
into one weights-only checkpoint a joint run starts from (checkpoints made up
here from random arrays; the driver's smoke run in test_paper_table.py trains
from a real pair)."""

import os
import subprocess
import sys

import numpy as np

from bittts_tf.models import configs
from bittts_tf.training import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRONT_END = {"symbols": ["_", "a", "b"], "made_up": True}


def made_up(rng, path, groups, config, step, cpu_seconds, mode):
    """A training checkpoint holding `groups` {group: [shape, ...]} of random arrays."""
    arrays, layout = {}, {}
    for group, shapes in groups.items():
        layout[group] = [[f"{group.split('/')[-1]}/layer_{i}/kernel", list(shape)]
                         for i, shape in enumerate(shapes)]
        for i, shape in enumerate(shapes):
            arrays[f"{group}/{i:05d}"] = rng.standard_normal(shape).astype(np.float32)
    manifest = {"model_config": config.to_dict(), "front_end": FRONT_END, "layout": layout,
                "step": step, "cpu_seconds": cpu_seconds, "training_config": {"mode": mode}}
    checkpoints.write(str(path), arrays, manifest)
    return arrays


def run_tool(*flags):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pair_checkpoints.py"),
                           *flags], capture_output=True, text=True, timeout=120, check=False)


def pair_of(rng, tmp_path, acoustic_quantize="acoustic", vocoder_quantize="vocoder",
            vocoder_bits=1.58):
    acoustic_config = configs.preset("tiny", quantize=acoustic_quantize)
    vocoder_config = configs.preset("tiny", quantize=vocoder_quantize, weight_bits=vocoder_bits,
                                    vocoder_overrides={"source_phase_cutoff": 4000.0,
                                                       "quantize_head": True})
    acoustic = made_up(rng, tmp_path / "am_avg3.npz",
                       {"model/acoustic": [(3, 4), (5,)], "optimizer/generator_side": [(2,)]},
                       acoustic_config, 3000, 1500.0, "acoustic")
    vocoder = made_up(rng, tmp_path / "voc_ft_avg2.npz",
                      {"model/generator": [(2, 6), (7,), (1, 1)],
                       "model/discriminators": [(4,)], "optimizer/generator_side": [(3,)]},
                      vocoder_config, 9000, 6000.0, "vocoder")
    return acoustic, vocoder


def test_pair_holds_both_models_as_trained_and_starts_a_joint_run_afresh(tmp_path, rng):
    acoustic, vocoder = pair_of(rng, tmp_path)
    output = tmp_path / "out" / "pair.npz"
    result = run_tool(f"--acoustic={tmp_path / 'am_avg3.npz'}",
                      f"--vocoder={tmp_path / 'voc_ft_avg2.npz'}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert "quantize=all" in result.stdout

    arrays, manifest = checkpoints.read_arrays(str(output))
    expected = {**{k: v for k, v in acoustic.items() if k.startswith("model/acoustic/")},
                **{k: v for k, v in vocoder.items() if k.startswith("model/generator/")}}
    assert sorted(arrays) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[key], value)
    assert sorted(manifest["layout"]) == ["model/acoustic", "model/generator"]
    assert manifest["layout"]["model/generator"][2] == ["generator/layer_2/kernel", [1, 1]]
    # Weights only: a joint run starts at step 0 with 0 CPU seconds.
    assert manifest["step"] == 0 and manifest["cpu_seconds"] == 0.0
    assert "training_config" not in manifest and "recovered_from" in manifest
    assert manifest["paired_from"]["acoustic"] == {
        "path": str(tmp_path / "am_avg3.npz"), "step": 3000, "cpu_seconds": 1500.0}
    assert manifest["paired_from"]["vocoder"]["cpu_seconds"] == 6000.0
    config = configs.ModelConfig.from_dict(manifest["model_config"])
    assert config.quantize == "all"
    assert config.vocoder.source_phase_cutoff == 4000.0 and config.vocoder.quantize_head
    assert manifest["front_end"] == FRONT_END

    from bittts_tf.training import run
    assert run.init_checkpoint(str(output), "joint") == str(output)


def test_pair_of_float32_models_is_float32(tmp_path, rng):
    pair_of(rng, tmp_path, "none", "none")
    output = tmp_path / "pair.npz"
    result = run_tool(f"--acoustic={tmp_path / 'am_avg3.npz'}",
                      f"--vocoder={tmp_path / 'voc_ft_avg2.npz'}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert checkpoints.read_manifest(str(output))["model_config"]["quantize"] == "none"


def refusal(result) -> str:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pair_checkpoints: "), result.stderr
    return lines[0]


def test_pair_refuses_what_would_not_pair_in_one_line(tmp_path, rng):
    pair_of(rng, tmp_path, vocoder_bits=4)
    am, voc = str(tmp_path / "am_avg3.npz"), str(tmp_path / "voc_ft_avg2.npz")
    line = refusal(run_tool(f"--acoustic={am}", f"--vocoder={voc}",
                            f"--output={tmp_path / 'p.npz'}"))
    assert "1.58-bit" in line and "4-bit" in line
    line = refusal(run_tool(f"--acoustic={voc}", f"--vocoder={voc}",
                            f"--output={tmp_path / 'p.npz'}"))
    assert f"--acoustic={voc} holds no 'model/acoustic'" in line
    line = refusal(run_tool(f"--acoustic={tmp_path / 'gone.npz'}", f"--vocoder={voc}",
                            f"--output={tmp_path / 'p.npz'}"))
    assert "gone.npz does not exist" in line
    run_dir = tmp_path / "run" / "checkpoints"
    run_dir.mkdir(parents=True)
    line = refusal(run_tool(f"--acoustic={am}", f"--vocoder={voc}",
                            f"--output={run_dir / 'ckpt-00000000.npz'}"))
    assert "checkpoints directory" in line
    line = refusal(run_tool(f"--acoustic={am}", f"--vocoder={voc}", f"--output={am}"))
    assert "is one of the inputs" in line
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    line = refusal(run_tool(f"--acoustic={am}", f"--vocoder={empty_run}",
                            f"--output={tmp_path / 'p.npz'}"))
    assert f"--vocoder={empty_run}: no checkpoint in this directory" in line
    assert not (tmp_path / "p.npz").exists()
