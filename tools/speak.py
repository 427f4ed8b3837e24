"""Speaks text through an exported model folder (tools/export_tts.py) with
LiteRT and the BitTTS op library; TensorFlow is not needed.

  python tools/speak.py --model_dir=models/slt_tiny --text="Hello there." --output=hello.wav

Long text is split at punctuation and word boundaries into segments that
fit the text graph; each segment is streamed through the frames graph a few
frames an invoke, then the inverse STFT in C. Prints the time to first audio and the real-time factor.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import sys

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder written by tools/export_tts.py.")
flags.DEFINE_string("text", None, "What to say.")
flags.DEFINE_string("output", "speech.wav", "Output wav (16-bit PCM); written atomically.")
flags.DEFINE_integer("speaker", 0, "Speaker id (multi-speaker models).")
flags.DEFINE_enum("wav_format", "PCM_16", ["PCM_16", "FLOAT"],
                  "PCM_16, or FLOAT: 32-bit float samples, exactly what the model computed.")
flags.DEFINE_float("duration_scale", 1.0, "Multiplies predicted durations (>1 speaks slower).")
flags.DEFINE_enum("variant", "packed", ["packed", "int8", "float32"],
                  "Which graphs of the folder to run.")
flags.DEFINE_enum("decode", "load", ["load", "graph"],
                  "Decode the ternary weights once at load (fast on a desktop) or in the graph "
                  "at every invoke (as a microcontroller does).")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.")
flags.mark_flags_as_required(["model_dir", "text"])


def main(argv):
    del argv
    from bittts_tf.audio.io import save_wav
    from bittts_tf.runtime import (ModelFolderError, SynthesisError, TextError, TextToSpeech)

    try:
        tts = TextToSpeech(FLAGS.model_dir, FLAGS.variant, FLAGS.decode, FLAGS.num_threads)
        result = tts.synthesize(FLAGS.text, FLAGS.speaker, FLAGS.duration_scale)
    except (ModelFolderError, SynthesisError, TextError) as e:
        sys.exit(f"speak: {e}")
    for note in result.notes:
        print(f"note: {note}")
    save_wav(FLAGS.output, result.audio, result.sample_rate, FLAGS.wav_format)
    seconds = len(result.audio) / result.sample_rate
    print(f"wrote {os.path.abspath(FLAGS.output)}: {seconds:.2f} s of audio in "
          f"{len(result.segments)} segment(s); time to first audio "
          f"{1000 * result.time_to_first_audio:.1f} ms, real-time factor "
          f"{result.real_time_factor:.3f} ({FLAGS.variant} graphs, decode at {FLAGS.decode})")


if __name__ == "__main__":
    cli.run(main)
