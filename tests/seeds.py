"""Seeds for randomized tests: fresh each run, printed, and replayable.

Every seed comes from here: BITTTS_TEST_SEED=<seed> replays a failure (pytest
shows a failing test's printed seeds with its output).
"""

import os
import secrets

import numpy as np


def fresh_seed(what: str) -> int:
    """A new seed (or BITTTS_TEST_SEED), printed with `what` it seeds."""
    seed = int(os.environ.get("BITTTS_TEST_SEED", secrets.randbits(31)))
    print(f"{what}: seed {seed} (replay with BITTTS_TEST_SEED={seed})")
    return seed


def fresh_rng(what: str) -> np.random.Generator:
    return np.random.default_rng(fresh_seed(what))
