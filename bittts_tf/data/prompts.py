"""English sentences available offline, for synthesizing a corpus.

Read sources (SOURCES) are public-domain text from Debian packages: bible-kjv
(King James Bible, 1611) and miscfiles (US Constitution, Declaration of
Independence). Their sentences are filtered to plain prose that a synthesizer
reads without surprises: letters and simple punctuation only, a sensible
number of words.

The generated source "everyday" (bittts_tf.data.everyday) is modern text from
a grammar written for this project: questions, numbers, money, dates, times,
lists, device prompts, short and long sentences. plan_prompts() mixes it
with the read sources at a chosen share.

No prompt from any source is ever a validation or test sentence: plan_prompts
drops every one that overlaps them (bittts_tf.eval.sets.HeldOut: the same
sentence, the same words once numbers are spelled out, or a shared run of 6
words).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import random
import re
import shutil
import subprocess

SOURCES = ("bible", "constitution", "declaration")   # read from Debian packages
EVERYDAY = "everyday"                                 # generated
ALL_SOURCES = SOURCES + (EVERYDAY,)
_STATE_FILES = {"constitution": "/usr/share/state/us-constitution.gz",
                "declaration": "/usr/share/state/us-declaration.gz"}


class PromptSourceError(RuntimeError):
    pass


def _bible_text() -> str:
    if shutil.which("bible") is None:
        raise PromptSourceError("the 'bible' program is missing: install the Debian packages "
                                "bible-kjv and bible-kjv-text (listed in deps/apt.txt)")
    out = subprocess.run(["bible", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ, "COLUMNS": "10000"}).stdout
    verses = []
    for line in out.splitlines():
        # Verse lines look like "  12 And God said ..."; chapter headings and
        # blank lines separate them.
        m = re.match(r"\s+\d+\s+(.*)", line)
        if m:
            verses.append(m.group(1))
        elif verses and line.strip() and not re.match(r"^\S.*\s\d+$", line):
            verses[-1] += " " + line.strip()
    return "\n".join(verses)


def _state_text(name: str) -> str:
    path = _STATE_FILES[name]
    if not os.path.exists(path):
        raise PromptSourceError(f"{path} is missing: install the Debian package miscfiles")
    with gzip.open(path, "rt", encoding="latin-1") as f:
        return f.read()


def source_text(name: str) -> str:
    if name == "bible":
        return _bible_text()
    if name in _STATE_FILES:
        return _state_text(name)
    if name == EVERYDAY:
        raise PromptSourceError(f"{EVERYDAY!r} is generated, not read: use plan_prompts")
    raise PromptSourceError(f"unknown prompt source {name!r}; choose from {ALL_SOURCES}")


def split_sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+(?=[A-Z])", text) if s.strip()]


_CLEAN = re.compile(r"[A-Z][A-Za-z ,;:'\-]*[a-z][.?!]")


def clean_sentence(sentence: str, min_words: int, max_words: int, max_chars: int) -> str | None:
    """The sentence in synthesizer-friendly form, or None if it should not be used."""
    # Shouted words (LORD, GOD) read as words, not letter by letter.
    sentence = re.sub(r"\b([A-Z])([A-Z]+)\b", lambda m: m.group(1) + m.group(2).lower(), sentence)
    if not _CLEAN.fullmatch(sentence) or "--" in sentence or "''" in sentence:
        return None
    words = sentence.split()
    if not min_words <= len(words) <= max_words or len(sentence) > max_chars:
        return None
    if any(len(w.strip(",;:.?!'-")) == 0 for w in words):
        return None
    return sentence


def collect_prompts(sources=SOURCES, min_words: int = 6, max_words: int = 24,
                    max_chars: int = 160) -> list[str]:
    """Unique clean sentences from the sources, sorted (order-independent of sources)."""
    found = set()
    for name in sources:
        for sentence in split_sentences(source_text(name)):
            clean = clean_sentence(sentence, min_words, max_words, max_chars)
            if clean:
                found.add(clean)
    return sorted(found)


def choose_prompts(prompts: list[str], count: int, seed: int) -> list[str]:
    if count > len(prompts):
        raise PromptSourceError(f"asked for {count} prompts but only {len(prompts)} clean "
                                "sentences are available; lower the count or relax the filters")
    shuffled = list(prompts)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:count]


@dataclasses.dataclass(frozen=True)
class Prompt:
    text: str
    source: str     # EVERYDAY, or "read" for the public-domain sources


# A generated sentence is redrawn when it is a duplicate, outside the length
# limits or overlaps a held-out sentence: 1.44 draws a sentence at the default
# 6-24 words, 1.2 at 1-30 words; over 5,000 utterances no slot took more than 7.
_MAX_TRIES = 200


def is_everyday_slot(index: int, share: float) -> bool:
    """Whether utterance `index` of a mixed plan is generated: spread evenly,
    round(share * 1000) of every 1000, decided by the index alone."""
    per_mille = round(share * 1000)
    return (index + 1) * per_mille // 1000 > index * per_mille // 1000


def length_ok(text: str, min_words: int, max_words: int, max_chars: int) -> bool:
    return min_words <= len(text.split()) <= max_words and len(text) <= max_chars


def everyday_prompt(seed: int, index: int, accept) -> str:
    """The generated sentence of utterance `index`: drawn from a random stream
    of its own (seed, index), so changing one slot (say, a new held-out
    sentence that now overlaps it) changes no other slot's stream."""
    from bittts_tf.data import everyday

    rng = random.Random(f"{EVERYDAY}:{seed}:{index}")
    for _ in range(_MAX_TRIES):
        text = everyday.sentence(rng)
        if accept(text):
            return text
    raise PromptSourceError(f"no usable everyday sentence for utterance {index} in "
                            f"{_MAX_TRIES} draws; relax the length filters")


