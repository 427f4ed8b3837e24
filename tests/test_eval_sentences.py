"""The evaluation sentences: modern, varied, sayable, and absent from the corpus text."""

import re

import pytest

from bittts_tf.data import prompts
from bittts_tf.eval import evaluation, metrics


@pytest.fixture(scope="module")
def sentences():
    return evaluation.load_sentences()


def test_there_are_enough_distinct_sentences_of_5_to_20_words(sentences):
    assert len(sentences) >= 30
    assert len({s.lower() for s in sentences}) == len(sentences)
    for s in sentences:
        assert 5 <= len(s.split()) <= 20, s


def test_the_set_mixes_questions_digits_and_numbers_in_words(sentences):
    assert sum(s.endswith("?") for s in sentences) >= 5
    with_digits = [s for s in sentences if re.search(r"\d", s)]
    assert len(with_digits) >= 5
    # Every digit is spelled out before scoring, so the reference has none.
    for s in with_digits:
        assert not re.search(r"\d", evaluation.spoken_form(s)), s
    number_words = {"two", "three", "four", "six", "nine"}
    assert any(number_words & set(metrics.normalize_words(s)) for s in sentences
               if not re.search(r"\d", s))


def test_every_word_is_in_the_recognizer_dictionary(sentences):
    pocketsphinx = pytest.importorskip("pocketsphinx")
    words = set()
    with open(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            words.add(line.split(" ", 1)[0])
    unknown = {w for s in sentences for w in metrics.normalize_words(evaluation.spoken_form(s))
               if w not in words}
    assert not unknown


def _words(text):
    return " ".join(metrics.normalize_words(text))


def test_no_sentence_occurs_in_the_corpus_prompts_or_its_source_text(sentences):
    try:
        texts = {name: prompts.source_text(name) for name in prompts.SOURCES}
        corpus_prompts = prompts.collect_prompts()
    except prompts.PromptSourceError as e:
        pytest.skip(f"corpus sources not installed: {e}")
    assert len(corpus_prompts) > 1000  # the sources really were read
    as_prompts = {_words(p) for p in corpus_prompts}
    assert not [s for s in sentences if _words(s) in as_prompts]
    # Stronger than the prompt list: not even as a run of words in the raw text.
    raw = " " + " ".join(_words(t) for t in texts.values()) + " "
    assert not [s for s in sentences if f" {_words(s)} " in raw]
    # The check can fail: a corpus prompt is found the same way.
    assert f" {_words(corpus_prompts[0])} " in raw


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    ("", "holds no sentences"),
    ("# only a comment\n\n", "holds no sentences"),
    ("A fine sentence here.\n ... !\n", ":2: "),
    (b"caf\xe9 au lait\n", "not UTF-8"),
])
def test_a_bad_sentences_file_gets_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "sentences.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(evaluation.SentencesError) as error:
        evaluation.load_sentences(str(path))
    message = str(error.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# header\n\n  First one here, please.  \n# note\nSecond one?\n")
    assert evaluation.load_sentences(str(path)) == ["First one here, please.", "Second one?"]
