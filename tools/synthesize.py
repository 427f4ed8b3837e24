"""Speaks a sentence with a trained BitTTS checkpoint: writes a wav and a mel PNG.

  python tools/synthesize.py --checkpoint=runs/jets --text="Hello there." --output=hello.wav
  python tools/synthesize.py --checkpoint=runs/am --vocoder_checkpoint=runs/voc ...

--checkpoint is a checkpoint file or a run directory (its newest checkpoint).
A joint run's checkpoint carries its own vocoder; a two-stage acoustic
checkpoint needs --vocoder_checkpoint, else Griffin-Lim stands in.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os

import numpy as np
from absl import flags

from bittts_tf.audio.io import save_wav
from bittts_tf.audio.plots import mel_figure_png
from bittts_tf.eval.synthesis import Synthesizer
from bittts_tf.fileio import atomic_write_bytes
from bittts_tf.runtime.stream_spec import DURATION_SCALE_MAX, DURATION_SCALE_MIN
from bittts_tf.text.segment import MIN_TOKENS

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Acoustic (or joint) checkpoint file or run directory.")
flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder checkpoint (two-stage training).")
flags.DEFINE_string("text", None, "The sentence to speak.")
flags.DEFINE_string("output", "synthesized.wav", "Output wav; the mel PNG goes next to it.")
flags.DEFINE_float("duration_scale", 1.0, "Multiplies predicted durations (>1 speaks slower).",
                   lower_bound=DURATION_SCALE_MIN, upper_bound=DURATION_SCALE_MAX)
flags.DEFINE_integer("speaker", 0, "Speaker id (multi-speaker models).")
flags.DEFINE_enum("wav_format", "PCM_16", ["PCM_16", "FLOAT"],
                  "PCM_16, or FLOAT: 32-bit float samples, exactly what the model computed.")
flags.DEFINE_integer("max_tokens", 64,
                     "Split the text into segments of at most this many phonemes, as an exported "
                     "model's text graph does (tools/export_tts.py --max_tokens); 0: one piece.")
flags.mark_flags_as_required(["checkpoint", "text"])
# The PNG is the output's stem + .png: a .png output would be overwritten by it.
flags.register_validator("output", lambda path: path.lower().endswith(".wav"),
                         message="--output: a .wav path (the mel PNG goes beside it)")
flags.register_validator("max_tokens", lambda n: n == 0 or n >= MIN_TOKENS,
                         message=f"--max_tokens: 0 (one piece) or at least {MIN_TOKENS} (a word "
                                 "between two pauses)")
cli.output_flags(files=("output",))


def main(argv):
    del argv
    synthesizer = Synthesizer(FLAGS.checkpoint, FLAGS.vocoder_checkpoint)
    print(f"acoustic model: {synthesizer.checkpoint}; vocoder: {synthesizer.vocoder_source}")
    mels, audio = synthesizer.speak(FLAGS.text, FLAGS.max_tokens, FLAGS.duration_scale,
                                    FLAGS.speaker)
    mel = np.concatenate(mels)
    save_wav(FLAGS.output, audio, synthesizer.config.audio.sample_rate, FLAGS.wav_format)
    png = os.path.splitext(FLAGS.output)[0] + ".png"
    atomic_write_bytes(png, mel_figure_png([mel], [FLAGS.text]))
    seconds = len(audio) / synthesizer.config.audio.sample_rate
    print(f"wrote {FLAGS.output} ({seconds:.2f} s, {len(mel)} frames) and {png}")


if __name__ == "__main__":
    cli.run(main)
