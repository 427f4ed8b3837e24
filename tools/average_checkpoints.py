"""Averages the model weights of a run's last checkpoints into one checkpoint.

  python tools/average_checkpoints.py --run_dir=runs/am_ternary --last=3 \
      --output=runs/am_ternary_avg3.npz --corpus=data/festival_cache

The output is a regular checkpoint (synthesize, convert and --init_from take
it). With --corpus, the held-out losses of each input and of the average are
printed side by side, on the utterances the run held out.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

from absl import app, flags

from bittts_tf import fileio
from bittts_tf.training import averaging, checkpoints

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run directory (tools/train.py --output_dir) whose newest "
                    "checkpoints are averaged.")
flags.DEFINE_integer("last", 3, "How many of the run's newest checkpoints to average.",
                     lower_bound=2)
flags.DEFINE_list("checkpoints", None, "Checkpoint files to average, instead of --run_dir.")
flags.DEFINE_string("output", None, "The averaged checkpoint (.npz), outside the run's "
                    "checkpoints directory.")
flags.DEFINE_string("corpus", None, "Optional: the run's corpus, to print held-out losses.")
flags.DEFINE_list("metrics", ["mel_l1", "alignment_boundary_ms"], "Held-out losses to print.")
flags.DEFINE_string("report", None, "Optional JSON file for the held-out losses.")
flags.mark_flag_as_required("output")
cli.output_flags(files=("output", "report"))


def main(argv):
    del argv
    if bool(FLAGS.run_dir) == bool(FLAGS.checkpoints):
        raise app.UsageError("give exactly one of --run_dir and --checkpoints")
    if FLAGS.checkpoints and FLAGS["last"].present:
        raise app.UsageError("--last picks from --run_dir; --checkpoints names them all")
    for name in ("report", "metrics"):
        if FLAGS[name].present and not FLAGS.corpus:
            raise app.UsageError(f"--{name} is about held-out losses: give --corpus too")
    paths = (averaging.last_checkpoints(FLAGS.run_dir, FLAGS.last) if FLAGS.run_dir
             else FLAGS.checkpoints)
    steps = {path: checkpoints.read_manifest(path).get("step") for path in paths}
    for path, step in steps.items():
        if not isinstance(step, int):
            raise checkpoints.CheckpointError(f"checkpoint {path} records no step (not a "
                                              "training checkpoint)")
    paths = sorted(paths, key=steps.get)

    output = averaging.write_average(paths, FLAGS.output)
    print(f"averaged {len(paths)} checkpoints (steps "
          f"{', '.join(str(steps[p]) for p in paths)}) into {output}")
    if not FLAGS.corpus:
        return

    from bittts_tf.eval.held_out import HeldOutEvaluator
    evaluator = HeldOutEvaluator(output, FLAGS.corpus)
    averaged = evaluator.evaluate(output)   # first: a bad --metrics is refused before the rest
    missing = [m for m in FLAGS.metrics if m not in averaged]
    if missing:
        raise app.UsageError(f"--metrics {missing} are not held-out losses of this run "
                             f"(it has {sorted(averaged)})")
    rows = {**{path: evaluator.evaluate(path) for path in paths}, output: averaged}
    print(f"{'checkpoint':<60}" + "".join(f"{m:>24}" for m in FLAGS.metrics))
    for path, row in rows.items():
        label = f"average ({path})" if path == output else path
        print(f"{label:<60}" + "".join(f"{row[m]:>24.4f}" for m in FLAGS.metrics))
    if FLAGS.report:
        fileio.atomic_write_json(FLAGS.report, {"inputs": paths, "average": output,
                                                "held_out": rows})


if __name__ == "__main__":
    cli.run(main)
