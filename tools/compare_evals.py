"""Compares two systems scored on the same sentences, sentence by sentence:
WER, CER and DNSMOS of each, the difference and its paired bootstrap
interval, and whether the interval leaves out zero.

  python tools/evaluate.py --model_dir=models/slt_tiny --set=validation --output=out/a.json
  python tools/evaluate.py --model_dir=out/candidate --set=validation --output=out/b.json
  python tools/compare_evals.py --a=out/a.json --b=out/b.json

A report with several systems (e.g. --systems=model,festival) names the one
to take: --a=out/x.json --a_system=festival.
"""

from bittts_tf import cli

cli.quiet_startup()

import os

from absl import flags

from bittts_tf import fileio
from bittts_tf.eval import paired

FLAGS = flags.FLAGS
flags.DEFINE_string("a", None, "The first tools/evaluate.py report (JSON): the reference.")
flags.DEFINE_string("b", None, "The second report, of the same sentences.")
flags.DEFINE_string("a_system", None, "The system of --a to take (needed if it holds several).")
flags.DEFINE_string("b_system", None, "The system of --b to take (needed if it holds several).")
flags.DEFINE_float("confidence", 0.95, "Confidence level of the intervals.")
flags.DEFINE_integer("resamples", 10_000, "Bootstrap resamples.")
flags.DEFINE_integer("seed", 0, "Seed of the resampling.")
flags.DEFINE_string("output", None, "Optional JSON of the comparison, written atomically.")
flags.mark_flags_as_required(["a", "b"])
flags.register_validator("confidence", lambda c: 0.5 <= c < 1.0,
                         message="--confidence must be in [0.5, 1)")
flags.register_validator("resamples", lambda n: n >= 100, message="--resamples must be >= 100")
cli.output_flags(files=("output",))


def main(argv):
    del argv
    system_a, rows_a = paired.load_sentences(FLAGS.a, FLAGS.a_system)
    system_b, rows_b = paired.load_sentences(FLAGS.b, FLAGS.b_system)
    names = (f"{os.path.basename(FLAGS.a)}:{system_a}", f"{os.path.basename(FLAGS.b)}:{system_b}")
    results = paired.compare(rows_a, rows_b, (FLAGS.a, FLAGS.b), FLAGS.confidence,
                             FLAGS.resamples, FLAGS.seed)
    print(f"{len(rows_a)} sentences; b - a, paired bootstrap over sentences "
          f"({FLAGS.resamples} resamples, seed {FLAGS.seed})")
    print(paired.table(results, names, FLAGS.confidence))
    left_out = [m for m in paired.METRICS if m not in {r.metric for r in results}]
    if left_out:
        print(f"left out (not scored for every sentence of both): {', '.join(left_out)}")
    if FLAGS.output:
        fileio.atomic_write_json(FLAGS.output, {
            "a": FLAGS.a, "a_system": system_a, "b": FLAGS.b, "b_system": system_b,
            "sentences": len(rows_a), "confidence": FLAGS.confidence,
            "resamples": FLAGS.resamples, "seed": FLAGS.seed,
            "metrics": [{**r.__dict__, "significant": r.significant} for r in results]})
        print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
