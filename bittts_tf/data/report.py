"""The list of corpus items left out of training, each with the reason."""

from __future__ import annotations

import collections
import dataclasses
import json

from bittts_tf.fileio import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Skipped:
    utt_id: str
    reason: str
    path: str = ""


class SkipReport:
    """Collects skipped items; bad data is reported here and never stops a run."""

    def __init__(self, items=()):
        self.items: list[Skipped] = list(items)

    def add(self, utt_id: str, reason: str, path: str = "") -> None:
        self.items.append(Skipped(str(utt_id), str(reason), str(path)))

    def extend(self, other: "SkipReport") -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def ids(self) -> set[str]:
        return {s.utt_id for s in self.items}

    def reason_of(self, utt_id: str) -> str | None:
        for s in self.items:
            if s.utt_id == utt_id:
                return s.reason
        return None

    def counts(self) -> dict[str, int]:
        """How many items per kind of reason (the text before the first colon)."""
        return dict(collections.Counter(s.reason.split(":")[0] for s in self.items))

    def to_list(self) -> list[dict]:
        return [dataclasses.asdict(s) for s in self.items]

    @classmethod
    def from_list(cls, data: list[dict]) -> "SkipReport":
        return cls(Skipped(**d) for d in data)

    def summary(self) -> str:
        if not self.items:
            return "skipped: none"
        lines = [f"skipped {len(self.items)} item(s):"]
        lines += [f"  {s.utt_id}: {s.reason}" + (f" [{s.path}]" if s.path else "") for s in self.items]
        return "\n".join(lines)

    def save(self, path: str) -> None:
        atomic_write_text(path, json.dumps(self.to_list(), indent=1) + "\n")
