"""Exports a trained TTS as a model folder that bittts_tf.runtime, tools/speak.py
and the firmware read: fixed-shape .tflite graphs with packed ternary weights
and BitTTSTernaryDecode (the frames graph a stream with state, --step frames
an invoke), the front end's settings, a manifest and a size report.

  bittts-export --checkpoint=runs/am --vocoder_checkpoint=runs/voc \
      --out_dir=models/my_voice

--checkpoint is a run directory (its newest checkpoint), a checkpoint file or
an averaged checkpoint (tools/average_checkpoints.py); a joint run holds the
vocoder too. The folder is replaced only when the export succeeds.

--int8_corpus=CACHE_DIR also writes the integer graphs (text.int8.tflite,
frames.int8.tflite: int8 activations calibrated on --int8_utterances
training-split utterances of that feature cache, each ternary conv one
BitTTSTernaryConv op reading its packed bytes, tensor names only on the
graphs' inputs and outputs: what a microcontroller runs);
tools/eval_int8.py measures them against the float graphs.
"""

import json
import os
import sys

import numpy as np

from absl import flags

from bittts_tf import cli
from bittts_tf.data.cache import CacheError, FeatureCache, split_entries
from bittts_tf.eval.synthesis import Synthesizer
from bittts_tf.export import ConversionError
from bittts_tf.text.segment import MIN_TOKENS
from bittts_tf.training.checkpoints import CheckpointError

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Acoustic (or joint) checkpoint file or run directory.")
flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder checkpoint (two-stage training).")
flags.DEFINE_string("out_dir", None, "The model folder to write.")
flags.DEFINE_integer("max_tokens", 64, "Phonemes per text-graph call (longer text is split).",
                     lower_bound=MIN_TOKENS)
flags.DEFINE_integer("step", 4, "Mel frames per invoke of the frames graph's stream (16 ms each "
                     "at 16 kHz): more frames an invoke cost more arena, fewer cost more invokes.",
                     lower_bound=1)
flags.DEFINE_boolean("with_float32", False,
                     "Also write the float32 variant (same weights as float constants) for "
                     "tools/bench_tts.py; not for shipping.")
flags.DEFINE_string("int8_corpus", None,
                    "Feature cache whose training-split utterances calibrate the int8 graphs; "
                    "without it no int8 graphs are written.")
flags.DEFINE_integer("int8_utterances", 64, "Utterances of --int8_corpus to calibrate on.",
                     lower_bound=1)
flags.DEFINE_string("tflm_lut_dir", None,
                    "Also write the stock-TFLM form of each exported variant here (each ternary "
                    "kernel a 2-bit LUT-compressed tensor decoded by TFLM's own DECODE op: no "
                    "custom op needed), validated in the pinned tflite-micro wheel.")
flags.DEFINE_integer("tflm_lut_validate_texts", 3,
                     "Evaluation sentences spoken to validate the LUT graphs (0: none).",
                     lower_bound=0)
flags.mark_flags_as_required(["checkpoint", "out_dir"])
cli.output_flags(folders=("out_dir",), allow=())
cli.output_flags(folders=("tflm_lut_dir",))


def calibration_utterances(cache_dir: str, count: int, synthesizer) -> list[dict]:
    """`count` training-split utterances of the cache, spread evenly over it;
    the cache must share the model's symbols and frame rate (durations are
    in frames)."""
    if count < 1:
        raise ValueError(f"--int8_utterances={count} must be at least 1")
    cache = FeatureCache(cache_dir)
    if cache.front_end.symbols != synthesizer.front_end.symbols:
        raise ValueError(f"{cache_dir}: its phoneme symbols differ from the model's")
    audio, model_audio = cache.audio_config, synthesizer.config.audio
    if (audio.sample_rate, audio.hop_length) != (model_audio.sample_rate, model_audio.hop_length):
        raise ValueError(f"{cache_dir}: {audio.sample_rate} Hz, hop {audio.hop_length}; the model "
                         f"has {model_audio.sample_rate} Hz, hop {model_audio.hop_length}")
    entries = split_entries(cache, "train")
    if not entries:
        raise ValueError(f"{cache_dir}: no training-split utterances")
    chosen = np.unique(np.linspace(0, len(entries) - 1, min(count, len(entries))).round().astype(int))
    return [cache.load(entries[i]["utt_id"]) for i in chosen]


def refuse_before_exporting() -> None:
    """What would fail or be ignored only after the minutes of conversion."""
    for flag, needs in (("int8_utterances", "int8_corpus"),
                        ("tflm_lut_validate_texts", "tflm_lut_dir")):
        if FLAGS[flag].present and not FLAGS[needs].value:
            sys.exit(f"export_tts: --{flag} serves --{needs}; give it too, or drop --{flag}")
    if FLAGS.tflm_lut_dir:
        from bittts_tf.export import tflm
        try:
            tflm.check_wheel()
        except ModuleNotFoundError as e:
            sys.exit(f"export_tts: --tflm_lut_dir: {e.name} is not installed; it needs the "
                     "[tflm] extra: pip install 'bittts_tf[tflm]'")
        except tflm.TFLMError as e:
            sys.exit(f"export_tts: --tflm_lut_dir: {e}")


