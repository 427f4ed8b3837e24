"""Validates a converted .tflite against its Keras model and the C decoder.

1. Checks that the .tflite has the Keras model's inputs and outputs (number,
   order, shapes), runs both on the same random inputs, and applies the
   pass/fail bound of bittts_tf/export/validate.py: 1e-5 relative error for
   float activations; for 8-bit activations, codes that differ by at most one
   step, at most 1e-3 of them, and an output error within two 8-bit steps.
2. Decodes every packed tensor, in every subgraph, with the C library
   (ctypes) and with numpy: they must agree.

    python tools/validate.py --keras_model=out/demo/model.keras --tflite=out/demo/model.tflite
    python tools/validate.py --checkpoint=runs/voc --model=generator --tflite=out/voc.tflite
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

from absl import flags, logging

from bittts_tf import fileio
from bittts_tf.export import source_model, validate
from bittts_tf.litert import tflite_file

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "The Keras model the .tflite came from.")
flags.DEFINE_string("checkpoint", None, "Or the training checkpoint (or run directory) it came "
                    "from, as for tools/convert.py.")
flags.DEFINE_enum("model", "generator", list(source_model.CHECKPOINT_MODELS),
                  "With --checkpoint: which model of the checkpoint.")
flags.DEFINE_string("tflite", None, "The converted model.", required=True)
flags.DEFINE_integer("batch", 1, "Batch size of the random inputs (the .tflite is resized to it).",
                     lower_bound=1)
flags.DEFINE_integer("length", 64, "Length given to unknown (None) input dimensions.",
                     lower_bound=1)
flags.DEFINE_integer("trials", 3, "Number of random input draws.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the first draw.")
flags.DEFINE_float("tolerance", validate.FLOAT_TOLERANCE,
                   "Largest relative (max-norm) output error that passes when no activation "
                   "is rounded differently (float activations, or 8-bit ones that all agree).")
flags.DEFINE_float("activation_tolerance", validate.ACTIVATION_TOLERANCE,
                   "With 8-bit activations: largest relative output error that passes when "
                   "some codes differ by a step (see bittts_tf/export/validate.py).")
flags.DEFINE_float("max_flip_share", validate.MAX_FLIP_SHARE,
                   "With 8-bit activations: largest share of codes that may differ by a step.")
flags.DEFINE_string("report", None, "Optional JSON file for the results.")
cli.output_flags(files=("report",))


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    # Bad files are refused in one line by cli.run: each error names its file.
    tflite = tflite_file.read_tflite(FLAGS.tflite)
    model = source_model.load(FLAGS.keras_model, FLAGS.checkpoint, FLAGS.model)
    validate.check_interface(model, tflite, FLAGS.tflite)

    worst = None
    for trial in range(FLAGS.trials):
        inputs = validate.random_inputs(model, FLAGS.batch, FLAGS.length, FLAGS.seed + trial)
        try:
            comparison = validate.compare_litert_keras(model, tflite, inputs)
        except RuntimeError as error:
            raise cli.ToolError(f"{FLAGS.tflite}: LiteRT failed: "
                                f"{str(error).strip().splitlines()[0]}") from None
        failures = comparison.verdict(FLAGS.tolerance, FLAGS.activation_tolerance,
                                      FLAGS.max_flip_share)
        if worst is None or failures or comparison.rel_err > worst[0].rel_err:
            worst = (comparison, failures, FLAGS.seed + trial)
        if failures:
            break
    comparison, failures, seed = worst
    decode = validate.compare_c_numpy_decode(tflite)

    results = {"litert_vs_keras": comparison.as_dict(), "seed": seed, "decode": decode,
               "failures": failures}
    print(f"LiteRT vs Keras over {FLAGS.trials} draws from seed {FLAGS.seed}: worst (seed {seed}) "
          f"max abs error {comparison.max_abs_err:.3e}, relative (max-norm) "
          f"{comparison.rel_err:.3e} over {len(comparison.output_rel_errs)} output(s)")
    if comparison.quantized_activations:
        print(f"8-bit activations: {comparison.rounding_flips} of {comparison.rounded_values} "
              f"codes differ ({comparison.rounding_flip_share:.2e}), by at most "
              f"{comparison.largest_code_change} step(s)")
    print(f"C decode vs numpy decode: {decode['packed_tensors']} tensors, {decode['weights']} "
          f"weights, {'identical' if decode['c_decode_equals_numpy'] else 'MISMATCH'}")
    if FLAGS.report:
        fileio.atomic_write_json(FLAGS.report, results)

    if not decode["packed_tensors"]:
        failures.append("no packed ternary tensor to decode")
    elif not decode["c_decode_equals_numpy"]:
        failures.append("the C decoder and numpy disagree on "
                        + ", ".join(decode["c_numpy_mismatched_tensors"]))
    if failures:
        raise cli.ToolError(f"{FLAGS.tflite}: FAILED: " + "; ".join(failures))
    print("validate: passed")


if __name__ == "__main__":
    cli.run(main)
