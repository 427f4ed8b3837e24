"""DNSMOS wrapper: ranks festival speech above noise, whatever the input rate."""

import sys

import numpy as np
import pytest

from bittts_tf.audio.io import resample
from bittts_tf.data import festival
from bittts_tf.eval import metrics
from bittts_tf.eval.dnsmos import DnsMos


@pytest.fixture(scope="module")
def speech():
    try:
        results, failures = festival.synthesize_batch(
            [("a", "Could you please turn off the lights when you leave the kitchen?")], "slt")
    except festival.FestivalError as e:
        pytest.skip(str(e))
    assert not failures, failures
    return results[0].audio, results[0].sample_rate


@pytest.fixture(scope="module")
def scorer():
    return DnsMos()


@pytest.fixture(scope="module")
def clean(scorer, speech):
    return scorer.score(*speech)


def test_clean_speech_scores_above_white_noise_of_the_same_loudness(scorer, speech, clean, rng):
    audio, rate = speech
    noise = np.clip(rng.normal(0, np.std(audio), len(audio)), -1, 1)
    noisy = scorer.score(noise, rate)
    print("speech", clean, "noise", noisy)
    assert 1.0 <= noisy["ovrl"] < clean["ovrl"] - 1.0 and clean["ovrl"] <= 5.0
    assert clean["sig"] > noisy["sig"] and clean["bak"] > noisy["bak"]


def test_noise_under_speech_lowers_the_background_score(scorer, speech, clean, rng):
    audio, rate = speech
    noisy = np.clip(audio + rng.normal(0, 0.3 * np.std(audio), len(audio)), -1, 1)
    assert scorer.score(noisy, rate)["bak"] < clean["bak"] - 0.5


def test_the_score_does_not_depend_on_the_input_rate(scorer, speech, clean):
    audio, rate = speech
    assert rate != metrics.METRIC_RATE  # festival slt speaks at 32 kHz, so this resamples
    at_16k = scorer.score(resample(audio, rate, metrics.METRIC_RATE), metrics.METRIC_RATE)
    for key in ("ovrl", "sig", "bak"):
        assert at_16k[key] == pytest.approx(clean[key], abs=0.05), key


def test_empty_and_short_clips_get_finite_scores(scorer, speech):
    audio, rate = speech
    for clip in (np.zeros(0, np.float32), audio[:rate // 10]):
        assert all(np.isfinite(v) for v in scorer.score(clip, rate).values())
    with pytest.raises(ValueError, match="mono"):
        scorer.score(np.zeros((2, 100)), rate)


def test_without_speechmos_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "speechmos", None)
    with pytest.raises(metrics.MissingMetricPackage, match="pip install speechmos"):
        DnsMos()
