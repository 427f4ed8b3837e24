"""Text normalization: turn arbitrary Unicode text into plain English words.

Output keeps the sentence punctuation (the G2P turns it into pauses) and spells
out numbers, ordinals, currency, percentages and common abbreviations. Letters
with accents lose them; characters with no English reading are dropped.
"""

from __future__ import annotations

import re
import unicodedata

from bittts_tf.text import numbers


class TextError(ValueError):
    """Text that cannot be turned into speech; the message names the text."""


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# Punctuation that has an ASCII equivalent with the same meaning for speech.
_PUNCT_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": " - ", "\u2014": ", ", "\u2015": ", ", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u00bf": "", "\u00a1": "",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE",
    "\u00f8": "o", "\u00d8": "O", "\u0131": "i", "\u0142": "l", "\u0141": "L",
    "\u00f0": "d", "\u00d0": "D", "\u00fe": "th", "\u00de": "Th",
}

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor",
    "st": "saint", "jr": "junior", "sr": "senior", "co": "company", "corp": "corporation",
    "inc": "incorporated", "ltd": "limited", "vs": "versus", "etc": "et cetera",
    "mt": "mount", "ft": "fort", "gen": "general", "gov": "governor", "capt": "captain",
    "lt": "lieutenant", "col": "colonel", "sgt": "sergeant", "rev": "reverend",
    "hon": "honorable", "approx": "approximately", "dept": "department",
    "est": "established", "jan": "january", "feb": "february", "mar": "march",
    "apr": "april", "aug": "august", "sept": "september", "oct": "october",
    "nov": "november", "dec": "december",
}
# "No." is "number" only before a digit; otherwise it ends a sentence ("Say no.").
# Any word before a period, looked up: 4x faster than an alternation of the
# abbreviations, which was tried at every word boundary (0.09 against 0.37 s
# over 20,000 read prompts).
_ABBREV_RE = re.compile(r"\b([A-Za-z]+)\.(?=\s|$|[,;:])")
_LATIN_RE = re.compile(r"\b(e\.g|i\.e)\.", re.IGNORECASE)

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"),
             "\u00a3": ("pound", "pounds", "penny", "pence"),
             "\u20ac": ("euro", "euros", "cent", "cents"),
             "\u00a5": ("yen", "yen", "sen", "sen")}
_SCALE_WORDS = "thousand|million|billion|trillion"
_CURRENCY_RE = re.compile(r"([$\u00a3\u20ac\u00a5])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s(" + _SCALE_WORDS + r"))?\b")
# The number patterns start only at a number's first digit (not after a
# digit or "digit,"): a long run of digits and commas is then scanned once
# instead of once per digit (20,000 characters took 25 s a pattern).
_PERCENT_RE = re.compile(r"(?<!\d)(?<!\d,)(\d[\d,]*(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(?<!\d,)(\d[\d,]*)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"(?<![\d.])(?<!\d,)(\d[\d,]*)\.(\d+)\b")
_NUMBER_RE = re.compile(r"\d+(?:,\d{3})+(?!\d)|\d+")
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ",
            "%": " percent ", "/": " ", "_": " ", "*": " ", "~": " ", "|": ", ",
            "<": " less than ", ">": " greater than ", "^": " ",
            # A currency sign with no amount after it has nothing to say.
            "$": " ", "\u00a3": " ", "\u20ac": " ", "\u00a5": " "}

_SYMBOL_TABLE = str.maketrans(_SYMBOLS)
_PUNCT_TABLE = str.maketrans(_PUNCT_MAP)
# ASCII's unprintable characters but tab and newline: a space each.
_ASCII_CONTROLS = str.maketrans({c: " " for c in [*range(32), 127] if chr(c) not in "\n\t"})


def _digits(s: str) -> str:
    """A number as text ("1,000") as the digit string numbers.cardinal reads;
    never an int here, as text can hold more digits than int() takes."""
    return s.replace(",", "")


def _to_ascii(text: str) -> str:
    if text.isascii():
        # NFKC, the map and NFKD leave ASCII as it is; this path was 45% of
        # normalizing 20,000 ASCII prompts (5.8 of 13.1 s) and, a character
        # at a time, still a third of what was left.
        return text.translate(_ASCII_CONTROLS)
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_PUNCT_TABLE)
    # Decompose so that accents become separate marks, then drop the marks.
    text = unicodedata.normalize("NFKD", text)
    out = []
    for c in text:
        if c.isascii():
            out.append(c if (c.isprintable() or c in "\n\t") else " ")
        elif unicodedata.category(c).startswith("M"):
            continue
        elif c in _CURRENCY:
            out.append(c)
        elif unicodedata.category(c).startswith("Z"):
            out.append(" ")
        else:
            # No English reading (CJK, emoji, ...): a word boundary, not a sound.
            out.append(" ")
    return "".join(out)


def _abbreviation(m: re.Match) -> str:
    return _ABBREVIATIONS.get(m.group(1).lower(), m.group(0))


def _currency(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole, frac, scale = _digits(m.group(2)), m.group(3), m.group(4)
    if scale:
        amount = numbers.cardinal(whole) + (" point " + numbers.digits(frac) if frac else "")
        return f"{amount} {scale} {many}"
    words = f"{numbers.cardinal(whole)} {one if whole.lstrip('0') == '1' else many}"
    if frac:
        cents = int((frac + "0")[:2])
        if cents:
            words += f" {numbers.cardinal(cents)} {sub_one if cents == 1 else sub_many}"
    return words


def _plain_number(m: re.Match) -> str:
    s = m.group(0)
    if "," not in s and len(s) > 1 and s.startswith("0"):
        return numbers.digits(s)
    if "," not in s and len(s) == 4 and (1100 <= int(s) <= 1999 or 2010 <= int(s) <= 2099):
        return numbers.year(int(s))
    return numbers.cardinal(_digits(s))


def normalize_text(text: str) -> str:
    """Spell out everything a reader would say; keep punctuation as pause cues.

    >>> normalize_text("Dr. Smith paid $5.50 for the 3rd book.")
    'doctor Smith paid five dollars fifty cents for the third book.'
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a str, got {type(text).__name__}")
    text = _to_ascii(text)
    text = _LATIN_RE.sub(lambda m: "for example" if m.group(1).lower() == "e.g" else "that is", text)
    text = re.sub(r"\bno\.(?=\s*\d)", "number", text, flags=re.IGNORECASE)
    text = _ABBREV_RE.sub(_abbreviation, text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RE.sub(lambda m: m.group(1) + " percent", text)
    text = _ORDINAL_RE.sub(lambda m: numbers.ordinal(_digits(m.group(1))), text)
    text = _DECIMAL_RE.sub(lambda m: f"{numbers.cardinal(_digits(m.group(1)))} point {numbers.digits(m.group(2))}", text)
    text = _NUMBER_RE.sub(lambda m: " " + _plain_number(m) + " ", text)
    text = text.translate(_SYMBOL_TABLE)
    # A hyphen inside a word ("self-evident", "twenty-one") is a word break; a
    # free-standing dash is a pause.
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)
    # Whitespace collapsed first: the same result, and the dash pattern no
    # longer rescans a long run of spaces (emoji become spaces) at every one.
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+-+\s+|--+", ", ", text)
    text = re.sub(r"[\[{]", "(", text)
    text = re.sub(r"[\]}]", ")", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:.!?)])", r"\1", text)
    return text
