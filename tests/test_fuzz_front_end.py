"""tools/fuzz_front_end.py: a short run finds no crash, the outcomes it
reports are the ones that happened, and the inputs its first full run broke
(numbers longer than int() takes, long runs of digits or spaces that made
patterns quadratic) are read."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from bittts_tf.text import FrontEnd, TextError, fuzzing, normalize_text
from bittts_tf.text.segment import segment_ids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DIGIT_NAMES = "zero one two three four five six seven eight nine".split()


def test_a_short_run_reports_every_string_and_no_crash(tmp_path, seed):
    report_path = tmp_path / "fuzz.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fuzz_front_end.py"),
                           "--strings=300", f"--seed={seed}", "--long_every=30",
                           f"--output={report_path}"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["strings"] == 300 and report["seed"] == seed
    assert report["spoken"] + report["refused"] + report["wrong"] + report["crash"] == 300
    assert report["crash"] == 0 and report["wrong"] == 0 and report["failures"] == []
    assert sum(report["refusals"].values()) == report["refused"]
    assert report["spoken"] > 0 and report["refused"] > 0
    assert re.search(r"^crash +0$", done.stdout, re.M), done.stdout


class BrokenG2P:
    """Raises what a bug would raise on one word."""

    def __init__(self, g2p):
        self.g2p = g2p

    def word(self, token):
        if token.lower() == "boom":
            raise IndexError("list index out of range")
        return self.g2p.word(token)


def test_the_outcomes_are_what_the_front_end_did():
    front_end = FrontEnd()
    assert fuzzing.try_text(front_end, "Hello there.", 64) == ("spoken", "")
    assert fuzzing.try_text(front_end, "\U0001f600 \u0301", 64) == (
        "refused", "no pronounceable words")
    assert fuzzing.try_text(front_end, "a" * 200, 64) == (
        "refused", "a word longer than a segment")
    front_end.g2p = BrokenG2P(front_end.g2p)
    outcome, detail = fuzzing.try_text(front_end, "it goes boom", 64)
    assert outcome == "crash" and "IndexError" in detail


def test_a_refusal_that_does_not_name_the_text_is_wrong(monkeypatch):
    def refuse(front_end, text, max_tokens):
        raise TextError("something went wrong")

    monkeypatch.setattr(fuzzing, "segment_ids", refuse)
    front_end = FrontEnd()
    front_end.phonemes = lambda text: (_ for _ in ()).throw(TextError("nope"))
    outcome, detail = fuzzing.try_text(front_end, "Hello", 64)
    assert outcome == "wrong" and "does not name the text" in detail


def test_numbers_past_python_int_limit_are_read_digit_by_digit(rng):
    # int() refuses strings of over 4300 digits; the first fuzz run crashed there.
    for length in (4301, int(rng.integers(4302, 9000))):
        digits = "".join(str(d) for d in rng.integers(0, 10, length))
        digits = str(rng.integers(1, 10)) + digits[1:]
        expected = " ".join(DIGIT_NAMES[int(c)] for c in digits)
        assert normalize_text(digits) == expected
        assert normalize_text(digits + "th").startswith(expected[:200])
        assert normalize_text("$" + digits).startswith(expected[:200])
        assert normalize_text(digits + "%").endswith(" percent")
        assert normalize_text("1." + digits) == "one point " + expected
        said = [i for ids in segment_ids(FrontEnd(), digits, 64) for i in ids]
        assert said.count(FrontEnd().symbols.pause_id) >= 2


@pytest.mark.parametrize("text", ["7" * 20000, "1," * 10000, "1." * 10000, " " * 20000,
                                  "\U0001f600" * 20000, "9 -" * 7000])
def test_long_runs_are_read_in_linear_time(text):
    # Each took 5-25 s before the patterns were made to start at a number's
    # first digit and whitespace was collapsed first; 2 s leaves room for a
    # slow, busy machine.
    start = time.process_time()
    normalize_text(text)
    assert time.process_time() - start < 2.0
