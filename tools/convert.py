"""Converts a Keras model with ternary layers to a .tflite with packed weights.

Every ternary kernel becomes an int8 index tensor (5 weights per byte, packed
format version 2) plus a float32 scale, decoded at run time by the custom op
BitTTSTernaryDecode; other weights stay float32. Prints a size report and
writes it as JSON.

    python tools/convert.py --keras_model=out/demo/model.keras --out=out/demo/model.tflite
    python tools/convert.py --checkpoint=runs/voc --model=generator --out=out/voc.tflite
    python tools/convert.py --tfmot_model=out/tfmot_example/model.h5 --out=out/kws.tflite

From a training checkpoint (a file, or a run / checkpoints directory: its
newest checkpoint) only the generator (vocoder) converts: mel [1, frames,
n_mels] -> waveform, any number of frames. The acoustic model's text -> mel
path has a data-dependent length (durations), so it has no single graph;
tools/export_tts.py exports it as fixed-shape graphs.

--tfmot_model takes a tf-keras model quantized with TFMOT and bittts_tf.tfmot's
ternary configs (a SavedModel directory or an .h5 file, as tf-keras saves
them). TFMOT needs tf-keras, so that path switches this process to legacy
Keras before loading, and builds no Keras 3 model.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import sys

from absl import flags, logging

from bittts_tf import fileio
from bittts_tf.export import ConversionError, conversion_report, keras_io, source_model

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "The .keras model to convert.")
flags.DEFINE_string("checkpoint", None, "A training checkpoint, or a run directory (its newest "
                    "checkpoint), to convert instead of --keras_model.")
flags.DEFINE_enum("model", "generator", list(source_model.CHECKPOINT_MODELS),
                  "With --checkpoint: which model of the checkpoint to convert.")
flags.DEFINE_string("tfmot_model", None, "Or a tf-keras model quantized with bittts_tf.tfmot "
                    "(TFMOT): a SavedModel directory or an .h5 file.")
flags.DEFINE_bool("integer", False, "With --tfmot_model trained with 8-bit activations: "
                  "TFLite's integer (int8) conversion, ternary kernels decoded to int8 codes.")
flags.DEFINE_string("out", None, "Where to write the .tflite model.", required=True)
flags.DEFINE_string("report", None, "Where to write the JSON size report "
                    "(default: next to --out, with .size.json).")
cli.output_flags(files=("out", "report"))


def convert_tfmot_model(path: str, integer: bool) -> conversion_report.ConversionResult:
    try:
        keras_io.check_tf_keras_model_path(path)
    except keras_io.ModelFileError as error:
        sys.exit(f"convert: {error}")
    # Imported here, not above: it switches the process to tf-keras, which only
    # this path may do (the Keras 3 paths build Keras 3 models).
    from bittts_tf import tfmot

    try:
        return tfmot.convert(tfmot.load_model(path), integer=integer)
    except tfmot.ModelFileError as error:
        sys.exit(f"convert: {error}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.tfmot_model is not None and (FLAGS.keras_model or FLAGS.checkpoint):
        sys.exit("convert: give only one of --tfmot_model, --keras_model and --checkpoint")
    if FLAGS.integer and FLAGS.tfmot_model is None:
        sys.exit("convert: --integer applies to --tfmot_model only")
    try:
        if FLAGS.tfmot_model is not None:
            result = convert_tfmot_model(FLAGS.tfmot_model, FLAGS.integer)
        else:
            model = source_model.load(FLAGS.keras_model, FLAGS.checkpoint, FLAGS.model)
            from bittts_tf.export import converter   # TensorFlow: once the model is known good
            result = converter.convert(model)
    except (keras_io.ModelFileError, ConversionError,
            source_model.CheckpointModelError) as error:
        sys.exit(f"convert: {error}")

    print(conversion_report.format_size_table(result))
    fileio.atomic_write_bytes(FLAGS.out, result.tflite)
    report_path = FLAGS.report or FLAGS.out.removesuffix(".tflite") + ".size.json"
    fileio.atomic_write_json(report_path, result.report())
    print(f"wrote {FLAGS.out} ({len(result.tflite)} bytes) and {report_path}")


if __name__ == "__main__":
    cli.run(main)
