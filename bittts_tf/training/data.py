"""Padded, resumable training batches from a list of utterances.

The project's one input pipeline: training, held-out evaluation and the
tools that batch utterances all go through it. An utterance is a dict of
numpy arrays as the feature cache stores them (bittts_tf.data.cache; which
utterances train and which are held out: cache.split_of): phonemes [N],
mel [T, n_mels], f0 [T], energy [T], audio [n] (int16 at
bittts_tf.audio.io.PCM16_SCALE, or float), speaker (scalar) and optionally
durations [N] (ground truth, used only to measure alignment or behind a
flag).

The batch order is a pure function of (seed, batch index): epoch e uses the
permutation drawn from seed + e, so resuming at batch k after a kill replays
exactly the batches the killed run would have seen.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bittts_tf.audio.io import from_pcm16

BATCH_KEYS = ("phonemes", "phoneme_lengths", "mels", "mel_lengths", "f0", "energy", "speakers",
              "durations", "audio")


def pad_batch(utterances: list[dict], hop_length: int) -> dict[str, np.ndarray]:
    b = len(utterances)
    n_tokens = max(len(u["phonemes"]) for u in utterances)
    n_frames = max(len(u["mel"]) for u in utterances)
    n_mels = utterances[0]["mel"].shape[1]
    batch = {"phonemes": np.zeros((b, n_tokens), np.int32),
             "phoneme_lengths": np.zeros((b,), np.int32),
             "mels": np.zeros((b, n_frames, n_mels), np.float32),
             "mel_lengths": np.zeros((b,), np.int32),
             "f0": np.zeros((b, n_frames), np.float32),
             "energy": np.zeros((b, n_frames), np.float32),
             "speakers": np.zeros((b,), np.int32),
             "durations": np.zeros((b, n_tokens), np.int32),
             # Audio aligned with the frames: frame t covers samples [t*hop, (t+1)*hop).
             "audio": np.zeros((b, n_frames * hop_length), np.float32)}
    for i, u in enumerate(utterances):
        n, t = len(u["phonemes"]), len(u["mel"])
        batch["phonemes"][i, :n] = u["phonemes"]
        batch["phoneme_lengths"][i] = n
        batch["mels"][i, :t] = u["mel"]
        batch["mel_lengths"][i] = t
        batch["f0"][i, :t] = u["f0"]
        batch["energy"][i, :t] = u["energy"]
        batch["speakers"][i] = int(u.get("speaker", 0))
        if "durations" in u:
            batch["durations"][i, :n] = u["durations"]
        audio = from_pcm16(u["audio"])[:t * hop_length]
        batch["audio"][i, :len(audio)] = audio
    return batch


def batch_indices(n_utterances: int, batch_size: int, seed: int, batch_index: int) -> np.ndarray:
    """Utterance indices of global batch `batch_index` (drop-remainder epochs)."""
    per_epoch = n_utterances // batch_size
    if per_epoch == 0:
        raise ValueError(f"{n_utterances} utterances cannot fill one batch of {batch_size}")
    epoch, position = divmod(batch_index, per_epoch)
    order = np.random.default_rng(seed + epoch).permutation(n_utterances)
    return order[position * batch_size:(position + 1) * batch_size]


def resumable_dataset(utterances: list[dict], batch_size: int, hop_length: int, seed: int,
                      start_batch: int = 0) -> tf.data.Dataset:
    """Endless padded batches starting at global batch `start_batch`."""
    n_mels = utterances[0]["mel"].shape[1]

    def generate():
        index = start_batch
        while True:
            picked = batch_indices(len(utterances), batch_size, seed, index)
            yield pad_batch([utterances[i] for i in picked], hop_length)
            index += 1

    return tf.data.Dataset.from_generator(
        generate, output_signature=batch_spec(batch_size, n_mels)).prefetch(2)


def batch_spec(batch_size: int, n_mels: int) -> dict:
    """The tf.TensorSpec of each field of a padded batch (pad_batch)."""
    return {"phonemes": tf.TensorSpec([batch_size, None], tf.int32),
            "phoneme_lengths": tf.TensorSpec([batch_size], tf.int32),
            "mels": tf.TensorSpec([batch_size, None, n_mels], tf.float32),
            "mel_lengths": tf.TensorSpec([batch_size], tf.int32),
            "f0": tf.TensorSpec([batch_size, None], tf.float32),
            "energy": tf.TensorSpec([batch_size, None], tf.float32),
            "speakers": tf.TensorSpec([batch_size], tf.int32),
            "durations": tf.TensorSpec([batch_size, None], tf.int32),
            "audio": tf.TensorSpec([batch_size, None], tf.float32)}


def fixed_dataset(utterances: list[dict], batch_size: int, hop_length: int) -> tf.data.Dataset:
    """The utterances once, in order (held-out evaluation)."""
    batches = [pad_batch(utterances[i:i + batch_size], hop_length)
               for i in range(0, len(utterances), batch_size)]

    def generate():
        yield from batches

    first = batches[0]
    spec = {k: tf.TensorSpec([None] * v.ndim, tf.as_dtype(v.dtype)) for k, v in first.items()}
    return tf.data.Dataset.from_generator(generate, output_signature=spec)


def corpus_statistics(utterances: list[dict]) -> dict[str, float]:
    """Mean / std of voiced log-F0, of energy and of log-mel: the acoustic
    model's input and target scaling."""
    mel = np.concatenate([u["mel"] for u in utterances])
    f0 = np.concatenate([u["f0"] for u in utterances])
    energy = np.concatenate([u["energy"] for u in utterances])
    log_f0 = np.log(f0[f0 > 0]) if np.any(f0 > 0) else np.array([0.0, 1.0])
    return {"log_f0_mean": float(log_f0.mean()), "log_f0_std": float(max(log_f0.std(), 1e-3)),
            "energy_mean": float(energy.mean()), "energy_std": float(max(energy.std(), 1e-3)),
            "mel_mean": float(mel.mean()), "mel_std": float(max(mel.std(), 1e-3))}
