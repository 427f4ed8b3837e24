"""Ternary keyword spotting with tf-keras and TFMOT, from data to LiteRT.

For users of tf-keras and the TensorFlow Model Optimization toolkit: a small
speech-command style Conv2D network (a depthwise-separable CNN on log-mel
features) whose Conv2D, DepthwiseConv2D and Dense layers are annotated with
bittts_tf's ternary QuantizeConfigs, trained with `fit`, converted to a
.tflite whose ternary kernels are packed 5 weights per byte, and run in
LiteRT with the BitTTSTernaryDecode kernel.

1. Generates keywords: each class is a sequence of two or three harmonic
   tones with its own pitches and glides; every example jitters the onset,
   durations, pitch and loudness and adds noise at 5-20 dB SNR.
2. Annotates, `quantize_apply`s (activations float, or TFMOT's default 8-bit
   with --activations=8bit) and trains.
3. Checks that every annotated kernel takes exactly three values.
4. Converts (with 8-bit activations, TFLite's integer conversion), writes
   model.tflite and its size report, runs it in LiteRT on the held-out
   examples against tf-keras, and decodes every packed tensor with the C
   library and numpy.
5. Saves the trained model as model.h5 and as the SavedModel saved_model/,
   either of which tools/convert.py converts again with --tfmot_model.

    python tools/tfmot_example.py --out_dir=out/tfmot_example
    python tools/tfmot_example.py --out_dir=out/tfmot_example_8bit --activations=8bit

Runs in legacy-Keras mode (tf-keras): TFMOT needs it, so it imports
bittts_tf.tfmot before anything else and builds no Keras 3 model.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

from bittts_tf import tfmot as ternary  # first: switches this process to tf-keras

import pathlib
import sys
import time
import warnings

import numpy as np
import tensorflow as tf
import tf_keras
from absl import flags, logging

from bittts_tf import fileio
from bittts_tf.export import ConversionError, conversion_report, validate
from bittts_tf.litert import native

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "out/tfmot_example", "Where to write model.tflite, "
                    "model.size.json, model.h5, saved_model/ and report.json.")
flags.DEFINE_enum("activations", "float", list(ternary.ACTIVATION_MODES),
                  "float: only the weights are quantized (LiteRT then matches tf-keras to float "
                  "rounding). 8bit: TFMOT's default 8-bit activation quantization as well, "
                  "converted to an integer .tflite.")
flags.DEFINE_integer("keywords", 6, "Number of keyword classes.")
flags.DEFINE_integer("examples", 2400, "Number of generated examples (a sixth held out).")
flags.DEFINE_integer("channels", 128, "Channels of the convolutions.")
flags.DEFINE_integer("blocks", 3, "Depthwise-separable blocks.")
flags.DEFINE_integer("epochs", 12, "Training epochs.")
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the initial weights.")
flags.DEFINE_float("tolerance", 1e-5, "Largest relative (max-norm) error of LiteRT against "
                   "tf-keras that passes with float activations.")
cli.output_flags(folders=("out_dir",))

SAMPLE_RATE = 8000
CLIP_SAMPLES = 4000  # 0.5 s
FRAME, HOP, FFT, MELS = 200, 80, 256, 32


def keyword_table(keywords: int, rng) -> list[list[tuple[float, float]]]:
    """Per keyword, its tones as (start pitch, end pitch) in Hz."""
    return [[tuple(rng.uniform(150, 900, size=2)) for _ in range(rng.integers(2, 4))]
            for _ in range(keywords)]


def synthesize(tones, rng) -> np.ndarray:
    """One utterance of a keyword: its tones one after another, jittered."""
    audio = np.zeros(CLIP_SAMPLES)
    start = int(rng.uniform(0.0, 0.1) * SAMPLE_RATE)
    for low, high in tones:
        length = int(rng.uniform(0.08, 0.13) * SAMPLE_RATE)
        if start + length > CLIP_SAMPLES:
            break
        pitch = np.linspace(low, high, length) * rng.uniform(0.95, 1.05)
        phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
        envelope = np.hanning(length)
        tone = sum(np.sin(k * phase) / k for k in (1, 2, 3)) * envelope
        audio[start:start + length] += tone * rng.uniform(0.3, 1.0)
        start += length + int(rng.uniform(0.0, 0.03) * SAMPLE_RATE)
    signal_power = np.mean(audio ** 2)
    noise_power = signal_power / 10 ** (rng.uniform(5, 20) / 10)
    return (audio + rng.normal(0, np.sqrt(noise_power), CLIP_SAMPLES)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """[examples, samples] -> [examples, frames, MELS, 1] log-mel features."""
    spectrum = tf.abs(tf.signal.stft(audio, FRAME, HOP, FFT))
    mel = tf.signal.linear_to_mel_weight_matrix(MELS, FFT // 2 + 1, SAMPLE_RATE, 60.0, 3800.0)
    features = tf.math.log(tf.tensordot(spectrum, mel, 1) + 1e-3)
    return features.numpy()[..., None]


def make_data(rng):
    table = keyword_table(FLAGS.keywords, rng)
    labels = rng.integers(0, FLAGS.keywords, FLAGS.examples)
    features = log_mel(np.stack([synthesize(table[label], rng) for label in labels]))
    features = (features - features.mean()) / features.std()
    held_out = FLAGS.examples // 6
    return (features[held_out:], labels[held_out:]), (features[:held_out], labels[:held_out])


def build_model(input_shape, activations: str) -> tf_keras.Model:
    """A depthwise-separable CNN, every weight layer annotated as ternary.
    Global max pooling: without BatchNormalization (which the converter
    cannot fold into a ternary kernel) average pooling trained far slower."""
    layers = tf_keras.layers
    annotate = lambda layer: ternary.annotate(layer, activations)  # noqa: E731
    # He initialization keeps the activations' scale through the stack; with
    # Keras' default (Glorot) they shrink tenfold per block and TFMOT's 8-bit
    # activations round them to zero. Keras counts 9 x channels as a 3x3
    # depthwise kernel's fan-in, but each output reads 9 inputs: its fan-out count.
    depthwise_init = tf_keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal")
    stack = [tf_keras.Input(input_shape),
             annotate(layers.Conv2D(FLAGS.channels, (5, 3), strides=2, padding="same",
                                    activation="relu", kernel_initializer="he_normal"))]
    for _ in range(FLAGS.blocks):
        stack += [annotate(layers.DepthwiseConv2D(3, padding="same", activation="relu",
                                                  depthwise_initializer=depthwise_init)),
                  annotate(layers.Conv2D(FLAGS.channels, 1, activation="relu",
                                         kernel_initializer="he_normal"))]
    stack += [layers.GlobalMaxPooling2D(), annotate(layers.Dense(FLAGS.keywords))]
    return ternary.quantize_apply(tf_keras.Sequential(stack), activations)


def distinct_kernel_values(model) -> dict[str, int]:
    return {kernel.name: int(np.unique(kernel.effective_kernel()).size)
            for kernel in ternary.ternary_kernels(model)}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    out_dir = pathlib.Path(FLAGS.out_dir)
    rng = np.random.default_rng(FLAGS.seed)
    tf_keras.utils.set_random_seed(FLAGS.seed)

    (train_x, train_y), (test_x, test_y) = make_data(rng)
    print(f"data: {len(train_y)} training and {len(test_y)} held-out examples of "
          f"{FLAGS.keywords} keywords, features {train_x.shape[1:]}")

    model = build_model(train_x.shape[1:], FLAGS.activations)
    model.compile(tf_keras.optimizers.Adam(FLAGS.learning_rate),
                  tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    started = time.process_time()
    model.fit(train_x, train_y, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2)
    train_cpu_s = time.process_time() - started
    keras_accuracy = float(model.evaluate(test_x, test_y, verbose=0)[1])

    values = distinct_kernel_values(model)
    print(f"distinct values per annotated kernel: {values}")
    if any(count > 3 for count in values.values()):
        sys.exit(f"tfmot_example: kernels with more than three values after fit: {values}")

    try:
        result = ternary.convert(model, integer=FLAGS.activations == "8bit")
    except ConversionError as error:
        sys.exit(f"tfmot_example: {error}")
    print(conversion_report.format_size_table(result))
    comparison = ternary.compare_litert(model, result.tflite, [test_x])
    interpreter_logits = native.run_interpreter(native.make_interpreter(result.tflite),
                                                 [test_x])[0]
    litert_accuracy = float(np.mean(np.argmax(interpreter_logits, -1) == test_y))
    decode = validate.compare_c_numpy_decode(result.tflite)

    tflite_path = out_dir / "model.tflite"
    fileio.atomic_write_bytes(tflite_path, result.tflite)
    fileio.atomic_write_json(out_dir / "model.size.json", result.report())
    with warnings.catch_warnings():
        # tf-keras calls .h5 legacy; it is the single-file format convert.py takes.
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        fileio.atomic_write(out_dir / "model.h5", model.save, suffix=".h5")
    model.save(out_dir / "saved_model")
    report = {"activations": FLAGS.activations, "examples": FLAGS.examples,
              "epochs": FLAGS.epochs, "train_cpu_seconds": round(train_cpu_s, 1),
              "keras_accuracy": keras_accuracy, "litert_accuracy": litert_accuracy,
              "litert_vs_keras": comparison, "distinct_kernel_values": values,
              "decode": decode, "size": result.summary(),
              "keras3_objects_built": ternary.keras3_objects_built()}
    fileio.atomic_write_json(out_dir / "report.json", report)
    print(f"held-out accuracy: tf-keras {keras_accuracy:.3f}, LiteRT {litert_accuracy:.3f}; "
          f"LiteRT vs tf-keras: max abs error {comparison['max_abs_err']:.3e}, relative "
          f"(max-norm) {comparison['rel_err']:.3e}")
    print(f"wrote {tflite_path}, {out_dir / 'model.size.json'}, {out_dir / 'model.h5'}, "
          f"{out_dir / 'saved_model'} and {out_dir / 'report.json'}")
    if FLAGS.activations == "float" and comparison["rel_err"] > FLAGS.tolerance:
        sys.exit(f"tfmot_example: LiteRT differs from tf-keras by {comparison['rel_err']:.3e} "
                 f"(relative), above --tolerance={FLAGS.tolerance:g}")
    if not decode["c_decode_equals_numpy"]:
        sys.exit(f"tfmot_example: the C decoder and numpy disagree on "
                 f"{decode['c_numpy_mismatched_tensors']}")


if __name__ == "__main__":
    cli.run(main)
