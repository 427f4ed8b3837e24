"""The one input pipeline (bittts_tf.training.data) on a real feature cache,
the cache's fixed splits, and the one int16 scaling."""

import collections

import numpy as np
import pytest

from conftest_corpus import tiny_cache, tiny_corpus  # noqa: F401

from bittts_tf.audio.io import PCM16_SCALE, from_pcm16, to_pcm16
from bittts_tf.data.cache import split_entries, split_of
from bittts_tf.training import data


def test_split_is_fixed_disjoint_and_near_the_fractions(rng):
    ids = [f"utt{rng.integers(1 << 40):x}" for _ in range(4000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    counts = collections.Counter(splits)
    assert abs(counts["test"] / 4000 - 0.05) < 0.02 and abs(counts["validation"] / 4000 - 0.05) < 0.02


def test_default_splits_partition_the_cache(tiny_cache):
    parts = [split_entries(tiny_cache, s) for s in ("train", "validation", "test")]
    ids = [e["utt_id"] for part in parts for e in part]
    assert sorted(ids) == sorted(e["utt_id"] for e in tiny_cache.entries)
    with pytest.raises(ValueError, match="unknown split"):
        split_entries(tiny_cache, "dev")


def test_pcm16_is_the_nearest_step_and_comes_back_within_half_a_step(rng):
    x = np.concatenate([rng.uniform(-1.5, 1.5, 20000), [-1.0, 1.0, 0.0, -2.0, 3.0]])
    pcm = to_pcm16(x)
    assert pcm.dtype == np.int16
    # Reference: of the two steps around clip(x) * 32767, the nearer one.
    target = np.clip(x, -1, 1) * 32767.0
    low = np.floor(target)
    nearer = np.where(target - low <= low + 1 - target, low, low + 1)
    ties = np.isclose(target - low, 0.5)
    np.testing.assert_array_equal(pcm[~ties], nearer[~ties])
    back = from_pcm16(pcm)
    assert back.dtype == np.float32
    assert np.max(np.abs(back - np.clip(x, -1, 1))) <= 0.5 / 32767 + 1e-7
    assert from_pcm16(np.array([32767, -32767, 0], np.int16)).tolist() == [1.0, -1.0, 0.0]
    assert PCM16_SCALE == 32767.0
    floats = rng.normal(size=10).astype(np.float32)
    np.testing.assert_array_equal(from_pcm16(floats), floats)


def test_batches_of_cache_utterances_hold_them_padded(tiny_cache):
    hop = tiny_cache.audio_config.hop_length
    utterances = [tiny_cache.load(e["utt_id"]) for e in tiny_cache.entries]
    batch = data.pad_batch(utterances, hop)
    n_tokens, n_frames = batch["phonemes"].shape[1], batch["mels"].shape[1]
    assert n_tokens == max(len(z["phonemes"]) for z in utterances)
    assert n_frames == max(len(z["mel"]) for z in utterances)
    assert batch["audio"].shape == (len(utterances), n_frames * hop)
    for i, z in enumerate(utterances):
        n, t = len(z["phonemes"]), len(z["mel"])
        assert (batch["phoneme_lengths"][i], batch["mel_lengths"][i]) == (n, t)
        np.testing.assert_array_equal(batch["phonemes"][i, :n], z["phonemes"])
        assert np.all(batch["phonemes"][i, n:] == 0)
        np.testing.assert_array_equal(batch["mels"][i, :t], z["mel"])
        assert np.all(batch["mels"][i, t:] == 0)
        np.testing.assert_array_equal(batch["f0"][i, :t], z["f0"])
        np.testing.assert_array_equal(batch["energy"][i, :t], z["energy"])
        np.testing.assert_array_equal(batch["durations"][i, :n], z["durations"])
        assert batch["durations"][i].sum() == t
        assert batch["speakers"][i] == int(z["speaker"])
        # Frame-aligned audio: the cache's int16 samples over the frames, at 1 / 32767.
        kept = min(len(z["audio"]), t * hop)
        np.testing.assert_array_equal(batch["audio"][i, :kept],
                                      z["audio"][:kept].astype(np.float32) / np.float32(32767))
        assert np.all(batch["audio"][i, kept:] == 0)
