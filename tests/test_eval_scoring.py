"""score_system on render callables: silence, festival, a recognizer stub;
Griffin-Lim of a mel; the errors a broken system gets."""

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from hypothesis import assume, given, strategies as st

from bittts_tf.audio.config import preset as audio_preset
from bittts_tf.audio.features import log_mel
from bittts_tf.eval import evaluation, metrics

RATE = 16000
SENTENCES = ["The bus to the airport leaves every 15 minutes in the morning.",
             "Can we order a pizza for dinner tonight?",
             "My sister bought a new phone for $200 last week."]


def table_edit_distance(a, b) -> int:
    """The whole Wagner-Fischer table (metrics keeps one row at a time): a second
    implementation to check the counts score_system stores."""
    d = np.zeros((len(a) + 1, len(b) + 1), np.int64)
    d[:, 0], d[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return int(d[-1, -1])


class ScriptedRecognizer:
    """Hears the reference with random words dropped, swapped or added."""

    def __init__(self, rng):
        self.rng, self.by_length = rng, {}

    def transcribe(self, audio, sample_rate):
        words = self.by_length[len(audio)].split()
        out = []
        for w in words:
            roll = self.rng.random()
            if roll < 0.2:
                continue
            out.append("banana" if roll < 0.4 else w)
            if self.rng.random() < 0.1:
                out.append("extra")
        return " ".join(out)


@pytest.fixture(scope="module")
def recognizer():
    return metrics.Recognizer()


def test_counts_and_summary_match_an_independent_edit_distance(rng):
    scripted = ScriptedRecognizer(rng)
    sentences = evaluation.load_sentences()[:12]
    for i, s in enumerate(sentences):
        scripted.by_length[100 + i] = evaluation.spoken_form(s)
    lengths = {s: 100 + i for i, s in enumerate(sentences)}
    result = evaluation.score_system("stub", sentences, lambda s: np.zeros(lengths[s]), RATE,
                                     scripted, progress=False)
    heard = [r["heard"] for r in result["sentences"]]
    references = [evaluation.spoken_form(s) for s in sentences]
    for row, h, r in zip(result["sentences"], heard, references):
        assert row["word_errors"] == table_edit_distance(metrics.normalize_words(h),
                                                         metrics.normalize_words(r))
        assert row["character_errors"] == table_edit_distance(metrics.normalize_characters(h),
                                                              metrics.normalize_characters(r))
    summary = result["summary"]
    assert summary["wer"] == pytest.approx(metrics.word_error_rate(heard, references))
    assert summary["cer"] == pytest.approx(metrics.character_error_rate(heard, references))
    assert 0 < summary["wer"] < 1  # the stub did change some words
    assert "dnsmos_ovrl" not in summary


def words_one_character_at_a_time(text: str) -> list[str]:
    kept = "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text)
    return kept.split()


@given(st.text(max_size=80))
def test_words_are_letters_digits_and_apostrophes_lower_cased(text):
    """metrics.normalize_words against a character-by-character reading. The
    one difference is str.lower's rule for a capital sigma ending a word
    (final sigma), which only the whole-string lower applies."""
    assume("\u03a3" not in text)
    assert metrics.normalize_words(text) == words_one_character_at_a_time(text)


def test_silence_has_every_word_wrong(recognizer):
    result = evaluation.score_system("silence", SENTENCES, lambda s: np.zeros(RATE, np.float32),
                                     RATE, recognizer, progress=False)
    assert result["summary"]["wer"] == 1.0
    assert result["summary"]["cer"] > 0.8
    for row in result["sentences"]:
        heard = metrics.normalize_characters(row["heard"])
        assert row["character_errors"] == table_edit_distance(
            heard, metrics.normalize_characters(row["reference"]))


def test_festival_is_understood_and_scores_above_silence(recognizer, tmp_path):
    from bittts_tf.data import festival
    from bittts_tf.eval.dnsmos import DnsMos
    try:
        render = evaluation.festival_renderer(SENTENCES, RATE, progress=False)
    except festival.FestivalError as e:
        pytest.skip(str(e))
    scorer = DnsMos()
    spoken = evaluation.score_system("festival", SENTENCES, render, RATE, recognizer, scorer,
                                     audio_dir=str(tmp_path), progress=False)
    print(evaluation.format_table([spoken]))
    for row in spoken["sentences"]:
        print(row["reference"], "|", row["heard"])
    assert spoken["summary"]["wer"] < 0.35
    assert spoken["summary"]["dnsmos_ovrl"] > 2.5
    silent = scorer.score(np.zeros(RATE, np.float32), RATE)
    assert spoken["summary"]["dnsmos_ovrl"] > silent["ovrl"] + 0.5
    # A voice is periodic: festival's CPPS stands well above noise's.
    assert spoken["summary"]["cpps_db"] == pytest.approx(
        np.mean([row["cpps_db"] for row in spoken["sentences"]]))
    noise = np.random.default_rng(0).standard_normal(RATE) * 0.1
    assert spoken["summary"]["cpps_db"] > metrics.cpps_db(noise, RATE) + 5
    for i, sentence in enumerate(SENTENCES):
        audio, rate = sf.read(tmp_path / "festival" / f"{i + 1:02d}.wav", dtype="float32")
        assert rate == RATE and np.max(np.abs(audio - render(sentence))) < 1e-4
        # Festival was resampled from 32 kHz: a second or more of speech at 16 kHz.
        assert len(audio) > RATE


def vowel(rng, seconds=1.0):
    """A pulse train with vibrato through three random formant resonators, with
    a slow swell: harmonic like voiced speech (a pure tone is not: the mel
    inversion smears a single partial across its band)."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(100, 250)
    phase = np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    x = np.diff(np.floor(phase), prepend=0.0)
    for centre in rng.uniform([300, 1000, 2200], [900, 1800, 3200]):
        b, a = scipy.signal.iirpeak(centre, 5, fs=RATE)
        x = scipy.signal.lfilter(b, a, x)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def test_griffin_lim_reproduces_the_mel_it_was_given(rng):
    config = audio_preset("tiny")
    audio = vowel(rng)
    mel = log_mel(audio, config)
    rebuilt = evaluation.griffin_lim(mel, config)
    assert len(rebuilt) == (len(mel) - 1) * config.hop_length
    np.testing.assert_array_equal(rebuilt, evaluation.griffin_lim(mel, config))
    inner = slice(2, -2)  # edge frames see the padding
    loud = mel[inner] > mel.max() - 6  # within about 26 dB of the peak
    error = np.mean(np.abs(log_mel(rebuilt, config)[inner] - mel[inner])[loud])
    # The same sound a third of a second later shows what a wrong mel scores.
    shifted = log_mel(np.roll(audio, RATE // 3), config)[inner]
    assert error < 0.3 < np.mean(np.abs(shifted - mel[inner])[loud])


def test_a_failing_or_malformed_system_is_named_with_its_sentence(recognizer):
    def broken(text):
        raise KeyError("no voice")

    cases = [(broken, "KeyError"), (lambda s: np.zeros((2, 100)), "mono"),
             (lambda s: np.full(100, np.nan), "NaN")]
    for render, problem in cases:
        with pytest.raises(evaluation.RenderError) as error:
            evaluation.score_system("sys", SENTENCES, render, RATE, recognizer, progress=False)
        message = str(error.value)
        assert "sys, sentence 1" in message and SENTENCES[0] in message and problem in message


def test_the_table_has_a_row_per_system():
    rows = [{"system": "a", "summary": {"wer": 0.25, "cer": 0.125, "seconds": 3.0,
                                        "dnsmos_ovrl": 3.1, "dnsmos_sig": 3.3, "dnsmos_bak": 4.0,
                                        "cpps_db": 14.3125}},
            {"system": "b", "summary": {"wer": 1.0, "cer": 0.9, "seconds": 2.0, "mcd_db": 5.125}}]
    lines = evaluation.format_table(rows).splitlines()
    assert "MCD dB" in lines[0] and "CPPS" in lines[0]
    assert lines[2].split() == ["a", "0.250", "0.125", "3.10", "3.30", "4.00", "14.31", "-", "3.0"]
    assert lines[3].split() == ["b", "1.000", "0.900", "-", "-", "-", "-", "5.12", "2.0"]
