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


def output_problem(path, folder: bool = False) -> str | None:
    """Why `path` cannot become an output file (or, with folder=True, an
    output folder), or None: checked before a tool starts its work, so that
    minutes of converting or scoring are not lost to a typo found only at the
    final rename. Looks at the path and its nearest existing ancestor; the
    write itself can still fail (a full disk), and then says so."""
    path = os.fspath(path)
    if not path:
        return "the path is empty"
    if os.path.isdir(path) and not folder:
        return f"{path} is a folder, not a file"
    if os.path.exists(path) and not os.path.isdir(path) and folder:
        return f"{path} is a file, not a folder"
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f"{ancestor} is a file, so {path} cannot be made"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def atomic_write(path, write: Callable[[str], None], suffix: str = "") -> str:
    """Calls write(tmp_path) on a temporary file beside `path`, then renames it
    into place (so the writer may be any library that takes a file name). An
    OSError of the temporary file or the rename names `path`, not the
    temporary file (which is gone by then)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        tmp = _create_temp(directory, suffix)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None
    try:
        write(tmp)
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise OSError(error.errno, error.strerror, path) from None
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
