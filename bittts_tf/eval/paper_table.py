"""The paper's table at CPU scale (issue 25): the voices tools/paper_voices.py
makes, side by side, from what it leaves in each voice's folder:

    VOICE/model/              the exported model folder (manifest.json,
                              size_report.json, text.tflite, frames.tflite,
                              *.int8.tflite)
    VOICE/eval_test.json      tools/evaluate.py --set=test --systems=model
    VOICE/eval_test_wavs/     its clips (model/NN.wav)
    VOICE/bench_tts.json      tools/bench_tts.py --num_threads=1
    VOICE/budget.json         tools/budget.py --variants=packed,int8

and the reference folder (festival's own voice on the same sentences,
evaluate.py --systems=festival, its clips in festival/NN.wav).

Columns (a figure that is missing stays blank):
- graph bytes: the two graphs the float path ships (text.tflite +
  frames.tflite); folder bytes: every file of the model folder (int8 graphs,
  manifest and size report included);
- params: the weights the shipped graphs hold (ternary, float32 and int8
  constants of the size report), so bits per weight = 8 x graph bytes /
  params, structure and float layers included;
- int8 flash and arena: budget.py's int8 variant (flash of both graphs, the
  larger of their smallest TFLM arenas);
- CPU minutes: of the averaged checkpoints the folder was exported from (the
  newest checkpoint in each average), acoustic + vocoder;
- WER, CER, DNSMOS OVRL: evaluate.py's corpus means;
- MCD: mel cepstral distortion (dB, c1..c12) of each test clip against
  festival's clip of the same sentence, aligned by dynamic time warping (the
  durations differ), averaged over the sentences; evaluate.py writes no MCD;
- RTF: bench_tts.py's real-time factor of the packed graphs decoded at load
  (the desktop path), on one LiteRT thread.
"""

from __future__ import annotations

import json
import os

import numpy as np

from bittts_tf import fileio
from bittts_tf.quant.bits import FLOAT_BITS, TERNARY_BITS

VOICES = ("float32", "float32_small", "4bit", "ternary_am", "ternary_all")
REFERENCE = "festival"
GRAPHS = ("text", "frames")
DESKTOP_CONFIGURATION = "decode at load"

# (key, Markdown header, format of a value)
COLUMNS = (
    ("weights", "weight bits (acoustic / vocoder)", "{}"),
    ("params", "params", "{:,d}"),
    ("graph_bytes", "graph bytes", "{:,d}"),
    ("folder_bytes", "folder bytes", "{:,d}"),
    ("bits_per_weight", "bits / weight", "{:.2f}"),
    ("int8_flash_bytes", "int8 flash B", "{:,d}"),
    ("int8_arena_bytes", "int8 arena B", "{:,d}"),
    ("cpu_minutes", "CPU min (acoustic + vocoder)", "{}"),
    ("wer", "WER", "{:.3f}"),
    ("cer", "CER", "{:.3f}"),
    ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}"),
    ("mcd_db", "MCD dB", "{:.2f}"),
    ("rtf", "RTF (1 thread)", "{:.4f}"),
)


def read_json(path: str) -> dict | None:
    """The JSON object at `path`, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# --- the model folder ---------------------------------------------------------

def graph_file(graph: str, variant: str = "packed") -> str:
    from bittts_tf.runtime.model_folder import graph_file as file_name
    return file_name(graph, variant)


def folder_sizes(model_dir: str) -> dict:
    """graph_bytes (the packed text and frames graphs) and folder_bytes (every
    file in the folder); None for what is missing."""
    if not os.path.isdir(model_dir):
        return {"graph_bytes": None, "folder_bytes": None}
    files = [os.path.join(model_dir, n) for n in os.listdir(model_dir)]
    folder = sum(os.path.getsize(p) for p in files if os.path.isfile(p))
    graphs = [os.path.join(model_dir, graph_file(g)) for g in GRAPHS]
    graph = sum(os.path.getsize(p) for p in graphs) if all(map(os.path.isfile, graphs)) else None
    return {"graph_bytes": graph, "folder_bytes": folder}


def graph_params(size_report: dict | None) -> int | None:
    """The weights the packed graphs hold: ternary, 4-bit, float32 and int8 constants."""
    graphs = _dig(size_report, "graphs")
    if not isinstance(graphs, dict) or not all(g in graphs for g in GRAPHS):
        return None
    return int(sum(graphs[g].get(k, 0) for g in GRAPHS
                   for k in ("ternary_weights", "int4_weights", "float32_weights",
                             "int8_weights")))


def weight_bits(model_config: dict | None) -> tuple[float, float] | None:
    """(acoustic, vocoder) weight bits of a manifest's model_config."""
    if not isinstance(model_config, dict) or "quantize" not in model_config:
        return None
    quantize = model_config["quantize"]
    bits = float(model_config.get("weight_bits", TERNARY_BITS))
    return (bits if quantize in ("acoustic", "all") else FLOAT_BITS,
            bits if quantize in ("vocoder", "all") else FLOAT_BITS)


