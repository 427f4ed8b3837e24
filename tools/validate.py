"""Validates a converted .tflite against its Keras model and the C decoder.

1. Runs the .tflite in LiteRT (with our C kernel for BitTTSTernaryDecode) and
   the Keras model on the same random inputs, and reports the error; with
   activation quantization on, also the share of activations rounded
   differently.
2. Decodes every packed tensor with the C library (ctypes) and with numpy.

    python tools/validate.py --keras_model=out/demo/model.keras --tflite=out/demo/model.tflite
    python tools/validate.py --checkpoint=runs/voc --model=generator --tflite=out/voc.tflite
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import sys

from absl import flags, logging

from bittts_tf import fileio
from bittts_tf.export import converter, keras_io, tflite_file, validate

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "The Keras model the .tflite came from.")
flags.DEFINE_string("checkpoint", None, "Or the training checkpoint (or run directory) it came "
                    "from, as for tools/convert.py.")
flags.DEFINE_enum("model", "generator", list(converter.CHECKPOINT_MODELS),
                  "With --checkpoint: which model of the checkpoint.")
flags.DEFINE_string("tflite", None, "The converted model.", required=True)
flags.DEFINE_integer("batch", 1, "Batch size of the random inputs (the .tflite is resized to it).")
flags.DEFINE_integer("length", 64, "Length given to unknown (None) input dimensions.")
flags.DEFINE_integer("trials", 3, "Number of random input draws.")
flags.DEFINE_integer("seed", 0, "Seed of the first draw.")
flags.DEFINE_float("tolerance", 1e-5, "Largest relative (max-norm) error that passes, "
                   "when activations are not quantized.")
flags.DEFINE_string("report", None, "Optional JSON file for the results.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        tflite = tflite_file.read_tflite(FLAGS.tflite)
        model = converter.load_source_model(FLAGS.keras_model, FLAGS.checkpoint, FLAGS.model)
    except (tflite_file.TFLiteFileError, keras_io.ModelFileError,
            converter.CheckpointModelError) as error:
        sys.exit(f"validate: {error}")

    worst = None
    for trial in range(FLAGS.trials):
        inputs = validate.random_inputs(model, FLAGS.batch, FLAGS.length, FLAGS.seed + trial)
        try:
            comparison = validate.compare_litert_keras(model, tflite, inputs)
        except RuntimeError as error:
            sys.exit(f"validate: {FLAGS.tflite}: LiteRT failed: {str(error).strip().splitlines()[0]}")
        if worst is None or comparison.rel_err > worst.rel_err:
            worst = comparison
    decode = validate.compare_c_numpy_decode(tflite)

    results = {"litert_vs_keras": worst.as_dict(), "decode": decode}
    print(f"LiteRT vs Keras over {FLAGS.trials} draws: max abs error {worst.max_abs_err:.3e}, "
          f"relative (max-norm) {worst.rel_err:.3e}")
    if worst.quantized_activations:
        print(f"activation quantization on: {worst.rounding_flips} of {worst.rounded_values} "
              f"rounded activations differ ({worst.rounding_flip_share:.2e})")
    print(f"C decode vs numpy decode: {decode['packed_tensors']} tensors, {decode['weights']} "
          f"weights, {'identical' if decode['c_decode_equals_numpy'] else 'MISMATCH'}")
    if FLAGS.report:
        fileio.atomic_write_json(FLAGS.report, results)

    failed = not decode["c_decode_equals_numpy"] or (
        not worst.quantized_activations and worst.rel_err > FLAGS.tolerance)
    if failed:
        sys.exit(f"validate: FAILED {json.dumps(results)}")
    print("validate: passed")


if __name__ == "__main__":
    cli.run(main)
