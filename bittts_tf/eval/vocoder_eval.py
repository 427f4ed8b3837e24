"""Vocoder evaluation on held-out ground-truth mels: MCD, PESQ, STOI and
pocketsphinx WER of the re-synthesized audio, next to the WER of the original
recordings (the recognizer's own floor on this corpus).

  python -m bittts_tf.eval.vocoder_eval --vocoder_checkpoint=runs/voc --corpus=CACHE --n=20

The held-out utterances are the ones the vocoder run held out (its manifest).
"""

from __future__ import annotations

import json

import numpy as np

from bittts_tf.eval import metrics


def evaluate(generator, utterances: list[dict], audio_config, texts: list[str] | None = None,
             with_wer: bool = True) -> dict:
    """Per-utterance metrics and their means. `utterances` hold mel and audio."""
    rows = []
    hypotheses, originals = [], []
    recognizer = metrics.Recognizer() if with_wer and texts else None
    rate = audio_config.sample_rate
    for i, u in enumerate(utterances):
        reference = np.asarray(u["audio"])
        if reference.dtype == np.int16:
            reference = reference.astype(np.float32) / 32768.0
        synthesized = np.asarray(generator(np.asarray(u["mel"], np.float32)[None])[0])
        n = min(len(reference), len(synthesized))
        reference, synthesized = reference[:n], synthesized[:n]
        row = {"mcd_db": metrics.mel_cepstral_distortion(reference, synthesized, audio_config),
               "pesq": metrics.pesq_score(reference, synthesized, rate),
               "stoi": metrics.stoi_score(reference, synthesized, rate)}
        if recognizer is not None:
            hypotheses.append(recognizer.transcribe(synthesized, rate))
            originals.append(recognizer.transcribe(reference, rate))
            row["heard"] = hypotheses[-1]
        rows.append(row)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("mcd_db", "pesq", "stoi")}
    if recognizer is not None:
        summary["wer"] = metrics.word_error_rate(hypotheses, texts)
        summary["wer_original_recordings"] = metrics.word_error_rate(originals, texts)
    return {"summary": summary, "utterances": rows}


def main(argv):
    del argv
    from absl import flags

    from bittts_tf.eval.synthesis import resolve
    from bittts_tf.models import build, configs
    from bittts_tf.data.cache import FeatureCache
    from bittts_tf.training import checkpoints

    FLAGS = flags.FLAGS
    path = resolve(FLAGS.vocoder_checkpoint)
    manifest = checkpoints.read_manifest(path)
    config = configs.ModelConfig.from_dict(manifest["model_config"])
    generator = build.build_generator(config)
    checkpoints.restore(path, {"generator": generator})
    cache = FeatureCache(FLAGS.corpus)
    texts = {e["utt_id"]: e.get("text", "") for e in cache.entries}
    ids = manifest["held_out_ids"][:FLAGS.n]
    result = evaluate(generator, [cache.load(i) for i in ids], config.audio,
                      [texts[i] for i in ids], with_wer=FLAGS.wer)
    print(json.dumps(result["summary"], indent=1))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"checkpoint": path, "ids": ids, **result}, f, indent=1)


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder (or joint) checkpoint or run dir.")
    flags.DEFINE_string("corpus", None, "The feature cache the vocoder was trained on.")
    flags.DEFINE_integer("n", 20, "Held-out utterances to evaluate.")
    flags.DEFINE_boolean("wer", True, "Also transcribe with pocketsphinx (slow).")
    flags.DEFINE_string("output", None, "Optional JSON file for per-utterance results.")
    flags.mark_flags_as_required(["vocoder_checkpoint", "corpus"])
    app.run(main)
