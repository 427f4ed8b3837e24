"""Atomic file writes: a reader, or a job restarted after a kill, sees the old
file or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable

TEMP_PREFIX = ".tmp-"


def atomic_write(path, write: Callable[[str], None], suffix: str = "") -> str:
    """Calls write(tmp_path) on a temporary file beside `path`, then renames it
    into place (so the writer may be any library that takes a file name)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> str:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return atomic_write(path, write)


def atomic_write_text(path, text: str) -> str:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, data) -> str:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def remove_stale_temps(directory) -> int:
    """Deletes the temporary files a killed run left behind; returns how many."""
    removed = 0
    if not os.path.isdir(directory):
        return 0
    for name in os.listdir(directory):
        if name.startswith(TEMP_PREFIX):
            os.unlink(os.path.join(directory, name))
            removed += 1
    return removed
