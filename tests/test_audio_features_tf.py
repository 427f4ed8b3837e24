import numpy as np

from bittts_tf.audio.features import phone_average
from bittts_tf.audio.features_tf import phone_average as phone_average_tf


def test_batched_tf_average_matches_numpy(rng):
    batch, n_phones = 4, 12
    durations = rng.integers(0, 7, (batch, n_phones))
    t_max = int(durations.sum(axis=1).max()) + 5  # padding frames past every item
    values = rng.uniform(60, 300, (batch, t_max)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = 0.0
    for ignore_zeros in (False, True):
        got = phone_average_tf(values, durations, ignore_zeros).numpy()
        for b in range(batch):
            t = durations[b].sum()
            expected = phone_average(values[b, :t], durations[b], ignore_zeros)
            np.testing.assert_allclose(got[b], expected, rtol=1e-5, atol=1e-4)
