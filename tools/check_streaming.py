"""Checks that the exported graphs, the frames graph streamed a few frames an
invoke through LiteRT and the C inverse STFT, say what the Keras models say
on the whole utterance.

  python tools/check_streaming.py --checkpoint=runs/am --vocoder_checkpoint=runs/voc \
      --corpus=data/slt_cache --n=20 --output=out/streaming.json

For each stream step (--chunks: 1, 4 and 16 frames an invoke by default) the checkpoint is
exported to a temporary model folder; the texts of --n held-out utterances
are spoken by bittts_tf.runtime (decode at load, and in the graph) and by the
training graph (tools/synthesize.py's path: whole segments, then the vocoder).
The error is the largest sample difference over the Keras waveform's peak.

The same Keras models built in float64 give the function's exact waveform:
beside each error against Keras, the stream's error against float64, and
Keras float32's own (its rounding floor). Measured on models/slt_tiny (20
evaluation sentences, 4 frames an invoke): Keras float32 is up to 3.66e-4 of
the peak from float64, so a float32 stream cannot be held to 1e-4 of Keras
float32 on that voice; the float-head voice before it was within 1e-4.

--int8_model_dir adds the int8 graphs of a folder exported from the same
checkpoint: its int8 text graph and int8 stream, given the float graphs'
durations (an int8 duration that rounds to another frame would shift every
later sample), against the Keras waveform. int8 activations are not the
float model, so the bound is on what is heard, not on samples: the mel
cepstral distortion (dB, c1..c12), at most --int8_mcd_bound on every
utterance. The bound, 2 dB, was set before it was first measured: a
vocoder's MCD against its own training recordings is 3-6 dB, so int8 must
add well under that.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import sys
import tempfile

import numpy as np
from absl import flags
from tqdm import tqdm

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Acoustic (or joint) checkpoint file or run directory.")
flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder checkpoint (two-stage training).")
flags.DEFINE_string("corpus", None, "Feature cache whose held-out (validation) texts are spoken; "
                    "without it, the first --n sentences of --sentences.")
flags.DEFINE_string("sentences", None, "Sentences file (one a line) spoken when there is no "
                    "--corpus (default: the evaluation sentences).")
flags.DEFINE_integer("n", 20, "Held-out utterances.")
flags.DEFINE_list("chunks", ["1", "4", "16"], "Stream steps (frames an invoke) to check.")
flags.DEFINE_integer("max_tokens", 64, "Text graph size.")
flags.DEFINE_float("tolerance", 1e-4, "Largest allowed error, relative to the waveform's peak.")
flags.DEFINE_string("output", "out/streaming.json", "JSON report, written atomically.")
flags.DEFINE_string("int8_model_dir", None,
                    "Also check this folder's int8 graphs (exported from --checkpoint).")
flags.DEFINE_float("int8_mcd_bound", 2.0, "Largest allowed mel cepstral distortion (dB) of the "
                   "int8 path against the Keras waveform, per utterance.")
flags.mark_flags_as_required(["checkpoint"])
cli.output_flags(files=("output",))


def held_out_texts(corpus: str, n: int) -> list[str]:
    from bittts_tf.data.cache import FeatureCache
    from bittts_tf.data.cache import split_of
    cache = FeatureCache(corpus)
    texts = [e.get("text", "") for e in cache.entries if split_of(e["utt_id"]) == "validation"]
    texts = [t for t in texts if t][:n]
    if len(texts) < n:
        sys.exit(f"check_streaming: {corpus} has only {len(texts)} held-out texts, asked for {n}")
    return texts


def int8_against_keras(model_dir: str, texts: list[str], references: list[np.ndarray],
                       audio_config) -> dict:
    from bittts_tf.eval.int8_check import Int8CheckError, mcd_against_keras
    from bittts_tf.runtime import ModelFolderError
    try:
        return mcd_against_keras(model_dir, texts, references, audio_config,
                                 progress=lambda texts: tqdm(texts, desc="int8"))
    except (ModelFolderError, Int8CheckError, ValueError) as error:
        sys.exit(f"check_streaming: --int8_model_dir: {error}")


def errors_against(waveforms, references) -> list[float]:
    """Per utterance: the largest sample difference over the reference's
    peak; inf where the lengths differ (a duration rounded the other way)."""
    return [float(np.abs(w - r).max() / np.abs(r).max()) if w.shape == r.shape else float("inf")
            for w, r in zip(waveforms, references)]


def summary(errors: list[float], waveforms=None, references=None, texts=None,
            sample_rate: int = 0) -> dict:
    """Largest and mean error; with the waveforms, where the largest is (the
    sentence and the second into it): a vocoder's gain at one frame can
    amplify float32 rounding there, and that is where to look."""
    result = {"max_error": max(errors), "mean_error": float(np.mean(errors)),
              "utterances": len(errors), "per_utterance": errors}
    worst = int(np.argmax(errors))
    if waveforms is not None and np.isfinite(errors[worst]):
        sample = int(np.abs(waveforms[worst] - references[worst]).argmax())
        result["worst"] = {"text": texts[worst], "second": sample / sample_rate}
    return result


def where(r: dict) -> str:
    worst = r.get("worst")
    return f", worst at {worst['second']:.2f} s of {worst['text']!r}" if worst else ""


def main(argv):
    del argv
    from bittts_tf import fileio
    from bittts_tf.eval.synthesis import Synthesizer
    from bittts_tf.runtime import TextToSpeech

    # Synthesizer reads only the manifests: a bad checkpoint is refused before
    # tts_graphs imports TensorFlow.
    synthesizer = Synthesizer(FLAGS.checkpoint, FLAGS.vocoder_checkpoint)
    from bittts_tf.export import tts_graphs
    if synthesizer.generator is None:
        sys.exit("check_streaming: no vocoder; pass --vocoder_checkpoint")
    if FLAGS.corpus:
        texts = held_out_texts(FLAGS.corpus, FLAGS.n)
    else:
        from bittts_tf.eval.evaluation import load_sentences
        texts = (load_sentences(FLAGS.sentences) if FLAGS.sentences else load_sentences())[:FLAGS.n]

    # The reference: each segment whole through the Keras models, in float32
    # and in float64.
    exact = Synthesizer(FLAGS.checkpoint, FLAGS.vocoder_checkpoint, dtype="float64")
    references, exact_references = [], []
    for text in tqdm(texts, desc="keras"):
        for models, waveforms in ((synthesizer, references), (exact, exact_references)):
            waveforms.append(models.speak(text, FLAGS.max_tokens)[1])
    floor_errors = errors_against(references, exact_references)

    results = {}
    for chunk in (int(c) for c in FLAGS.chunks):
        with tempfile.TemporaryDirectory() as folder:
            tts_graphs.export_model_folder(folder, synthesizer.acoustic, synthesizer.generator,
                                           synthesizer.config, synthesizer.front_end,
                                           FLAGS.max_tokens, chunk, {}, float32_baseline=False)
            for decode in ("load", "graph"):
                tts = TextToSpeech(folder, decode=decode)
                audio = [tts.synthesize(text).audio
                         for text in tqdm(texts, desc=f"step {chunk}, decode {decode}")]
                errors = errors_against(audio, references)
                against_exact = errors_against(audio, exact_references)
                results[f"step {chunk}, decode at {decode}"] = {
                    "step_frames": chunk, "decode": decode,
                    **summary(errors, audio, references, texts, tts.sample_rate),
                    "float64": summary(against_exact)}

    passed = all(r["max_error"] <= FLAGS.tolerance for r in results.values())
    int8 = None
    if FLAGS.int8_model_dir:
        int8 = int8_against_keras(FLAGS.int8_model_dir, texts, references,
                                  synthesizer.config.audio)
        passed = passed and int8["max_mcd_db"] <= FLAGS.int8_mcd_bound
    floor = summary(floor_errors)
    print(f"{'Keras float32 vs float64':28s} max error {floor['max_error']:.2e} (mean "
          f"{floor['mean_error']:.2e}) over {floor['utterances']} utterances: float32's floor")
    for name, r in results.items():
        print(f"{name:28s} max error {r['max_error']:.2e} (mean {r['mean_error']:.2e}) over "
              f"{r['utterances']} utterances; against float64 {r['float64']['max_error']:.2e} "
              f"(mean {r['float64']['mean_error']:.2e}){where(r)}")
    if int8 is not None:
        print(f"{'int8 (float durations)':28s} MCD max {int8['max_mcd_db']:.2f} dB (mean "
              f"{int8['mean_mcd_db']:.2f}) over {int8['utterances']} utterances, bound "
              f"{FLAGS.int8_mcd_bound:g} dB")
    print(f"{'PASS' if passed else 'FAIL'}: tolerance {FLAGS.tolerance:g} of the peak"
          + (f", int8 MCD {FLAGS.int8_mcd_bound:g} dB" if int8 is not None else ""))
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    fileio.atomic_write_json(FLAGS.output, {"checkpoint": synthesizer.checkpoint,
                                            "vocoder": synthesizer.vocoder_source,
                                            "texts": texts, "results": results,
                                            "float32_against_float64": floor,
                                            "int8": int8, "int8_mcd_bound": FLAGS.int8_mcd_bound,
                                            "tolerance": FLAGS.tolerance, "passed": passed})
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    cli.run(main)
