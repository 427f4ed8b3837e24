"""Callbacks for the trainer: stop on NaN/Inf, periodic checkpoints,
held-out evaluation, a CPU-time budget, TensorBoard scalars / mel images /
audio, and per-step records in JSON-lines files."""

from __future__ import annotations

import contextlib
import math
import time

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.audio.plots import mel_figure_png
from bittts_tf.training import checkpoints
from bittts_tf.training.run_log import JsonLines


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


class CpuClock:
    """Process CPU seconds spent training, carried across resumes (the
    checkpoint manifest stores them), so that runs compared at "equal CPU
    time" are, even when killed and resumed. Held-out evaluation is paused out:
    it is bookkeeping, not training."""

    def __init__(self, already_spent: float = 0.0):
        self._offset = float(already_spent) - time.process_time()

    def seconds(self) -> float:
        return self._offset + time.process_time()

    @contextlib.contextmanager
    def paused(self):
        start = time.process_time()
        try:
            yield
        finally:
            self._offset -= time.process_time() - start


class LossFile(keras.callbacks.Callback):
    """losses.jsonl: the training logs of every step."""

    def __init__(self, path, trainer, resume_step):
        super().__init__()
        self.trainer = trainer
        self.record = JsonLines(path, resume_step)

    def on_train_batch_end(self, batch, logs=None):
        self.record.append({"step": int(self.trainer.step), **_floats(logs)})


def evaluate_held_out(trainer, batches) -> dict[str, float]:
    """The trainer's test_step over the held-out batches, each batch's means
    weighted by its number of utterances."""
    totals, count = {}, 0
    for batch in batches:
        n = int(np.shape(batch["phoneme_lengths"])[0])
        for k, v in _floats(trainer.test_step(batch)).items():
            totals[k] = totals.get(k, 0.0) + n * v
        count += n
    return {k: v / count for k, v in totals.items()}


class HeldOutEvaluation(keras.callbacks.Callback):
    """held_out.jsonl: held-out losses every `every` steps (and before the
    first step of a new run), with the CPU seconds trained so far: the curves
    that compare runs."""

    def __init__(self, trainer, batches, every, path, clock, resume_step):
        super().__init__()
        self.trainer = trainer
        self.batches = batches
        self.every = every
        self.clock = clock
        self.record = JsonLines(path, resume_step)

    def evaluate(self) -> dict[str, float]:
        with self.clock.paused():
            losses = evaluate_held_out(self.trainer, self.batches)
        step = int(self.trainer.step)
        if self.record.last_step != step:
            self.record.append({"step": step, "cpu_seconds": round(self.clock.seconds(), 1),
                                **losses})
        return losses

    def on_train_begin(self, logs=None):
        if int(self.trainer.step) == 0:
            self.evaluate()

    def on_train_batch_end(self, batch, logs=None):
        if int(self.trainer.step) % self.every == 0:
            self.evaluate()


class CpuBudget(keras.callbacks.Callback):
    """Stops training at the first multiple of `every` steps (a checkpoint)
    reached after `max_seconds` of training CPU time."""

    def __init__(self, trainer, clock, max_seconds, every):
        super().__init__()
        self.trainer = trainer
        self.clock = clock
        self.max_seconds = max_seconds
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.step)
        if step % self.every == 0 and self.clock.seconds() >= self.max_seconds:
            print(f"\nCPU budget of {self.max_seconds / 60:.1f} min spent at step {step} "
                  f"({self.clock.seconds() / 60:.1f} min); stopping")
            self.trainer.stop_training = True


class PeriodicCheckpoint(keras.callbacks.Callback):
    def __init__(self, trainer, directory, every, manifest, keep=3, clock=None):
        super().__init__()
        self.trainer = trainer
        self.directory = directory
        self.every = every
        self.manifest = manifest
        self.keep = keep
        self.clock = clock
        self.saved = []

    def save(self):
        step = int(self.trainer.step)
        cpu = {"cpu_seconds": self.clock.seconds()} if self.clock else {}
        # Writing is bookkeeping, like held-out evaluation: the clock that
        # compares runs counts training only (writing a tiny acoustic
        # checkpoint took 0.12 CPU s in the test that caught it).
        with self.clock.paused() if self.clock else contextlib.nullcontext():
            path = checkpoints.save(
                self.directory, step, self.trainer.models,
                {"generator_side": self.trainer.optimizer,
                 "discriminators": self.trainer.discriminator_optimizer},
                {**self.manifest, "data_position": step, **cpu}, keep=self.keep)
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
            f0 = trainer.vocoder_f0(sample)
            if f0 is None:
                audio = trainer.generate(mels[-1][None].astype(np.float32))
            else:
                # A source-phase vocoder needs every frame's F0: the
                # recording's, so it voices the ground-truth mel.
                audio = trainer.generate(mels[0][None].astype(np.float32), f0[:1, :n])
            tf.summary.audio("audio", audio[..., None], self.sample_rate)