def _bits_text(bits: float) -> str:
    return f"{bits:g}"


def cpu_minutes(source: dict | None) -> tuple[float | None, float | None]:
    """CPU minutes of the acoustic and the vocoder checkpoint a folder was
    exported from (the manifest's source), None where a checkpoint is gone."""
    from bittts_tf.training import checkpoints

    def minutes(path):
        if not path or not os.path.isfile(path):
            return None
        try:
            seconds = checkpoints.read_manifest(path).get("cpu_seconds")
        except checkpoints.CheckpointError:
            return None
        return None if seconds is None else round(float(seconds) / 60, 1)

    source = source or {}
    return minutes(source.get("checkpoint")), minutes(source.get("vocoder_checkpoint"))


# --- the scores ---------------------------------------------------------------

def evaluation_figures(report: dict | None, system: str = "model") -> dict:
    summary = _dig(report, "systems", system, "summary") or {}
    return {"wer": summary.get("wer"), "cer": summary.get("cer"),
            "dnsmos_ovrl": summary.get("dnsmos_ovrl"), "dnsmos_sig": summary.get("dnsmos_sig"),
            "dnsmos_bak": summary.get("dnsmos_bak"), "sentences": summary.get("sentences"),
            "set": _dig(report, "set")}


def desktop_rtf(bench: dict | None) -> dict:
    return {"rtf": _dig(bench, "configurations", DESKTOP_CONFIGURATION, "rtf"),
            "rtf_in_graph_decode": _dig(bench, "configurations", "in-graph decode", "rtf"),
            "rtf_threads": _dig(bench, "num_threads")}


def int8_budget(budget: dict | None) -> dict:
    targets = _dig(budget, "variants", "int8", "targets") or {}
    return {"int8_flash_bytes": targets.get("flash_bytes"),
            "int8_arena_bytes": targets.get("max_arena_bytes")}


def clip_path(wav_dir: str, system: str, index: int) -> str:
    """Where evaluate.py --audio_dir put sentence `index` (0-based) of `system`."""
    return os.path.join(wav_dir, system, f"{index + 1:02d}.wav")


def mean_mcd(report: dict | None, wav_dir: str, reference: dict | None, reference_wav_dir: str,
             reference_system: str = REFERENCE) -> dict:
    """Mean MCD-DTW of the model's clips against the reference's, over the
    sentences both spoke (matched by text); None when there are none."""
    from bittts_tf.audio.config import AudioConfig
    from bittts_tf.audio.io import load_wav
    from bittts_tf.eval import metrics

    empty = {"mcd_db": None, "mcd_sentences": 0}
    rows = _dig(report, "systems", "model", "sentences")
    reference_rows = _dig(reference, "systems", reference_system, "sentences")
    audio = _dig(report, "audio_config")
    if not rows or not reference_rows or not audio:
        return empty
    config = AudioConfig.from_dict(audio)
    where = {row["sentence"]: i for i, row in enumerate(reference_rows)}
    values = []
    for index, row in enumerate(rows):
        if row["sentence"] not in where:
            continue
        ours = clip_path(wav_dir, "model", index)
        theirs = clip_path(reference_wav_dir, reference_system, where[row["sentence"]])
        if not (os.path.isfile(ours) and os.path.isfile(theirs)):
            continue
        values.append(metrics.mcd_dtw(load_wav(theirs, config.sample_rate)[0],
                              load_wav(ours, config.sample_rate)[0], config))
    if not values:
        return empty
    return {"mcd_db": float(np.mean(values)), "mcd_sentences": len(values)}


# --- rows and the table -------------------------------------------------------

def voice_row(name: str, voice_dir: str, reference_dir: str | None = None,
              with_mcd: bool = True) -> dict:
    """Every figure of one voice's folder; None where one is missing."""
    model_dir = os.path.join(voice_dir, "model")
    manifest = read_json(os.path.join(model_dir, "manifest.json"))
    size_report = read_json(os.path.join(model_dir, "size_report.json"))
    row = {"voice": name, "folder": voice_dir, "present": os.path.isdir(voice_dir)}
    row.update(folder_sizes(model_dir))
    row["params"] = graph_params(size_report)
    row["bits_per_weight"] = (8.0 * row["graph_bytes"] / row["params"]
                              if row["graph_bytes"] and row["params"] else None)
    row["ternary_bits_per_weight"] = _dig(size_report, "total", "bits_per_ternary_weight")
    bits = weight_bits(_dig(manifest, "model_config"))
    row["acoustic_bits"], row["vocoder_bits"] = bits or (None, None)
    row["weights"] = " / ".join(map(_bits_text, bits)) if bits else None
    row["note"] = _storage_note(bits, size_report)
    am_minutes, vocoder_minutes = cpu_minutes(_dig(manifest, "source"))
    row["cpu_acoustic_minutes"], row["cpu_vocoder_minutes"] = am_minutes, vocoder_minutes
    row["cpu_minutes"] = (f"{am_minutes:.1f} + {vocoder_minutes:.1f}"
                          if am_minutes is not None and vocoder_minutes is not None else None)
    evaluation = read_json(os.path.join(voice_dir, "eval_test.json"))
    row.update(evaluation_figures(evaluation))
    row.update(desktop_rtf(read_json(os.path.join(voice_dir, "bench_tts.json"))))
    row.update(int8_budget(read_json(os.path.join(voice_dir, "budget.json"))))
    row.update({"mcd_db": None, "mcd_sentences": 0})
    if with_mcd and reference_dir:
        row.update(mean_mcd(evaluation, os.path.join(voice_dir, "eval_test_wavs"),
                            read_json(os.path.join(reference_dir, "eval_test.json")),
                            os.path.join(reference_dir, "eval_test_wavs")))
    return row


