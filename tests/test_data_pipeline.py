import collections

import numpy as np
import pytest

from conftest_corpus import tiny_cache, tiny_corpus  # noqa: F401

from bittts_tf.data.pipeline import (acoustic_dataset, default_bucket_boundaries, split_entries,
                                     split_of, vocoder_dataset)


def test_split_is_fixed_disjoint_and_near_the_fractions(rng):
    ids = [f"utt{rng.integers(1 << 40):x}" for _ in range(4000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    counts = collections.Counter(splits)
    assert abs(counts["test"] / 4000 - 0.05) < 0.02 and abs(counts["validation"] / 4000 - 0.05) < 0.02


def test_batches_are_padded_with_correct_masks(tiny_cache):
    ds = acoustic_dataset(tiny_cache, split="train", batch_size=2, shuffle=True, seed=3,
                          test_fraction=0.0, validation_fraction=0.0, bucket_boundaries=[300])
    seen = set()
    for batch in ds:
        b = {k: v.numpy() for k, v in batch.items()}
        B, N = b["phonemes"].shape
        T = b["mel"].shape[1]
        assert b["mel"].shape == (B, T, tiny_cache.audio_config.n_mels)
        assert b["phoneme_lengths"].max() == N and b["mel_lengths"].max() == T
        for i in range(B):
            utt_id = b["utt_id"][i].decode()
            seen.add(utt_id)
            z = tiny_cache.load(utt_id)
            n, t = b["phoneme_lengths"][i], b["mel_lengths"][i]
            assert (n, t) == (len(z["phonemes"]), len(z["mel"]))
            np.testing.assert_array_equal(b["phoneme_mask"][i], np.arange(N) < n)
            np.testing.assert_array_equal(b["mel_mask"][i], np.arange(T) < t)
            np.testing.assert_array_equal(b["phonemes"][i, :n], z["phonemes"])
            assert np.all(b["phonemes"][i, n:] == 0)
            np.testing.assert_allclose(b["mel"][i, :t], z["mel"])
            assert np.allclose(b["mel"][i, t:], np.log(tiny_cache.audio_config.log_floor))
            np.testing.assert_array_equal(b["durations"][i, :n], z["durations"])
            assert b["durations"][i].sum() == t and b["has_durations"][i]
            np.testing.assert_allclose(b["f0"][i, :t], z["f0"])
            np.testing.assert_allclose(b["phone_energy"][i, :n], z["phone_energy"])
            assert b["speaker"][i] == int(z["speaker"])
    assert seen == {e["utt_id"] for e in tiny_cache.entries}


def test_default_splits_partition_the_cache(tiny_cache):
    parts = [split_entries(tiny_cache, s) for s in ("train", "validation", "test")]
    ids = [e["utt_id"] for part in parts for e in part]
    assert sorted(ids) == sorted(e["utt_id"] for e in tiny_cache.entries)
    with pytest.raises(ValueError, match="unknown split"):
        split_entries(tiny_cache, "dev")


def test_bucket_boundaries_follow_the_lengths(rng):
    lengths = list(rng.integers(50, 800, 500))
    bounds = default_bucket_boundaries(lengths, 5)
    assert bounds == sorted(bounds) and 3 <= len(bounds) <= 4
    counts = np.histogram(lengths, [0] + bounds + [10 ** 6])[0]
    assert counts.min() > 60  # roughly equal buckets


def test_vocoder_crops_are_aligned(tiny_cache):
    hop = tiny_cache.audio_config.hop_length
    ds = vocoder_dataset(tiny_cache, split="train", segment_frames=16, batch_size=3,
                         test_fraction=0.0, validation_fraction=0.0, seed=1)
    full = {e["utt_id"]: tiny_cache.load(e["utt_id"]) for e in tiny_cache.entries}
    batches = list(ds)
    assert sum(b["mel"].shape[0] for b in batches) == 6
    for batch in batches:
        for mel, audio in zip(batch["mel"].numpy(), batch["audio"].numpy()):
            assert mel.shape == (16, tiny_cache.audio_config.n_mels) and audio.shape == (16 * hop,)
            # Find the utterance and frame offset from the mel, then check the audio there.
            matches = [(u, s) for u, z in full.items() for s in range(len(z["mel"]) - 15)
                       if np.allclose(z["mel"][s:s + 16], mel)]
            assert matches
            u, s = matches[0]
            expected = full[u]["audio"][s * hop:(s + 16) * hop] / 32767.0
            np.testing.assert_allclose(audio, expected, atol=1e-6)
