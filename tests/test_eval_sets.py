"""The validation and test sets: sizes, variety, sayable words, and disjoint
from each other and from every corpus prompt source (public-domain text and
the everyday generator), with the guard that keeps them apart tested too.

Overlap is checked here from scratch (equal text, equal words after the
normalizer, a shared run of 6 words), not through the guard under test."""

import functools
import random
import re

import pytest

from bittts_tf.data import everyday, prompts
from bittts_tf.eval import evaluation, metrics, sets


@functools.lru_cache(maxsize=None)   # the 21,730 prompts are said three times over
def said(text):
    return tuple(metrics.normalize_words(evaluation.spoken_form(text)))


def runs_of(text, n=6):
    words = said(text)
    return {words[i:i + n] for i in range(len(words) - n + 1)}


def overlaps(texts, held_out):
    """(text, held-out sentence) pairs that are equal, say the same words or
    share a run of 6 words."""
    exact = {s: s for s in held_out}
    by_words = {said(s): s for s in held_out}
    by_run = {r: s for s in held_out for r in runs_of(s)}
    found = []
    for text in texts:
        hit = exact.get(text) or by_words.get(said(text))
        hit = hit or next((by_run[r] for r in runs_of(text) if r in by_run), None)
        if hit:
            found.append((text, hit))
    return found


@pytest.fixture(scope="module")
def validation():
    return sets.load_set("validation")


@pytest.fixture(scope="module")
def test_set():
    return sets.load_set("test")


@pytest.fixture(scope="module")
def read_prompts():
    try:
        return prompts.collect_prompts(min_words=1, max_words=40, max_chars=200)
    except prompts.PromptSourceError as e:
        pytest.skip(f"corpus sources not installed: {e}")


def test_sizes_and_no_repeats_within_a_set(validation, test_set):
    assert len(test_set) >= 200
    assert len(validation) >= 150
    for sentences in (validation, test_set):
        assert len({said(s) for s in sentences}) == len(sentences)


def test_sentences_txt_is_the_seed_of_the_validation_set(validation):
    seed = evaluation.load_sentences()
    assert validation[:len(seed)] == seed
    assert evaluation.load_sentences(sets.set_file("validation")) == validation


@pytest.mark.parametrize("name", list(sets.SETS))
def test_each_set_mixes_everyday_kinds_of_text(name):
    sentences = sets.load_set(name)
    lengths = [len(said(s)) for s in sentences]
    kinds = {
        "questions": sum(s.endswith("?") for s in sentences),
        "digits": sum(bool(re.search(r"\d", s)) for s in sentences),
        "money": sum("$" in s for s in sentences),
        "percentages": sum("%" in s or "percent" in s for s in sentences),
        "dates": sum(bool(re.search(r"\d(st|nd|rd|th) of [A-Z]", s)) for s in sentences),
        "times": sum(bool(re.search(r"o'clock|half past|quarter|noon|midnight", s))
                     for s in sentences),
        "lists": sum(s.count(",") >= 2 and " and " in s for s in sentences),
        "device prompts": sum(bool(re.match(r"(Timer|Alarm|Battery|Your|Turn|In \d)", s))
                              for s in sentences),
        "short (<= 4 words)": sum(n <= 4 for n in lengths),
        "long (>= 18 words)": sum(n >= 18 for n in lengths),
    }
    assert min(kinds.values()) >= 3, kinds
    assert kinds["questions"] >= 20 and kinds["digits"] >= 30, kinds
    # Digits are spelled out before scoring: the reference has none left.
    assert not [s for s in sentences if re.search(r"\d", evaluation.spoken_form(s))]


