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
