"""Compares training runs by their held-out curves (held_out.jsonl).

  python tools/compare_runs.py --runs=runs/tiny_am_float,runs/tiny_am_ternary \
      --output=out/am_curves.png

Plots each metric against training CPU minutes (the fair axis when runs are
given equal CPU time) and prints every run's final values, with the ratio of
each run's final value to the first run's.

Vocoder runs given equal CPU time (`tools/train.py --max_cpu_minutes`) are
also scored on their held-out ground-truth mels, final checkpoint each: MCD,
PESQ, STOI, pocketsphinx WER and DNSMOS, into a table beside the curves:

  python tools/compare_runs.py --runs=runs/cmp_frame_ternary,runs/cmp_hifigan_ternary \
      --metrics=wave_mel_l1,stft --vocoder_corpus=data/slt_cache --output=out/cmp.png
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os

from absl import app, flags

from bittts_tf import fileio
from bittts_tf.eval.curves import plot as plot_against_cpu
from bittts_tf.training import run_log

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run directories (tools/train.py --output_dir); the first is "
                  "the reference of the ratios. Each is named by its folder, or by as much of "
                  "its path as tells it from another of that name.")
flags.DEFINE_list("metrics", ["mel_l1", "alignment_boundary_ms"],
                  "held_out.jsonl columns to plot and compare.")
flags.DEFINE_string("output", None, "PNG of the curves; a .json with the same stem gets the "
                    "final values.")
flags.DEFINE_string("vocoder_corpus", None, "Feature cache of vocoder runs: score each run's "
                    "final checkpoint on its held-out utterances (MCD, PESQ, STOI, WER, DNSMOS).")
flags.DEFINE_integer("n", 20, "Held-out utterances to score per run (with --vocoder_corpus).")
flags.mark_flag_as_required("runs")
# The summary goes to the same stem with .json: any other suffix would be overwritten by it.
flags.register_validator("output", lambda path: path is None or path.endswith(".png"),
                         message="--output: a .png path (the final values go beside it, .json)")
cli.output_flags(files=("output",))

VOCODER_COLUMNS = ("mcd_db", "pesq", "stoi", "wer", "dnsmos_ovrl")


def vocoder_table(summary: dict) -> str:
    """Markdown: one row per run, its CPU minutes and vocoder scores."""
    header = "| run | CPU min | step | " + " | ".join(VOCODER_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (3 + len(VOCODER_COLUMNS))]
    for name, row in summary.items():
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else "-" for c in VOCODER_COLUMNS]
        lines.append(f"| {name} | {row['cpu_minutes']:.1f} | {row['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_curves(run_dir: str) -> dict[int, dict]:
    path = os.path.join(run_dir, "held_out.jsonl")
    if not os.path.exists(path):
        raise app.UsageError(f"{run_dir}: no held_out.jsonl (not a tools/train.py run, or it "
                             "has not evaluated yet)")
    rows, _ = run_log.parse_json_lines(path, numbers=("cpu_seconds",))   # the x axis
    if not rows:
        raise app.UsageError(f"{path}: empty")
    return {row.pop("step"): row for row in rows}


def run_names(run_dirs: list[str]) -> list[str]:
    """Each run's folder name, or where two share one, the fewest trailing
    path parts that tell it from the others (s1/am, s2/am)."""
    paths = [os.path.abspath(d).split(os.sep) for d in run_dirs]
    names = []
    for i, parts in enumerate(paths):
        others = paths[:i] + paths[i + 1:]
        if parts in others:
            raise app.UsageError(f"--runs: {run_dirs[i]} is given twice")
        k = next(k for k in range(1, len(parts) + 1) if all(o[-k:] != parts[-k:] for o in others))
        names.append("/".join(parts[-k:]))
    return names


def check_metrics(curves: dict[str, dict[int, dict]]) -> None:
    logged = {key for rows in curves.values() for row in rows.values() for key in row}
    missing = [m for m in FLAGS.metrics if m not in logged]
    if missing:
        raise app.UsageError(f"--metrics: no run's held_out.jsonl has {', '.join(missing)}; "
                             f"they have {', '.join(sorted(logged - {'cpu_seconds'}))}")


def main(argv):
    del argv
    names = run_names(FLAGS.runs)
    curves = {name: load_curves(d) for name, d in zip(names, FLAGS.runs)}
    check_metrics(curves)
    reference = None
    summary = {}
    for name, rows in curves.items():
        last = rows[max(rows)]
        summary[name] = {"step": max(rows), "cpu_minutes": round(last["cpu_seconds"] / 60, 2),
                         **{m: last.get(m) for m in FLAGS.metrics}}
        if reference is None:
            reference = last
        else:
            summary[name].update({f"{m}_ratio": last[m] / reference[m] for m in FLAGS.metrics
                                  if m in last and reference.get(m)})
    if FLAGS.vocoder_corpus:
        from bittts_tf.eval import vocoder_eval
        for name, run_dir in zip(names, FLAGS.runs):
            print(f"scoring {name} on {FLAGS.n} held-out utterances ...", flush=True)
            scored = vocoder_eval.evaluate_checkpoint(run_dir, FLAGS.vocoder_corpus, FLAGS.n)
            summary[name].update(scored["summary"], checkpoint=scored["checkpoint"],
                                 cpu_minutes=scored["cpu_minutes"], step=scored["step"])
    for name, row in summary.items():
        print(f"{name:28s} " + "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if FLAGS.output:
        plot_against_cpu({name: [(row["cpu_seconds"] / 60, row) for row in rows.values()]
                          for name, rows in curves.items()}, FLAGS.metrics, FLAGS.output)
        stem = os.path.splitext(FLAGS.output)[0]
        fileio.atomic_write_json(stem + ".json", summary)
        print(f"wrote {FLAGS.output} and {stem}.json")
    if FLAGS.vocoder_corpus:
        table = vocoder_table(summary)
        print(table)
        if FLAGS.output:
            fileio.atomic_write_text(stem + ".md", table + "\n")


if __name__ == "__main__":
    cli.run(main)
