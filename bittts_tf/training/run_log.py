"""A run's per-step logs: losses.jsonl and held_out.jsonl in its output
directory, one JSON object a line, each with an integer "step".

No TensorFlow: the tools that read curves (compare_runs, the
kill-and-resume checks) start without TensorFlow.
"""

from __future__ import annotations

import json
import os

from bittts_tf import fileio

LOSSES = "losses.jsonl"
HELD_OUT = "held_out.jsonl"


class LogFileError(ValueError):
    """A JSON-lines log that is damaged other than by a kill mid-write."""


def parse_json_lines(path: str, numbers: tuple[str, ...] = ()) -> tuple[list[dict], str | None]:
    """The rows of a JSON-lines file, and a note if its last line was torn;
    every row needs an integer "step" and a number under each of `numbers`.

    A run killed while appending leaves at most its last line half-written
    (no newline at its end): that row is dropped with a note, as the resumed
    run logs that step again. Damage anywhere else is not a kill's doing and
    is refused, naming the line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    # A complete file ends in "\n", so its last piece is empty; anything else is torn.
    complete, last = lines[:-1], lines[-1]
    rows = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogFileError(f"{path}: line {number} is not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise LogFileError(f"{path}: line {number} has no integer \"step\"")
        for key in numbers:
            if not isinstance(row.get(key), (int, float)) or isinstance(row.get(key), bool):
                raise LogFileError(f"{path}: line {number} has no step or no {key} number")
        rows.append(row)
    note = None
    if last.strip():
        try:   # whole but for its newline: a row like any other
            row = json.loads(last)
            if (isinstance(row, dict) and isinstance(row.get("step"), int)
                    and all(isinstance(row.get(key), (int, float)) for key in numbers)):
                return rows + [row], None
        except json.JSONDecodeError:
            pass
        note = (f"{path}: dropped a torn last line ({len(last)} characters without a "
                "newline: the previous run was stopped while writing it)")
    return rows, note


class JsonLines:
    """An append-only per-step record (losses.jsonl, held_out.jsonl). A resumed
    run first drops the rows after its checkpoint, which the killed run logged,
    and a torn last line; the shortened file replaces the old one atomically,
    so a second kill during the rewrite loses nothing."""

    def __init__(self, path: str, resume_step: int):
        self.path = path
        kept = []
        if os.path.exists(path):
            rows, note = parse_json_lines(path)
            if note:
                print(f"note: {note}")
            kept = [row for row in rows if row["step"] <= resume_step]
        fileio.atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))
        self.last_step = kept[-1]["step"] if kept else None

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.last_step = row["step"]


def read_json_lines(path: str) -> dict[int, dict]:
    """{step: {name: value}} of a JsonLines file; a torn last line (a run
    killed mid-write, or still writing) is left out."""
    rows, _ = parse_json_lines(path)
    return {r.pop("step"): r for r in rows}


def read_losses(output_dir: str) -> dict[int, dict]:
    return read_json_lines(os.path.join(output_dir, LOSSES))


def read_held_out(output_dir: str) -> dict[int, dict]:
    return read_json_lines(os.path.join(output_dir, HELD_OUT))
