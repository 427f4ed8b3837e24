"""Converts a Keras model with ternary layers to a .tflite with packed weights.

Every ternary kernel becomes a uint8 index tensor (5 weights per byte) plus a
float32 scale, decoded at run time by the custom op BitTTSTernaryDecode; other
weights stay float32. Prints a size report and writes it as JSON.

    python tools/convert.py --keras_model=out/demo/model.keras --out=out/demo/model.tflite
"""

import sys

from absl import app, flags, logging

from bittts_tf import fileio
from bittts_tf.export import converter, keras_io

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "The .keras model to convert.", required=True)
flags.DEFINE_string("out", None, "Where to write the .tflite model.", required=True)
flags.DEFINE_string("report", None, "Where to write the JSON size report "
                    "(default: next to --out, with .size.json).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        model = keras_io.load_keras_model(FLAGS.keras_model)
        result = converter.convert(model)
    except (keras_io.ModelFileError, converter.ConversionError) as error:
        sys.exit(f"convert: {error}")

    print(converter.format_size_table(result))
    fileio.atomic_write_bytes(FLAGS.out, result.tflite)
    report_path = FLAGS.report or FLAGS.out.removesuffix(".tflite") + ".size.json"
    fileio.atomic_write_json(report_path, result.report())
    print(f"wrote {FLAGS.out} ({len(result.tflite)} bytes) and {report_path}")


if __name__ == "__main__":
    app.run(main)
