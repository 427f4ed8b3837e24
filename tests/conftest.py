"""Shared test set-up: fresh random seeds (printed, so a failure can be replayed)."""

import os
import random
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import settings

from seeds import SHARED_SEEDS, draw_seed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One numba cache per pytest-xdist worker: workers compiling librosa's pYIN
# kernels into a shared cache at once can crash on it (numba issue 10128).
os.environ["NUMBA_CACHE_DIR"] = os.path.join(
    tempfile.gettempdir(), f"bittts-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")

# print_blob: a failing example is printed with the blob that replays it.
settings.register_profile("bittts", deadline=None, max_examples=60, derandomize=False,
                          print_blob=True)
settings.load_profile("bittts")


# The slowest test files, longest first (seconds in one fresh-clone run on 2
# cores, 2026-12-06). `make test-py` hands files to the two workers in
# collection order (--dist loadfile --no-loadscope-reorder), and this hook
# puts these first: the run then ends on short files, both workers busy.
# xdist's own order (most tests first) left test_tools_bad_input's one 46 s
# test and test_distribute's 180 s near the end, one worker running alone.
# test_export_tts goes first: it exports the shared voice's folders
# (tts_models.SHARED_FOLDERS, ~60 s), which test_tflm, test_firmware,
# test_export_int8 and test_export_streaming read; a worker that reaches one of
# those while the other is still exporting idles on the lock (test_tflm
# right after test_export_tts took 114 s instead of 79).
SLOWEST_FILES = (
    ("test_export_tts.py", 90), ("test_training.py", 174), ("test_distribute.py", 143),
    ("test_export_recover.py", 104), ("test_eval_tool.py", 93), ("test_tflm.py", 79),
    ("test_corpus_make.py", 56), ("test_firmware_source_phase.py", 56),
    ("test_source_phase.py", 54), ("test_export_int8.py", 46), ("test_training_averaging.py", 45),
    ("test_tfmot_tools.py", 37), ("test_corpus_everyday.py", 37),
    ("test_export_recover_source_phase.py", 36), ("test_engine_arith.py", 36),
    ("test_tools_export.py", 36), ("test_firmware.py", 35), ("test_packaging.py", 35),
    ("test_tfmot.py", 30), ("test_eval_sets.py", 30), ("test_fuzz_kernels.py", 29),
    ("test_tools_bad_input.py", 29), ("test_export_streaming.py", 27), ("test_data_cache.py", 27),
    ("test_eval_curves.py", 26), ("test_tools_bench_input.py", 25))


_missing = [name for name, _ in SLOWEST_FILES
            if not os.path.exists(os.path.join(os.path.dirname(__file__), name))]
assert not _missing, f"conftest.SLOWEST_FILES names files that are gone: {_missing}"


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, (name, _) in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def seed(request):
    """Every test's seed, fresh and printed (replay with BITTTS_TEST_SEED=<seed>).
    It also seeds the global generators a test may draw from without saying
    so: Python's random, numpy's legacy np.random and, once loaded, Keras and
    TensorFlow (weight initializers, dropout). A test marked
    `@pytest.mark.replay_seed(N)` runs with seed N: a seed that once failed,
    kept as a regression case. After the test, the seeds of the shared
    (module) fixtures drawn so far in this process are printed again."""
    replay = request.node.get_closest_marker("replay_seed")
    if replay is not None:
        value = int(replay.args[0])
        print(f"{request.node.nodeid}: replayed seed {value}")
    else:
        value = draw_seed(request.node.nodeid)
    random.seed(value)
    np.random.seed(value)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(value)
    yield value
    for what, shared in SHARED_SEEDS.items():
        print(f"shared fixture {what}: seed {shared} (replay with BITTTS_FIXTURE_SEED={shared})")


@pytest.fixture
def rng(seed):
    """A numpy Generator from the test's seed."""
    return np.random.default_rng(seed)


# TFMOT switches its whole process to tf-keras (TF_USE_LEGACY_KERAS=1), and
# this suite builds Keras 3 models: tf-keras code runs only in subprocesses.
_LEGACY_KERAS_MODULES = ("tensorflow_model_optimization", "tf_keras", "bittts_tf.tfmot")


@pytest.fixture(autouse=True)
def _no_legacy_keras_in_this_process():
    yield
    loaded = [name for name in _LEGACY_KERAS_MODULES if name in sys.modules]
    assert not loaded, (f"{', '.join(loaded)} imported in a test process that builds Keras 3 "
                        f"models: run tf-keras / TFMOT code in a subprocess")
