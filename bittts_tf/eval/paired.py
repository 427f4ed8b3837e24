"""Two systems scored on the same sentences (tools/evaluate.py reports),
compared sentence by sentence: each metric's difference with a paired
bootstrap confidence interval over the sentences.

A choice between checkpoints is a choice between noisy figures. Measured on
the 254 test sentences: the shipped voice and a fine-tuned vocoder differ by
8 word errors in 2,216 (WER 0.135 against 0.132), and the 95% interval of
that difference is [-0.018, +0.009]; their DNSMOS differ by +0.032, interval
[+0.018, +0.045]. On the 160 validation sentences a WER gain of 0.011 was
within noise too ([-0.028, +0.003]).

WER and CER are ratios of sums (errors over words, as the reports compute
them), so the bootstrap resamples sentences and recomputes the ratio;
DNSMOS is a mean over sentences.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

# metric: (numerator field, denominator field or None for a mean)
METRICS = {
    "wer": ("word_errors", "words"),
    "cer": ("character_errors", "characters"),
    "dnsmos_ovrl": ("dnsmos_ovrl", None),
    "dnsmos_sig": ("dnsmos_sig", None),
    "dnsmos_bak": ("dnsmos_bak", None),
    "cpps_db": ("cpps_db", None),
}
# Metrics a report may lack (CPPS: reports made before it; DNSMOS: reports
# scored with tools/evaluate.py --nodnsmos): compared when both reports have
# them for every sentence, left out otherwise.
OPTIONAL = {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "cpps_db"}


class ReportError(ValueError):
    """An evaluation report that cannot be compared (the message names it)."""


@dataclasses.dataclass(frozen=True)
class Difference:
    metric: str
    a: float
    b: float
    difference: float      # b - a
    low: float             # the interval of b - a
    high: float

    @property
    def significant(self) -> bool:
        return not self.low <= 0.0 <= self.high


def load_sentences(path: str, system: str | None = None) -> tuple[str, list[dict]]:
    """(system name, its per-sentence rows) of one tools/evaluate.py report;
    `system` may be left out when the report holds one."""
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        systems = report["systems"]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: not a JSON evaluation report ({error})") from None
    except (KeyError, TypeError):
        raise ReportError(f"{path}: no 'systems' (not a tools/evaluate.py report)") from None
    if not isinstance(systems, dict):
        raise ReportError(f"{path}: 'systems' is a {type(systems).__name__}, not a mapping of "
                          "systems (not a tools/evaluate.py report)")
    if system is None:
        if len(systems) != 1:
            raise ReportError(f"{path} holds the systems {sorted(systems)}: name one")
        system = next(iter(systems))
    if system not in systems:
        raise ReportError(f"{path} has no system {system!r} (it has {sorted(systems)})")
    rows = systems[system].get("sentences") if isinstance(systems[system], dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ReportError(f"{path}: system {system!r} has no per-sentence rows ('sentences')")
    return system, rows


def _columns(rows: list[dict], path: str) -> dict[str, np.ndarray]:
    fields = {f for metric, pair in METRICS.items() for f in pair
              if f and (metric not in OPTIONAL or all(f in r for r in rows))}
    try:
        return {f: np.asarray([float(r[f]) for r in rows]) for f in fields}
    except (KeyError, TypeError, ValueError) as error:
        raise ReportError(f"{path}: a sentence lacks a number for {error}") from None


def _value(numerator, denominator=None, axis=-1):
    """One system's metric: a ratio of sums, or a mean (over `axis`)."""
    if denominator is None:
        return np.mean(numerator, axis=axis)
    return np.sum(numerator, axis=axis) / np.sum(denominator, axis=axis)


def _mean_difference(a, b, axis=-1):
    return _value(b, axis=axis) - _value(a, axis=axis)


def _ratio_difference(a_num, a_den, b_num, b_den, axis=-1):
    return _value(b_num, b_den, axis) - _value(a_num, a_den, axis)


def compare(rows_a: list[dict], rows_b: list[dict], names=("a", "b"), confidence: float = 0.95,
            resamples: int = 10_000, seed: int = 0) -> list[Difference]:
    """Every metric of METRICS: b - a with its paired bootstrap interval (BCa,
    scipy.stats.bootstrap). The rows must be the same sentences in the same
    order."""
    from scipy import stats

    if len(rows_a) != len(rows_b) or any(x.get("sentence") != y.get("sentence")
                                         for x, y in zip(rows_a, rows_b)):
        raise ReportError(f"{names[0]} and {names[1]} did not score the same sentences in the "
                          f"same order ({len(rows_a)} and {len(rows_b)} sentences)")
    if len(rows_a) < 2:
        raise ReportError(f"{names[0]}: {len(rows_a)} sentence(s); a bootstrap needs two or more")
    a, b = _columns(rows_a, names[0]), _columns(rows_b, names[1])
    rng = np.random.default_rng(seed)
    results = []
    for metric, (numerator, denominator) in METRICS.items():
        if numerator not in a or numerator not in b:
            continue   # an optional metric one of the reports lacks
        columns_a = [a[numerator]] + ([a[denominator]] if denominator else [])
        columns_b = [b[numerator]] + ([b[denominator]] if denominator else [])
        data = (*columns_a, *columns_b)
        statistic = _ratio_difference if denominator else _mean_difference
        value_a, value_b = float(_value(*columns_a)), float(_value(*columns_b))
        difference = value_b - value_a
        if all(np.array_equal(x, y) for x, y in zip(columns_a, columns_b)):
            low = high = difference   # the same scores: every resample agrees
        else:
            interval = stats.bootstrap(data, statistic, paired=True, vectorized=True,
                                       confidence_level=confidence, n_resamples=resamples,
                                       random_state=rng).confidence_interval
            low, high = float(interval.low), float(interval.high)
        results.append(Difference(metric, value_a, value_b, difference, low, high))
    return results


def interval(rows: list[dict], metric: str, confidence: float = 0.95, resamples: int = 2_000,
             seed: int = 0, name: str = "report") -> tuple[float, float, float]:
    """(value, low, high) of one system's metric of METRICS, with its
    percentile bootstrap interval over the sentences, for error bars
    (percentile: BCa is undefined when every resample agrees, as for a
    system that misses no word)."""
    from scipy import stats

    if len(rows) < 2:
        raise ReportError(f"{name}: {len(rows)} sentence(s); a bootstrap needs two or more")
    numerator, denominator = METRICS[metric]
    columns = _columns(rows, name)
    if numerator not in columns:
        raise ReportError(f"{name}: no {numerator} for every sentence (scored before it was)")
    data = (columns[numerator],) + ((columns[denominator],) if denominator else ())
    result = stats.bootstrap(data, lambda *c, axis=-1: _value(*c, axis=axis), paired=True,
                             vectorized=True, confidence_level=confidence, method="percentile",
                             n_resamples=resamples, random_state=np.random.default_rng(seed))
    return (float(_value(*data)), float(result.confidence_interval.low),
            float(result.confidence_interval.high))


def table(results: list[Difference], names: tuple[str, str], confidence: float) -> str:
    """Markdown: each metric, both values, the difference and its interval."""
    percent = f"{100 * confidence:g}%"
    lines = [f"| metric | {names[0]} | {names[1]} | difference | {percent} interval | |",
             "|---|---|---|---|---|---|"]
    for r in results:
        verdict = "differs" if r.significant else "within noise"
        lines.append(f"| {r.metric} | {r.a:.3f} | {r.b:.3f} | {r.difference:+.3f} | "
                     f"[{r.low:+.3f}, {r.high:+.3f}] | {verdict} |")
    return "\n".join(lines)
