"""Random Unicode strings for the text front end, and what one string makes
of it: the generator and the judge behind tools/fuzz_front_end.py.

Each string goes where text goes at run time (bittts_tf.runtime.tts): into
`FrontEnd.phonemes` (normalization, then G2P) and into `segment_ids`, which
cuts it into segments of at most `max_tokens` phoneme ids. Every string ends
in one of four outcomes:

  spoken   phonemes and segments came back and keep the front end's promises:
           known symbols, a pause first and last, segments that fit, say
           every phoneme once, and are the whole text when it fits
  refused  a TextError on one line that names the text (the package's own
           clear refusal), counted by reason
  wrong    phonemes or segments that break a promise above, or a refusal
           that does not name the text or spans lines
  crash    any other exception
"""

from __future__ import annotations

import re
import traceback

import numpy as np

from bittts_tf.text import FrontEnd, TextError
from bittts_tf.text.normalize import _show
from bittts_tf.text.segment import segment_ids
from bittts_tf.text.symbols import PAUSE

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
