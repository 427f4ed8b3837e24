"""Speaks text through an exported model folder with LiteRT and the BitTTS op
library; TensorFlow is not needed. Without --model_dir it speaks with the
voice shipped in the package (slt_tiny, 16 kHz).

  bittts-speak "Hello there." -o hello.wav
  bittts-speak "Hello there." -o - | aplay
  bittts-speak --model_dir=models/my_voice --text="Hello there." --output=hello.wav
  bittts-speak --list_speakers

From a clone, python tools/speak.py takes the same flags. Long text is split
at punctuation and word boundaries into segments that fit the text graph;
each segment is streamed through the frames graph a few frames an invoke,
then the inverse STFT in C. Prints the time to first audio and the real-time
factor (to stderr when the wav goes to stdout).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

from bittts_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None,
                    "Model folder written by bittts-export (tools/export_tts.py); "
                    "default: the shipped voice.")
flags.DEFINE_string("text", None, "What to say (or give it as the arguments).")
flags.DEFINE_string("output", "speech.wav", "Output wav, written atomically; - writes it to stdout.",
                    short_name="o")
flags.DEFINE_boolean("list_speakers", False, "Print the model's speaker ids (for --speaker), "
                     "one a line, and exit.")
flags.DEFINE_integer("speaker", 0, "Speaker id (multi-speaker models).")
flags.DEFINE_enum("wav_format", "PCM_16", ["PCM_16", "FLOAT"],
                  "PCM_16, or FLOAT: 32-bit float samples, exactly what the model computed.")
flags.DEFINE_float("duration_scale", 1.0, "Multiplies predicted durations (>1 speaks slower).")
flags.DEFINE_enum("variant", "packed", ["packed", "int8", "float32"],
                  "Which graphs of the folder to run.")
flags.DEFINE_enum("decode", "load", ["load", "graph"],
                  "Decode the ternary weights once at load (fast on a desktop) or in the graph "
                  "at every invoke (as a microcontroller does).")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_enum("engine", "litert", ["litert", "c99"],
                  "What runs the graphs: LiteRT, or the C99 engine of the firmware "
                  "(firmware_stub/bittts_engine*.c, host build; --variant=int8 only).")
cli.output_flags(files=("output",), allow=("-",))

STDOUT = "-"
# What only speaking reads (--model_dir serves --list_speakers too).
SYNTHESIS_FLAGS = ("text", "output", "speaker", "wav_format", "duration_scale", "variant",
                   "decode", "num_threads", "engine")


def text_to_say(positional: list[str]) -> str:
    """--text, or the arguments after the flags joined by spaces (not both)."""
    if FLAGS.text is not None and positional:
        raise app.UsageError("give the text either as arguments or as --text, not both")
    text = FLAGS.text if FLAGS.text is not None else " ".join(positional)
    if not text:
        raise app.UsageError('nothing to say: give the text, e.g. bittts-speak "Hello there." '
                             "-o hello.wav")
    return text


def refuse_ignored_flags(positional: list[str]) -> None:
    """Flags the chosen mode would not read: refused rather than dropped."""
    if FLAGS.list_speakers:
        given = ["the text"] if positional else []
        given += [f"--{name}" for name in SYNTHESIS_FLAGS if FLAGS[name].present]
        if given:
            raise app.UsageError(f"--list_speakers only lists the speakers and says nothing: "
                                 f"drop {', '.join(given)}")
    if FLAGS.engine == "c99":
        given = [f"--{name}" for name in ("decode", "num_threads") if FLAGS[name].present]
        if given:
            them = "them" if len(given) > 1 else "it"
            raise app.UsageError(f"--engine=c99 does not read {' or '.join(given)}, only "
                                 f"LiteRT's interpreter does; drop {them} or use --engine=litert")


def main(argv):
    from bittts_tf import install_layout
    from bittts_tf.audio.io import save_wav, wav_bytes
    from bittts_tf.runtime import TextToSpeech, model_folder

    refuse_ignored_flags(argv[1:])
    model_dir = FLAGS.model_dir or str(install_layout.default_model_dir())
    if FLAGS.list_speakers:
        for speaker in range(model_folder.load(model_dir).manifest["speakers"]):
            print(speaker)
        return
    text = text_to_say(argv[1:])
    # With the wav on stdout, our own lines go to stderr.
    report = sys.stderr if FLAGS.output == STDOUT else sys.stdout

    if FLAGS.engine == "c99" and FLAGS.variant != "int8":
        sys.exit(f"speak: --engine=c99 runs the int8 graphs; pass --variant=int8 (not {FLAGS.variant})")
    start = time.perf_counter()
    tts = TextToSpeech(model_dir, FLAGS.variant, FLAGS.decode, FLAGS.num_threads, FLAGS.engine)
    load_seconds = time.perf_counter() - start
    result = tts.synthesize(text, FLAGS.speaker, FLAGS.duration_scale)
    for note in result.notes:
        print(f"note: {note}", file=report)
    if FLAGS.output == STDOUT:
        sys.stdout.buffer.write(wav_bytes(result.audio, result.sample_rate, FLAGS.wav_format))
        sys.stdout.flush()
        written = "stdout"
    else:
        save_wav(FLAGS.output, result.audio, result.sample_rate, FLAGS.wav_format)
        written = os.path.abspath(FLAGS.output)
    seconds = len(result.audio) / result.sample_rate
    print(f"wrote {written}: {seconds:.2f} s of audio at {result.sample_rate} Hz in "
          f"{len(result.segments)} segment(s); model loaded in {1000 * load_seconds:.0f} ms, "
          f"time to first audio {1000 * result.time_to_first_audio:.1f} ms, real-time factor "
          f"{result.real_time_factor:.3f} ({FLAGS.variant} graphs, "
          + (f"decode at {FLAGS.decode})" if FLAGS.engine == "litert" else "C99 engine)"),
          file=report)
