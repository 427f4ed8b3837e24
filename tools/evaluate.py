"""Scores an exported model on everyday English sentences it never trained on:
pocketsphinx word and character error rates (WER, CER) and DNSMOS quality
(OVRL, SIG, BAK), next to the same sentences spoken by

  festival              festival's slt voice, the teacher: the ceiling
  festival_griffin_lim  Griffin-Lim of festival's mels: a perfect mel, no vocoder
  griffin_lim           Griffin-Lim of the model's own mels: the model's vocoder vs none

  python tools/evaluate.py --model_dir=out/model --output=out/eval.json --audio_dir=out/eval_wavs

Writes per-sentence results and each system's means as JSON, and prints a
table. pocketsphinx is a weak recognizer: compare the rows with each other,
not with published WERs.
"""

import os
import sys
import time

from absl import app, flags

from bittts_tf import fileio
from bittts_tf.eval import evaluation, metrics

SYSTEMS = ("model", "griffin_lim", "festival", "festival_griffin_lim")

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Folder of an exported model (bittts_tf.runtime).",
                    required=True)
flags.DEFINE_string("sentences", evaluation.SENTENCES_FILE,
                    "Text file, one sentence a line (# starts a comment line).")
flags.DEFINE_string("output", "out/eval.json", "Where to write the JSON results.")
flags.DEFINE_string("audio_dir", None, "Optional folder for every clip, as SYSTEM/NN.wav.")
flags.DEFINE_integer("limit", 0, "Score only the first N sentences (0: all).", lower_bound=0)
flags.DEFINE_list("systems", list(SYSTEMS), f"Which of {', '.join(SYSTEMS)} to score.")
flags.DEFINE_boolean("dnsmos", True, "Also score DNSMOS (about a second per clip).")
flags.DEFINE_integer("griffin_lim_iters", 32, "Griffin-Lim iterations.", lower_bound=1)
flags.DEFINE_integer("threads", 1, "Threads for DNSMOS (training may be running beside).",
                     lower_bound=1)


def fail(message: str):
    sys.exit(f"evaluate: {message}")


def load_model(model_dir: str):
    if not os.path.isdir(model_dir):
        fail(f"--model_dir={model_dir}: no such folder")
    try:
        from bittts_tf.runtime import ModelFolderError, TextToSpeech
    except ImportError as e:
        fail(f"the runtime (bittts_tf.runtime) is not available: {e}")
    try:
        return TextToSpeech(model_dir)
    except ModelFolderError as e:
        fail(f"--model_dir={model_dir}: {e}")


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.systems) - set(SYSTEMS))
    if unknown or not FLAGS.systems:
        fail(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    try:
        sentences = evaluation.load_sentences(FLAGS.sentences)
    except evaluation.SentencesError as e:
        fail(str(e))
    if FLAGS.limit:
        sentences = sentences[:FLAGS.limit]

    tts = load_model(FLAGS.model_dir)
    config = tts.audio_config
    try:
        recognizer = metrics.Recognizer()
        dnsmos = None
        if FLAGS.dnsmos:
            from bittts_tf.eval.dnsmos import DnsMos
            dnsmos = DnsMos(threads=FLAGS.threads)
    except metrics.MissingMetricPackage as e:
        fail(str(e))

    # The model's audio and its mel come from one synthesis; both systems that
    # use them share it instead of running the model twice.
    synthesized, model_seconds = {}, [0.0]

    def synthesize(text):
        if text not in synthesized:
            start = time.process_time()
            synthesized[text] = tts.synthesize(text)
            model_seconds[0] += time.process_time() - start
        return synthesized[text]

    def festival_audio():
        from bittts_tf.data.festival import FestivalError
        try:
            return evaluation.festival_renderer(sentences, config.sample_rate)
        except FestivalError as e:
            fail(str(e))

    def model_audio(text):
        result = synthesize(text)
        if result.sample_rate != config.sample_rate:
            raise ValueError(f"audio at {result.sample_rate} Hz from a model configured for "
                             f"{config.sample_rate} Hz")
        return result.audio

    renders = {
        "model": model_audio,
        "griffin_lim": lambda text: evaluation.griffin_lim(synthesize(text).mel, config,
                                                           FLAGS.griffin_lim_iters),
    }
    if "festival" in FLAGS.systems or "festival_griffin_lim" in FLAGS.systems:
        renders["festival"] = festival_audio()
        renders["festival_griffin_lim"] = evaluation.griffin_lim_of(
            renders["festival"], config, FLAGS.griffin_lim_iters)

    results = []
    for name in [s for s in SYSTEMS if s in FLAGS.systems]:
        try:
            results.append(evaluation.score_system(name, sentences, renders[name],
                                                   config.sample_rate, recognizer, dnsmos,
                                                   FLAGS.audio_dir))
        except evaluation.RenderError as e:
            fail(str(e))

    report = {"model_dir": FLAGS.model_dir, "sentences_file": FLAGS.sentences,
              "audio_config": config.to_dict(),
              "model_cpu_seconds": round(model_seconds[0], 2) if synthesized else None,
              "systems": {r["system"]: r for r in results}}
    fileio.atomic_write_json(FLAGS.output, report)
    print(evaluation.format_table(results))
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
