"""Shared fixtures: a tiny festival corpus made during the test run.

Import the fixtures into a test module with
    from tests.conftest_corpus import tiny_corpus, tiny_cache  # noqa: F401
Festival missing is a failure, not a skip: a broken set-up must be visible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_CORPUS = os.path.join(REPO, "tools", "make_corpus.py")
TINY_FLAGS = ["--num_utterances=6", "--voices=slt,kal", "--sample_rate=16000", "--seed=7",
              "--batch_size=3", "--num_workers=2"]


def run_make_corpus(out_dir: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, MAKE_CORPUS, f"--out_dir={out_dir}", *TINY_FLAGS, *extra],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"make_corpus failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def require_festival() -> None:
    assert shutil.which("festival"), ("festival is not installed; `make setup` installs "
                                      "deps/apt.txt (festival, festvox-us-slt-hts, ...)")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    require_festival()
    out_dir = str(tmp_path_factory.mktemp("tiny_corpus"))
    run_make_corpus(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_cache(tiny_corpus, tmp_path_factory):
    from bittts_tf.audio.config import preset
    from bittts_tf.data.cache import build_feature_cache
    from bittts_tf.data.ljspeech import load_ljspeech
    utterances, report = load_ljspeech(tiny_corpus)
    cache_dir = str(tmp_path_factory.mktemp("tiny_cache"))
    return build_feature_cache(utterances, preset("tiny"), cache_dir, report=report,
                               num_workers=1, progress=False)
