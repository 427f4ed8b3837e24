"""The main job: the committed voice speaks a few sentences through LiteRT,
with the ternary weights decoded by our BitTTSTernaryDecode op inside the
graphs, as on a microcontroller. No training, no TensorFlow.

For each sentence it writes a wav and a mel picture into --out_dir, then
out_dir/report.json: the op, the model's bytes next to a float32 model of the
same architecture, bits per ternary weight, the real-time factor, and the
word error rate of pocketsphinx listening to the speech.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import os
import sys
import time

from absl import flags
from tqdm import tqdm

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "models/slt_tiny", "The model folder to speak with.")
flags.DEFINE_string("out_dir", "out/demo", "Where the wavs, pictures and report go.")
flags.DEFINE_enum("decode", "graph", ["graph", "load"],
                  "graph: BitTTSTernaryDecode at every invoke (the microcontroller path); "
                  "load: decode once into constants (fast on a desktop).")
flags.DEFINE_list("sentences", [
    "Good morning! The coffee is ready in the kitchen.",
    "Please remember to water the plants before you leave.",
    "The next train to the city leaves at half past four.",
    "Can you hear me clearly, or should I speak more slowly?",
    "This voice fits in less than one megabyte of memory.",
], "Sentences to speak (a comma inside a sentence needs the flag given once per sentence).")
flags.register_validator("sentences", bool, message="--sentences is empty: give one or more")
cli.output_flags(folders=("out_dir",))


def read_sizes(model_dir: str) -> dict:
    """The export's size totals the report quotes. float32_graph_bytes and
    bits_per_ternary_weight are None where the export had no float32
    baseline or no ternary weights."""
    from bittts_tf.runtime import model_folder

    path = os.path.join(model_dir, model_folder.SIZE_REPORT)
    with open(path) as f:
        try:
            total = json.load(f)["total"]
        except ValueError as e:
            raise cli.ToolError(f"{path}: not readable JSON ({e})") from None
        except (KeyError, TypeError):
            raise cli.ToolError(f"{path}: no \"total\" object") from None
    if not isinstance(total, dict):
        raise cli.ToolError(f"{path}: \"total\" is not an object")

    def number(value, whole: bool) -> bool:
        kinds = int if whole else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool) and value >= 0

    wanted = {"packed_graph_bytes": (True, False), "ternary_weights": (True, False),
              "float32_graph_bytes": (True, True), "bits_per_ternary_weight": (False, True)}
    for key, (whole, may_be_none) in wanted.items():
        if key not in total:
            raise cli.ToolError(f"{path}: total has no {key!r}")
        value = total[key]
        if not (number(value, whole) or (value is None and may_be_none)):
            raise cli.ToolError(f"{path}: total {key!r} is {value!r}, not a "
                                f"{'whole ' if whole else ''}number")
    return {key: total[key] for key in wanted}


def main(argv):
    del argv
    from bittts_tf import fileio
    from bittts_tf.audio.io import save_wav
    from bittts_tf.audio.plots import mel_figure_png
    from bittts_tf.quant import spec
    from bittts_tf.runtime import ModelFolderError, TextError, TextToSpeech, model_folder

    # Everything the report needs is checked before the first sentence is
    # spoken, so a bad size report or sentence costs no speech; the manifest
    # and size report first, before the G2P and scipy load (about 3 s of CPU).
    try:
        model_folder.load(FLAGS.model_dir)
        total = read_sizes(FLAGS.model_dir)
        tts = TextToSpeech(FLAGS.model_dir, decode=FLAGS.decode)
    except ModelFolderError as e:
        sys.exit(f"demo: {e}")
    for sentence in FLAGS.sentences:
        try:
            tts.segments(sentence)
        except TextError as e:
            raise cli.ToolError(f"--sentences: {e}") from None
    from bittts_tf.eval import metrics
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    recognizer = metrics.Recognizer()

    # Speak every sentence, and let pocketsphinx write down what it hears.
    rows, synthesis_seconds, audio_seconds = [], 0.0, 0.0
    for i, sentence in enumerate(tqdm(FLAGS.sentences, desc="speaking")):
        result = tts.synthesize(sentence)
        stem = os.path.join(FLAGS.out_dir, f"sentence_{i}")
        save_wav(stem + ".wav", result.audio, result.sample_rate)
        fileio.atomic_write_bytes(stem + ".png", mel_figure_png([result.mel], [sentence]))
        heard = recognizer.transcribe(result.audio, result.sample_rate)
        synthesis_seconds += result.seconds
        audio_seconds += len(result.audio) / result.sample_rate
        rows.append({"text": sentence, "wav": stem + ".wav", "mel_png": stem + ".png",
                     "heard": heard, "seconds": round(len(result.audio) / result.sample_rate, 3),
                     "rtf": round(result.real_time_factor, 4),
                     "time_to_first_audio_ms": round(1000 * result.time_to_first_audio, 2),
                     "word_errors": metrics.word_error_rate([heard], [sentence])})

    # Sizes come from the export's own report and the files on disk.
    float32_bytes = total["float32_graph_bytes"]
    folder_bytes = sum(os.path.getsize(os.path.join(FLAGS.model_dir, name))
                       for name in os.listdir(FLAGS.model_dir))
    report = {
        "custom_op": spec.OP_NAME,
        "decode": FLAGS.decode,
        "model_dir": FLAGS.model_dir,
        "model_bytes": folder_bytes,
        "graph_bytes": total["packed_graph_bytes"],
        "float32_model_bytes": float32_bytes,
        "size_ratio_vs_float32": (round(total["packed_graph_bytes"] / float32_bytes, 4)
                                  if float32_bytes else None),
        "bits_per_ternary_weight": total["bits_per_ternary_weight"],
        "ternary_weights": total["ternary_weights"],
        "rtf": round(synthesis_seconds / audio_seconds, 4),
        "wer_pocketsphinx": round(metrics.word_error_rate([r["heard"] for r in rows],
                                                          [r["text"] for r in rows]), 4),
        "sentences": rows,
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    fileio.atomic_write_json(os.path.join(FLAGS.out_dir, "report.json"), report)

    for row in rows:
        print(f"said:  {row['text']}\nheard: {row['heard']}\n")
    ratio, bits = report["size_ratio_vs_float32"], report["bits_per_ternary_weight"]
    float32 = ("; the export made no float32 baseline" if ratio is None
               else f" vs {float32_bytes:,d} for float32, {ratio:.3f}x")
    print(f"{report['model_bytes']:,d} bytes on disk ({report['graph_bytes']:,d} in graphs"
          f"{float32}); " + ("no ternary weights" if bits is None
                             else f"{bits} bits per ternary weight"))
    print(f"real-time factor {report['rtf']:.3f} ({FLAGS.decode} decode, 1 thread); "
          f"pocketsphinx word error rate {report['wer_pocketsphinx']:.3f}")
    print(f"wrote {os.path.join(FLAGS.out_dir, 'report.json')}")


if __name__ == "__main__":
    cli.run(main)
