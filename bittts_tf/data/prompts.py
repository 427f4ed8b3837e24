"""Public-domain English sentences available offline, for synthesizing a corpus.

Sources are Debian packages: bible-kjv (King James Bible, 1611) and miscfiles
(US Constitution, Declaration of Independence). Sentences are filtered to
plain prose that a synthesizer reads without surprises: letters and simple
punctuation only, a sensible number of words.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import subprocess

SOURCES = ("bible", "constitution", "declaration")
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
    raise PromptSourceError(f"unknown prompt source {name!r}; choose from {SOURCES}")


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