def plan_prompts(sources, count: int, seed: int, min_words: int = 6, max_words: int = 24,
                 max_chars: int = 160, everyday_share: float = 0.5,
                 held_out=None) -> list[Prompt]:
    """The prompts of utterances 0 .. count - 1, deterministic from the
    arguments; the plan for n is a prefix of the plan for more.

    Read sources only: their clean sentences shuffled with `seed` (exactly
    choose_prompts, so existing corpora keep their plans). With EVERYDAY:
    utterance i is generated when is_everyday_slot(i, share) (share 1 when
    EVERYDAY is the only source) and takes the next read sentence otherwise.
    `held_out` (default: the validation and test sets) removes every overlap
    from every source.
    """
    from bittts_tf.eval import sets

    sources = list(sources)
    unknown = [s for s in sources if s not in ALL_SOURCES]
    if unknown or not sources:
        raise PromptSourceError(f"unknown prompt sources {unknown}; choose from "
                                f"{', '.join(ALL_SOURCES)}")
    if not 0.0 <= everyday_share <= 1.0:
        raise PromptSourceError(f"everyday share {everyday_share} is not between 0 and 1")
    held_out = sets.HeldOut() if held_out is None else held_out
    read = [s for s in sources if s in SOURCES]
    pool = [p for p in collect_prompts(read, min_words, max_words, max_chars)
            if held_out.overlap(p) is None] if read else []
    if EVERYDAY not in sources:
        return [Prompt(text, "read") for text in choose_prompts(pool, count, seed)]

    share = everyday_share if read else 1.0
    order = choose_prompts(pool, len(pool), seed)
    seen: set[tuple[str, ...]] = set()

    def accept(text: str) -> bool:
        return (length_ok(text, min_words, max_words, max_chars)
                and sets.words(text) not in seen and held_out.overlap(text) is None)

    plan, next_read = [], 0
    for index in range(count):
        if is_everyday_slot(index, share):
            prompt = Prompt(everyday_prompt(seed, index, accept), EVERYDAY)
        elif next_read < len(order):
            prompt = Prompt(order[next_read], "read")
            next_read += 1
        else:
            raise PromptSourceError(f"asked for {count} prompts but the read sources have "
                                    f"only {len(order)} clean sentences for a share of "
                                    f"{share:g} generated; lower the count or raise the share")
        seen.add(sets.words(prompt.text))
        plan.append(prompt)
    return plan
