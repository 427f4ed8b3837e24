import re

import pytest
from hypothesis import given, strategies as st

from bittts_tf.text import normalize, numbers
from bittts_tf.text.normalize import TextError, normalize_text

# An independent reader of English number words, written for the test.
_SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
_SCALE = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12,
          "quadrillion": 10 ** 15, "quintillion": 10 ** 18}
_ORD = {"first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight",
        "ninth": "nine", "twelfth": "twelve"}


def parse_words(text: str) -> int:
    words = text.replace("-", " ").split()
    sign = 1
    if words and words[0] == "minus":
        sign, words = -1, words[1:]
    total, group = 0, 0
    for w in words:
        if w in _SMALL:
            group += _SMALL[w]
        elif w in _TENS:
            group += _TENS[w]
        elif w == "hundred":
            group *= 100
        elif w in _SCALE:
            total += group * _SCALE[w]
            group = 0
        else:
            raise ValueError(w)
    return sign * (total + group)


def unordinal(text: str) -> str:
    head, _, last = text.replace("-", " ").rpartition(" ")
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("ieth"):
        last = last[:-4] + "y"
    else:
        assert last.endswith("th"), text
        last = last[:-2]
    return (head + " " + last).strip()


@given(st.integers(min_value=-10 ** 18 + 1, max_value=10 ** 18 - 1))
def test_cardinal_reads_back_to_the_number(n):
    assert parse_words(numbers.cardinal(n)) == n


@given(st.integers(min_value=1, max_value=10 ** 12))
def test_ordinal_reads_back_to_the_number(n):
    assert parse_words(unordinal(numbers.ordinal(n))) == n


def test_year_readings():
    assert numbers.year(1776) == "seventeen seventy-six"
    assert numbers.year(1900) == "nineteen hundred"
    assert numbers.year(1905) == "nineteen oh five"
    assert numbers.year(2019) == "twenty nineteen"
    assert numbers.year(2005) == "two thousand five"
    assert numbers.year(2000) == "two thousand"


@given(st.integers(min_value=10000, max_value=10 ** 15))
def test_numbers_with_thousands_separators_in_text(n):
    text = f"They counted {n:,} stars."
    out = normalize_text(text)
    assert out.startswith("They counted ") and out.endswith(" stars.")
    assert parse_words(out[len("They counted "):-len(" stars.")]) == n


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith paid $5.50 for the 3rd book.", "doctor Smith paid five dollars fifty cents for the third book."),
    ("It costs $1.", "It costs one dollar."),
    ("A 50% share of £3 million.", "A fifty percent share of three million pounds."),
    ("Mr. and Mrs. Jones live on St. Mark's.", "mister and missus Jones live on saint Mark's."),
    ("Room no. 5, e.g. the 21st.", "Room number five, for example the twenty first."),
    ("Café naïve über", "Cafe naive uber"),
    ("Wait\u2014what?", "Wait, what?"),
    ("Pi is 3.14", "Pi is three point one four"),
    ("Agent 007", "Agent zero zero seven"),
    ("In 1776 they met.", "In seventeen seventy six they met."),
    ("self-evident", "self evident"),
    ("Say no.", "Say no."),
])
def test_normalization_examples(text, expected):
    assert normalize_text(text) == expected


@given(st.text(max_size=200))
def test_any_unicode_gives_ascii_text_without_crashing(text):
    out = normalize_text(text)
    assert out.isascii()
    assert not re.search(r"\d", out), out  # every digit was spelled out


def ascii_one_character_at_a_time(text: str) -> str:
    """What _to_ascii does to ASCII text, said one character at a time."""
    return "".join(c if (c.isprintable() or c in "\n\t") else " " for c in text)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_text_keeps_what_prints_and_spaces_the_rest(text):
    assert normalize._to_ascii(text) == ascii_one_character_at_a_time(text)


@given(st.text(alphabet=st.sampled_from(sorted(normalize._PUNCT_MAP) + list("ab1 .\u00e9")),
               max_size=60))
def test_typographic_punctuation_reads_as_its_ascii_form(text):
    mapped = "".join(normalize._PUNCT_MAP.get(c, c) for c in text)
    assert normalize._to_ascii(text) == normalize._to_ascii(mapped)


@given(st.lists(st.sampled_from(sorted(normalize._ABBREVIATIONS) + ["no", "stop", "op", "3", "o'"]),
                max_size=12),
       st.lists(st.sampled_from([". ", ".", " ", "-", ", ", ".,", "'"]), min_size=12, max_size=12),
       st.booleans())
def test_abbreviations_are_the_words_the_table_lists(words, gaps, upper):
    """normalize._ABBREV_RE with its look-up against the table's words as one
    alternation, longest first."""
    text = "".join(w.upper() if upper else w for pair in zip(words, gaps) for w in pair)
    listed = re.compile(r"\b(" + "|".join(sorted(normalize._ABBREVIATIONS, key=len, reverse=True))
                        + r")\.(?=\s|$|[,;:])", re.IGNORECASE)
    expected = listed.sub(lambda m: normalize._ABBREVIATIONS[m.group(1).lower()], text)
    assert normalize._ABBREV_RE.sub(normalize._abbreviation, text) == expected


def test_non_string_is_a_clear_error():
    with pytest.raises(TextError, match="must be a str"):
        normalize_text(b"bytes")
