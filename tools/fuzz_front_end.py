"""Runs the text front end on random Unicode strings and reports what broke.

  python tools/fuzz_front_end.py --strings=10000 --seed=0 --output=out/fuzz_front_end.json
  python tools/fuzz_front_end.py --model_dir=models/slt_tiny   # that voice's front end

Each string goes where text goes at run time (bittts_tf.runtime.tts): into
`FrontEnd.phonemes` (normalization, then G2P) and into `segment_ids`, which
cuts it into segments of at most --max_tokens phoneme ids. Every string ends
in one of four outcomes:

  spoken   phonemes and segments came back and keep the front end's promises:
           known symbols, a pause first and last, segments that fit, say
           every phoneme once, and are the whole text when it fits
  refused  a TextError on one line that names the text (the package's own
           clear refusal), counted by reason
  wrong    phonemes or segments that break a promise above, or a refusal
           that does not name the text or spans lines
  crash    any other exception

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
import re
import sys
import time
import traceback

import numpy as np
from absl import flags

from bittts_tf import fileio
from bittts_tf.text import FrontEnd, TextError
from bittts_tf.text.normalize import _show
from bittts_tf.text.segment import segment_ids
from bittts_tf.text.symbols import PAUSE

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

# --- the strings ---------------------------------------------------------------

WORDS = ["the", "Hello", "world", "LORD", "don't", "it's", "Dr", "Mr", "St", "No", "e.g",
         "i.e", "etc", "vs", "colour", "naïve", "café", "Zürich", "xylophone", "qwrtzp",
         "NASA", "ABC", "a", "I", "O'Brien", "rock'n'roll", "self-evident", "pneumonia"]
NUMBER_FORMS = ["0", "007", "1st", "22nd", "103rd", "11th", "1,000", "1,00", "3.14", ".5",
                "1999", "2024", "$5", "$5.50", "$1.5 million", "£3", "€0.99", "¥100", "50%",
                "12.5 %", "10/10", "-7", "+1", "1e10", "9" * 25, "1" + ",000" * 8,
                "½", "²", "Ⅻ", "１２３", "٣٤", "१२"]
RANGES = {
    # Inclusive code point ranges per kind; a run draws from one kind.
    "ascii_letters": [(0x41, 0x5A), (0x61, 0x7A)],
    "digits": [(0x30, 0x39)],
    "punctuation": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E),
                    (0x2010, 0x2027), (0x00A1, 0x00BF)],
    "whitespace": [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
                   (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x3000, 0x3000)],
    "latin_accented": [(0xC0, 0x24F), (0x1E00, 0x1EFF)],
    "combining_marks": [(0x300, 0x36F), (0x1AB0, 0x1AFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F)],
    "emoji": [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
              (0x1F1E6, 0x1F1FF), (0x1F3FB, 0x1F3FF), (0x200D, 0x200D), (0xFE0F, 0xFE0F),
              (0x2600, 0x27BF)],
    "rtl": [(0x590, 0x5FF), (0x600, 0x6FF), (0x200E, 0x200F), (0x202A, 0x202E),
            (0x2066, 0x2069), (0xFB50, 0xFDFF)],
    "control": [(0x00, 0x1F), (0x7F, 0x9F), (0xFFF9, 0xFFFB), (0xFEFF, 0xFEFF)],
    "cjk_and_others": [(0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x0400, 0x04FF),
                       (0x0370, 0x03FF), (0x0E00, 0x0E7F), (0xFF01, 0xFF5E)],
    "lone_surrogates": [(0xD800, 0xDFFF)],
    "any_code_point": [(0x0, 0x10FFFF)],
}
KINDS = sorted(RANGES) + ["words", "number_forms"]


def random_run(rng: np.random.Generator, kind: str, length: int) -> str:
    """`length` characters (or tokens, for words and number forms) of one kind."""
    if kind == "words":
        return " ".join(rng.choice(WORDS) for _ in range(length))
    if kind == "number_forms":
        return " ".join(rng.choice(NUMBER_FORMS) for _ in range(length))
    ranges = RANGES[kind]
    sizes = np.array([hi - lo + 1 for lo, hi in ranges], np.float64)
    picks = rng.choice(len(ranges), size=length, p=sizes / sizes.sum())
    return "".join(chr(int(rng.integers(ranges[r][0], ranges[r][1] + 1))) for r in picks)


def random_text(rng: np.random.Generator, long: bool) -> str:
    """A few runs of random kinds; `long` strings are 1,000-20,000 characters,
    half of them one run of one kind (one very long word, number, ...)."""
    if long:
        target = int(rng.integers(1000, 20001))
        if rng.random() < 0.5:
            return random_run(rng, str(rng.choice(KINDS)), target)[:target]
        runs = []
        while sum(map(len, runs)) < target:
            runs.append(random_run(rng, str(rng.choice(KINDS)), int(rng.integers(20, 400))))
        return "".join(runs)[:target]
    return "".join(random_run(rng, str(rng.choice(KINDS)), int(rng.integers(0, 12)))
                   for _ in range(int(rng.integers(1, 6))))


# --- one string through the front end -------------------------------------------

def refusal_reason(message: str) -> str:
    """The kind of a refusal: its message without the text and the numbers."""
    if "no pronounceable words" in message:
        return "no pronounceable words"
    if "more than the text graph's" in message:
        return "a word longer than a segment"
    return re.sub(r"'.*'|\".*\"|\d+", "_", message)[:80]


def broken_promise(front_end: FrontEnd, phonemes: list[str], segments: list[list[int]],
                   max_tokens: int) -> str | None:
    """What the output gets wrong, or None (see the module doc's `spoken`)."""
    table = front_end.symbols
    if len(phonemes) < 3 or phonemes[0] != PAUSE or phonemes[-1] != PAUSE:
        return f"phonemes do not start and end with a pause around a word: {phonemes[:5]}"
    unknown = [p for p in phonemes if p not in table]
    if unknown:
        return f"phonemes outside the symbol table: {unknown[:5]}"
    for ids in segments:
        if not 3 <= len(ids) <= max_tokens:
            return f"a segment of {len(ids)} ids (1..{max_tokens} allowed, at least 3)"
        if ids[0] != table.pause_id or ids[-1] != table.pause_id:
            return "a segment does not start and end with a pause"
        if not all(0 < i < len(table) for i in ids):
            return f"a segment has ids outside 1..{len(table) - 1}"
    said = [i for ids in segments for i in ids if i != table.pause_id]
    if said != [i for i in table.encode(phonemes) if i != table.pause_id]:
        return "the segments do not say the text's phonemes once each, in order"
    if len(phonemes) <= max_tokens and segments != [table.encode(phonemes)]:
        return "text that fits one segment was cut"
    return None


def try_text(front_end: FrontEnd, text: str, max_tokens: int) -> tuple[str, str]:
    """(outcome, reason or detail) of one string; see the module doc."""
    try:
        phonemes = front_end.phonemes(text)
    except TextError as e:
        phonemes, refusal = None, e
    except Exception:   # noqa: BLE001 -- anything else is what we are looking for
        return "crash", "FrontEnd.phonemes: " + traceback.format_exc(limit=-3)
    try:
        segments = segment_ids(front_end, text, max_tokens)
    except TextError as e:
        refusal = e
        segments = None
    except Exception:   # noqa: BLE001
        return "crash", "segment_ids: " + traceback.format_exc(limit=-3)
    if segments is not None and phonemes is not None:
        problem = broken_promise(front_end, phonemes, segments, max_tokens)
        return ("wrong", problem) if problem else ("spoken", "")
    if segments is not None:
        return "wrong", f"FrontEnd.phonemes refused what segment_ids spoke: {refusal}"
    message = str(refusal)
    if "\n" in message or _show(text) not in message:
        return "wrong", f"a refusal that does not name the text on one line: {message!r}"
    return "refused", refusal_reason(message)


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
