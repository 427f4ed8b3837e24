"""A model folder's graphs in TFLite Micro (the pinned tflite-micro wheel)
against LiteRT: speaks the first --sentences evaluation sentences with
bittts_tf.runtime while every text-graph and frames-graph invocation also
runs in TFLM, and reports each output's largest difference (in quantization
steps for int8 outputs) and each graph's smallest arena. The int8 variant is
also run on the C99 engine (firmware_stub/bittts_engine*.c, host build)
against TFLM, invocation by invocation, and the two paths' int16 PCM of each
sentence compared.

    tools/check_tflm.py --model_dir=models/my_voice --output=out/tflm_check.json
"""

from __future__ import annotations

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import sys

from absl import flags

from bittts_tf import fileio
from bittts_tf.eval.evaluation import SentencesError, load_sentences
from bittts_tf.export import tflm
from bittts_tf.runtime import model_folder

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder written by tools/export_tts.py.")
flags.DEFINE_string("output", None, "JSON report to write.")
flags.DEFINE_integer("sentences", 20, "Evaluation sentences to speak.")
flags.DEFINE_list("variants", ["packed", "int8"], "Variants to check (missing ones are skipped).")
flags.DEFINE_list("litert_kernels", list(tflm.LITERT_KERNELS),
                  "LiteRT kernel sets to compare with: default (optimized), reference.")
flags.DEFINE_bool("c99_engine", True, "Also compare the C99 engine with TFLM (int8 variant).")
flags.mark_flags_as_required(["model_dir", "output"])
cli.output_flags(files=("output",))


def engine_pcm(model_dir: str, texts: list[str], arenas: dict[str, int]) -> dict:
    """Each sentence's int16 PCM from the C99 engine and from TFLM: the
    largest difference and how many samples differ."""
    import numpy as np

    from bittts_tf.audio.io import to_pcm16
    from bittts_tf.runtime import TextToSpeech
    engine = TextToSpeech(model_dir, variant="int8", engine="c99")
    reference = tflm.tflm_runtime(model_dir, "int8", arenas)
    rows = []
    for text in texts:
        a = to_pcm16(engine.synthesize(text).audio).astype(np.int32)
        b = to_pcm16(reference.synthesize(text).audio).astype(np.int32)
        if a.shape != b.shape:
            rows.append({"samples": [int(a.size), int(b.size)], "max_abs_difference": None})
            continue
        rows.append({"samples": int(a.size), "max_abs_difference": int(np.abs(a - b).max(initial=0)),
                     "differing_samples": int(np.count_nonzero(a != b))})
    return {"sentences": rows,
            "max_abs_difference": max((r["max_abs_difference"] for r in rows
                                       if r["max_abs_difference"] is not None), default=None),
            "length_mismatches": sum(r["max_abs_difference"] is None for r in rows)}


def main(argv):
    del argv
    bad = [k for k in FLAGS.litert_kernels if k not in tflm.LITERT_KERNELS]
    if bad:
        sys.exit(f"check_tflm: --litert_kernels: unknown {bad}; choose from {list(tflm.LITERT_KERNELS)}")
    if FLAGS.sentences < 1:
        sys.exit(f"check_tflm: --sentences={FLAGS.sentences} must be at least 1")
    try:
        texts = load_sentences()[:FLAGS.sentences]
        folder = model_folder.load(FLAGS.model_dir)
        report = {"tflite_micro": tflm.WHEEL_VERSION, "sentences": len(texts), "variants": {}}
        for variant in FLAGS.variants:
            if variant not in folder.variants:
                print(f"check_tflm: {FLAGS.model_dir} has no {variant} graphs; skipping",
                      file=sys.stderr)
                continue
            arenas = {g: tflm.smallest_arena(folder.read_graph(g, variant))
                      for g in model_folder.GRAPHS}
            entry = {"arena_bytes": arenas}
            for kernels in FLAGS.litert_kernels:
                entry[f"vs_litert_{kernels}"] = tflm.compare_with_litert(
                    FLAGS.model_dir, variant, texts, arenas=arenas, litert_kernels=kernels)
            if variant == "int8" and FLAGS.c99_engine:
                entry["vs_c99_engine"] = tflm.compare_with_litert(
                    FLAGS.model_dir, variant, texts, arenas=arenas, engine="c99")
                entry["pcm_c99_engine"] = engine_pcm(FLAGS.model_dir, texts, arenas)
            report["variants"][variant] = entry
    except (model_folder.ModelFolderError, tflm.TFLMError, SentencesError, FileNotFoundError) as e:
        sys.exit(f"check_tflm: {e}")
    fileio.atomic_write_json(FLAGS.output, report)
    for variant, entry in report["variants"].items():
        print(f"{variant}: arenas " + ", ".join(f"{g} {a:,d} B" for g, a in entry["arena_bytes"].items()))
        if "pcm_c99_engine" in entry:
            pcm = entry["pcm_c99_engine"]
            print(f"  C99 engine vs TFLM, int16 PCM of {len(pcm['sentences'])} sentences: largest "
                  f"difference {pcm['max_abs_difference']}, length mismatches {pcm['length_mismatches']}")
        for key, graphs in entry.items():
            if not key.startswith("vs_"):
                continue
            for graph, result in graphs.items():
                # The states are the stream's own bookkeeping: shown summed up.
                shown = {k: o for k, o in result["outputs"].items() if not k.startswith("state_")}
                states = [o["max_abs_error"] for k, o in result["outputs"].items()
                          if k.startswith("state_")]
                outputs = "; ".join(
                    f"{k} {o['max_abs_error']:.3g} (peak {o['peak']:.3g}"
                    + (f", {o['max_error_in_steps']:.2f} steps)" if o["step"] else ")")
                    for k, o in shown.items())
                if states:
                    outputs += f"; states: largest difference {max(states):.3g}"
                print(f"  {key} {graph} ({result['invocations']} calls): {outputs}")
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
