"""How far the int8 graphs of a model folder are from its float graphs, on
sentences the model never trained on:

  snr_db           waveform SNR of int8 vs float with the SAME durations: the
                   int8 frames graph runs on the float text graph's
                   regulated frames, so both waveforms have one length
  mel_l1           mean |log-mel difference| of the two waveforms re-analysed
                   (bittts_tf.audio.features.log_mel), natural-log units
  durations_differ fraction of phonemes whose duration (frames) changes when
                   the int8 text graph predicts it
  wer / cer        pocketsphinx on each system end to end (float: both float
                   graphs; int8: both int8 graphs, its own durations)

  python tools/export_tts.py ... --int8_corpus=data/slt_cache    # writes the int8 graphs
  python tools/eval_int8.py --model_dir=models/my_voice --limit=20 --output=out/int8_eval.json

Writes per-sentence rows and the summary as JSON (atomically) and prints a
table. pocketsphinx is a weak recognizer: compare the two rows with each
other, not with published WERs.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import os
import sys

import numpy as np
from absl import flags

from bittts_tf import fileio
from bittts_tf.audio.features import log_mel
from bittts_tf.eval import evaluation, metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model folder with the int8 variant "
                    "(tools/export_tts.py --int8_corpus).", required=True)
flags.DEFINE_string("sentences", evaluation.SENTENCES_FILE,
                    "Text file, one sentence a line (# starts a comment line).")
flags.DEFINE_integer("limit", 20, "Score only the first N sentences (0: all).", lower_bound=0)
flags.DEFINE_string("output", "out/int8_eval.json", "Where to write the JSON results.")
flags.DEFINE_enum("decode", "load", ["load", "graph"],
                  "Where the ternary weights are decoded (bittts_tf.runtime.DECODE_MODES).")
flags.DEFINE_boolean("wer", True, "Also run pocketsphinx on both systems.")
cli.output_flags(files=("output",))


def fail(message: str):
    sys.exit(f"eval_int8: {message}")


def snr_db(reference: np.ndarray, other: np.ndarray) -> float | None:
    """None when the two are equal (JSON has no infinity)."""
    noise = float(np.sum((np.float64(other) - reference) ** 2))
    signal = float(np.sum(np.float64(reference) ** 2))
    if noise == 0:
        return None
    return round(10 * np.log10(max(signal, 1e-30) / noise), 3)


def synthesize_pair(float_tts, int8_tts, text: str) -> dict:
    """Both systems on one sentence, segment by segment as TextToSpeech.stream."""
    from bittts_tf.runtime.tts import regulate, regulate_durations
    shapes = float_tts.shapes
    caps = (shapes["max_frames_per_token"], shapes["max_frames_per_segment"])
    audio = {"float": [], "int8_same_durations": [], "int8": []}
    changed = phonemes = 0
    for ids in float_tts.segments(text):
        hidden, log_duration = float_tts.encode(ids)
        durations, _ = regulate_durations(log_duration, len(ids), 1.0, *caps)
        int8_hidden, int8_log_duration = int8_tts.encode(ids)
        int8_durations, _ = regulate_durations(int8_log_duration, len(ids), 1.0, *caps)
        changed += int(np.sum(durations != int8_durations))
        phonemes += len(ids)
        frames = regulate(hidden, durations)
        audio["float"] += [samples for samples, _ in float_tts.frame_chunks(frames)]
        audio["int8_same_durations"] += [samples for samples, _ in int8_tts.frame_chunks(frames)]
        audio["int8"] += [samples for samples, _ in
                          int8_tts.frame_chunks(regulate(int8_hidden, int8_durations))]
    return {"audio": {k: np.concatenate(v).astype(np.float32) for k, v in audio.items()},
            "durations_changed": changed, "phonemes": phonemes}


def score(rows: list[dict], references: list[str], hypotheses: dict) -> dict:
    snr = [np.inf if r["snr_db"] is None else r["snr_db"] for r in rows]
    finite = [s for s in snr if np.isfinite(s)]
    summary = {
        "sentences": len(rows),
        "identical_waveforms": len(snr) - len(finite),
        "snr_db_mean": round(float(np.mean(finite)), 2) if finite else None,
        "snr_db_median": round(float(np.median(snr)), 2) if finite else None,
        "snr_db_min": round(float(np.min(snr)), 2) if finite else None,
        "mel_l1_mean": round(float(np.mean([r["mel_l1"] for r in rows])), 4),
        "durations_differ": round(sum(r["durations_changed"] for r in rows)
                                  / max(1, sum(r["phonemes"] for r in rows)), 4),
    }
    for system, texts in hypotheses.items():
        summary[f"wer_{system}"] = round(metrics.word_error_rate(texts, references), 4)
        summary[f"cer_{system}"] = round(metrics.character_error_rate(texts, references), 4)
    return summary


def format_table(rows: list[dict], summary: dict) -> str:
    lines = [f"{'#':>3s} {'SNR dB':>7s} {'mel L1':>7s} {'dur diff':>8s}  sentence"]
    for i, row in enumerate(rows, 1):
        snr = "equal" if row["snr_db"] is None else f"{row['snr_db']:.2f}"
        lines.append(f"{i:3d} {snr:>7s} {row['mel_l1']:7.4f} "
                     f"{row['durations_changed'] / max(row['phonemes'], 1):8.3f}  "
                     f"{row['text'][:60]}")
    lines.append(f"mean SNR {summary['snr_db_mean']} dB (median {summary['snr_db_median']}, "
                 f"min {summary['snr_db_min']}), mel L1 {summary['mel_l1_mean']}, "
                 f"{100 * summary['durations_differ']:.1f}% of phoneme durations differ")
    if "wer_float" in summary:
        lines.append(f"WER float {summary['wer_float']:.3f}  int8 {summary['wer_int8']:.3f}   "
                     f"CER float {summary['cer_float']:.3f}  int8 {summary['cer_int8']:.3f}")
    return "\n".join(lines)


def main(argv):
    del argv
    try:
        sentences = evaluation.load_sentences(FLAGS.sentences)
    except evaluation.SentencesError as e:
        fail(str(e))
    if FLAGS.limit:
        sentences = sentences[:FLAGS.limit]
    folder = os.path.dirname(os.path.abspath(FLAGS.output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        fail(f"cannot make the folder {folder}: {e.strerror}")
    from bittts_tf.runtime import ModelFolderError, TextToSpeech
    if not os.path.isdir(FLAGS.model_dir):
        fail(f"--model_dir={FLAGS.model_dir}: no such folder")
    try:
        float_tts = TextToSpeech(FLAGS.model_dir, variant="packed", decode=FLAGS.decode)
        int8_tts = TextToSpeech(FLAGS.model_dir, variant="int8", decode=FLAGS.decode)
    except ModelFolderError as e:
        fail(f"--model_dir={FLAGS.model_dir}: {e}")
    recognizer = None
    if FLAGS.wer:
        try:
            recognizer = metrics.Recognizer()
        except metrics.MissingMetricPackage as e:
            fail(str(e))
    config = float_tts.audio_config
    rows, hypotheses = [], {"float": [], "int8": []}
    for number, text in enumerate(sentences, 1):
        pair = synthesize_pair(float_tts, int8_tts, text)
        audio = pair["audio"]
        mel_float = log_mel(audio["float"], config)
        mel_int8 = log_mel(audio["int8_same_durations"], config)
        row = {"text": text, "seconds": round(len(audio["float"]) / config.sample_rate, 3),
               "snr_db": snr_db(audio["float"], audio["int8_same_durations"]),
               "mel_l1": round(float(np.mean(np.abs(mel_float - mel_int8))), 5),
               "durations_changed": pair["durations_changed"], "phonemes": pair["phonemes"],
               "int8_seconds": round(len(audio["int8"]) / config.sample_rate, 3)}
        if recognizer is not None:
            for system in ("float", "int8"):
                heard = recognizer.transcribe(audio[system], config.sample_rate)
                row[f"heard_{system}"] = heard
                hypotheses[system].append(heard)
        rows.append(row)
        print(f"{number}/{len(sentences)} SNR {row['snr_db']} dB  {text[:60]}", flush=True)
    references = [evaluation.spoken_form(text) for text in sentences]
    summary = score(rows, references, hypotheses if recognizer is not None else {})
    report = {"model_dir": FLAGS.model_dir, "sentences_file": FLAGS.sentences,
              "decode": FLAGS.decode, "audio_config": config.to_dict(),
              "summary": summary, "sentences": rows}
    fileio.atomic_write_json(FLAGS.output, report)
    print(format_table(rows, summary))
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