def _storage_note(bits, size_report) -> str | None:
    """How the graphs hold k-bit weights: 4-bit ones as INT4 tensors (folders
    exported since the packer stores them so), others as float32 constants."""
    if not bits or size_report is None:
        return None
    quantized = [b for b in bits if b not in (FLOAT_BITS, TERNARY_BITS)]
    if not quantized:
        return None
    int4 = sum(graph.get("int4_weights", 0)
               for graph in (_dig(size_report, "graphs") or {}).values())
    if int4:
        return (f"its {int4:,d} 4-bit weights are INT4 tensors in the graphs (two a byte, "
                "one float32 scale a tensor: a DEQUANTIZE before each float op, the int8 "
                "graphs' convs read them as filters)")
    if not _dig(size_report, "total", "ternary_weights"):
        return (f"its {quantized[0]:g}-bit weights are float32 constants in the graphs "
                "(only ternary and, since, 4-bit kernels are packed)")
    return None


def reference_row(reference_dir: str, system: str = REFERENCE) -> dict:
    row = {"voice": system, "folder": reference_dir, "present": os.path.isdir(reference_dir)}
    row.update(evaluation_figures(read_json(os.path.join(reference_dir, "eval_test.json")), system))
    return row


def build_table(out_dir: str, voices=VOICES, reference: str | None = REFERENCE,
                with_mcd: bool = True) -> dict:
    reference_dir = os.path.join(out_dir, reference) if reference else None
    table = {"out_dir": out_dir,  # as given: the table is committed, a machine path is not
             "columns": [{"key": k, "header": h} for k, h, _ in COLUMNS],
             "voices": [voice_row(v, os.path.join(out_dir, v), reference_dir, with_mcd)
                        for v in voices],
             "reference": reference_row(reference_dir, reference) if reference else None}
    return table


def _cell(value, form: str) -> str:
    if value is None:
        return ""
    try:
        return form.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown(table: dict) -> str:
    headers = ["voice"] + [h for _, h, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    rows = list(table["voices"])
    if table.get("reference"):
        rows.append(table["reference"])
    for row in rows:
        cells = [row["voice"]] + [_cell(row.get(k), f) for k, _, f in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row['voice']}: {row['note']}" for row in table["voices"] if row.get("note")]
    if table.get("reference") and table["reference"].get("present"):
        notes.append(f"- {table['reference']['voice']}: the teacher's own voice on the same "
                     "sentences (the MCD's reference)")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def plot(table: dict, path: str) -> None:
    """Quality against graph bytes: DNSMOS OVRL and WER, one point a voice;
    the reference's figures as dashed lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("dnsmos_ovrl", "DNSMOS OVRL (higher is better)"), ("wer", "WER (lower is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 4.2), squeeze=False)
    reference = table.get("reference") or {}
    for ax, (key, label) in zip(axes[0], panels):
        for row in table["voices"]:
            if row.get("graph_bytes") and row.get(key) is not None:
                ax.scatter(row["graph_bytes"] / 1e6, row[key], s=30)
                ax.annotate(row["voice"], (row["graph_bytes"] / 1e6, row[key]),
                            textcoords="offset points", xytext=(4, 4), fontsize=8)
        if reference.get(key) is not None:
            ax.axhline(reference[key], linestyle="--", color="gray", linewidth=1,
                       label=reference["voice"])
            ax.legend(loc="best", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("model graph bytes (MB, text + frames)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Equal CPU budget: quality against model bytes")
    fig.tight_layout()
    fileio.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), suffix=".png")
    plt.close(fig)


def write(table: dict, stem: str) -> list[str]:
    """STEM.md, STEM.json and STEM.png, each written atomically."""
    paths = [stem + ".md", stem + ".json", stem + ".png"]
    fileio.atomic_write_text(paths[0], markdown(table))
    fileio.atomic_write_json(paths[1], table)
    plot(table, paths[2])
    return paths
