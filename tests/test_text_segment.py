"""Splitting long text for a fixed-size text graph."""

import pytest

from bittts_tf.text import PAUSE, FrontEnd, TextError
from bittts_tf.text.g2p import tokenize
from bittts_tf.text.normalize import normalize_text
from bittts_tf.text.segment import segment_phonemes

WORDS = ("the cat sat on a mat while seven quick brown foxes jumped over lazy dogs near "
         "our old house by the river yesterday afternoon").split()


def random_text(rng, n_words):
    out = []
    for _ in range(n_words):
        word = WORDS[int(rng.integers(len(WORDS)))]
        roll = rng.random()
        out.append(word + ("," if roll < 0.1 else "." if roll < 0.15 else ""))
    return " ".join(out)


@pytest.fixture(scope="module")
def front_end():
    return FrontEnd()


def test_text_that_fits_is_one_segment_equal_to_the_front_end(front_end, rng):
    for _ in range(20):
        text = random_text(rng, int(rng.integers(1, 10)))
        phones = front_end.phonemes(text)
        assert segment_phonemes(front_end, text, len(phones)) == [phones]


@pytest.mark.parametrize("max_tokens", [12, 20, 64])
def test_segments_fit_and_say_every_word_in_order(front_end, rng, max_tokens):
    for _ in range(20):
        text = random_text(rng, int(rng.integers(5, 60)))
        segments = segment_phonemes(front_end, text, max_tokens)
        expected = [p for token in tokenize(normalize_text(text)) if token[0].isalpha()
                    for p in front_end.g2p.word(token)]
        spoken = [p for s in segments for p in s if p != PAUSE]
        assert spoken == expected
        for segment in segments:
            assert len(segment) <= max_tokens
            assert segment[0] == segment[-1] == PAUSE


def test_cuts_prefer_punctuation(front_end):
    text = "the cat sat, on a mat while seven quick brown foxes"
    segments = segment_phonemes(front_end, text, 25)
    first_words = front_end.phonemes("the cat sat")
    assert segments[0] == first_words


@pytest.mark.parametrize("text", ["", "   ", "?!,.", "((--))"])
def test_unspeakable_text_is_refused_by_name(front_end, text):
    with pytest.raises(TextError, match="no pronounceable words"):
        segment_phonemes(front_end, text, 64)


def test_a_word_longer_than_the_graph_is_refused(front_end):
    with pytest.raises(TextError, match="supercalifragilisticexpialidocious"):
        segment_phonemes(front_end, "a supercalifragilisticexpialidocious day", 12)
