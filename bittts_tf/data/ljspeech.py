"""LJSpeech-format corpora: wavs/<id>.wav and metadata.csv (id|text|normalized[|speaker]).

Corpora made by tools/make_corpus.py also carry phone_durations.jsonl with
festival's phone timings; they are attached to the utterances when present.
"""

from __future__ import annotations

import json
import logging
import os

from bittts_tf.audio.io import AudioError, probe
from bittts_tf.data.corpus import Utterance
from bittts_tf.data.report import SkipReport
from bittts_tf.text.normalize import TextError, normalize_text


class CorpusError(ValueError):
    """A corpus folder that cannot be read at all (as opposed to a bad item)."""


def check_clip(utt_id: str, wav_path: str, min_seconds: float, max_seconds: float,
               report: SkipReport) -> bool:
    """True if the clip's header is readable and its length is within bounds."""
    try:
        frames, sr = probe(wav_path)
    except AudioError as e:
        report.add(utt_id, f"unreadable audio: {e}", wav_path)
        return False
    seconds = frames / sr
    if seconds < min_seconds:
        report.add(utt_id, f"too short: {seconds:.3f} s < {min_seconds} s", wav_path)
        return False
    if seconds > max_seconds:
        report.add(utt_id, f"too long: {seconds:.3f} s > {max_seconds} s", wav_path)
        return False
    return True


def check_text(utt_id: str, text: str, normalized: str, report: SkipReport) -> str | None:
    """The normalized transcript, or None (and a report entry) if there is none."""
    if not text.strip() and not normalized.strip():
        report.add(utt_id, "empty transcript")
        return None
    if not normalized.strip():
        try:
            normalized = normalize_text(text)
        except TextError as e:
            report.add(utt_id, f"bad transcript: {e}")
            return None
    return normalized


def read_phone_durations(path: str) -> dict[str, dict]:
    """id -> {"phones", "stress", "ends"} from a phone_durations.jsonl file."""
    found = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                phones, stress, ends = rec["phones"], rec["stress"], rec["ends"]
                if not (len(phones) == len(stress) == len(ends)) or not phones:
                    raise ValueError("phones, stress and ends differ in length")
                found[str(rec["id"])] = {"phones": list(phones), "stress": [int(s) for s in stress],
                                         "ends": [float(e) for e in ends]}
            except (ValueError, KeyError, TypeError) as e:
                logging.warning("%s:%d: ignoring malformed phone durations (%s)", path, n, e)
    return found


def load_ljspeech(root: str, min_seconds: float = 0.3, max_seconds: float = 20.0,
                  metadata: str = "metadata.csv", durations: str = "phone_durations.jsonl"
                  ) -> tuple[list[Utterance], SkipReport]:
    """Utterances of an LJSpeech-format folder, and the items that were left out."""
    meta_path = os.path.join(root, metadata)
    if not os.path.isfile(meta_path):
        raise CorpusError(f"{root}: no {metadata}; not an LJSpeech-format corpus")
    durations_path = os.path.join(root, durations)
    timings = read_phone_durations(durations_path) if os.path.isfile(durations_path) else {}
    report = SkipReport()
    utterances: list[Utterance] = []
    seen: set[str] = set()
    with open(meta_path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = line.split("|")
        utt_id = cols[0].strip()
        if len(cols) < 2 or not utt_id:
            report.add(utt_id or f"{metadata}:{n}", f"malformed metadata line {n}: {line[:80]!r}")
            continue
        if utt_id in seen:
            report.add(utt_id, f"duplicate id on metadata line {n}")
            continue
        seen.add(utt_id)
        text = cols[1].strip()
        normalized = check_text(utt_id, text, cols[2].strip() if len(cols) > 2 else "", report)
        if normalized is None:
            continue
        wav_path = os.path.join(root, "wavs", utt_id + ".wav")
        if not check_clip(utt_id, wav_path, min_seconds, max_seconds, report):
            continue
        speaker = cols[3].strip() if len(cols) > 3 and cols[3].strip() else "default"
        timing = timings.get(utt_id)
        utterances.append(Utterance(
            utt_id, wav_path, text or normalized, normalized, speaker,
            festival_phones=timing and timing["phones"],
            festival_stress=timing and timing["stress"],
            festival_ends=timing and timing["ends"]))
    return utterances, report
