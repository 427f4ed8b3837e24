"""Scores an exported model on everyday English sentences it never trained on:
pocketsphinx word and character error rates (WER, CER) and DNSMOS quality
(OVRL, SIG, BAK), on one sentence set (bittts_tf.eval.sets):

  --set=test        the default: 254 sentences only ever reported, never chosen on
  --set=validation  160 sentences for every choice (checkpoints, averaging,
                    hyperparameters); the first 40 are sentences.txt
  --sentences=FILE  any other file, reported as the set "file"

next to the same sentences spoken by

  festival              festival's slt voice, the teacher: the ceiling
  festival_griffin_lim  Griffin-Lim of festival's mels: a perfect mel, no vocoder
  griffin_lim           Griffin-Lim of the model's own mels: the model's vocoder vs none
  festival_vocoder      festival's mels through --vocoder_checkpoint (Keras, float32):
                        the vocoder on a perfect mel (not by default; a vocoder
                        tuned to the acoustic model's mels may do worse on it)

  bittts-evaluate --model_dir=out/model --output=out/eval.json --audio_dir=out/eval_wavs
  bittts-evaluate --model_dir=out/model --set=validation --output=out/eval_val.json

With festival among the systems, every other system's clips also get their
mel cepstral distortion against festival's clip of the same sentence (MCD
in dB, c1..c12, along their time warp: the two speak at different speeds).

Writes per-sentence results and each system's means as JSON, and prints a
table. pocketsphinx is a weak recognizer: compare the rows with each other,
not with published WERs.
"""

import os
import sys
import time

from absl import flags

from bittts_tf import cli, fileio
from bittts_tf.eval import evaluation, metrics, sets

SYSTEMS = ("model", "griffin_lim", "festival", "festival_griffin_lim", "festival_vocoder")
DEFAULT_SYSTEMS = SYSTEMS[:4]

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Folder of an exported model (bittts_tf.runtime).",
                    required=True)
flags.DEFINE_string("set", sets.DEFAULT_SET,
                    f"Sentence set: {' or '.join(sets.SETS)}. Choose checkpoints and "
                    "settings on validation only; test is for the final report.")
flags.DEFINE_string("sentences", None,
                    "Instead of --set: a text file, one sentence a line (# starts a comment "
                    "line); the report names the set \"file\".")
flags.DEFINE_string("output", "out/eval.json", "Where to write the JSON results.")
flags.DEFINE_string("audio_dir", None, "Optional folder for every clip, as SYSTEM/NN.wav.")
flags.DEFINE_integer("limit", 0, "Score only the first N sentences (0: all).", lower_bound=0)
flags.DEFINE_list("systems", list(DEFAULT_SYSTEMS), f"Which of {', '.join(SYSTEMS)} to score.")
flags.DEFINE_string("vocoder_checkpoint", None,
                    "The festival_vocoder system's vocoder: a checkpoint file or run folder "
                    "(tools/recover_checkpoint.py --model_dir=MODEL gives the folder's own).")
flags.DEFINE_boolean("dnsmos", True, "Also score DNSMOS and CPPS (about a second per clip).")
flags.DEFINE_integer("griffin_lim_iters", 32, "Griffin-Lim iterations.", lower_bound=1)
flags.DEFINE_integer("threads", 1, "Threads for DNSMOS (training may be running beside).",
                     lower_bound=1)
flags.DEFINE_enum("variant", "packed", ["packed", "int8", "float32"],
                  "Which graphs of the folder speak (the model system).")
flags.DEFINE_float("duration_scale", 1.0, "The model's speaking rate: its predicted durations "
                   "times this (1.1: 10% slower), as in tools/speak.py.",
                   lower_bound=0.1, upper_bound=10.0)
flags.DEFINE_enum("engine", "litert", ["litert", "c99"],
                  "What runs them: LiteRT, or the C99 engine (--variant=int8 only).")
cli.output_flags(files=("output",), allow=())
cli.output_flags(folders=("audio_dir",))


def fail(message: str):
    sys.exit(f"evaluate: {message}")


def load_model(model_dir: str):
    if not os.path.isdir(model_dir):
        fail(f"--model_dir={model_dir}: no such folder")
    if FLAGS.engine == "c99" and FLAGS.variant != "int8":
        fail(f"--engine=c99 runs the int8 graphs; pass --variant=int8 (not {FLAGS.variant})")
    from bittts_tf.runtime import ModelFolderError, TextToSpeech
    try:
        return TextToSpeech(model_dir, variant=FLAGS.variant, engine=FLAGS.engine)
    except (ModelFolderError, ValueError) as e:
        fail(f"--model_dir={model_dir}: {e}")


class SpokenByModel:
    """The model's audio and mel of each sentence from one synthesis, shared by
    the "model" and "griffin_lim" systems instead of running the model twice."""

    def __init__(self, tts, duration_scale=1.0):
        self.tts, self.results, self.cpu_seconds = tts, {}, 0.0
        self.duration_scale = duration_scale

    def _synthesize(self, text):
        if text not in self.results:
            start = time.process_time()
            self.results[text] = self.tts.synthesize(text, duration_scale=self.duration_scale)
            self.cpu_seconds += time.process_time() - start
        return self.results[text]

    def audio(self, text):
        result = self._synthesize(text)
        if result.sample_rate != self.tts.audio_config.sample_rate:
            raise ValueError(f"audio at {result.sample_rate} Hz from a model configured for "
                             f"{self.tts.audio_config.sample_rate} Hz")
        return result.audio

    def mel(self, text):
        return self._synthesize(text).mel


