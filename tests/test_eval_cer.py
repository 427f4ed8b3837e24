"""Character error rate against a brute-force edit distance, and the text
normalization that WER and CER share."""

import pytest

from bittts_tf.eval import evaluation, metrics


def brute_edit_distance(a: str, b: str) -> int:
    """Edit distance by the definition, trying every first edit (no table):
    exponential, so only for short strings."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    return min(brute_edit_distance(a[1:], b) + 1,                     # delete a[0]
               brute_edit_distance(a, b[1:]) + 1,                     # insert b[0]
               brute_edit_distance(a[1:], b[1:]) + (a[0] != b[0]))    # keep or substitute


def random_text(rng, length):
    return "".join(rng.choice(list("abAB1 ,'-"), length))


def test_character_errors_equal_brute_force_edit_distance(rng):
    for _ in range(60):
        h = metrics.normalize_characters(random_text(rng, rng.integers(0, 8)))
        r = metrics.normalize_characters(random_text(rng, rng.integers(0, 8)))
        assert metrics.word_errors(list(h), list(r)) == brute_edit_distance(h, r), (h, r)


def test_cer_is_total_edits_over_total_reference_characters(rng):
    hypotheses = [random_text(rng, rng.integers(0, 9)) for _ in range(5)]
    references = [random_text(rng, rng.integers(1, 9)) + "x" for _ in range(5)]
    normal = [(metrics.normalize_characters(h), metrics.normalize_characters(r))
              for h, r in zip(hypotheses, references)]
    expected = (sum(brute_edit_distance(h, r) for h, r in normal)
                / sum(len(r) for _, r in normal))
    assert metrics.character_error_rate(hypotheses, references) == pytest.approx(expected)


def test_normalized_characters_are_lower_case_letters_digits_and_single_spaces():
    assert metrics.normalize_characters("  Don't STOP,  twenty-one!? ") == "dont stop twenty one"
    assert metrics.normalize_characters("A3 b") == "a3 b"
    assert metrics.character_error_rate(["the cat"], ["The cat."]) == 0.0
    assert metrics.character_error_rate(["the bat"], ["the cat"]) == pytest.approx(1 / 7)
    assert metrics.character_error_rate([""], ["abc"]) == 1.0


def test_reference_spells_out_numbers_the_way_a_recognizer_writes_them():
    assert evaluation.spoken_form("My sister paid $200 for 24 eggs.") == \
        "my sister paid two hundred dollars for twenty four eggs."
    heard = "my sister paid two hundred dollars for twenty four eggs"
    reference = evaluation.spoken_form("My sister paid $200 for 24 eggs.")
    assert metrics.word_error_rate([heard], [reference]) == 0.0
    assert metrics.character_error_rate([heard], [reference]) == 0.0
    # Without the normalizer the digits would count as errors.
    assert metrics.word_error_rate([heard], ["My sister paid $200 for 24 eggs."]) > 0
