"""Metrics against training CPU minutes: the held-out losses of runs
(tools/compare_runs.py) and the validation scores of exported voices
(tools/eval_curves.py) on the same axis, CPU time being the fair one when
runs are given equal budgets."""

import json
import os

from bittts_tf import fileio
from bittts_tf.eval import paired
from bittts_tf.eval.paired import ReportError

# Where an exported folder's manifest names the checkpoint each part came from.
SOURCE_KEYS = {"acoustic": "checkpoint", "vocoder": "vocoder_checkpoint"}


def plot(series: dict[str, list[tuple[float, dict]]], metrics: list[str], path: str,
         label: str = "held-out", log_scale: bool = True) -> None:
    """One panel per metric, one line per series of (CPU minutes, values)
    points, with error bars where the values hold METRIC_low and
    METRIC_high; one legend under the panels; the PNG written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, points in series.items():
            kept = sorted(((minutes, values) for minutes, values in points
                           if values.get(metric) is not None), key=lambda point: point[0])
            x = [minutes for minutes, _ in kept]
            y = [values[metric] for _, values in kept]
            if kept and all(f"{metric}_low" in values for _, values in kept):
                below = [v[metric] - v[f"{metric}_low"] for _, v in kept]
                above = [v[f"{metric}_high"] - v[metric] for _, v in kept]
                ax.errorbar(x, y, yerr=[below, above], marker=".", capsize=3, label=name)
            else:
                ax.plot(x, y, marker=".", label=name)
        ax.set_xlabel("training CPU minutes")
        ax.set_ylabel(f"{label} {metric}")
        if log_scale:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(2, max(1, len(labels))))
    rows_of_legend = (len(labels) + 1) // 2
    fig.tight_layout(rect=(0, 0.07 * rows_of_legend, 1, 1))
    fileio.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), suffix=".png")
    plt.close(fig)


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as error:
        raise ReportError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: the {what} is not JSON ({error})") from None


def report_point(report_path: str, part: str, system: str = "model",
                 confidence: float = 0.95) -> tuple[float, dict]:
    """(training CPU minutes, values) of one tools/evaluate.py report: its
    summary, with METRIC_low and METRIC_high, the bootstrap interval over
    its sentences, for each metric paired.METRICS knows. The minutes are
    those recorded in the checkpoint the report's exported folder took its
    `part` ("acoustic" or "vocoder") from; a checkpoint rebuilt from a
    folder (tools/recover_checkpoint.py) records none and counts as the
    start, 0."""
    from bittts_tf.training import checkpoints

    report = _read_json(report_path, "evaluation report")
    try:
        summary = dict(report["systems"][system]["summary"])
        sentences = report["systems"][system]["sentences"]
        model_dir = report["model_dir"]
    except (KeyError, TypeError):
        raise ReportError(f"{report_path}: no system {system!r} with a summary and a model_dir "
                          "(not a tools/evaluate.py report of an exported voice)") from None
    manifest_path = os.path.join(model_dir, "manifest.json")
    source = _read_json(manifest_path, "exported folder's manifest").get("source") or {}
    checkpoint = source.get(SOURCE_KEYS[part])
    if not checkpoint:
        raise ReportError(f"{manifest_path}: names no {part} checkpoint (its 'source' has "
                          f"{sorted(source)})")
    try:
        recorded = checkpoints.read_manifest(checkpoint).get("cpu_seconds")
    except checkpoints.CheckpointError as error:
        raise ReportError(f"{report_path}: its {part} {error}") from None
    for metric in paired.METRICS:
        if metric in summary:
            _, summary[f"{metric}_low"], summary[f"{metric}_high"] = paired.interval(
                sentences, metric, confidence, name=report_path)
    return (recorded or 0.0) / 60.0, summary


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_METRIC_KEYS = {key for metric in paired.METRICS
                for key in (metric, f"{metric}_low", f"{metric}_high")}


def read_points(path: str) -> list[dict]:
    """The rows tools/eval_curves.py wrote beside a plot: series, part,
    report, cpu_minutes and the metrics with their intervals."""
    rows = _read_json(path, "points of an earlier plot")
    if not isinstance(rows, list):
        raise ReportError(f"{path}: expected a list of points, got {type(rows).__name__}")
    if not rows:
        raise ReportError(f"{path}: holds no points")
    for index, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("series"), str)
                and isinstance(row.get("report"), str) and _number(row.get("cpu_minutes"))
                and _number(row.get("wer")) and _number(row.get("cer"))):
            raise ReportError(f"{path}: point {index} lacks a series, report, cpu_minutes, wer "
                              "or cer (strings and numbers)")
        bad = [key for key in row if key in _METRIC_KEYS and row[key] is not None
               and not _number(row[key])]
        if bad:
            raise ReportError(f"{path}: point {index} has values that are not numbers: {bad}")
    return rows
