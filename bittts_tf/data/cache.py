"""Feature cache: every utterance's model inputs and targets, extracted once.

Layout of a cache folder:
  manifest.json      audio config, front end (symbol table), speaker ids,
                     entries (one per usable utterance), skipped items
  skipped.json       the skipped items alone, each with its reason
  feats/<id>.npz     phonemes, mel, f0, energy, audio (int16), speaker, and,
                     for synthesized corpora, ground-truth durations in frames
                     with per-phone f0 / energy

Phoneme sequences: an utterance with festival timings takes its phonemes from
festival's Segment relation (mapped one-to-one by bittts_tf.text.festival), so
ground-truth durations align with the model input; any other utterance gets
its phonemes from the G2P front end and has no ground-truth durations.

The cache is reused while the configuration and the corpus are unchanged. A
changed configuration rebuilds everything; a changed or added utterance is
re-extracted alone. Each .npz records the configuration fingerprint and the
utterance signature it was made from, and the manifest is written last, so an
interrupted build resumes without redoing finished utterances.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time

import numpy as np

from bittts_tf.audio.config import AudioConfig
from bittts_tf.audio.features import (
    compile_pitch_tracker,
    durations_to_frames,
    frame_features,
    phone_average,
)
from bittts_tf.audio.io import AudioError, load_wav, to_pcm16
from bittts_tf.data.corpus import Utterance
from bittts_tf.fileio import atomic_write, atomic_write_json, remove_stale_temps
from bittts_tf.data.report import SkipReport
from bittts_tf.text.festival import FestivalPhoneError, festival_to_symbol, merge_pauses
from bittts_tf.text.g2p import FrontEnd
from bittts_tf.text.normalize import TextError

CACHE_FORMAT_VERSION = 1


class CacheError(RuntimeError):
    pass


def config_fingerprint(cfg: AudioConfig, front_end: FrontEnd, min_seconds: float,
                       max_seconds: float) -> str:
    payload = json.dumps({"version": CACHE_FORMAT_VERSION, "audio": cfg.to_dict(),
                          "front_end": front_end.to_dict(), "min_seconds": min_seconds,
                          "max_seconds": max_seconds}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def festival_symbols(utt: Utterance, front_end: FrontEnd) -> tuple[list[str], list[float]]:
    symbols = [festival_to_symbol(p, s, front_end.g2p.secondary_stress)
               for p, s in zip(utt.festival_phones, utt.festival_stress)]
    return merge_pauses(symbols, list(utt.festival_ends))


# --- worker side ---------------------------------------------------------------

_worker_front_end: FrontEnd | None = None
_worker_front_end_key: str | None = None


def _front_end_for(front_end_dict: dict) -> FrontEnd:
    global _worker_front_end, _worker_front_end_key
    key = json.dumps(front_end_dict, sort_keys=True)
    if _worker_front_end_key != key:
        _worker_front_end = FrontEnd.from_dict(front_end_dict)
        _worker_front_end_key = key
    return _worker_front_end


def extract_utterance(task: dict) -> dict:
    """Features of one utterance written to task["out_path"]; returns its entry or a skip."""
    utt: Utterance = task["utt"]
    cfg = AudioConfig.from_dict(task["audio_config"])
    front_end = _front_end_for(task["front_end"])
    skip = lambda reason: {"skip": True, "utt_id": utt.utt_id, "reason": reason, "path": utt.wav_path}  # noqa: E731
    try:
        audio, _ = load_wav(utt.wav_path, cfg.sample_rate)
    except AudioError as e:
        return skip(f"unreadable audio: {e}")
    seconds = len(audio) / cfg.sample_rate
    if seconds < task["min_seconds"]:
        return skip(f"too short: {seconds:.3f} s < {task['min_seconds']} s")
    if seconds > task["max_seconds"]:
        return skip(f"too long: {seconds:.3f} s > {task['max_seconds']} s")

    ends = None
    try:
        if utt.festival_phones:
            symbols, ends = festival_symbols(utt, front_end)
        else:
            symbols = front_end.phonemes_of_normalized(utt.normalized)
        phonemes = np.asarray(front_end.symbols.encode(symbols), np.int32)
    except (TextError, FestivalPhoneError, ValueError) as e:
        return skip(f"no phonemes: {e}")

    feats = frame_features(audio, cfg)
    n_frames = len(feats["mel"])
    arrays = {
        "phonemes": phonemes,
        "mel": feats["mel"],
        "f0": feats["f0"],
        "energy": feats["energy"],
        "audio": to_pcm16(audio),
        "speaker": np.int32(task["speaker_id"]),
        "fingerprint": np.str_(task["fingerprint"]),
        "signature": np.str_(task["signature"]),
    }
    if ends is not None:
        if abs(ends[-1] - seconds) > task["max_duration_mismatch"]:
            return skip(f"durations do not fit the audio: phones end at {ends[-1]:.3f} s, "
                        f"audio is {seconds:.3f} s")
        durations = durations_to_frames(np.asarray(ends), n_frames, cfg)
        arrays["durations"] = durations
        arrays["phone_f0"] = phone_average(feats["f0"], durations, ignore_zeros=True)
        arrays["phone_energy"] = phone_average(feats["energy"], durations)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write(task["out_path"], write, suffix=".npz")
    return entry_for(utt, task["speaker_id"], n_frames, len(phonemes), ends is not None, seconds)


def entry_for(utt: Utterance, speaker_id: int, n_frames: int, n_phonemes: int,
              has_durations: bool, seconds: float) -> dict:
    return {"utt_id": utt.utt_id, "speaker": utt.speaker, "speaker_id": int(speaker_id),
            "n_frames": int(n_frames), "n_phonemes": int(n_phonemes),
            "has_durations": bool(has_durations), "seconds": round(float(seconds), 4),
            "wav_path": utt.wav_path, "text": utt.text, "signature": utt.signature()}


def _reusable(path: str, fingerprint: str, signature: str) -> dict | None:
    """Entry facts from an existing .npz if it was made from the same inputs."""
    try:
        with np.load(path) as z:
            if str(z["fingerprint"]) != fingerprint or str(z["signature"]) != signature:
                return None
            return {"n_frames": int(z["mel"].shape[0]), "n_phonemes": int(z["phonemes"].shape[0]),
                    "has_durations": "durations" in z.files,
                    "n_samples": int(z["audio"].shape[0])}
    except (OSError, ValueError, KeyError, EOFError):
        return None


# --- splits --------------------------------------------------------------------

SPLITS = ("train", "validation", "test")


def split_of(utt_id: str, validation_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """The split of an utterance: fixed by a hash of its id, so it does not
    move when utterances are added or the cache is rebuilt."""
    digest = hashlib.sha256(("bittts-split:" + utt_id).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def split_entries(cache: "FeatureCache", split: str, validation_fraction: float = 0.05,
                  test_fraction: float = 0.05) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return [e for e in cache.entries
            if split_of(e["utt_id"], validation_fraction, test_fraction) == split]


# --- driver side ----------------------------------------------------------------

class FeatureCache:
    """A built cache folder: its manifest plus per-utterance loading."""

    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir
        path = os.path.join(cache_dir, "manifest.json")
        if not os.path.isfile(path):
            raise CacheError(f"{cache_dir}: no manifest.json; build the cache first")
        try:
            with open(path, encoding="utf-8") as f:
                self.manifest = json.load(f)
            self.audio_config = AudioConfig.from_dict(self.manifest["audio_config"])
            self.front_end = FrontEnd.from_dict(self.manifest["front_end"])
            self.speakers: dict[str, int] = self.manifest["speakers"]
            self.entries: list[dict] = self.manifest["entries"]
            self.report = SkipReport.from_list(self.manifest["skipped"])
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheError(f"{path}: not a readable cache manifest ({e}); rebuild the "
                             "cache") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise CacheError(f"{path}: not a cache manifest of this version (no {e}); "
                             "rebuild the cache") from None
        self.stats: dict = self.manifest.get("build", {})

    def __len__(self) -> int:
        return len(self.entries)

    def path_of(self, utt_id: str) -> str:
        return os.path.join(self.cache_dir, "feats", utt_id + ".npz")

    def load(self, utt_id: str) -> dict[str, np.ndarray]:
        with np.load(self.path_of(utt_id)) as z:
            return {k: z[k] for k in z.files if k not in ("fingerprint", "signature")}


def build_feature_cache(utterances: list[Utterance], cfg: AudioConfig, cache_dir: str,
                        front_end: FrontEnd | None = None, report: SkipReport | None = None,
                        num_workers: int | None = None, min_seconds: float = 0.3,
                        max_seconds: float = 20.0, max_duration_mismatch: float = 0.05,
                        progress: bool = True) -> FeatureCache:
    """Extract (or reuse) features for the utterances; returns the loaded cache.

    report: items the corpus loader already skipped; they are kept in the
    manifest together with those skipped here.
    """
    start = time.time()
    front_end = front_end or FrontEnd()
    report = SkipReport(report or ())
    fingerprint = config_fingerprint(cfg, front_end, min_seconds, max_seconds)
    signatures = {u.utt_id: u.signature() for u in utterances}
    if len(signatures) != len(utterances):
        raise CacheError("utterance ids are not unique; the corpus loader should have "
                         "reported the duplicates")
    corpus_signature = hashlib.sha256(json.dumps(
        [sorted(signatures.items()), report.to_list()]).encode()).hexdigest()[:20]

    cache = _reuse_manifest(cache_dir, fingerprint, corpus_signature, start)
    if cache is not None:
        return cache

    feats_dir = os.path.join(cache_dir, "feats")
    os.makedirs(feats_dir, exist_ok=True)
    remove_stale_temps(feats_dir)
    speakers = {name: i for i, name in enumerate(sorted({u.speaker for u in utterances}))}
    entries, tasks = _plan_extraction(
        utterances, cfg, front_end, feats_dir, fingerprint, signatures, speakers,
        {"min_seconds": min_seconds, "max_seconds": max_seconds,
         "max_duration_mismatch": max_duration_mismatch})
    reused = len(entries)
    for result in _run(tasks, num_workers, progress):
        if result.get("skip"):
            report.add(result["utt_id"], result["reason"], result["path"])
        else:
            entries[result["utt_id"]] = result
    extract_seconds = time.time() - start

    atomic_write_json(os.path.join(cache_dir, "manifest.json"), {
        "format_version": CACHE_FORMAT_VERSION,
        "config_fingerprint": fingerprint,
        "corpus_signature": corpus_signature,
        "audio_config": cfg.to_dict(),
        "front_end": front_end.to_dict(),
        "speakers": speakers,
        "entries": [entries[u.utt_id] for u in utterances if u.utt_id in entries],
        "skipped": report.to_list(),
        "build": {"extracted": len(tasks), "reused_files": reused,
                  "seconds": round(extract_seconds, 3),
                  "utterances_per_second": round(len(tasks) / extract_seconds, 3) if tasks else None,
                  "num_workers": num_workers or os.cpu_count()},
    })
    report.save(os.path.join(cache_dir, "skipped.json"))
    cache = FeatureCache(cache_dir)
    cache.stats = {**cache.stats, "reused_manifest": False}
    return cache


def _reuse_manifest(cache_dir: str, fingerprint: str, corpus_signature: str,
                    start: float) -> FeatureCache | None:
    """The cache as it stands when its manifest was built from this corpus and
    configuration and every feature file is present; otherwise None."""
    if not os.path.isfile(os.path.join(cache_dir, "manifest.json")):
        return None
    try:
        cache = FeatureCache(cache_dir)
        if (cache.manifest.get("config_fingerprint") == fingerprint
                and cache.manifest.get("corpus_signature") == corpus_signature
                and all(os.path.isfile(cache.path_of(e["utt_id"])) for e in cache.entries)):
            cache.stats = {**cache.stats, "reused_manifest": True,
                           "seconds": round(time.time() - start, 3)}
            if not os.path.isfile(os.path.join(cache_dir, "skipped.json")):
                cache.report.save(os.path.join(cache_dir, "skipped.json"))
            return cache
    except (CacheError, KeyError, ValueError, TypeError):
        pass  # an unreadable manifest is rebuilt
    return None


def _plan_extraction(utterances: list[Utterance], cfg: AudioConfig, front_end: FrontEnd,
                     feats_dir: str, fingerprint: str, signatures: dict[str, str],
                     speakers: dict[str, int], limits: dict) -> tuple[dict[str, dict], list[dict]]:
    """Manifest entries for the feature files that can be kept, and an
    extraction task for every other utterance."""
    entries: dict[str, dict] = {}
    tasks = []
    for utt in utterances:
        out_path = os.path.join(feats_dir, utt.utt_id + ".npz")
        old = _reusable(out_path, fingerprint, signatures[utt.utt_id])
        if old is not None:
            seconds = old["n_samples"] / cfg.sample_rate
            entries[utt.utt_id] = entry_for(utt, speakers[utt.speaker], old["n_frames"],
                                            old["n_phonemes"], old["has_durations"], seconds)
            continue
        tasks.append({"utt": utt, "audio_config": cfg.to_dict(), "front_end": front_end.to_dict(),
                      "out_path": out_path, "fingerprint": fingerprint,
                      "signature": signatures[utt.utt_id], "speaker_id": speakers[utt.speaker],
                      **limits})
    return entries, tasks


def _run(tasks: list[dict], num_workers: int | None, progress: bool) -> list[dict]:
    from tqdm import tqdm
    if not tasks:
        return []
    num_workers = max(1, min(num_workers or os.cpu_count() or 1, len(tasks)))
    bar = tqdm(total=len(tasks), desc="extracting features", unit="utt", disable=not progress)
    results = []
    if num_workers == 1:
        for task in tasks:
            results.append(extract_utterance(task))
            bar.update(1)
    else:
        compile_pitch_tracker(AudioConfig.from_dict(tasks[0]["audio_config"]))
        # spawn, not fork: the caller may already have TensorFlow's threads running.
        with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
            for result in pool.imap_unordered(extract_utterance, tasks, chunksize=4):
                results.append(result)
                bar.update(1)
    bar.close()
    return results
