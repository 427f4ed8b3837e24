"""Atomic file writes: a reader, or a job restarted after a kill, sees the old
file or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import secrets
from typing import Callable

TEMP_PREFIX = ".tmp-"


def _create_temp(directory: str, suffix: str) -> str:
    """A new empty file beside the target, created with mode 0666 so that the
    kernel applies the umask: the renamed artifact gets the permissions any
    other new file would (tempfile.mkstemp's 0600 would make every model,
    wav and report private whatever the umask). O_EXCL: never another's file."""
    while True:
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(6) + suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def atomic_write(path, write: Callable[[str], None], suffix: str = "") -> str:
    """Calls write(tmp_path) on a temporary file beside `path`, then renames it
    into place (so the writer may be any library that takes a file name)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = _create_temp(directory, suffix)
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
