"""LibriTTS-style corpora: <speaker>/<chapter>/<id>.wav next to <id>.normalized.txt.

The transcript is <id>.normalized.txt, or <id>.original.txt when that is all
there is; the speaker is the first folder under the root.
"""

from __future__ import annotations

import os

from bittts_tf.data.corpus import Utterance
from bittts_tf.data.ljspeech import CorpusError, check_clip, check_text
from bittts_tf.data.report import SkipReport


def _read(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().strip()


def load_libritts(root: str, min_seconds: float = 0.3, max_seconds: float = 20.0
                  ) -> tuple[list[Utterance], SkipReport]:
    if not os.path.isdir(root):
        raise CorpusError(f"{root}: not a folder")
    report = SkipReport()
    utterances: list[Utterance] = []
    wavs = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        wavs += [os.path.join(folder, name) for name in sorted(files) if name.endswith(".wav")]
    if not wavs:
        raise CorpusError(f"{root}: no .wav files below this folder; not a LibriTTS-style corpus")
    for wav_path in sorted(wavs):
        stem = wav_path[:-len(".wav")]
        utt_id = os.path.basename(stem)
        rel = os.path.relpath(wav_path, root).split(os.sep)
        speaker = rel[0] if len(rel) > 1 else utt_id.split("_")[0]
        normalized_text = _read(stem + ".normalized.txt")
        original = _read(stem + ".original.txt")
        if normalized_text is None and original is None:
            report.add(utt_id, "no transcript (.normalized.txt or .original.txt)", wav_path)
            continue
        text = original if original is not None else normalized_text
        normalized = check_text(utt_id, text or "", normalized_text or "", report)
        if normalized is None:
            continue
        if not check_clip(utt_id, wav_path, min_seconds, max_seconds, report):
            continue
        utterances.append(Utterance(utt_id, wav_path, text or normalized, normalized, speaker))
    return utterances, report
