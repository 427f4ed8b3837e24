"""Prints parameter counts and sizes of the BitTTS models of a config.

For each model: parameters, the share held by conv kernels, the size at
float32, and the size with the --quantize scope at --weight_bits (ternary
kernels weight-indexed at 1.6 bits plus one float scale per tensor). The
aligner is counted apart: it only serves training, so a deployed model
does not carry it.

  python tools/model_size.py --config=paper --quantize=all --weight_bits=1.58
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

from absl import flags

from bittts_tf.models import configs

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "paper", sorted(configs.PRESETS), "Model config preset.")
flags.DEFINE_enum("quantize", "all", configs.QUANTIZE_SCOPES, "Which models are quantized.")
flags.DEFINE_enum("weight_bits", "1.58", ["1.58", "2", "4", "8"], "Weight precision of quantized layers.")
flags.DEFINE_boolean("list_layers", False, "Also print every quantized layer.")

MB = 1e6


def main(argv):
    del argv
    from bittts_tf.models import build, size   # TensorFlow: after the flags are checked
    config = configs.preset(FLAGS.config, quantize=FLAGS.quantize, weight_bits=FLAGS.weight_bits)
    acoustic = build.build_acoustic(config)
    generator = build.build_generator(config)
    rows = [("acoustic (inference)", size.size_report(acoustic, ("acoustic/aligner",))),
            ("aligner (training only)", size.size_report(acoustic.aligner)),
            ("vocoder", size.size_report(generator))]
    deployed = rows[0][1] + rows[2][1]
    rows += [("total deployed", deployed), ("total with aligner", deployed + rows[1][1])]
    print(f"config={config.name} quantize={config.quantize} weight_bits={config.weight_bits} "
          f"sample_rate={config.audio.sample_rate}")
    print(f"{'model':<26}{'params':>12}{'conv weights':>14}{'conv %':>8}"
          f"{'float32 MB':>12}{'quantized MB':>14}")
    for name, r in rows:
        print(f"{name:<26}{r.params:>12,d}{r.conv_params:>14,d}"
              f"{100 * r.conv_params / max(r.params, 1):>7.1f}%"
              f"{r.float32_bytes / MB:>12.2f}{r.deployed_bytes / MB:>14.2f}")
    if FLAGS.list_layers:
        print(build.format_quantization_table({"acoustic": acoustic, "vocoder": generator}))


if __name__ == "__main__":
    cli.run(main)
