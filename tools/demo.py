"""The main job for now: train a small ternary Conv1D model, convert, validate.

1. Train a residual stack of TernaryConv1D layers with Keras `fit` for a few
   seconds to imitate a fixed random float "teacher" network on synthetic data.
2. Convert it to .tflite with packed ternary weights (BitTTSTernaryDecode).
3. Validate: LiteRT vs Keras (activation quantization off, then on), the C
   decoder vs numpy, and a copy with corrupted indices that must be refused.
4. Write out_dir/report.json, the size report, the models and a loss plot.
"""

import time

import keras
import numpy as np
from absl import app, flags, logging

from bittts_tf import fileio
from bittts_tf.export import converter, keras_io, runtime, validate
from bittts_tf.quant import TernaryConv1D, quantized_layers

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "out/demo", "Where the models and reports go.")
flags.DEFINE_integer("channels", 32, "Input and output channels.")
flags.DEFINE_integer("hidden", 128, "Channels of the hidden ternary convolutions.")
flags.DEFINE_integer("blocks", 4, "Residual ternary Conv1D blocks (kernel 5).")
flags.DEFINE_float("train_seconds", 8.0, "Training time budget.")
flags.DEFINE_integer("seed", 0, "Seed for data and weights.")


def build_model(channels, hidden, blocks, quantize_activations=False, name="ternary_demo"):
    def conv(filters, **kwargs):
        return TernaryConv1D(filters, 5, padding="same",
                             quantize_activations=quantize_activations, **kwargs)

    inputs = keras.Input((None, channels), name="features")
    x = conv(hidden, activation="relu")(inputs)
    for _ in range(blocks):
        x = keras.layers.Add()([x, conv(hidden, activation="relu")(x)])
    outputs = conv(channels)(x)
    return keras.Model(inputs, outputs, name=name)


def synthetic_data(channels, examples, length, seed):
    """Inputs and the outputs of a fixed random float network (the teacher)."""
    keras.utils.set_random_seed(seed)
    teacher = keras.Sequential([keras.Input((None, channels)),
                                keras.layers.Conv1D(channels, 5, padding="same", activation="tanh"),
                                keras.layers.Conv1D(channels, 3, padding="same")])
    x = np.random.default_rng(seed).standard_normal((examples, length, channels)).astype(np.float32)
    return x, teacher.predict(x, verbose=0)


class TimeBudget(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def save_loss_plot(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["loss"], label="train")
    ax.plot(history["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title="Ternary Conv1D demo")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    out = FLAGS.out_dir
    x, y = synthetic_data(FLAGS.channels, examples=512, length=64, seed=FLAGS.seed)

    print("== 1. training (Keras fit, ternary QAT)")
    model = build_model(FLAGS.channels, FLAGS.hidden, FLAGS.blocks)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3), loss="mse")
    start = time.perf_counter()
    history = model.fit(x[:448], y[:448], validation_data=(x[448:], y[448:]), batch_size=32,
                        epochs=200, callbacks=[TimeBudget(FLAGS.train_seconds)], verbose=2)
    train_seconds = time.perf_counter() - start
    distinct = {layer.name: int(np.unique(layer.effective_kernel()).size)
                for layer in quantized_layers(model)}
    keras_io.save_keras_model(model, f"{out}/model.keras")
    save_loss_plot(history.history, f"{out}/loss.png")

    print("== 2. conversion")
    result = converter.convert(model)
    print(converter.format_size_table(result))
    fileio.atomic_write_bytes(f"{out}/model.tflite", result.tflite)
    fileio.atomic_write_json(f"{out}/model.size.json", result.report())

    print("== 3. validation")
    inputs = validate.random_inputs(model, batch=2, length=100, seed=FLAGS.seed + 1)
    plain = validate.compare_litert_keras(model, result.tflite, inputs)
    print(f"LiteRT vs Keras: max abs {plain.max_abs_err:.3e}, relative {plain.rel_err:.3e}")

    act_model = build_model(FLAGS.channels, FLAGS.hidden, FLAGS.blocks,
                            quantize_activations=True, name="ternary_demo_act8")
    act_model.set_weights(model.get_weights())
    act_result = converter.convert(act_model)
    act = validate.compare_litert_keras(act_model, act_result.tflite, inputs)
    print(f"with 8-bit activations: max abs {act.max_abs_err:.3e}, relative {act.rel_err:.3e}, "
          f"rounding flips {act.rounding_flips}/{act.rounded_values}")

    decode = validate.compare_c_numpy_decode(result.tflite)
    print(f"C decode == numpy decode on {decode['packed_tensors']} tensors: "
          f"{decode['c_decode_equals_numpy']}")

    corrupted = validate.corrupt_indices(result.tflite, value=-128)
    try:
        runtime.run_interpreter(runtime.make_interpreter(corrupted), inputs)
        corrupt_message = None
    except RuntimeError as error:
        corrupt_message = str(error).strip().splitlines()[0]
    print(f"corrupted index byte (-128): {'refused: ' + corrupt_message if corrupt_message else 'NOT refused'}")

    summary = result.summary()
    report = {
        **summary,
        "max_abs_err_litert_vs_keras": plain.max_abs_err,
        "rel_err_litert_vs_keras": plain.rel_err,
        "activation_quantized": {"max_abs_err_litert_vs_keras": act.max_abs_err,
                                 "rel_err_litert_vs_keras": act.rel_err,
                                 "rounding_flips": act.rounding_flips,
                                 "rounded_values": act.rounded_values,
                                 "rounding_flip_share": act.rounding_flip_share},
        "c_decode_equals_numpy": decode["c_decode_equals_numpy"],
        "corrupt_index_refused": corrupt_message is not None,
        "corrupt_index_error": corrupt_message,
        "training": {"seconds": round(train_seconds, 1), "epochs": len(history.history["loss"]),
                     "final_loss": history.history["loss"][-1],
                     "final_val_loss": history.history["val_loss"][-1],
                     "distinct_kernel_values_per_layer": distinct},
    }
    fileio.atomic_write_json(f"{out}/report.json", report)
    print(f"== wrote {out}/report.json: {summary['tflite_bytes']} bytes .tflite = "
          f"{summary['size_ratio_vs_float32']:.3f}x float32, "
          f"{summary['bits_per_ternary_weight']:.3f} bits per ternary weight")
    if plain.rel_err > 1e-5 or not decode["c_decode_equals_numpy"] or corrupt_message is None:
        raise SystemExit("demo: validation FAILED (see report.json)")


if __name__ == "__main__":
    app.run(main)
