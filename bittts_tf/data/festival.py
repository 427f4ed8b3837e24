"""Synthesizing utterances with Debian's festival, keeping its phone timings.

One festival process handles a batch of utterances (start-up costs more than
a short utterance). For each it saves the waveform and a table of segments
(phone name, end time, syllable stress) from the Segment relation.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

# Voice name -> festival command that selects it. slt: CMU ARCTIC US female,
# HTS, 32 kHz. kal / ked: US male diphone voices, 16 kHz.
VOICES = {
    "slt": "voice_cmu_us_slt_arctic_hts",
    "kal": "voice_kal_diphone",
    "ked": "voice_ked_diphone",
}

_SCHEME_PRELUDE = """
(define (bittts_save utt wavpath segpath)
  (utt.save.wave utt wavpath 'riff)
  (let ((fd (fopen segpath "w")))
    (mapcar
      (lambda (seg)
        (format fd "%s %f %s\\n" (item.name seg) (item.feat seg "end")
                (item.feat seg "R:SylStructure.parent.stress")))
      (utt.relation.items utt 'Segment))
    (fclose fd)))
"""

# A tail no louder than -60 dBFS is silence (the diphone voices end with a
# few samples of +-5 LSB and then exact zeros); one louder than -40 dBFS is
# never silence, whatever the pause before it sounds like.
_SILENCE = 1e-3
_NEVER_SILENCE = 1e-2


class FestivalError(RuntimeError):
    pass


@dataclasses.dataclass
class Segment:
    phone: str
    end: float
    stress: int


@dataclasses.dataclass
class Synthesized:
    utt_id: str
    audio: np.ndarray          # float32, festival's own sample rate
    sample_rate: int
    segments: list[Segment]
    raw_mismatch: float        # seconds: festival wav length - last segment end, before trimming
    trimmed_samples: int


def require_festival() -> str:
    path = shutil.which("festival")
    if path is None:
        raise FestivalError("festival is not installed: apt-get install the packages in "
                            "deps/apt.txt (festival festvox-us-slt-hts festvox-kallpc16k ...)")
    return path


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_segments(text: str, source: str = "<segments>") -> list[Segment]:
    segments = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise FestivalError(f"{source}:{n}: expected 'phone end stress', got {line!r}")
        try:
            segments.append(Segment(parts[0], float(parts[1]), int(float(parts[2]))))
        except ValueError:
            raise FestivalError(f"{source}:{n}: bad number in {line!r}") from None
    if not segments:
        raise FestivalError(f"{source}: festival produced no segments")
    return segments


def trim_padding(audio: np.ndarray, sample_rate: int, segments: list[Segment]) -> tuple[np.ndarray, int]:
    """Drop samples after the last segment's end if they only continue its silence.

    Festival's diphone voices emit 20-30 ms past the end of the final pause
    (the second half of the last pause-pause diphone, near-zero samples).
    Those samples belong to no phone; cutting them keeps durations and audio
    consistent. The cut is made only when the last segment is a pause and
    the tail is no louder than that pause (or than -60 dBFS) and below
    -40 dBFS; any other tail is kept and shows up as a duration mismatch.
    """
    last = segments[-1]
    end_sample = int(round(last.end * sample_rate))
    if end_sample >= len(audio) or last.phone != "pau":
        return audio, 0
    start = int(round((segments[-2].end if len(segments) > 1 else 0.0) * sample_rate))
    pause_peak = float(np.max(np.abs(audio[start:end_sample]), initial=0.0))
    tail_peak = float(np.max(np.abs(audio[end_sample:])))
    if tail_peak > max(pause_peak, _SILENCE) or tail_peak > _NEVER_SILENCE:
        return audio, 0
    return audio[:end_sample], len(audio) - end_sample


def synthesize_batch(items: list[tuple[str, str]], voice: str, timeout: float | None = None
                     ) -> tuple[list[Synthesized], list[tuple[str, str]]]:
    """Synthesize (utt_id, text) pairs with one voice; returns (results, failures)."""
    festival = require_festival()
    if voice not in VOICES:
        raise FestivalError(f"unknown voice {voice!r}; choose from {sorted(VOICES)}")
    results, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bittts-festival-") as tmp:
        lines = [f"({VOICES[voice]})", _SCHEME_PRELUDE]
        for i, (utt_id, text) in enumerate(items):
            lines.append(f"(set! utt (Utterance Text {_scheme_string(text)}))")
            lines.append("(utt.synth utt)")
            lines.append(f'(bittts_save utt "{tmp}/{i}.wav" "{tmp}/{i}.seg")')
        script = os.path.join(tmp, "batch.scm")
        with open(script, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        timeout = timeout or 60 + 30 * len(items)
        try:
            proc = subprocess.run([festival, "-b", script], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return [], [(utt_id, f"festival timed out after {timeout:.0f} s") for utt_id, _ in items]
        for i, (utt_id, _) in enumerate(items):
            wav, seg = os.path.join(tmp, f"{i}.wav"), os.path.join(tmp, f"{i}.seg")
            if not (os.path.exists(wav) and os.path.exists(seg)):
                failures.append((utt_id, "festival wrote no output (exit code "
                                 f"{proc.returncode}): {proc.stderr.strip()[-300:]}"))
                continue
            try:
                with open(seg, encoding="utf-8") as f:
                    segments = parse_segments(f.read(), seg)
                audio, sr = sf.read(wav, dtype="float32")
            except (FestivalError, sf.SoundFileError, RuntimeError) as e:
                failures.append((utt_id, str(e)))
                continue
            if audio.ndim > 1:
                audio = audio.mean(axis=1)
            raw_mismatch = len(audio) / sr - segments[-1].end
            audio, trimmed = trim_padding(audio, sr, segments)
            results.append(Synthesized(utt_id, audio, sr, segments, raw_mismatch, trimmed))
    return results, failures
