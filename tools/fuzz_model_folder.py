"""Damages a model folder's graphs, re-signs its manifest, speaks with each
damaged folder, and tables what the runtime did.

  python tools/fuzz_model_folder.py --model_dir=models/slt_tiny --tries=1000 --output=out/fuzz_model_folder.json

For each decode mode (--decode_modes), --tries times: pick a variant of the
folder and one of its graphs, damage that graph (random bytes, truncation, a
run copied over another place, the other graph in its place, swapped
buffers, a tensor's shape or type, an operator's input or opcode), write the
folder with a manifest that vouches for the damaged file, and speak
--text through `bittts_tf.runtime.TextToSpeech` in a forked child. Outcomes:
spoke, spoke_nonfinite, refused (one line, as the tools print it),
traceback, crash, hang. --keep_dir keeps the damaged folders of the bad
outcomes. The JSON report (written atomically) holds the
table and every traceback, crash and hang with its try; a Markdown table
goes beside it. Exit status 1 when any try ended in a traceback, crash or
hang.
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (this one loads no TensorFlow)

import dataclasses
import os
import sys
import tempfile
import time

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "models/slt_tiny", "Model folder to damage (it is not changed).")
flags.DEFINE_integer("tries", 1000, "Damaged folders per decode mode.")
flags.DEFINE_list("decode_modes", ["load", "graph"], "Decode modes to speak with.")
flags.DEFINE_list("variants", [], "Variants to damage (default: every one the folder has).")
flags.DEFINE_integer("seed", 0, "Seed of the damage (the same seed, the same folders).")
flags.DEFINE_string("text", "Hi.", "What each damaged folder is asked to say.")
flags.DEFINE_float("timeout", 60.0, "Seconds a try may take before it counts as a hang.")
flags.DEFINE_string("output", "out/fuzz_model_folder.json", "JSON report; the .md table beside it.")
flags.DEFINE_string("keep_dir", None, "Where the damaged folders that ended in a traceback, crash "
                    "or hang are kept, to replay with tools/speak.py (default: not kept).")
cli.output_flags(files=("output",))


def main(argv):
    del argv
    from tqdm import tqdm

    from bittts_tf import fileio
    from bittts_tf.runtime import DECODE_MODES, folder_fuzz

    unknown = sorted(set(FLAGS.decode_modes) - set(DECODE_MODES))
    if unknown:
        raise cli.ToolError(f"--decode_modes: unknown mode(s) {unknown} (modes: {DECODE_MODES})")
    start = time.time()
    bar = tqdm(total=FLAGS.tries * len(FLAGS.decode_modes), unit="try", file=sys.stderr)
    done = []

    def write() -> tuple[dict, str]:
        counts = folder_fuzz.table(done)
        report = {"model_dir": FLAGS.model_dir, "seed": FLAGS.seed, "tries_per_mode": FLAGS.tries,
                  "tries_run": len(done), "seconds": round(time.time() - start, 1),
                  "table": counts,
                  "bad": [dataclasses.asdict(r) for r in done if r.outcome in folder_fuzz.BAD]}
        table = folder_fuzz.markdown(counts)
        fileio.atomic_write_json(FLAGS.output, report)
        fileio.atomic_write_text(os.path.splitext(FLAGS.output)[0] + ".md", table + "\n")
        return report, table

    def progress(result):
        done.append(result)
        bar.update()
        if result.outcome in folder_fuzz.BAD:
            bar.write(f"try {result.index} ({result.decode}, {result.variant} {result.graph}, "
                      f"{result.mutation}): {result.outcome}: {result.message}")
        if len(done) % 50 == 0:  # a long run stopped early keeps what it tried
            write()

    with tempfile.TemporaryDirectory(prefix="fuzz_model_folder_") as work_dir:
        folder_fuzz.fuzz(FLAGS.model_dir, work_dir, FLAGS.tries, FLAGS.decode_modes,
                         FLAGS.variants, FLAGS.seed, FLAGS.text, FLAGS.timeout, progress,
                         FLAGS.keep_dir)
    bar.close()
    report, table = write()
    results = done
    print(table)
    print(f"{len(results)} tries in {report['seconds']:.0f} s; report {FLAGS.output}")
    if report["bad"]:
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
