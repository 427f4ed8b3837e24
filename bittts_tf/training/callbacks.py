"""Callbacks for the trainer: stop on NaN/Inf, periodic checkpoints,
TensorBoard scalars / mel images / audio, and a per-step loss record."""

from __future__ import annotations

import io
import math

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.training import checkpoints


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; training stops before saving anything."""


def _floats(logs) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in (logs or {}).items()}


class StopOnNonFinite(keras.callbacks.Callback):
    def __init__(self, trainer, checkpoint_dir=None):
        super().__init__()
        self.trainer = trainer
        self.checkpoint_dir = checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in _floats(logs).items() if not math.isfinite(v)}
        if bad:
            last = checkpoints.latest(self.checkpoint_dir) if self.checkpoint_dir else None
            raise NonFiniteLossError(
                f"non-finite loss at step {int(self.trainer.step)}: "
                + ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
                + f"; stopped without saving. Last good checkpoint: {last or 'none'}")


class PeriodicCheckpoint(keras.callbacks.Callback):
    def __init__(self, trainer, directory, every, manifest, keep=3):
        super().__init__()
        self.trainer = trainer
        self.directory = directory
        self.every = every
        self.manifest = manifest
        self.keep = keep
        self.saved = []

    def save(self):
        step = int(self.trainer.step)
        path = checkpoints.save(
            self.directory, step, self.trainer.models,
            {"generator_side": self.trainer.optimizer,
             "discriminators": self.trainer.discriminator_optimizer},
            {**self.manifest, "data_position": step}, keep=self.keep)
        self.saved.append(step)
        return path

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.step)
        if step % self.every == 0 and (not self.saved or self.saved[-1] != step):
            self.save()


class StepLog(keras.callbacks.Callback):
    """Per-step logs as {step: {name: value}} (for tests and the final summary)."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer
        self.steps = {}

    def on_train_batch_end(self, batch, logs=None):
        self.steps[int(self.trainer.step)] = _floats(logs)


def mel_figure_png(mels: list[np.ndarray], titles: list[str]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(np.asarray(mel).T, origin="lower", aspect="auto", interpolation="none")
        ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


class TensorBoardLogger(keras.callbacks.Callback):
    """Scalars every `scalar_every` steps; mel images, audio and the held-out
    losses every `media_every` steps, from one held-out batch."""

    def __init__(self, trainer, log_dir, sample_batch, scalar_every=10, media_every=200,
                 sample_rate=16000):
        super().__init__()
        self.trainer = trainer
        self.writer = tf.summary.create_file_writer(log_dir)
        self.sample = sample_batch
        self.scalar_every = scalar_every
        self.media_every = media_every
        self.sample_rate = sample_rate

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.step)
        with self.writer.as_default(step=step):
            if step % self.scalar_every == 0:
                for k, v in _floats(logs).items():
                    tf.summary.scalar(f"train/{k}", v)
                tf.summary.scalar("train/learning_rate",
                                  float(self.trainer.optimizer.learning_rate))
            if step % self.media_every == 0:
                self.write_media()
        self.writer.flush()

    def write_media(self):
        trainer, sample = self.trainer, self.sample
        n = int(sample["mel_lengths"][0])
        mels, titles = [sample["mels"][0, :n]], ["ground truth"]
        if trainer.acoustic is not None:
            held_out = trainer.test_step(sample)
            for k, v in held_out.items():
                tf.summary.scalar(f"held_out/{k}", float(v))
            mel, lengths, _ = trainer.acoustic.infer(sample["phonemes"][:1],
                                                     sample["phoneme_lengths"][:1],
                                                     sample["speakers"][:1])
            mels.append(np.asarray(mel[0, :int(lengths[0])]))
            titles.append("synthesized (predicted durations)")
        image = tf.image.decode_png(mel_figure_png(mels, titles))[None]
        tf.summary.image("mel", image)
        if trainer.generator is not None:
            audio = trainer.generator(mels[-1][None].astype(np.float32))
            tf.summary.audio("audio", audio[..., None], self.sample_rate)
