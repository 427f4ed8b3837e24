"""Synthesize an LJSpeech-format training corpus offline with festival.

Prompts are clean public-domain sentences (KJV Bible, US Constitution,
Declaration of Independence), shuffled with --seed, and with
--sources=everyday,... also modern everyday sentences from a grammar
(questions, numbers, money, dates, times, lists, device prompts) for
--everyday_share of the utterances; none is ever a validation or test
sentence (bittts_tf.eval.sets). Festival reads a generated sentence as the
normalizer spells it out ("$12.50" -> "twelve dollars fifty cents"), so the
audio says what the front end asks for. Utterance i is spoken by voice
i mod len(--voices). Output in --out_dir:

  wavs/<id>.wav            16-bit PCM at --sample_rate
  metadata.csv             id|text|normalized text[|speaker]
  phone_durations.jsonl    per utterance: festival phones, end times (s), stress
  segments/<id>.json       per-utterance record; its presence marks the utterance done
  failures.txt             utterances festival could not synthesize, with the reason
  corpus_settings.json     the flags that decide the content (checked on restart)

The run is resumable: restarted with the same flags it skips finished
utterances (a finished one has its wav and, written after it, its segments
record, both written atomically) and redoes anything half-written.

Examples:
  python tools/make_corpus.py --out_dir=data/festival_corpus --num_utterances=2000
  python tools/make_corpus.py --out_dir=data/slt_varied_corpus --num_utterances=3200 \
      --voices=slt --sources=everyday,bible,constitution,declaration --everyday_share=0.6 \
      --min_words=1 --max_words=30 --max_chars=160 --seed=20240 --num_workers=1
"""

from __future__ import annotations

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import multiprocessing
import os
import sys
import time

from absl import app, flags
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bittts_tf.audio.io import resample, save_wav  # noqa: E402
from bittts_tf.data import festival, prompts  # noqa: E402
from bittts_tf.fileio import atomic_write_json, atomic_write_text, remove_stale_temps  # noqa: E402
from bittts_tf.text.normalize import normalize_text  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", None, "Output corpus folder (created; reused when resuming).")
flags.DEFINE_integer("num_utterances", 2000, "Number of utterances to synthesize.", lower_bound=1)
flags.DEFINE_integer("sample_rate", 16000, "Sample rate of the written wavs (festival output is resampled).")
flags.DEFINE_list("voices", ["slt", "kal"], f"Festival voices, one speaker each: {sorted(festival.VOICES)}.")
flags.DEFINE_list("sources", list(prompts.SOURCES),
                  f"Prompt text sources, from {', '.join(prompts.ALL_SOURCES)} "
                  f"({prompts.EVERYDAY!r} is generated; the others are public-domain text).")