@pytest.mark.parametrize("name", list(sets.SETS))
def test_every_word_is_in_the_recognizer_dictionary(name):
    pocketsphinx = pytest.importorskip("pocketsphinx")
    with open(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        words = {line.split(" ", 1)[0] for line in f}
    unknown = {w for s in sets.load_set(name) for w in said(s) if w not in words}
    assert not unknown


def test_validation_and_test_are_disjoint(validation, test_set):
    assert not set(validation) & set(test_set)
    assert not {said(s) for s in validation} & {said(s) for s in test_set}
    assert not overlaps(validation, test_set)
    # The check can fail: a reworded test sentence is caught.
    assert overlaps(["Please, " + test_set[0].lower()], test_set)


def test_the_sets_are_not_in_the_public_domain_text(validation, test_set, read_prompts):
    held_out = validation + test_set
    assert len(read_prompts) > 20000   # the sources really were read
    assert not set(read_prompts) & set(held_out)
    assert not {said(p) for p in read_prompts} & {said(s) for s in held_out}
    # Not even as a run of words in the raw text, for a sentence of 6 words or
    # more (a shorter one, "Not yet.", is a run of any large text).
    raw = " " + " ".join(" ".join(said(prompts.source_text(n))) for n in prompts.SOURCES) + " "
    assert not [s for s in held_out if len(said(s)) >= 6 and f" {' '.join(said(s))} " in raw]
    # One prompt of 21,730 shares a run of 6 ("it on the side of the"); the
    # plan drops it, so no corpus holds it.
    shared = [p for p, _ in overlaps(read_prompts, held_out)]
    assert len(shared) <= 3
    planned = prompts.plan_prompts(prompts.SOURCES, 2000, 1, 1, 40, 200)
    pool = {p.text for p in prompts.plan_prompts(prompts.SOURCES, len(read_prompts)
                                                 - len(shared), 1, 1, 40, 200)}
    assert len(planned) == 2000 and not set(shared) & pool


@pytest.mark.parametrize("seed", [1234, 20240])
def test_the_everyday_generator_never_gives_a_held_out_sentence(validation, test_set, seed):
    plan = prompts.plan_prompts([prompts.EVERYDAY], 4000, seed, 1, 30, 160)
    texts = [p.text for p in plan]
    assert len({said(t) for t in texts}) == len(texts) == 4000
    assert not set(texts) & set(validation + test_set)
    assert not {said(t) for t in texts} & {said(s) for s in validation + test_set}
    assert not overlaps(texts, validation + test_set)
    # Unguarded, the grammar does produce overlaps: the guard is what stops them.
    rng = random.Random(seed)
    raw = {everyday.sentence(rng) for _ in range(20000)}
    assert overlaps(raw, validation + test_set)


def test_the_guard_rejects_a_generated_held_out_sentence(monkeypatch, test_set):
    # A grammar that says a test sentence (and its spelled-out twin) first.
    spelled = evaluation.spoken_form(next(s for s in test_set if "$" in s)).capitalize()
    script = iter([test_set[0], spelled, test_set[5] + " Now.", "Fine words here.",
                   test_set[1], "Other fine words."])
    monkeypatch.setattr(everyday, "sentence", lambda rng: next(script))
    plan = prompts.plan_prompts([prompts.EVERYDAY], 2, 7, 1, 30, 160)
    assert [p.text for p in plan] == ["Fine words here.", "Other fine words."]


def test_the_guard_rejects_a_read_sentence(read_prompts):
    victim = prompts.plan_prompts(prompts.SOURCES, 3, 5, 1, 40, 200)[1].text
    held_out = sets.HeldOut({"test": [victim]})
    assert "is the test sentence" in held_out.overlap(victim)
    plan = [p.text for p in prompts.plan_prompts(prompts.SOURCES, 3, 5, 1, 40, 200,
                                                 held_out=held_out)]
    assert victim not in plan


def test_guard_reasons_name_the_sentence_and_the_kind_of_overlap():
    held_out = sets.HeldOut({"test": ["The rent is $20 a month, paid on the 1st."]})
    assert "is the test sentence" in held_out.overlap("The rent is $20 a month, paid on the 1st.")
    assert "same words" in held_out.overlap("the rent is twenty dollars a month paid on the first")
    assert "shares 'rent is twenty dollars a month'" in held_out.overlap(
        "Our rent is twenty dollars a month.")
    assert held_out.overlap("The rent is $21 a month.") is None


def test_an_unknown_set_is_refused_in_one_line():
    with pytest.raises(evaluation.SentencesError) as error:
        sets.set_file("train")
    assert "'train'" in str(error.value) and "validation, test" in str(error.value)
    assert "\n" not in str(error.value)
