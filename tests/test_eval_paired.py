"""The paired comparison of two evaluation reports (bittts_tf.eval.paired,
tools/compare_evals.py) against a brute-force percentile bootstrap."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bittts_tf.eval import paired

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_rows(rng, n, word_error_rate, dnsmos, words=None):
    words = rng.integers(1, 20, n) if words is None else words
    characters = words * 5
    return [{"sentence": f"sentence {i}", "words": int(w), "characters": int(c),
             "word_errors": int(rng.binomial(w, word_error_rate)),
             "character_errors": int(rng.binomial(c, word_error_rate / 2)),
             "dnsmos_ovrl": float(rng.normal(dnsmos, 0.3)),
             "dnsmos_sig": float(rng.normal(dnsmos + 0.3, 0.3)),
             "dnsmos_bak": float(rng.normal(4.0, 0.2)),
             "cpps_db": float(rng.normal(dnsmos * 5, 1.5))}
            for i, (w, c) in enumerate(zip(words, characters))]


def brute_force_interval(a, b, metric, rng, resamples=4000, confidence=0.95):
    numerator, denominator = paired.METRICS[metric]
    n = len(a)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        pick = lambda rows, f: np.array([rows[i][f] for i in idx], float)
        if denominator is None:
            values.append(pick(b, numerator).mean() - pick(a, numerator).mean())
        else:
            values.append(pick(b, numerator).sum() / pick(b, denominator).sum()
                          - pick(a, numerator).sum() / pick(a, denominator).sum())
    tail = 100 * (1 - confidence) / 2
    return np.percentile(values, [tail, 100 - tail])


def test_intervals_agree_with_a_brute_force_bootstrap(rng, seed):
    n = int(rng.integers(150, 260))
    words = rng.integers(1, 20, n)
    a = random_rows(rng, n, 0.12, 2.8, words)
    b = random_rows(rng, n, float(rng.uniform(0.05, 0.2)), float(rng.uniform(2.6, 3.0)), words)
    results = {r.metric: r for r in paired.compare(a, b, seed=seed)}
    for metric, r in results.items():
        numerator, denominator = paired.METRICS[metric]
        if denominator is None:
            expected = np.mean([x[numerator] for x in b]) - np.mean([x[numerator] for x in a])
        else:
            expected = (sum(x[numerator] for x in b) / sum(x[denominator] for x in b)
                        - sum(x[numerator] for x in a) / sum(x[denominator] for x in a))
        assert r.difference == pytest.approx(expected, abs=1e-12)
        low, high = brute_force_interval(a, b, metric, np.random.default_rng(seed + 1))
        width = high - low
        # BCa against the percentile interval, 10,000 against 4,000 resamples:
        # the ends agree to a fifth of the width.
        assert abs(r.low - low) < 0.2 * width and abs(r.high - high) < 0.2 * width, \
            (metric, (r.low, r.high), (low, high))
        assert r.significant == (not low <= 0 <= high) or min(abs(low), abs(high)) < 0.2 * width


def test_the_same_scores_differ_by_nothing_and_a_clear_gap_is_seen(rng):
    a = random_rows(rng, 100, 0.1, 2.8)
    same = paired.compare(a, [dict(r) for r in a])
    assert all(r.difference == r.low == r.high == 0.0 and not r.significant for r in same)
    worse = [dict(r, word_errors=r["words"], dnsmos_ovrl=r["dnsmos_ovrl"] - 1.0) for r in a]
    gap = {r.metric: r for r in paired.compare(a, worse)}
    assert gap["wer"].significant and gap["wer"].low > 0.5
    assert gap["dnsmos_ovrl"].significant and gap["dnsmos_ovrl"].high < 0
    assert gap["dnsmos_ovrl"].difference == pytest.approx(-1.0)


def test_a_report_made_before_cpps_is_compared_on_the_rest(rng):
    a = random_rows(rng, 50, 0.1, 2.8)
    old = [{k: v for k, v in r.items() if k != "cpps_db"} for r in random_rows(rng, 50, 0.2, 2.6)]
    metrics = [r.metric for r in paired.compare(a, old)]
    assert metrics == [m for m in paired.METRICS if m != "cpps_db"]
    assert "cpps_db" in [r.metric for r in paired.compare(a, a)]
    with pytest.raises(paired.ReportError, match="no cpps_db"):
        paired.interval(old, "cpps_db")


def test_reports_of_other_sentences_or_systems_are_refused(rng, tmp_path):
    a = random_rows(rng, 10, 0.1, 2.8)
    with pytest.raises(paired.ReportError, match="same sentences"):
        paired.compare(a, a[1:])
    with pytest.raises(paired.ReportError, match="same sentences"):
        paired.compare(a, [dict(r, sentence=r["sentence"] + "!") for r in a])
    report = tmp_path / "two.json"
    report.write_text(json.dumps({"systems": {"model": {"sentences": a},
                                              "festival": {"sentences": a}}}))
    with pytest.raises(paired.ReportError, match="name one"):
        paired.load_sentences(str(report))
    with pytest.raises(paired.ReportError, match="no system 'x'"):
        paired.load_sentences(str(report), "x")
    assert paired.load_sentences(str(report), "festival") == ("festival", a)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"systems": {"m": {"sentences": [dict(a[0], words=None), a[1]]}}}))
    with pytest.raises(paired.ReportError, match="lacks a number"):
        paired.compare(*[paired.load_sentences(str(broken))[1]] * 2, names=(str(broken),) * 2)
    for name, systems in [("summary_only", {"m": {"summary": {"wer": 0.1}}}),
                          ("rows_not_dicts", {"m": {"sentences": [1, 2]}}),
                          ("system_not_dict", {"m": [a]})]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"systems": systems}))
        with pytest.raises(paired.ReportError, match="system 'm' has no per-sentence rows"):
            paired.load_sentences(str(path))
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps({"systems": [a]}))
    with pytest.raises(paired.ReportError, match="not a mapping of systems"):
        paired.load_sentences(str(listed))


def test_tool_prints_the_table_and_writes_its_json(rng, tmp_path):
    words = rng.integers(1, 20, 60)
    paths = []
    for name, rate in (("a", 0.1), ("b", 0.3)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"systems": {"model": {
            "sentences": random_rows(rng, 60, rate, 2.8, words)}}}))
        paths.append(str(path))
    out = tmp_path / "cmp.json"
    process = subprocess.run([sys.executable, os.path.join(REPO, "tools", "compare_evals.py"),
                              f"--a={paths[0]}", f"--b={paths[1]}", "--resamples=2000",
                              f"--output={out}"], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert "| wer | " in process.stdout and "differs" in process.stdout
    written = json.loads(out.read_text())
    assert written["sentences"] == 60 and written["metrics"][0]["metric"] == "wer"
    assert written["metrics"][0]["significant"] is True


def test_one_systems_interval_agrees_with_a_brute_force_bootstrap(rng, seed):
    """paired.interval against the brute-force bootstrap of b minus a system
    that scores zero everywhere (so the difference is b itself)."""
    n = int(rng.integers(100, 200))
    rows = random_rows(rng, n, float(rng.uniform(0.05, 0.2)), float(rng.uniform(2.6, 3.0)))
    zero = [dict(r, word_errors=0, character_errors=0, dnsmos_ovrl=0.0, dnsmos_sig=0.0,
                 dnsmos_bak=0.0, cpps_db=0.0) for r in rows]
    for metric in paired.METRICS:
        value, low, high = paired.interval(rows, metric, seed=seed)
        numerator, denominator = paired.METRICS[metric]
        expected = (np.mean([r[numerator] for r in rows]) if denominator is None else
                    sum(r[numerator] for r in rows) / sum(r[denominator] for r in rows))
        assert value == pytest.approx(expected, abs=1e-12)
        ref_low, ref_high = brute_force_interval(zero, rows, metric,
                                                 np.random.default_rng(seed + 1))
        width = ref_high - ref_low
        # 2,000 against 4,000 percentile resamples: the ends agree to a fifth of the width.
        assert abs(low - ref_low) < 0.2 * width and abs(high - ref_high) < 0.2 * width, \
            (metric, (low, high), (ref_low, ref_high))
    perfect = [dict(r, word_errors=0) for r in rows]
    assert paired.interval(perfect, "wer") == (0.0, 0.0, 0.0)
    with pytest.raises(paired.ReportError, match="needs two or more"):
        paired.interval(rows[:1], "wer")
