"""Vocoder evaluation on held-out ground-truth mels: MCD, PESQ, STOI,
DNSMOS and pocketsphinx WER of the re-synthesized audio, next to the WER and
DNSMOS of the original recordings (the recognizer's and the quality model's
own figures on this corpus).

  python -m bittts_tf.eval.vocoder_eval --vocoder_checkpoint=runs/voc --corpus=CACHE --n=20

The held-out utterances are the ones the vocoder run held out (its manifest).
"""

from __future__ import annotations

import json
import os

import numpy as np

from bittts_tf import fileio
from bittts_tf.audio.io import from_pcm16, save_wav
from bittts_tf.eval import metrics
from bittts_tf.eval.dnsmos import DnsMos


def evaluate(generator, utterances: list[dict], audio_config, texts: list[str] | None = None,
             with_wer: bool = True, audio_dir: str | None = None,
             ids: list[str] | None = None, with_dnsmos: bool = True) -> dict:
    """Per-utterance metrics and their means. `utterances` hold mel and audio.
    With `audio_dir`, each original and re-synthesized clip is written there
    (<id>_original.wav, <id>_vocoded.wav) for listening."""
    rows = []
    hypotheses, originals = [], []
    recognizer = metrics.Recognizer() if with_wer and texts else None
    quality = DnsMos() if with_dnsmos else None
    rate = audio_config.sample_rate
    if audio_dir:
        os.makedirs(audio_dir, exist_ok=True)
    for i, u in enumerate(utterances):
        reference = from_pcm16(u["audio"])
        synthesized = np.asarray(generator(np.asarray(u["mel"], np.float32)[None])[0])
        n = min(len(reference), len(synthesized))
        reference, synthesized = reference[:n], synthesized[:n]
        if audio_dir:
            name = ids[i] if ids else f"{i:03d}"
            save_wav(os.path.join(audio_dir, f"{name}_original.wav"), reference, rate)
            save_wav(os.path.join(audio_dir, f"{name}_vocoded.wav"), synthesized, rate)
        row = {"mcd_db": metrics.mel_cepstral_distortion(reference, synthesized, audio_config),
               "pesq": metrics.pesq_score(reference, synthesized, rate),
               "stoi": metrics.stoi_score(reference, synthesized, rate)}
        if recognizer is not None:
            hypotheses.append(recognizer.transcribe(synthesized, rate))
            originals.append(recognizer.transcribe(reference, rate))
            row["heard"] = hypotheses[-1]
        if quality is not None:
            row["dnsmos_ovrl"] = quality.score(synthesized, rate)["ovrl"]
            row["dnsmos_ovrl_original"] = quality.score(reference, rate)["ovrl"]
        rows.append(row)
    columns = ("mcd_db", "stoi") + (
        ("dnsmos_ovrl", "dnsmos_ovrl_original") if quality is not None else ())
    summary = {k: float(np.mean([r[k] for r in rows])) for k in columns}
    # PESQ over the utterances where it is defined, and how many it was not.
    defined = [r["pesq"] for r in rows if r["pesq"] is not None]
    summary["pesq"] = float(np.mean(defined)) if defined else None
    summary["pesq_undefined"] = len(rows) - len(defined)
    if recognizer is not None:
        summary["wer"] = metrics.word_error_rate(hypotheses, texts)
        summary["wer_original_recordings"] = metrics.word_error_rate(originals, texts)
    return {"summary": summary, "utterances": rows}


def evaluate_checkpoint(checkpoint: str, corpus: str, n: int = 20, with_wer: bool = True,
                        with_dnsmos: bool = True, audio_dir: str | None = None) -> dict:
    """`evaluate` of a vocoder (or joint) checkpoint or run directory on the
    first `n` utterances its run held out of the feature cache `corpus`."""
    from bittts_tf.data.cache import FeatureCache
    from bittts_tf.eval.synthesis import load_vocoder
    from bittts_tf.training.checkpoints import resolve
    from bittts_tf.training import checkpoints

    path = resolve(checkpoint)
    manifest = checkpoints.read_manifest(path)
    if "held_out_ids" not in manifest:
        raise ValueError(f"{path} names no held-out utterances (not a training run's "
                         "checkpoint?)")
    generator, config = load_vocoder(path)
    cache = FeatureCache(corpus)
    texts = {e["utt_id"]: e.get("text", "") for e in cache.entries}
    ids = manifest["held_out_ids"][:n]
    if len(ids) < n:
        raise ValueError(f"{path} held out only {len(ids)} utterances; n={n}")
    result = evaluate(generator, [cache.load(i) for i in ids], config.audio,
                      [texts[i] for i in ids], with_wer=with_wer, audio_dir=audio_dir, ids=ids,
                      with_dnsmos=with_dnsmos)
    return {"checkpoint": path, "step": manifest["step"],
            "cpu_minutes": round(manifest.get("cpu_seconds", 0.0) / 60, 2),
            "quantize": config.quantize, "ids": ids, **result}


def main(argv):
    del argv
    from absl import app, flags

    from bittts_tf.training.checkpoints import CheckpointError

    FLAGS = flags.FLAGS
    try:
        result = evaluate_checkpoint(FLAGS.vocoder_checkpoint, FLAGS.corpus, FLAGS.n,
                                     with_wer=FLAGS.wer, with_dnsmos=FLAGS.dnsmos,
                                     audio_dir=FLAGS.audio_dir)
    except (ValueError, CheckpointError) as e:
        raise app.UsageError(str(e)) from None
    print(json.dumps({k: v for k, v in result.items() if k not in ("ids", "utterances", "summary")}
                     | result["summary"], indent=1))
    if FLAGS.output:
        fileio.atomic_write_json(FLAGS.output, result)


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_string("vocoder_checkpoint", None, "Vocoder (or joint) checkpoint or run dir.")
    flags.DEFINE_string("corpus", None, "The feature cache the vocoder was trained on.")
    flags.DEFINE_integer("n", 20, "Held-out utterances to evaluate.")
    flags.DEFINE_boolean("wer", True, "Also transcribe with pocketsphinx (slow).")
    flags.DEFINE_boolean("dnsmos", True, "Also score DNSMOS (speechmos, offline).")
    flags.DEFINE_string("output", None, "Optional JSON file for per-utterance results.")
    flags.DEFINE_string("audio_dir", None, "Optional folder for the original and vocoded wavs.")
    flags.mark_flags_as_required(["vocoder_checkpoint", "corpus"])
    app.run(main)
