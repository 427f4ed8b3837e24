"""Plots validation scores of exported voices against the training CPU
minutes of the part that was trained on: the words and the naturalness of
the whole voice through its exported graphs, which held-out losses (20
utterances, teacher-forced, one model at a time) do not give.

Each --series is NAME:PART=REPORT,REPORT,...: tools/evaluate.py reports of
folders exported by tools/export_tts.py, PART (acoustic or vocoder) naming
whose checkpoint's recorded CPU minutes are the x axis:

  python tools/eval_curves.py \
      --series="acoustic model, big corpus:acoustic=out/val_a.json,out/val_b.json" \
      --series="vocoder fine-tuned:vocoder=out/val_c.json,out/val_d.json" \
      --output=out/curves_validation.png

--keep=POINTS.json keeps the points of an earlier plot (the .json this tool
wrote beside it) as they are, so a plot can grow after its reports are gone:

  python tools/eval_curves.py --keep=models/slt_tiny/curves_validation.json \
      --series="source phase:vocoder=out/val_e.json" --output=out/curves_validation.png

Each point has an error bar: the 95% bootstrap interval over the report's
sentences (on the 160 validation sentences 0.020 to 0.025 WER and 0.026
to 0.032 DNSMOS on each side). Prints one row per report (CPU minutes,
WER, CER, DNSMOS) and writes the points, with their intervals, beside the
PNG (.json with the same stem).
"""

from bittts_tf import cli

cli.quiet_startup()

import os

from absl import app, flags

from bittts_tf import fileio
from bittts_tf.eval import paired
from bittts_tf.eval.curves import SOURCE_KEYS, plot, read_points, report_point

FLAGS = flags.FLAGS
flags.DEFINE_string("keep", None, "Points JSON an earlier run of this tool wrote: its series "
                    "are plotted again as they are, before the --series.")
flags.DEFINE_multi_string("series", None, "NAME:PART=REPORT,REPORT,...: one line of the plot; "
                          f"PART is one of {sorted(SOURCE_KEYS)}.")
flags.DEFINE_list("metrics", ["wer", "dnsmos_ovrl"], "Summary columns of the reports to plot.")
flags.DEFINE_string("system", "model", "The system of each report to take.")
flags.DEFINE_string("output", None, "PNG of the curves; a .json with the same stem gets the "
                    "points.")
flags.mark_flags_as_required(["output"])
flags.register_validator("metrics", lambda m: bool(m) and set(m) <= set(paired.METRICS),
                         message=f"--metrics: one or more of {list(paired.METRICS)}")
flags.register_validator("output", lambda path: path is None or path.endswith(".png"),
                         message="--output: a .png path (the points go beside it, .json)")
cli.output_flags(files=("output",))


def parse_series(spec: str) -> tuple[str, str, list[str]]:
    name, colon, rest = spec.rpartition(":")
    part, equals, reports = rest.partition("=")
    reports = [r for r in reports.split(",") if r]
    if not (colon and name and equals and reports) or part not in SOURCE_KEYS:
        raise app.UsageError(f"--series={spec!r}: expected NAME:PART=REPORT,... with PART one "
                             f"of {sorted(SOURCE_KEYS)}")
    return name, part, reports


def main(argv):
    del argv
    series, rows, row_minutes = {}, [], []
    if not FLAGS.series and not FLAGS.keep:
        raise app.UsageError("nothing to plot: give --series, --keep or both")
    for row in (read_points(FLAGS.keep) if FLAGS.keep else []):
        series.setdefault(row["series"], []).append((row["cpu_minutes"], row))
        rows.append(row)
        row_minutes.append(row["cpu_minutes"])
    for spec in FLAGS.series or []:
        name, part, reports = parse_series(spec)
        series.setdefault(name, [])   # a name given again (or kept) gets the new points too
        for path in reports:
            minutes, summary = report_point(path, part, FLAGS.system)
            series[name].append((minutes, summary))
            row_minutes.append(minutes)
            rows.append({"series": name, "part": part, "report": path,
                         "cpu_minutes": round(minutes, 2),
                         **{key: summary[key] for metric in ("wer", "cer", *FLAGS.metrics)
                            for key in (metric, f"{metric}_low", f"{metric}_high")
                            if key in summary}})
    width = max([len("series")] + [len(row["series"]) for row in rows])
    print(f"{'series':<{width}} {'CPU min':>7} {'WER':>6} {'CER':>6} {'DNSMOS':>6}  report")
    # The table rounds the recorded minutes once (the JSON's two decimals
    # rounded again could print 95.0 for 95.0501).
    for row, minutes in zip(rows, row_minutes):
        mos = row.get("dnsmos_ovrl")
        print(f"{row['series']:<{width}} {minutes:7.1f} {row['wer']:6.3f} "
              f"{row['cer']:6.3f} {'-' if mos is None else f'{mos:.2f}':>6}  {row['report']}")
    for name, points in series.items():
        print(f"{name}: {len(points)} points")
    plot(series, FLAGS.metrics, FLAGS.output, label="validation", log_scale=False)
    stem = os.path.splitext(FLAGS.output)[0]
    fileio.atomic_write_json(stem + ".json", rows)
    print(f"wrote {FLAGS.output} and {stem}.json")


if __name__ == "__main__":
    cli.run(main)
