"""Puts an acoustic model and a vocoder trained apart into one checkpoint
holding both: the start of a joint run (tools/train.py --mode=joint).

  python tools/pair_checkpoints.py --acoustic=out/twin/float32_src/am_avg3.npz \
      --vocoder=out/twin/float32_src/voc_ft_avg2.npz --output=out/twin/float32_src/pair.npz
  python tools/train.py --mode=joint --init_from=out/twin/float32_src/pair.npz ...

The models' arrays are copied as they are: latent weights of ternary layers,
the aligner, dropout seed states; nothing is re-quantized or exported (the
model folder route, tools/recover_checkpoint.py, keeps only what the graphs
hold: a ternary layer's codes, and no aligner). The acoustic model comes from
--acoustic, the vocoder (generator) from --vocoder; optimizers and
discriminators are left out.

The output holds weights only, as a recovered checkpoint does: a joint run
started from it begins at step 0 with fresh optimizers and discriminators and
0 CPU seconds, so its --max_cpu_minutes counts its own CPU time alone (the
steps and CPU minutes of the two inputs are kept in the manifest under
"paired_from"). Its config is the acoustic checkpoint's with the vocoder
checkpoint's vocoder and quantization, as an export of the two records it:
tools/export_tts.py --checkpoint=OUTPUT exports the pair as it stands.
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (this one loads no TensorFlow)

import os

from absl import flags

from bittts_tf.models import configs
from bittts_tf.training import checkpoints

FLAGS = flags.FLAGS
flags.DEFINE_string("acoustic", None, "Checkpoint file (or run directory: its newest) holding the "
                    "acoustic model, e.g. an acoustic run's average.")
flags.DEFINE_string("vocoder", None, "Checkpoint file (or run directory: its newest) holding the "
                    "vocoder, e.g. a vocoder run's average.")
flags.DEFINE_string("output", None, "The paired checkpoint (.npz), written atomically; not in a "
                    "run's checkpoints directory, where a resume would take it for the newest.")
flags.mark_flags_as_required(["acoustic", "vocoder", "output"])
cli.output_flags(files=("output",))

ACOUSTIC = "model/acoustic"
GENERATOR = "model/generator"


def model_arrays(arrays: dict, manifest: dict, group: str, path: str, flag: str) -> dict:
    """The stored arrays of one model, keyed "<group>/<index>" as stored."""
    layout = manifest.get("layout", {}).get(group)
    if layout is None:
        raise cli.ToolError(f"--{flag}={path} holds no {group!r} (it holds "
                            f"{sorted(manifest.get('layout', {}))})")
    keys = [f"{group}/{i:05d}" for i in range(len(layout))]
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise cli.ToolError(f"--{flag}={path} is corrupt: its layout names {missing[0]}, which it "
                            "does not hold")
    return {key: arrays[key] for key in keys}


def pair(acoustic_path: str, vocoder_path: str) -> tuple[dict, dict]:
    """(arrays, manifest) of the checkpoint holding both models."""
    acoustic_arrays, acoustic_manifest = checkpoints.read_arrays(acoustic_path)
    vocoder_arrays, vocoder_manifest = checkpoints.read_arrays(vocoder_path)
    arrays = {**model_arrays(acoustic_arrays, acoustic_manifest, ACOUSTIC, acoustic_path,
                             "acoustic"),
              **model_arrays(vocoder_arrays, vocoder_manifest, GENERATOR, vocoder_path,
                             "vocoder")}
    acoustic_config = checkpoints.model_config(acoustic_path, acoustic_manifest)
    vocoder_config = checkpoints.model_config(vocoder_path, vocoder_manifest)
    if acoustic_config.audio != vocoder_config.audio:
        raise cli.ToolError(f"--vocoder={vocoder_path} was trained for {vocoder_config.audio}, "
                            f"--acoustic={acoustic_path} for {acoustic_config.audio}")
    try:
        model_config = configs.with_vocoder_of(acoustic_config, vocoder_config)
    except ValueError as e:
        raise cli.ToolError(f"--acoustic={acoustic_path} and --vocoder={vocoder_path}: {e}")
    if "front_end" not in acoustic_manifest:
        raise cli.ToolError(f"--acoustic={acoustic_path}: its manifest holds no front end")

    def source(path: str, manifest: dict) -> dict:
        return {"path": os.path.abspath(path), "step": manifest.get("step"),
                "cpu_seconds": float(manifest.get("cpu_seconds", 0.0))}

    paired_from = {"acoustic": source(acoustic_path, acoustic_manifest),
                   "vocoder": source(vocoder_path, vocoder_manifest)}
    manifest = {
        "model_config": model_config.to_dict(),
        "front_end": acoustic_manifest["front_end"],
        "layout": {ACOUSTIC: acoustic_manifest["layout"][ACOUSTIC],
                   GENERATOR: vocoder_manifest["layout"][GENERATOR]},
        "step": 0,
        "cpu_seconds": 0.0,
        # Weights only, no training config: tools/train.py starts from it as
        # from a recovered checkpoint (fresh optimizers, step 0).
        "recovered_from": {"tool": "tools/pair_checkpoints.py",
                           "acoustic": paired_from["acoustic"]["path"],
                           "vocoder": paired_from["vocoder"]["path"]},
        "paired_from": paired_from,
    }
    return arrays, manifest


def main(argv):
    del argv
    acoustic = checkpoints.resolve(FLAGS.acoustic, f"--acoustic={FLAGS.acoustic}")
    vocoder = checkpoints.resolve(FLAGS.vocoder, f"--vocoder={FLAGS.vocoder}")
    output = FLAGS.output
    if not output.endswith(".npz"):
        raise cli.ToolError(f"--output={output}: name a .npz file")
    if os.path.isdir(output):
        raise cli.ToolError(f"--output={output} is a directory; name a .npz file")
    if os.path.abspath(output) in (os.path.abspath(acoustic), os.path.abspath(vocoder)):
        raise cli.ToolError(f"--output={output} is one of the inputs")
    parent = os.path.dirname(os.path.abspath(output))
    if os.path.basename(parent) == "checkpoints" or checkpoints.list_checkpoints(parent):
        raise cli.ToolError(f"--output={output} is in a run's checkpoints directory ({parent}): "
                            "a resumed run would take it for its newest; write it elsewhere")
    arrays, manifest = pair(acoustic, vocoder)
    os.makedirs(parent, exist_ok=True)
    checkpoints.write(output, arrays, manifest)
    config = manifest["model_config"]
    steps = {side: manifest["paired_from"][side]["step"] for side in ("acoustic", "vocoder")}
    print(f"paired the acoustic model of {acoustic} (step {steps['acoustic']}, "
          f"{len(manifest['layout'][ACOUSTIC])} variables) with the vocoder of {vocoder} "
          f"(step {steps['vocoder']}, "
          f"{len(manifest['layout'][GENERATOR])} variables); quantize={config['quantize']}")
    print(f"wrote {os.path.abspath(output)} (step 0, 0 CPU seconds: a joint run from it counts "
          "only its own)")


if __name__ == "__main__":
    cli.run(main)
