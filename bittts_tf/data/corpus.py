"""One utterance of a speech corpus, whatever folder layout it came from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os


@dataclasses.dataclass
class Utterance:
    utt_id: str
    wav_path: str
    text: str
    normalized: str
    speaker: str = "default"
    # Ground truth from a synthesizer, when the corpus has it: festival phone
    # names, their syllable stress, and end times in seconds.
    festival_phones: list[str] | None = None
    festival_stress: list[int] | None = None
    festival_ends: list[float] | None = None

    def signature(self) -> str:
        """Changes whenever anything the features depend on changes."""
        try:
            st = os.stat(self.wav_path)
            wav = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            wav = "missing"
        payload = json.dumps([self.utt_id, self.wav_path, self.text, self.normalized, self.speaker,
                              self.festival_phones, self.festival_stress, self.festival_ends, wav])
        return hashlib.sha256(payload.encode()).hexdigest()[:20]
