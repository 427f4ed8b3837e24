"""Microcontroller budget of an exported model folder: flash (weights and
flatbuffer structure), the smallest TFLM arena with its split (activations
"head", persistent "tail" and its parts), multiply-accumulates per second of
audio and the latency from a segment's first frame to its first sample, per
variant, against the tiny model's targets (flash <= 512 KB for weights and
graphs, arena <= 128 KB, <= 100 MMAC per second of audio); JSON and a table.

    tools/budget.py --model_dir=models/my_voice --output=out/budget.json

Variants: "packed" (float32, BitTTSTernaryDecode), "int8" (as exported:
every decode -> CONV_2D pair fused into one BitTTSTernaryConv that reads the
packed bytes itself, so no decoded kernel sits in the arena), "fused" (the
float32 graphs fused the same way, made here with export.fused_conv, not
stored; "int8_fused" does it to int8 graphs of folders exported before the
int8 graphs shipped fused), and the stock TFLM forms "lut" / "int8_lut"
(made here with tflm.lut_compress, not stored). Arenas are the smallest each graph allocates and invokes in, found
by bisection in the pinned tflite-micro wheel (64-bit host: pointers and
TFLM's own records are larger than on a Cortex-M, activations are not).
A variant refused part-way leaves the variants done before it in
OUTPUT.incomplete.json (--output itself is written only by a complete run).
"""

from __future__ import annotations

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import math
import os
import sys

from absl import flags

from bittts_tf import fileio
from bittts_tf.export import budget, tflm
from bittts_tf.runtime import model_folder

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder written by tools/export_tts.py.")
flags.DEFINE_string("output", None, "JSON report to write.")
flags.DEFINE_list("variants", ["packed", "int8", "fused", "lut", "int8_lut"],
                  "Variants to count (those the folder lacks are skipped).")
flags.DEFINE_float("frames_per_phoneme", 5.0,
                   "Average mel frames per phoneme: amortizes the text graph over a full "
                   "segment's audio (80 ms at 16 kHz, hop 256).")
flags.DEFINE_boolean("arena", True, "Search each graph's smallest TFLM arena (slow-ish).")
flags.mark_flags_as_required(["model_dir", "output"])

VARIANTS = ("packed", "int8", "fused", "int8_fused", "lut", "int8_lut")
_LUT_OF = {"lut": "packed", "int8_lut": "int8"}
_FUSED_OF = {"fused": "packed", "int8_fused": "int8"}
# Refused before the arena search: 0 would divide by zero after it, and a
# negative or NaN average gives a MAC rate that passes the target.
flags.register_validator("frames_per_phoneme", lambda v: math.isfinite(v) and v > 0,
                         message="--frames_per_phoneme must be a positive number")
flags.register_validator("variants", bool,
                         message=f"--variants is empty; choose from {list(VARIANTS)}")
cli.output_flags(files=("output",))


def variant_graphs(folder, variant: str) -> dict[str, bytes] | None:
    source = _LUT_OF.get(variant, _FUSED_OF.get(variant, variant))
    if source not in folder.variants:
        return None
    graphs = {g: folder.read_graph(g, source) for g in model_folder.GRAPHS}
    if variant in _LUT_OF:
        graphs = {g: tflm.lut_compress(m, g)[0] for g, m in graphs.items()}
    if variant in _FUSED_OF:
        from bittts_tf.export import fused_conv
        graphs = {g: fused_conv.fuse_ternary_convs(m, g).tflite for g, m in graphs.items()}
    return graphs


def variant_budget(folder, variant: str, graphs: dict[str, bytes]) -> dict:
    shapes = folder.shapes
    sample_rate = int(folder.manifest["audio"]["sample_rate"])
    per_graph = {}
    for name, model in graphs.items():
        entry = {"flash": budget.flash_breakdown(model, name), **budget.graph_macs(model, name),
                 "largest_constants": budget.largest_constants(model, 3),
                 "largest_activations": budget.largest_activations(model, 3)}
        refused = tflm.unsupported_reason(model) if FLAGS.arena else None
        if refused:
            entry["arena_error"] = refused
            print(f"budget: {variant} {name}: no arena: {refused}", file=sys.stderr)
        elif FLAGS.arena:
            entry["arena_bytes"] = tflm.smallest_arena(model)
            entry["arena"] = tflm.arena_breakdown(model, entry["arena_bytes"])
        per_graph[name] = entry
    rates = budget.macs_per_second(shapes, sample_rate, per_graph["frames"]["macs"],
                                   per_graph["text"]["macs"], FLAGS.frames_per_phoneme)
    flash = sum(g["flash"]["bytes"] for g in per_graph.values())
    targets = budget.TARGETS
    verdict = {"flash_bytes": flash, "flash_ok": flash <= targets["flash_bytes"],
               "macs_per_second": rates["total_macs_per_second"],
               "macs_ok": rates["total_macs_per_second"] <= targets["macs_per_second"]}
    if FLAGS.arena:
        arenas = [g.get("arena_bytes") for g in per_graph.values()]
        arena = None if None in arenas else max(arenas)
        verdict.update(max_arena_bytes=arena,
                       arena_ok=None if arena is None else arena <= targets["arena_bytes"])
    return {"graphs": per_graph, "macs_per_second": rates, "targets": verdict,
            "latency": budget.latency_frames(shapes, int(shapes["n_fft"]))}