flags.DEFINE_float("everyday_share", 0.5,
                   f"With {prompts.EVERYDAY!r} and a read source: the share of utterances "
                   "that are generated (spread evenly).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("seed", 1234, "Seed for shuffling the prompts.")
flags.DEFINE_integer("min_words", 6, "Shortest prompt, in words.")
flags.DEFINE_integer("max_words", 24, "Longest prompt, in words.")
flags.DEFINE_integer("max_chars", 160, "Longest prompt, in characters.")
flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Parallel festival processes.",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 8, "Utterances per festival process start.", lower_bound=1)
flags.mark_flag_as_required("out_dir")
cli.output_flags(folders=("out_dir",))


def content_settings() -> dict:
    """Flags that decide what the corpus contains (not how fast it is made).

    --num_utterances is left out: the plan for N utterances is a prefix of the
    plan for more, so a corpus can be extended in place.
    """
    settings = {"sample_rate": FLAGS.sample_rate, "voices": FLAGS.voices,
                "sources": FLAGS.sources, "seed": FLAGS.seed, "min_words": FLAGS.min_words,
                "max_words": FLAGS.max_words, "max_chars": FLAGS.max_chars}
    # Only where it decides something: corpora made before the flag existed
    # keep their settings file valid.
    if prompts.EVERYDAY in FLAGS.sources:
        settings["everyday_share"] = FLAGS.everyday_share
    return settings


def read_settings(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except ValueError as e:   # torn, or not text (UnicodeDecodeError is a ValueError too)
        settings = e
    if not isinstance(settings, dict):
        problem = settings if isinstance(settings, ValueError) else "not a JSON object"
        # Not "start afresh": without the old settings, utterances made with
        # other voices or another sample rate would pass for finished ones.
        raise cli.ToolError(f"{path} is damaged ({problem}); remove it and rerun with the flags "
                            "that made the corpus, or use another --out_dir")
    return settings


def check_settings(out_dir: str, settings: dict) -> None:
    path = os.path.join(out_dir, "corpus_settings.json")
    if os.path.exists(path):
        old = read_settings(path)
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            raise app.UsageError(f"{out_dir} was made with other settings {changed} "
                                 "(old, new); use a new --out_dir or the old flags")
    else:
        atomic_write_json(path, settings)


def make_plan(settings: dict, count: int) -> list[dict]:
    chosen = prompts.plan_prompts(settings["sources"], count, settings["seed"],
                                  settings["min_words"], settings["max_words"],
                                  settings["max_chars"], settings.get("everyday_share", 0.5))
    voices = settings["voices"]
    # A generated prompt has digits, money and percentages: festival gets the
    # normalizer's spelling, the words the model's front end will ask for (its
    # own reading of "2019" or "$1,450" may differ). Read prompts are letters
    # only and go as they are, as they always did.
    return [{"id": f"bt{i:05d}", "text": p.text, "voice": voices[i % len(voices)],
             "spoken": normalize_text(p.text) if p.source == prompts.EVERYDAY else p.text}
            for i, p in enumerate(chosen)]


def record_path(out_dir: str, utt_id: str) -> str:
    return os.path.join(out_dir, "segments", utt_id + ".json")


def wav_path(out_dir: str, utt_id: str) -> str:
    return os.path.join(out_dir, "wavs", utt_id + ".wav")


def load_record(out_dir: str, item: dict) -> dict | None:
    """The finished utterance's record, or None if it must be (re)made."""
    import soundfile as sf
    try:
        with open(record_path(out_dir, item["id"]), encoding="utf-8") as f:
            record = json.load(f)
        frames = sf.info(wav_path(out_dir, item["id"])).frames
    except (OSError, ValueError, RuntimeError):
        return None
    if (record.get("text") != item["text"] or record.get("num_samples") != frames
            or record.get("spoken", record.get("text")) != item["spoken"]):
        return None
    return record


def synthesize_and_store(job: tuple[str, int, list[dict]]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Worker: one festival run for a batch of same-voice utterances."""
    out_dir, sample_rate, items = job
    by_id = {item["id"]: item for item in items}
    results, failures = festival.synthesize_batch([(i["id"], i["spoken"]) for i in items],
                                                  items[0]["voice"])
    records = []
    for result in results:
        item = by_id[result.utt_id]
        audio = resample(result.audio, result.sample_rate, sample_rate)
        save_wav(wav_path(out_dir, item["id"]), audio, sample_rate)
        record = {
            "id": item["id"], "text": item["text"], "voice": item["voice"],
            "sample_rate": sample_rate, "num_samples": int(len(audio)),
            "festival_sample_rate": result.sample_rate,
            "phones": [s.phone for s in result.segments],
            "ends": [round(s.end, 6) for s in result.segments],
            "stress": [s.stress for s in result.segments],
            "raw_mismatch_s": round(result.raw_mismatch, 6),
            "trimmed_samples": result.trimmed_samples,
        }
        if item["spoken"] != item["text"]:
            record["spoken"] = item["spoken"]
        atomic_write_json(record_path(out_dir, item["id"]), record)
        records.append(record)
    return records, failures


def batches_of(todo: list[dict], out_dir: str, sample_rate: int, size: int) -> list:
    by_voice: dict[str, list[dict]] = {}
    for item in todo:
        by_voice.setdefault(item["voice"], []).append(item)
    jobs = []
    for items in by_voice.values():
        jobs += [(out_dir, sample_rate, items[i:i + size]) for i in range(0, len(items), size)]
    return jobs


def write_outputs(out_dir: str, plan: list[dict], records: dict, multi_speaker: bool) -> None:
    rows, durations = [], []
    for item in plan:
        record = records.get(item["id"])
        if record is None:
            continue
        row = [item["id"], item["text"], normalize_text(item["text"])]
        if multi_speaker:
            row.append(item["voice"])
        rows.append("|".join(row))
        durations.append(json.dumps({k: record[k] for k in ("id", "phones", "ends", "stress")}))
    atomic_write_text(os.path.join(out_dir, "metadata.csv"), "\n".join(rows) + "\n")
    atomic_write_text(os.path.join(out_dir, "phone_durations.jsonl"), "\n".join(durations) + "\n")


def main(argv):
    del argv
    festival.require_festival()
    out_dir = FLAGS.out_dir
    if not FLAGS.voices:
        raise app.UsageError(f"--voices: empty; give one or more of {sorted(festival.VOICES)}")
    for voice in FLAGS.voices:
        if voice not in festival.VOICES:
            raise app.UsageError(f"--voices: unknown voice {voice!r}; choose from {sorted(festival.VOICES)}")

    unknown = [s for s in FLAGS.sources if s not in prompts.ALL_SOURCES]
    if unknown or not FLAGS.sources:
        raise app.UsageError(f"--sources: unknown {unknown}; choose from "
                             f"{', '.join(prompts.ALL_SOURCES)}")

    settings = content_settings()
    try:
        plan = make_plan(settings, FLAGS.num_utterances)
    except prompts.PromptSourceError as e:
        raise app.UsageError(str(e)) from None
    # Only now: settings written for a plan that cannot be made would refuse
    # the corrected command on a folder that holds nothing.
    check_settings(out_dir, settings)
    os.makedirs(os.path.join(out_dir, "wavs"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "segments"), exist_ok=True)

    # A killed run may have left temp files; finished utterances are intact
    # because they only ever appear by atomic rename.
    for sub in ("wavs", "segments"):
        remove_stale_temps(os.path.join(out_dir, sub))
    records = {}
    for item in tqdm(plan, desc="checking finished utterances", unit="utt", leave=False):
        record = load_record(out_dir, item)
        if record is not None:
            records[item["id"]] = record
    todo = [item for item in plan if item["id"] not in records]
    print(f"{len(records)} of {len(plan)} utterances already done; synthesizing {len(todo)} "
          f"with {FLAGS.num_workers} processes", flush=True)

    failures = []
    start = time.time()
    jobs = batches_of(todo, out_dir, FLAGS.sample_rate, FLAGS.batch_size)
    with multiprocessing.get_context("fork").Pool(FLAGS.num_workers) as pool, \
            tqdm(total=len(todo), desc="synthesizing", unit="utt") as bar:
        for new_records, new_failures in pool.imap_unordered(synthesize_and_store, jobs):
            for record in new_records:
                records[record["id"]] = record
            failures += new_failures
            bar.update(len(new_records) + len(new_failures))
    elapsed = time.time() - start

    atomic_write_text(os.path.join(out_dir, "failures.txt"),
                      "".join(f"{utt_id}\t{reason}\n" for utt_id, reason in failures))
    write_outputs(out_dir, plan, records, multi_speaker=len(FLAGS.voices) > 1)

    seconds = sum(r["num_samples"] / r["sample_rate"] for r in records.values())
    mismatch = max((abs(r["num_samples"] / r["sample_rate"] - r["ends"][-1]), r["id"])
                   for r in records.values()) if records else (0.0, "-")
    print(f"done: {len(records)} of {len(plan)} utterances, {seconds / 3600:.3f} hours of speech, "
          f"{len(failures)} failed (see failures.txt)")
    if todo:
        print(f"this run: {len(todo)} utterances in {elapsed:.1f} s = {len(todo) / elapsed:.3f} utt/s "
              f"with {FLAGS.num_workers} processes")
    print(f"worst |wav length - sum of phone durations| = {mismatch[0] * 1000:.2f} ms ({mismatch[1]})")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
