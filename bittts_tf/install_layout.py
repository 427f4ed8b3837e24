"""Where the package finds its C libraries and its shipped voice.

Two layouts. An installed wheel keeps both inside the package: setup.py
builds the Makefile's `lib` target into bittts_tf/_native/ and copies
models/slt_tiny into bittts_tf/voices/slt_tiny/. A clone, and the editable
install `make setup` makes of it, keeps them where the Makefile and git have
them: build/ (after `make lib`) and models/slt_tiny/.

Standard library only: setup.py reads this file's names before the package
(or numpy) is installed.
"""

from __future__ import annotations

import os
import pathlib

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent

# Relative to PACKAGE_ROOT: what setup.py writes into the wheel.
PACKAGED_LIBRARY_DIR = "_native"
PACKAGED_VOICE_DIR = "voices/slt_tiny"
# Relative to REPO_ROOT: the clone's own.
CLONE_LIBRARY_DIR = "build"
CLONE_VOICE_DIR = "models/slt_tiny"
# A development override of the library folder (e.g. a sanitizer build).
LIBRARY_DIR_VARIABLE = "BITTTS_BUILD_DIR"


def library_dir() -> pathlib.Path:
    """The folder our C shared libraries are loaded from: $BITTTS_BUILD_DIR
    if set, else the package's own (an installed wheel), else the clone's
    build/."""
    override = os.environ.get(LIBRARY_DIR_VARIABLE)
    if override:
        return pathlib.Path(override)
    packaged = PACKAGE_ROOT / PACKAGED_LIBRARY_DIR
    if packaged.is_dir():
        return packaged
    return REPO_ROOT / CLONE_LIBRARY_DIR


def default_model_dir() -> pathlib.Path:
    """The shipped voice: the package's copy (an installed wheel), else the
    clone's models/slt_tiny."""
    packaged = PACKAGE_ROOT / PACKAGED_VOICE_DIR
    if packaged.is_dir():
        return packaged
    return REPO_ROOT / CLONE_VOICE_DIR


def require_library(path: pathlib.Path) -> pathlib.Path:
    """path, if the library is there; else a FileNotFoundError that says how
    to get it in either layout."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build it with `make lib` (a clone), "
                                f"or reinstall bittts_tf (pip install builds it)")
    return path