def load_scorers():
    try:
        recognizer = metrics.Recognizer()
        if not FLAGS.dnsmos:
            return recognizer, None
        from bittts_tf.eval.dnsmos import DnsMos
        return recognizer, DnsMos(threads=FLAGS.threads)
    except metrics.MissingMetricPackage as e:
        fail(str(e))


def load_vocoder(checkpoint: str, config):
    from bittts_tf.eval.synthesis import load_vocoder
    from bittts_tf.training.checkpoints import CheckpointError
    try:
        generator, vocoder_config = load_vocoder(checkpoint)
    except (CheckpointError, OSError, ValueError) as e:
        fail(f"--vocoder_checkpoint={checkpoint}: {e}")
    if vocoder_config.audio != config:
        fail(f"--vocoder_checkpoint={checkpoint}: trained for {vocoder_config.audio}, the "
             f"model folder speaks {config}")
    return generator


def festival_systems(sentences, config, generator=None):
    from bittts_tf.data.festival import FestivalError
    try:
        festival = evaluation.festival_renderer(sentences, config.sample_rate)
    except FestivalError as e:
        fail(str(e))
    systems = {"festival": festival,
               "festival_griffin_lim": evaluation.griffin_lim_of(festival, config,
                                                                 FLAGS.griffin_lim_iters)}
    if generator is not None:
        systems["festival_vocoder"] = evaluation.vocoder_of(festival, generator, config)
    return systems


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.systems) - set(SYSTEMS))
    if unknown or not FLAGS.systems:
        fail(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    if FLAGS.sentences is not None and FLAGS["set"].present:
        fail("give --set or --sentences, not both")
    if ("festival_vocoder" in FLAGS.systems) != (FLAGS.vocoder_checkpoint is not None):
        fail("--systems=festival_vocoder and --vocoder_checkpoint go together")
    try:
        if FLAGS.sentences is not None:
            set_name, sentences_file = "file", FLAGS.sentences
        else:
            set_name, sentences_file = FLAGS.set, sets.set_file(FLAGS.set)
        sentences = evaluation.load_sentences(sentences_file)
    except evaluation.SentencesError as e:
        fail(str(e))
    total = len(sentences)
    if FLAGS.limit:
        sentences = sentences[:FLAGS.limit]
    # Found out now, not after every clip has been rendered and scored.
    for folder in filter(None, (os.path.dirname(os.path.abspath(FLAGS.output)), FLAGS.audio_dir)):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            fail(f"cannot make the folder {folder}: {e.strerror}")

    tts = load_model(FLAGS.model_dir)
    # Every sentence must be one the model can say: a word longer than a
    # segment found on clip 200 would lose the 199 scored before it.
    from bittts_tf.text.normalize import TextError
    for number, text in enumerate(sentences, 1):
        try:
            tts.segments(text)
        except TextError as e:
            fail(f"{sentences_file}, sentence {number}: {e}")
    config = tts.audio_config
    generator = (load_vocoder(FLAGS.vocoder_checkpoint, config)
                 if FLAGS.vocoder_checkpoint is not None else None)
    recognizer, dnsmos = load_scorers()

    model = SpokenByModel(tts, FLAGS.duration_scale)
    renders = {"model": model.audio,
               "griffin_lim": lambda text: evaluation.griffin_lim(model.mel(text), config,
                                                                  FLAGS.griffin_lim_iters)}
    if {"festival", "festival_griffin_lim", "festival_vocoder"} & set(FLAGS.systems):
        renders.update(festival_systems(sentences, config, generator))

    # With festival scored too, every other system's clips get their MCD
    # against festival's (the teacher's clip of the same sentence).
    festival = renders["festival"] if "festival" in FLAGS.systems else None
    results = []
    for name in [s for s in SYSTEMS if s in FLAGS.systems]:
        try:
            results.append(evaluation.score_system(
                name, sentences, renders[name], config.sample_rate, recognizer, dnsmos,
                FLAGS.audio_dir, reference_voice=festival if name != "festival" else None,
                audio_config=config))
        except evaluation.RenderError as e:
            fail(str(e))

    report = {"model_dir": FLAGS.model_dir, "set": set_name, "sentences_file": sentences_file,
              "num_sentences": len(sentences), "duration_scale": FLAGS.duration_scale,
              "audio_config": config.to_dict(),
              "model_cpu_seconds": round(model.cpu_seconds, 2) if model.results else None,
              "systems": {r["system"]: r for r in results}}
    fileio.atomic_write_json(FLAGS.output, report)
    scored = f"{len(sentences)} of {total}" if len(sentences) < total else f"{total}"
    print(f"set: {set_name} ({scored} sentence{'s' if total > 1 else ''}, {sentences_file})")
    print(evaluation.format_table(results))
    print(f"wrote {FLAGS.output}")

