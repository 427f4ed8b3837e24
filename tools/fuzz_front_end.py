"""Runs the text front end on random Unicode strings and reports what broke.

  python tools/fuzz_front_end.py --strings=10000 --seed=0 --output=out/fuzz_front_end.json
  python tools/fuzz_front_end.py --model_dir=models/slt_tiny   # that voice's front end

Each string goes where text goes at run time, through `FrontEnd.phonemes`
and `segment_ids`, and ends spoken, refused (a one-line TextError naming
the text), wrong (a broken promise of the front end) or crash
(bittts_tf/text/fuzzing.py says each in full).

The strings come from a seeded generator that mixes runs of ASCII letters,
words, digits and number forms, punctuation, whitespace, emoji (with
joiners, skin tones and flags), combining marks, right-to-left script and
direction controls, control characters, lone surrogates and any code point
at all; one string in --long_every is thousands of characters long (half
of those one run: a word, a number, a line of emoji). The JSON
report (written atomically) holds the counts, the refusal reasons, and each
crash and wrong outcome with its string; the exit status is 1 when there is
any crash or wrong outcome.
"""

from bittts_tf import cli

cli.quiet_startup()   # first, as every tool (this one loads no TensorFlow)

import json
import os
import time

import numpy as np
from absl import flags

from bittts_tf import fileio
from bittts_tf.text import FrontEnd
from bittts_tf.text.normalize import _show
from bittts_tf.text.fuzzing import random_text, try_text

FLAGS = flags.FLAGS
flags.DEFINE_integer("strings", 10000, "Random strings to try.")
flags.DEFINE_integer("seed", 0, "Seed of the string generator (the same seed, the same strings).")
flags.DEFINE_integer("max_tokens", 64, "Text graph size: phoneme ids per segment (the runtime's "
                     "default export); --model_dir takes its own.")
flags.DEFINE_string("model_dir", None, "Model folder whose front-end settings and text graph "
                    "size are fuzzed (default: FrontEnd() and --max_tokens).")
flags.DEFINE_integer("long_every", 50, "One string in this many is 1,000-20,000 characters long.")
flags.DEFINE_string("output", "out/fuzz_front_end.json", "JSON report, written atomically.")
flags.DEFINE_integer("show", 5, "Crashes and wrong outcomes printed in full (all are in the report).")
cli.output_flags(files=("output",))

# --- the run ----------------------------------------------------------------------

def load_front_end() -> tuple[FrontEnd, int]:
    if not FLAGS.model_dir:
        return FrontEnd(), FLAGS.max_tokens
    path = os.path.join(FLAGS.model_dir, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    try:
        return FrontEnd.from_dict(manifest["front_end"]), int(manifest["shapes"]["max_tokens"])
    except (KeyError, TypeError, ValueError) as e:
        raise cli.ToolError(f"{path}: no usable front_end / shapes.max_tokens ({e})") from None


def main(argv):
    del argv
    if FLAGS.strings < 1 or FLAGS.long_every < 1:
        raise cli.ToolError(f"--strings={FLAGS.strings} and --long_every={FLAGS.long_every} "
                            "must be at least 1")
    front_end, max_tokens = load_front_end()
    rng = np.random.default_rng(FLAGS.seed)
    counts = {"spoken": 0, "refused": 0, "wrong": 0, "crash": 0}
    reasons: dict[str, int] = {}
    failures = []
    characters, slowest = 0, (0.0, "")
    start = time.perf_counter()
    for index in range(FLAGS.strings):
        text = random_text(rng, long=index % FLAGS.long_every == FLAGS.long_every - 1)
        characters += len(text)
        began = time.perf_counter()
        outcome, detail = try_text(front_end, text, max_tokens)
        seconds = time.perf_counter() - began
        slowest = max(slowest, (seconds, _show(text)))
        counts[outcome] += 1
        if outcome == "refused":
            reasons[detail] = reasons.get(detail, 0) + 1
        elif outcome in ("wrong", "crash"):
            # The string itself, escaped: it may hold lone surrogates JSON cannot.
            failures.append({"index": index, "outcome": outcome, "text": ascii(text),
                             "detail": detail})
    report = {"strings": FLAGS.strings, "seed": FLAGS.seed, "max_tokens": max_tokens,
              "model_dir": FLAGS.model_dir, "characters": characters,
              "seconds": round(time.perf_counter() - start, 2),
              "slowest": {"seconds": round(slowest[0], 4), "text": ascii(slowest[1])},
              **counts, "refusals": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
              "failures": failures}
    fileio.atomic_write_json(FLAGS.output, report)

    print(f"{FLAGS.strings} strings (seed {FLAGS.seed}, {characters:,d} characters, "
          f"max_tokens {max_tokens}) in {report['seconds']} s; slowest {slowest[0]:.3f} s")
    print(f"{'outcome':<36}{'strings':>9}")
    for outcome in ("spoken", "refused"):
        print(f"{outcome:<36}{counts[outcome]:>9}")
    for reason, n in report["refusals"].items():
        print(f"  {reason:<34}{n:>9}")
    for outcome in ("wrong", "crash"):
        print(f"{outcome:<36}{counts[outcome]:>9}")
    for failure in failures[:FLAGS.show]:
        print(f"\n{failure['outcome']} at string {failure['index']}: {failure['text'][:200]}\n"
              f"{failure['detail']}")
    print(f"report: {FLAGS.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    cli.run(main)
