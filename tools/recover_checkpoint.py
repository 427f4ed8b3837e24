"""Rebuilds a checkpoint from an exported model folder, when the training
checkpoints it was exported from are gone: every weight is read back from
the packed graphs (bittts_tf/export/recover.py says how), so the voice can be
exported again in another graph form.

  python tools/recover_checkpoint.py --model_dir=models/slt_tiny --output=out/slt_tiny_ckpt
  python tools/export_tts.py --checkpoint=out/slt_tiny_ckpt --out_dir=models/slt_tiny_new

--output receives one checkpoint holding both models (ckpt-00000000.npz):
--checkpoint alone finds the vocoder in it, and it serves as
--vocoder_checkpoint too. It is loaded back the way tools/export_tts.py loads
it and compared with the recovered weights before the tool reports success
(a checkpoint that does not load back is deleted, not left for a loader).
Weights no graph holds (the aligner: training only) keep their initial
values; the tool lists them, and the checkpoint's manifest keeps the list
under "recovered_from".
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import os

import numpy as np
from absl import flags

from bittts_tf.export import recover

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "The model folder (manifest.json, text.tflite, "
                    "frames.tflite) to read the weights from.")
flags.DEFINE_string("output", None, "Directory for the recovered checkpoint (created; it must "
                    "hold no other checkpoint).")
flags.DEFINE_boolean("verify", True, "Load the written checkpoint back as tools/export_tts.py "
                     "does and compare every variable with the recovered models.")
flags.DEFINE_string("report", None, "Optional JSON file: what was recovered and how, what was "
                    "not, the folds undone and the notes.")
flags.mark_flags_as_required(["model_dir", "output"])
cli.output_flags(files=("report",), folders=("output",))


def verify(path: str, recovery: recover.Recovery) -> int:
    """Loads `path` through the loader tools/export_tts.py uses; returns how
    many variables were compared (all must equal the recovered ones)."""
    from bittts_tf.eval.synthesis import Synthesizer

    loaded = Synthesizer(path)
    if loaded.generator is None:
        raise recover.RecoveryError(f"{path}: the loader found no vocoder in it")
    compared = 0
    for mine, theirs in ((recovery.acoustic, loaded.acoustic),
                         (recovery.vocoder, loaded.generator)):
        for a, b in zip(mine.variables, theirs.variables, strict=True):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                raise recover.RecoveryError(f"{path}: {b.path} does not load back as written")
            compared += 1
    return compared


def main(argv):
    del argv
    recovery = recover.recover(FLAGS.model_dir)
    path = recover.write_checkpoint(recovery, FLAGS.output, FLAGS.model_dir)
    summary = recovery.summary()
    print(f"recovered {summary['recovered']} weights of {FLAGS.model_dir} "
          f"(format {recovery.manifest.get('format_version')}):")
    for how, count in sorted(summary["by_kind"].items()):
        print(f"  {count:4d}  {how}")
    for line in recovery.folds:
        print(f"fold undone: {line}")
    for line in recovery.notes:
        print(f"note: {line}")
    print(f"not in the graphs (training only, left at their initial values): "
          f"{len(recovery.not_recovered)} weights"
          + (f" ({', '.join(sorted({p.rsplit('/', 2)[0] for p in recovery.not_recovered}))})"
             if recovery.not_recovered else ""))
    if FLAGS.verify:
        try:
            compared = verify(path, recovery)
        except BaseException:
            # --checkpoint=OUTPUT would find an unverified checkpoint and use it
            os.unlink(path)
            raise
        print(f"loaded back as tools/export_tts.py loads it: {compared} variables equal")
    if FLAGS.report:
        from bittts_tf import fileio
        fileio.atomic_write_json(FLAGS.report, {
            **summary, "checkpoint": os.path.abspath(path),
            "weights": [row.__dict__ for row in recovery.recovered]})
    print(f"wrote {os.path.abspath(path)}")
    max_tokens = recovery.manifest.get("shapes", {}).get("max_tokens")
    print("export it again with: python tools/export_tts.py "
          f"--checkpoint={FLAGS.output} --out_dir=NEW_MODEL_DIR"
          + (f" --max_tokens={max_tokens}" if max_tokens else ""))
    print(json.dumps({"checkpoint": os.path.abspath(path), "recovered": summary["recovered"],
                      "not_recovered": len(recovery.not_recovered)}))


if __name__ == "__main__":
    cli.run(main)
