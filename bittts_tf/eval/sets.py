"""The evaluation sets, and the guard that keeps corpus text out of them.

  validation  bittts_tf/eval/validation.txt: every choice (checkpoints,
              averaging, hyperparameters, when to stop) is made on it
  test        bittts_tf/eval/test.txt: only ever reported, never chosen on

Both are everyday English written by hand for this project, apart from each
other. The first 40 validation sentences are sentences.txt, the set the
shipped voice's checkpoints were chosen on: a set that decided something is
validation for good, never test.

Two sentences overlap when they are equal, when they say the same words
(compared after the normalizer spells out digits, money and percentages, in
lower case without punctuation: "$20" and "twenty dollars" are one text), or
when they share a run of NGRAM words: "Set a timer for ten minutes, please."
would say most of a held-out "Please set a timer for ten minutes." The
corpus prompt generator asks HeldOut.overlap about every prompt it would
use, so no corpus can hold a validation or test sentence.
"""

from __future__ import annotations

import os

from bittts_tf.eval import evaluation, metrics

_HERE = os.path.dirname(os.path.abspath(__file__))
VALIDATION_FILE = os.path.join(_HERE, "validation.txt")
TEST_FILE = os.path.join(_HERE, "test.txt")
SETS = {"validation": VALIDATION_FILE, "test": TEST_FILE}
DEFAULT_SET = "test"

# Six words: long enough to be a sentence's own, short enough to catch a
# reworded one. Against the 414 validation and test sentences, of the 21,730
# public-domain prompts of 1-40 words, runs of 4 would reject 183 (filler like
# "at the end of"), runs of 5 reject 12, runs of 6 one ("it on the side of
# the"), and none of the 13,997 prompts of the default 6-24 words, so the
# guard leaves the plans of existing corpora as they were.
NGRAM = 6


def set_file(name: str) -> str:
    """The file of a named set; an unknown name is refused in one line."""
    if name not in SETS:
        raise evaluation.SentencesError(
            f"unknown sentence set {name!r}; choose from {', '.join(SETS)}")
    return SETS[name]


def load_set(name: str) -> list[str]:
    return evaluation.load_sentences(set_file(name))


def words(text: str) -> tuple[str, ...]:
    """The words a reader says for `text`, as scoring compares them."""
    return tuple(metrics.normalize_words(evaluation.spoken_form(text)))


def runs(text_words: tuple[str, ...], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {text_words[i:i + n] for i in range(len(text_words) - n + 1)}


class HeldOut:
    """Sentences no corpus may contain, with what each overlap check needs.

    `sets` maps a set name to its sentences; by default the validation and
    test sets (sentences.txt is inside validation)."""

    def __init__(self, sets: dict[str, list[str]] | None = None, n: int = NGRAM):
        if sets is None:
            sets = {name: load_set(name) for name in SETS}
        self.n = n
        self.exact: dict[str, str] = {}
        self.said: dict[tuple[str, ...], str] = {}
        self.runs: dict[tuple[str, ...], str] = {}
        for name, sentences in sets.items():
            for sentence in sentences:
                where = f"{name} sentence {sentence!r}"
                self.exact.setdefault(sentence.strip(), where)
                said = words(sentence)
                self.said.setdefault(said, where)
                for run in runs(said, n):
                    self.runs.setdefault(run, where)

    def __len__(self) -> int:
        return len(self.exact)

    def overlap(self, text: str) -> str | None:
        """None if `text` may go into a corpus, else which held-out sentence
        it overlaps and how."""
        if text.strip() in self.exact:
            return f"is the {self.exact[text.strip()]}"
        said = words(text)
        if said in self.said:
            return f"says the same words as the {self.said[said]}"
        for run in runs(said, self.n):
            if run in self.runs:
                return f"shares {' '.join(run)!r} with the {self.runs[run]}"
        return None
