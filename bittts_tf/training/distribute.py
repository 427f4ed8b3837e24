"""Training under TensorFlow's distribution strategies (tools/train.py --strategy).

- "default": one device, the trainer's original single-device code.
- "mirrored": tf.distribute.MirroredStrategy over the local GPUs (the CPU when
  there are none).
- "multi_worker": tf.distribute.MultiWorkerMirroredStrategy over the machines
  of TF_CONFIG.

Every replica gets a contiguous slice of each global batch, padded as the
whole global batch is (so a replica's data are exactly the rows the single
device would have seen), and a worker builds only its replicas' rows. Losses
are computed from cross-replica sums (`ReplicaReduce`): every replica's loss
value is the global batch's, and its gradient is its own share, so the sum of
the replicas' gradients, which the Keras optimizer all-reduces, is the
single-device gradient of the global batch.
"""

from __future__ import annotations

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.training import callbacks, checkpoints, data

# The pure parts live in `cluster`, importable without TensorFlow
# (tools/train.py checks its flags and TF_CONFIG with them first).
from bittts_tf.training.cluster import (
    COLLECTIVE_TIMEOUT_SECONDS, DistributeError, WorkerLost, check_precision, check_strategy,
    is_chief_task, parse_tf_config)


def make_strategy(name: str):
    """(strategy or None for "default", is_chief). Call before any other TF op."""
    check_strategy(name)
    if name == "default":
        return None, True
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    config = parse_tf_config(os.environ.get("TF_CONFIG"))
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return strategy, is_chief_task(config)


def set_precision(precision: str) -> None:
    """The global Keras dtype policy of the models built next."""
    check_precision(precision)
    import keras
    keras.mixed_precision.set_global_policy(precision)


def check_batch_size(strategy, batch_size: int) -> int:
    """The per-replica batch size; the global batch must split evenly."""
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if batch_size % replicas:
        raise DistributeError(f"--batch_size={batch_size} does not split over "
                              f"{replicas} replicas; use a multiple of {replicas}")
    return batch_size // replicas


class ReplicaReduce:
    """Sums over the replicas of the global batch, inside strategy.run.

    `sum(x)`: the all-reduced sum of x whose gradient is the local one (each
    replica differentiates its own share; the optimizer sums the shares).
    """

    def __init__(self, context):
        self.context = context
        self.replicas = context.num_replicas_in_sync
        self.replica_id = context.replica_id_in_sync_group

    def sum(self, x):
        context = self.context

        @tf.custom_gradient
        def global_sum(local):
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(local))

            def grad(upstream):
                return upstream

            return total, grad

        return global_sum(tf.convert_to_tensor(x))

    def mean(self, x):
        """Mean over every element of x on every replica."""
        x = tf.convert_to_tensor(x)
        count = tf.cast(tf.size(x), x.dtype)
        return self.sum(tf.reduce_sum(x)) / self.sum(count)

    def batch_mean(self, local_mean, local_batch):
        """Global mean of a per-utterance quantity given its local batch mean."""
        local_batch = tf.cast(local_batch, local_mean.dtype)
        return self.sum(local_mean * local_batch) / self.sum(local_batch)


def replica_reduce():
    """A ReplicaReduce inside strategy.run over several replicas; None elsewhere
    (one device, or cross-replica context): the original single-device ops."""
    if not tf.distribute.has_strategy():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return ReplicaReduce(context)


def multi_worker() -> bool:
    """True under a MultiWorkerMirroredStrategy spanning several workers."""
    strategy = tf.distribute.get_strategy()
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def replica_rows(utterances: list[dict], batch_size: int, hop_length: int, seed: int,
                 batch_index: int, replica: int, replicas: int) -> dict[str, np.ndarray]:
    """Replica `replica`'s rows of global batch `batch_index`, padded to the
    global batch's lengths (what data.resumable_dataset gives one device)."""
    picked = data.batch_indices(len(utterances), batch_size, seed, batch_index)
    chosen = [utterances[i] for i in picked]
    n_tokens = max(len(u["phonemes"]) for u in chosen)
    n_frames = max(len(u["mel"]) for u in chosen)
    per = batch_size // replicas
    rows = data.pad_batch(chosen[replica * per:(replica + 1) * per], hop_length)
    # Pad to the global batch's lengths.
    out = {}
    for key, value in rows.items():
        if value.ndim >= 2:
            target = {"phonemes": n_tokens, "durations": n_tokens,
                      "audio": n_frames * hop_length}.get(key, n_frames)
            width = [(0, 0)] * value.ndim
            width[1] = (0, target - value.shape[1])
            value = np.pad(value, width)
        out[key] = value
    return out


