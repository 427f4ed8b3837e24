"""The paper's table at CPU scale (issue 25), from the folders
tools/paper_voices.py writes: per voice, model bytes (graphs and folder),
parameters, bits per weight, the int8 variant's flash and arena, CPU minutes,
test-set WER, CER, DNSMOS OVRL, MCD against festival's clips, and the
desktop real-time factor on one thread; festival's own voice as the
reference row. A voice or figure not there yet stays blank.

  python tools/paper_table.py --out_dir=out/paper --output=out/paper/table

writes table.md, table.json and table.png (quality against model bytes),
each atomically. The columns are described in bittts_tf/eval/paper_table.py.
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool

import os

from absl import flags

from bittts_tf.eval import paper_table

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "out/paper", "tools/paper_voices.py --out: one folder per voice.")
flags.DEFINE_list("voices", list(paper_table.VOICES), "Voices (folders of --out_dir), in table order.")
flags.DEFINE_string("reference", paper_table.REFERENCE,
                    "Folder of --out_dir with festival's evaluation and clips ('' : none).")
flags.DEFINE_string("output", None, "Stem of the outputs: STEM.md, STEM.json, STEM.png "
                    "(default: OUT_DIR/table).")
flags.DEFINE_boolean("mcd", True, "Compute the MCD against the reference's clips (about a "
                     "second per 10 sentences).")
cli.output_flags(files=("output",))


def main(argv):
    del argv
    if not os.path.isdir(FLAGS.out_dir):
        raise cli.ToolError(f"--out_dir={FLAGS.out_dir}: no such folder")
    table = paper_table.build_table(FLAGS.out_dir, FLAGS.voices, FLAGS.reference or None,
                                    FLAGS.mcd)
    stem = FLAGS.output or os.path.join(FLAGS.out_dir, "table")
    paths = paper_table.write(table, stem)
    print(paper_table.markdown(table), end="")
    print(f"wrote {', '.join(paths)}")


if __name__ == "__main__":
    cli.run(main)
