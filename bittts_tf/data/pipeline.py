"""tf.data input pipelines over a feature cache.

`acoustic_dataset` yields padded batches for the acoustic model, bucketed by
length; every batch is a dict:

  utt_id [B] string, speaker [B] int32
  phonemes [B, N] int32 (0 = padding), phoneme_lengths [B], phoneme_mask [B, N]
  mel [B, T, n_mels] float32, f0 [B, T], energy [B, T], mel_lengths [B], mel_mask [B, T]
  durations [B, N] int32: ground-truth frames per phoneme (0 where unknown),
  phone_f0 [B, N], phone_energy [B, N]: per-phoneme averages over those frames,
  has_durations [B] bool: whether the three above are real

Masks are float32 1/0. Padded mel frames hold log(log_floor), i.e. silence.

`vocoder_dataset` yields random aligned (mel, audio) crops for the vocoder.

The train / validation / test split is fixed by a hash of each utterance id,
so it does not move when utterances are added or the cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from bittts_tf.data.cache import FeatureCache

SPLITS = ("train", "validation", "test")


def split_of(utt_id: str, validation_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    digest = hashlib.sha256(("bittts-split:" + utt_id).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def split_entries(cache: FeatureCache, split: str, validation_fraction: float = 0.05,
                  test_fraction: float = 0.05) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return [e for e in cache.entries
            if split_of(e["utt_id"], validation_fraction, test_fraction) == split]


def _acoustic_example(cache: FeatureCache, entry: dict) -> dict:
    z = cache.load(entry["utt_id"])
    n = len(z["phonemes"])
    has = "durations" in z
    return {
        "utt_id": entry["utt_id"],
        "speaker": np.int32(z["speaker"]),
        "phonemes": z["phonemes"].astype(np.int32),
        "mel": z["mel"].astype(np.float32),
        "f0": z["f0"].astype(np.float32),
        "energy": z["energy"].astype(np.float32),
        "durations": z["durations"].astype(np.int32) if has else np.zeros(n, np.int32),
        "phone_f0": z["phone_f0"].astype(np.float32) if has else np.zeros(n, np.float32),
        "phone_energy": z["phone_energy"].astype(np.float32) if has else np.zeros(n, np.float32),
        "has_durations": np.bool_(has),
    }


def default_bucket_boundaries(lengths: list[int], num_buckets: int = 5) -> list[int]:
    if len(lengths) < 2 * num_buckets:
        return []
    qs = np.quantile(np.asarray(lengths), np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({int(math.ceil(q)) + 1 for q in qs})


def acoustic_dataset(cache: FeatureCache, split: str = "train", batch_size: int = 16,
                     shuffle: bool = True, seed: int = 0, bucket_boundaries: list[int] | None = None,
                     max_frames: int | None = None, drop_remainder: bool = False,
                     validation_fraction: float = 0.05, test_fraction: float = 0.05):
    """Padded, length-bucketed batches of acoustic-model examples (see module doc)."""
    import tensorflow as tf

    entries = split_entries(cache, split, validation_fraction, test_fraction)
    if max_frames is not None:
        entries = [e for e in entries if e["n_frames"] <= max_frames]
    if not entries:
        raise ValueError(f"split {split!r} of {cache.cache_dir} has no utterances")
    if bucket_boundaries is None:
        bucket_boundaries = default_bucket_boundaries([e["n_frames"] for e in entries])
    n_mels = cache.audio_config.n_mels
    rng = np.random.default_rng(seed)

    def generate():
        order = rng.permutation(len(entries)) if shuffle else range(len(entries))
        for i in order:
            yield _acoustic_example(cache, entries[i])

    float_seq = tf.TensorSpec([None], tf.float32)
    signature = {
        "utt_id": tf.TensorSpec([], tf.string), "speaker": tf.TensorSpec([], tf.int32),
        "phonemes": tf.TensorSpec([None], tf.int32), "mel": tf.TensorSpec([None, n_mels], tf.float32),
        "f0": float_seq, "energy": float_seq, "durations": tf.TensorSpec([None], tf.int32),
        "phone_f0": float_seq, "phone_energy": float_seq,
        "has_durations": tf.TensorSpec([], tf.bool),
    }
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)

    def add_lengths(x):
        return {**x, "phoneme_lengths": tf.shape(x["phonemes"])[0],
                "mel_lengths": tf.shape(x["mel"])[0]}

    ds = ds.map(add_lengths)
    silence = float(np.log(cache.audio_config.log_floor))
    padding = {k: tf.constant(0, v.dtype) for k, v in signature.items()
               if k not in ("utt_id", "has_durations")}
    padding.update({"utt_id": tf.constant(""), "mel": tf.constant(silence, tf.float32),
                    "has_durations": tf.constant(False),
                    "phoneme_lengths": tf.constant(0, tf.int32),
                    "mel_lengths": tf.constant(0, tf.int32)})
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda x: x["mel_lengths"],
        bucket_boundaries=list(bucket_boundaries),
        bucket_batch_sizes=[batch_size] * (len(bucket_boundaries) + 1),
        padding_values=padding, drop_remainder=drop_remainder)

    def add_masks(x):
        return {**x,
                "phoneme_mask": tf.sequence_mask(x["phoneme_lengths"], tf.shape(x["phonemes"])[1],
                                                 dtype=tf.float32),
                "mel_mask": tf.sequence_mask(x["mel_lengths"], tf.shape(x["mel"])[1],
                                             dtype=tf.float32)}

    return ds.map(add_masks).prefetch(tf.data.AUTOTUNE)


def vocoder_dataset(cache: FeatureCache, split: str = "train", segment_frames: int = 32,
                    batch_size: int = 16, seed: int = 0, validation_fraction: float = 0.05,
                    test_fraction: float = 0.05):
    """Random aligned crops: mel [B, F, n_mels] and audio [B, F * hop] float32.

    Mel frame i is centred on sample i * hop, so frames [s, s + F) go with
    samples [s * hop, (s + F) * hop). Shorter utterances are padded with
    silence. One crop per utterance per pass; repeat() for more.
    """
    import tensorflow as tf

    entries = split_entries(cache, split, validation_fraction, test_fraction)
    if not entries:
        raise ValueError(f"split {split!r} of {cache.cache_dir} has no utterances")
    hop = cache.audio_config.hop_length
    n_mels = cache.audio_config.n_mels
    silence = float(np.log(cache.audio_config.log_floor))
    rng = np.random.default_rng(seed)

    def generate():
        for i in rng.permutation(len(entries)):
            z = cache.load(entries[i]["utt_id"])
            mel, audio = z["mel"], z["audio"].astype(np.float32) / 32767.0
            start = int(rng.integers(0, max(1, len(mel) - segment_frames + 1)))
            mel_crop = mel[start:start + segment_frames]
            audio_crop = audio[start * hop:(start + segment_frames) * hop]
            mel_crop = np.pad(mel_crop, ((0, segment_frames - len(mel_crop)), (0, 0)),
                              constant_values=silence)
            audio_crop = np.pad(audio_crop, (0, segment_frames * hop - len(audio_crop)))
            yield {"mel": mel_crop.astype(np.float32), "audio": audio_crop}

    signature = {"mel": tf.TensorSpec([segment_frames, n_mels], tf.float32),
                 "audio": tf.TensorSpec([segment_frames * hop], tf.float32)}
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
