"""Seeds for randomized tests: fresh each run, printed, and replayable.

Every seed comes from here: BITTTS_TEST_SEED=<seed> replays a failure (pytest
shows a failing test's printed seeds with its output), BITTTS_FIXTURE_SEED
the seed of a shared fixture beside it.
"""

import os
import secrets

import numpy as np


# Seeds drawn for fixtures shared by several tests (module scope): pytest
# shows a module fixture's set-up print only with the first test that used
# it, so conftest prints these again with every test (a CI failure of a later
# test could not name the random voice it ran on).
SHARED_SEEDS: dict[str, int] = {}


def draw_seed(what: str, variable: str = "BITTTS_TEST_SEED") -> int:
    """A new seed (or the environment's `variable`, else BITTTS_TEST_SEED),
    printed with `what` it seeds."""
    seed = int(os.environ.get(variable, os.environ.get("BITTTS_TEST_SEED", secrets.randbits(31))))
    print(f"{what}: seed {seed} (replay with {variable}={seed})")
    return seed


def fresh_seed(what: str) -> int:
    """A seed for a fixture or helper, printed now and with every later test
    of this process. BITTTS_FIXTURE_SEED replays it beside a test's own
    BITTTS_TEST_SEED (a module fixture's seed and a test's are drawn apart)."""
    seed = draw_seed(what, "BITTTS_FIXTURE_SEED")
    SHARED_SEEDS[what] = seed
    return seed


def fresh_rng(what: str) -> np.random.Generator:
    return np.random.default_rng(fresh_seed(what))