def main(argv):
    del argv
    refuse_before_exporting()
    try:
        synthesizer = Synthesizer(FLAGS.checkpoint, FLAGS.vocoder_checkpoint)
    except (CheckpointError, OSError, ValueError) as e:
        sys.exit(f"export_tts: {e}")
    if synthesizer.generator is None:
        sys.exit(f"export_tts: {synthesizer.checkpoint} holds no vocoder; pass --vocoder_checkpoint")
    print(f"acoustic model: {synthesizer.checkpoint}\nvocoder: {synthesizer.vocoder_source}")
    from bittts_tf.export import tts_graphs   # TensorFlow: once the checkpoints are known good
    source = {"checkpoint": synthesizer.checkpoint, "vocoder_checkpoint": synthesizer.vocoder_source}
    utterances = None
    if FLAGS.int8_corpus:
        try:
            utterances = calibration_utterances(FLAGS.int8_corpus, FLAGS.int8_utterances,
                                                synthesizer)
        except (CacheError, OSError, ValueError, KeyError) as e:
            sys.exit(f"export_tts: --int8_corpus: {e}")
        source["int8_calibration"] = {"corpus": FLAGS.int8_corpus,  # as given, as the checkpoints are
                                      "utterances": len(utterances)}
        print(f"int8 calibration: {len(utterances)} utterances of {FLAGS.int8_corpus}")
    try:
        report = tts_graphs.export_model_folder(
            FLAGS.out_dir, synthesizer.acoustic, synthesizer.generator, synthesizer.config,
            synthesizer.front_end, FLAGS.max_tokens, FLAGS.step, source,
            with_float32=FLAGS.with_float32, int8_utterances=utterances)
    except (tts_graphs.ExportError, ConversionError) as e:
        sys.exit(f"export_tts: {e}")
    for name, graph in report["graphs"].items():
        print(f"{name:7s} {graph['bytes']:9,d} bytes ({graph['float32_bytes']:,d} as float32, "
              f"{graph['ratio_vs_float32']:.3f}x); {packed_weights(graph)}")
    total = report["total"]
    print(f"total   {total['packed_graph_bytes']:9,d} bytes vs {total['float32_graph_bytes']:,d} "
          f"float32 ({total['ratio_vs_float32']:.3f}x); {total['bits_per_ternary_weight']} bits "
          f"per ternary weight")
    if "int8" in report:
        for name, graph in report["int8"]["graphs"].items():
            print(f"{name + '.int8':11s} {graph['bytes']:9,d} bytes ({graph['ratio_vs_packed_float']:.3f}x the "
                  f"packed float graph); {packed_weights(graph)}")
    print(f"wrote {os.path.abspath(FLAGS.out_dir)}")
    print(json.dumps(total))
    if FLAGS.tflm_lut_dir:
        write_tflm_lut()


def packed_weights(graph: dict) -> str:
    """What a graph's size summary says of its packed kernels."""
    parts = []
    if graph["ternary_weights"]:
        parts.append(f"{graph['ternary_weights']:,d} ternary weights at "
                     f"{graph['bits_per_ternary_weight']} bits")
    if graph.get("int4_weights"):
        parts.append(f"{graph['int4_weights']:,d} 4-bit weights as INT4")
    return "; ".join(parts) or "no packed weights"


def write_tflm_lut():
    from bittts_tf.eval.evaluation import load_sentences
    from bittts_tf.export import tflm
    texts = load_sentences()[:FLAGS.tflm_lut_validate_texts]
    try:
        lut = tflm.write_lut_graphs(FLAGS.out_dir, FLAGS.tflm_lut_dir, texts)
    except (tflm.TFLMError, FileNotFoundError) as e:
        sys.exit(f"export_tts: --tflm_lut_dir: {e}")
    for variant, entry in lut["variants"].items():
        for name, graph in entry["graphs"].items():
            errors = ""
            if "vs_litert" in entry:
                worst = max(o["max_abs_error"] for o in entry["vs_litert"][name]["outputs"])
                errors = (f"; max error vs LiteRT {worst:.3g}, vs the packed graph in TFLM "
                          f"{entry['vs_packed_in_tflm'][name]['max_abs_error']:.3g}")
            print(f"{graph['file']:22s} {graph['bytes']:9,d} bytes, "
                  f"{graph['bits_per_ternary_weight']} bits per ternary weight with tables{errors}")
    print(f"wrote {os.path.abspath(FLAGS.tflm_lut_dir)}")