def distributed_dataset(strategy, utterances: list[dict], batch_size: int, hop_length: int,
                        seed: int, start_batch: int = 0):
    """Endless global batches from `start_batch` on, split over the replicas:
    worker w's input pipeline makes only its local replicas' rows, in the fixed
    order of data.batch_indices, so resuming at a step replays the same rows."""
    replicas = strategy.num_replicas_in_sync
    per_replica = check_batch_size(strategy, batch_size)
    n_mels = utterances[0]["mel"].shape[1]

    def dataset_fn(input_context):
        local = replicas // input_context.num_input_pipelines
        first = input_context.input_pipeline_id * local

        def generate():
            index = start_batch
            while True:
                # Local replicas take consecutive elements in turn.
                for j in range(local):
                    yield replica_rows(utterances, batch_size, hop_length, seed, index,
                                       first + j, replicas)
                index += 1

        return tf.data.Dataset.from_generator(
            generate, output_signature=data.batch_spec(per_replica, n_mels)).prefetch(2)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset_fn, options)


def global_cpu_seconds(strategy, local_seconds: float) -> float:
    """CPU seconds summed over the workers (every worker must call this together)."""
    if strategy is None:
        return local_seconds
    local_replicas = len(strategy.extended.worker_devices)
    share = tf.constant(local_seconds / local_replicas, tf.float64)
    per_replica = strategy.run(lambda: tf.identity(share))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))


def agree(strategy, value: int, what: str) -> None:
    """Stops with an error unless every worker holds the same integer `value`."""
    if strategy is None:
        return
    local = tf.constant([float(value)], tf.float64)
    values = strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0).numpy()
    if values.min() != values.max():
        raise DistributeError(f"the workers disagree on {what}: {values.min():g} to "
                              f"{values.max():g} (each worker must see the same --output_dir, "
                              f"e.g. on shared storage)")


@contextlib.contextmanager
def stop_cleanly_on_lost_worker(trainer, checkpoint_dir: str):
    """Turns the error a lost peer raises in a collective into one line that
    says what to do; TensorFlow's own message follows in brief."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError) as e:
        last = checkpoints.latest(checkpoint_dir)
        # Its message ends with the cause, after the trace of the node.
        lines = [line.strip() for line in str(e.message).splitlines()
                 if line.strip() and not line.strip().startswith(("File ", "Detected at node"))]
        detail = " ".join(" ".join(lines[-2:]).split())[:300]
        raise WorkerLost(
            f"a worker stopped or became unreachable during training (this worker was at "
            f"step {_step_or_unknown(trainer)}); restart every worker with the same command to "
            f"resume from {last or 'the start (no checkpoint yet)'}. "
            f"TensorFlow said: {type(e).__name__}: {detail}") from None


def _step_or_unknown(trainer) -> str:
    try:
        return str(int(trainer.step))
    except Exception:  # noqa: BLE001 -- the runtime may be gone with the peer
        return "unknown"


class SharedClock:
    """callbacks.CpuClock for a strategy: the training CPU seconds of every
    worker together (plus those of the run it resumes), all-reduced at the
    steps `SyncClock` names, so every worker takes the same budget decision
    and the chief's checkpoint stores the run's total."""

    def __init__(self, strategy, already_spent: float = 0.0):
        self.strategy = strategy
        self.start = float(already_spent)
        self.local = callbacks.CpuClock(0.0)
        self._synced = self.start

    def sync(self) -> float:
        self._synced = self.start + global_cpu_seconds(self.strategy, self.local.seconds())
        return self._synced

    def seconds(self) -> float:
        return self._synced

    def paused(self):
        return self.local.paused()


class SyncClock(keras.callbacks.Callback):
    """All-reduces the SharedClock at every step that is a multiple of one of
    `every` (checkpoints, evaluations), before the callbacks that read it."""

    def __init__(self, trainer, clock: SharedClock, every):
        super().__init__()
        self.trainer = trainer
        self.clock = clock
        self.every = sorted(e for e in every if e > 0)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.trainer.step)
        if any(step % e == 0 for e in self.every):
            self.clock.sync()


class AdversarialPhase(keras.callbacks.Callback):
    """Fixes trainer.adversarial_phase before each step and retraces the train
    function when the step crosses --generator_warmup_steps."""

    def __init__(self, trainer, warmup_steps: int):
        super().__init__()
        self.trainer = trainer
        self.warmup_steps = warmup_steps

    def on_train_batch_begin(self, batch, logs=None):
        adversarial = int(self.trainer.step) >= self.warmup_steps
        if adversarial != self.trainer.adversarial_phase:
            self.trainer.adversarial_phase = adversarial
            self.trainer.make_train_function(force=True)


def worker_callbacks(callback_list: list, trainer, clock: SharedClock, warmup_steps: int,
                     sync_every) -> list:
    """The callbacks of one worker under a strategy: the clock synchronized
    first, then the given ones."""
    extra = [SyncClock(trainer, clock, sync_every)]
    if trainer.generator is not None:
        extra.append(AdversarialPhase(trainer, warmup_steps))
    return extra + list(callback_list)
