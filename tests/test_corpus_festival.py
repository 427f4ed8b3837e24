import numpy as np
import pytest

from bittts_tf.data.festival import FestivalError, Segment, parse_segments, trim_padding
from bittts_tf.data.prompts import PromptSourceError, choose_prompts, clean_sentence, split_sentences

SR = 16000


def segments(*pairs):
    return [Segment(p, e, 0) for p, e in pairs]


def test_silent_tail_after_the_final_pause_is_cut(rng):
    speech = rng.uniform(-0.5, 0.5, SR).astype(np.float32)
    pause = rng.uniform(-0.002, 0.002, SR // 4).astype(np.float32)
    tail = np.concatenate([rng.uniform(-0.0015, 0.0015, 40), np.zeros(300)]).astype(np.float32)
    audio = np.concatenate([speech, pause, tail])
    segs = segments(("aa", 1.0), ("pau", 1.25))
    trimmed, cut = trim_padding(audio, SR, segs)
    assert cut == len(tail) and len(trimmed) == int(1.25 * SR)
    np.testing.assert_array_equal(trimmed, audio[:len(trimmed)])


def test_loud_tail_or_non_pause_ending_is_kept(rng):
    loud = rng.uniform(-0.5, 0.5, SR + 400).astype(np.float32)
    assert trim_padding(loud, SR, segments(("aa", 0.5), ("pau", 1.0)))[1] == 0
    quiet_pause_loud_tail = loud.copy()
    quiet_pause_loud_tail[SR // 2:SR] *= 0.001
    assert trim_padding(quiet_pause_loud_tail, SR, segments(("aa", 0.5), ("pau", 1.0)))[1] == 0
    quiet = np.zeros(SR + 400, np.float32)
    assert trim_padding(quiet, SR, segments(("aa", 0.5), ("s", 1.0)))[1] == 0
    assert trim_padding(quiet[:SR], SR, segments(("pau", 1.0)))[1] == 0  # nothing past the end


def test_parse_segments_and_its_errors():
    segs = parse_segments("pau 0.100000 0\naa 0.250000 1\n")
    assert [(s.phone, s.end, s.stress) for s in segs] == [("pau", 0.1, 0), ("aa", 0.25, 1)]
    with pytest.raises(FestivalError, match="expected 'phone end stress'"):
        parse_segments("pau 0.1\n", "x.seg")
    with pytest.raises(FestivalError, match="bad number"):
        parse_segments("pau abc 0\n", "x.seg")
    with pytest.raises(FestivalError, match="no segments"):
        parse_segments("\n", "x.seg")


@pytest.mark.parametrize("sentence, expected", [
    ("And God said, Let there be light: and there was light.",
     "And God said, Let there be light: and there was light."),
    ("And the LORD spake unto Moses, saying this day.", "And the Lord spake unto Moses, saying this day."),
    ("Section 2 of the Act shall apply here today.", None),   # digits
    ("Too short.", None),
    ("He said [unto them] that it was good and right.", None),  # brackets
    ("no capital at the start of this long sentence here.", None),
])
def test_clean_sentence(sentence, expected):
    assert clean_sentence(sentence, 6, 24, 160) == expected


def test_split_and_choose_are_deterministic():
    text = "First one is here. Second one? Third one! And\nthe fourth one."
    assert split_sentences(text) == ["First one is here.", "Second one?", "Third one!", "And the fourth one."]
    pool = [f"Sentence {i}." for i in range(100)]
    assert choose_prompts(pool, 10, 3) == choose_prompts(pool, 10, 3)
    assert choose_prompts(pool, 10, 3) != choose_prompts(pool, 10, 4)
    assert choose_prompts(pool, 20, 3)[:10] == choose_prompts(pool, 10, 3)  # a longer plan extends a shorter one
    with pytest.raises(PromptSourceError, match="only 100 clean sentences"):
        choose_prompts(pool, 101, 0)