def table(report: dict) -> str:
    rows = [f"{'variant':9s} {'graph':7s} {'flash B':>10s} {'structure B':>11s} {'arena B':>10s} "
            f"{'(head/tail)':>17s} {'MMAC/call':>10s}"]
    for variant, entry in report["variants"].items():
        for name, graph in entry["graphs"].items():
            arena = (f"{graph['arena_bytes']:,d}" if "arena_bytes" in graph
                     else "refused" if "arena_error" in graph else "-")
            parts = graph.get("arena", {})
            split = (f"{parts.get('head', 0):,d}/{parts.get('tail', 0):,d}" if parts else "-")
            rows.append(f"{variant:9s} {name:7s} {graph['flash']['bytes']:>10,d} "
                        f"{graph['flash']['graph_structure_and_padding']:>11,d} {arena:>10s} "
                        f"{split:>17s} {graph['macs'] / 1e6:>10.2f}")
        t, r, latency = entry["targets"], entry["macs_per_second"], entry["latency"]
        arena = ("arena not searched" if "max_arena_bytes" not in t
                 else "arena: TFLM refused a graph" if t["max_arena_bytes"] is None
                 else f"arena {t['max_arena_bytes']:,d} B {'ok' if t['arena_ok'] else 'OVER'}")
        rows.append(f"{'':9s} total: flash {t['flash_bytes']:,d} B {'ok' if t['flash_ok'] else 'OVER'}"
                    f" | {arena} | {r['total_macs_per_second'] / 1e6:.1f} MMAC/s "
                    f"{'ok' if t['macs_ok'] else 'OVER'} (frames "
                    f"{r['frames_graph_macs_per_second'] / 1e6:.1f}, text "
                    f"{r['text_graph_macs_per_second'] / 1e6:.1f}) | first sample "
                    f"{latency['total_frames']} frames after its first frame")
    return "\n".join(rows)


def incomplete_path(output: str) -> str:
    """Where a run that failed part-way keeps the variants it did finish:
    beside --output, never over it (a complete report there stays, and no
    reader of --output takes a partial one for the whole)."""
    stem, ext = os.path.splitext(output)
    return f"{stem}.incomplete{ext or '.json'}"


def main(argv):
    del argv
    unknown = [v for v in FLAGS.variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"budget: --variants: unknown {unknown}; choose from {list(VARIANTS)}")
    try:
        folder = model_folder.load(FLAGS.model_dir)
    except (model_folder.ModelFolderError, FileNotFoundError) as e:
        sys.exit(f"budget: {e}")
    report = {"model_dir": os.path.abspath(FLAGS.model_dir), "targets": budget.TARGETS,
              "tflite_micro": tflm.WHEEL_VERSION, "shapes": folder.shapes, "variants": {}}
    partial = incomplete_path(FLAGS.output)
    for variant in FLAGS.variants:
        try:
            graphs = variant_graphs(folder, variant)
            if graphs is None:
                print(f"budget: {FLAGS.model_dir} has no {_LUT_OF.get(variant, variant)} graphs; "
                      f"skipping {variant}", file=sys.stderr)
                continue
            report["variants"][variant] = variant_budget(folder, variant, graphs)
        except Exception as e:   # noqa: BLE001 -- only refusals are caught; bugs re-raise
            if not cli.refuses_input(e):
                raise
            done = list(report["variants"])
            if not done:
                sys.exit(f"budget: {variant}: {cli.one_line(e)}")
            # The arena searches already done are slow: keep them.
            fileio.atomic_write_json(partial, {**report, "incomplete": {
                "failed_variant": variant, "error": cli.one_line(e)}})
            sys.exit(f"budget: {variant}: {cli.one_line(e)} (variants done: {', '.join(done)}; "
                     f"their figures are in {partial}, marked incomplete)")
    fileio.atomic_write_json(FLAGS.output, report)
    if os.path.exists(partial):
        os.unlink(partial)   # a failed run's leftovers, superseded by this report
    print(table(report))
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
