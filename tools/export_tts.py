"""Exports a trained TTS as a model folder that bittts_tf.runtime, tools/speak.py
and the firmware read: fixed-shape .tflite graphs with packed ternary weights
and BitTTSTernaryDecode, the front end's settings, a manifest and a size report.

  python tools/export_tts.py --checkpoint=runs/am --vocoder_checkpoint=runs/voc \
      --out_dir=models/my_voice

--checkpoint is a run directory (its newest checkpoint), a checkpoint file or
an averaged checkpoint (tools/average_checkpoints.py); a joint run holds the
vocoder too. The folder is replaced only when the export succeeds.
"""

import json
import os
import sys

from absl import app, flags

from bittts_tf.eval.synthesis import Synthesizer
from bittts_tf.export import tts_graphs
from bittts_tf.training.checkpoints import CheckpointError

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Acoustic (or joint) checkpoint file or run directory.")
flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder checkpoint (two-stage training).")
flags.DEFINE_string("out_dir", None, "The model folder to write.")
flags.DEFINE_integer("max_tokens", 64, "Phonemes per text-graph call (longer text is split).")
flags.DEFINE_integer("chunk_frames", 32, "Mel frames per frames-graph call (16 ms each at 16 kHz).")
flags.DEFINE_boolean("with_float32", False,
                     "Also write the float32 variant (same weights as float constants) for "
                     "tools/bench_tts.py; not for shipping.")
flags.mark_flags_as_required(["checkpoint", "out_dir"])


def main(argv):
    del argv
    try:
        synthesizer = Synthesizer(FLAGS.checkpoint, FLAGS.vocoder_checkpoint)
    except (CheckpointError, OSError, ValueError) as e:
        sys.exit(f"export_tts: {e}")
    if synthesizer.generator is None:
        sys.exit(f"export_tts: {synthesizer.checkpoint} holds no vocoder; pass --vocoder_checkpoint")
    print(f"acoustic model: {synthesizer.checkpoint}\nvocoder: {synthesizer.vocoder_source}")
    source = {"checkpoint": synthesizer.checkpoint, "vocoder_checkpoint": synthesizer.vocoder_source}
    try:
        report = tts_graphs.export_model_folder(
            FLAGS.out_dir, synthesizer.acoustic, synthesizer.generator, synthesizer.config,
            synthesizer.front_end, FLAGS.max_tokens, FLAGS.chunk_frames, source,
            with_float32=FLAGS.with_float32)
    except tts_graphs.ExportError as e:
        sys.exit(f"export_tts: {e}")
    for name, graph in report["graphs"].items():
        print(f"{name:7s} {graph['bytes']:9,d} bytes ({graph['float32_bytes']:,d} as float32, "
              f"{graph['ratio_vs_float32']:.3f}x); {graph['ternary_weights']:,d} ternary weights "
              f"at {graph['bits_per_ternary_weight']} bits")
    total = report["total"]
    print(f"total   {total['packed_graph_bytes']:9,d} bytes vs {total['float32_graph_bytes']:,d} "
          f"float32 ({total['ratio_vs_float32']:.3f}x); {total['bits_per_ternary_weight']} bits "
          f"per ternary weight")
    print(f"wrote {os.path.abspath(FLAGS.out_dir)}")
    print(json.dumps(total))


if __name__ == "__main__":
    app.run(main)
