"""One training run, start or resume: what tools/train.py does, callable from
tests. The output directory holds checkpoints, losses.jsonl (one line per
step) and TensorBoard logs; everything needed to resume or synthesize is in
the checkpoints' manifests."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras

from bittts_tf import fileio
from bittts_tf.models import build, configs
from bittts_tf.training import callbacks, checkpoints, data, distribute, jets_trainer, run_log
from bittts_tf.training.config import TrainingConfig, TrainingInputError
from bittts_tf.training import run_inputs
from bittts_tf.training.run_inputs import (  # noqa: F401  (RunOptions, load_corpus: re-exported)
    RECOVERED_MODELS, Corpus, RunOptions, init_checkpoint, is_recovered, load_corpus,
    require_mode)


def _model_config(options: RunOptions, corpus: Corpus, train_utterances) -> configs.ModelConfig:
    config = configs.preset(options.config, quantize=options.quantize,
                            weight_bits=options.weight_bits,
                            vocoder_overrides=options.vocoder_overrides,
                            n_symbols=len(corpus.front_end.symbols), n_speakers=corpus.n_speakers,
                            **{**options.acoustic_overrides,
                               **data.corpus_statistics(train_utterances)})
    config.quantize_activations = options.quantize_activations
    return config


def build_trainer(model_config: configs.ModelConfig,
                  training_config: TrainingConfig, strategy=None) -> jets_trainer.JetsTrainer:
    """The models the mode trains, in a compiled trainer with its optimizers
    (in the strategy's scope, when given)."""
    if strategy is not None:
        with strategy.scope():
            return build_trainer(model_config, training_config)
    mode = training_config.mode
    # The acoustic model (masks, alignment search, forward sum, variance
    # adaptor) runs in float32; mixed precision speeds up the vocoder and
    # discriminators.
    with build.dtype_policy("float32"):
        acoustic = build.build_acoustic(model_config) if mode in ("acoustic", "joint") else None
    generator = build.build_generator(model_config) if mode != "acoustic" else None
    discriminators = build.build_discriminators(model_config) if mode != "acoustic" else None
    teacher = None
    if training_config.teacher_acoustic:
        with build.dtype_policy("float32"):
            teacher = load_teacher(training_config.teacher_acoustic, model_config, mode)
    policy = keras.mixed_precision.global_policy().name
    trainer = jets_trainer.JetsTrainer(training_config, model_config.audio, acoustic, generator,
                                       discriminators, teacher=teacher, dtype="float32")
    trainer.compile(jets_trainer.make_optimizer(training_config),
                    jets_trainer.make_optimizer(training_config) if discriminators else None,
                    loss_scaling=policy == "mixed_float16")
    return trainer


def load_teacher(path: str, model_config: configs.ModelConfig, mode: str):
    """The frozen acoustic model of checkpoint (or run) `path`, for vocoder fine-tuning."""
    if mode != "vocoder":
        raise TrainingInputError(f"a teacher acoustic model serves vocoder training, not mode "
                                 f"{mode!r}")
    path = checkpoints.resolve(path, f"--teacher_acoustic={path}")
    manifest = checkpoints.read_manifest(path)
    teacher_config = checkpoints.model_config(path, manifest)
    if teacher_config.audio != model_config.audio:
        raise TrainingInputError(f"teacher {path} was trained for {teacher_config.audio}, the "
                                 f"vocoder for {model_config.audio}")
    teacher = build.build_acoustic(teacher_config)
    checkpoints.restore(path, {"acoustic": teacher})
    teacher.trainable = False
    return teacher


def held_out_batches(held_out: list, training_config: TrainingConfig, hop_length: int) -> list:
    return list(data.fixed_dataset(held_out, training_config.batch_size, hop_length))


_DISCRIMINATOR_FIELDS = ("periods", "n_scales", "discriminator_width", "resolution_ffts")


def _discriminators_differ(path: str, model_config: configs.ModelConfig) -> bool:
    stored = checkpoints.read_manifest(path)["model_config"].get("vocoder") or {}
    ours = dataclasses.asdict(model_config.vocoder)
    # A field the checkpoint's config predates had its default then.
    defaults = dataclasses.asdict(type(model_config.vocoder)())
    theirs = {k: stored.get(k, defaults[k]) for k in _DISCRIMINATOR_FIELDS if k in ours}
    return any(tuple(theirs[k]) != tuple(ours[k]) if isinstance(ours[k], tuple) else
               theirs[k] != ours[k] for k in theirs)


def train(options: RunOptions, strategy=None, is_chief: bool = True) -> dict:
    """Trains to options.steps, or until options.max_cpu_minutes of training
    CPU time are spent (resuming from the newest checkpoint in output_dir), and
    returns the held-out losses. `strategy`: a tf.distribute strategy made
    already (tests); else options.strategy makes one (before any TF op)."""
    if strategy is None and options.strategy != "default":
        strategy, is_chief = distribute.make_strategy(options.strategy)
    if options.precision != keras.mixed_precision.global_policy().name:
        distribute.set_precision(options.precision)
        try:
            return _train(options, strategy, is_chief)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return _train(options, strategy, is_chief)


def _train(options: RunOptions, strategy, is_chief: bool) -> dict:
    # The rest of run_inputs.check_inputs is met on the way (make_strategy,
    # set_precision, init_checkpoint, load_corpus, _configs); tools/train.py
    # runs it whole before importing this module.
    run_inputs.check_steps(options)
    keras.utils.set_random_seed(options.seed)
    os.makedirs(options.output_dir, exist_ok=True)
    ckpt_dir = os.path.join(options.output_dir, "checkpoints")
    if is_chief:
        # A save killed half-way leaves its temporary file (checkpoint-sized).
        fileio.remove_stale_temps(ckpt_dir)
    resume_from = checkpoints.latest(ckpt_dir)
    start_from = resume_from or init_checkpoint(options.init_from, options.mode)

    corpus = load_corpus(options.corpus, configs.preset(options.config).audio, options.held_out)
    if resume_from:
        _require_same_held_out(resume_from, options, corpus)
    model_config, training_config = _configs(options, corpus, resume_from)
    if strategy is not None:
        distribute.check_batch_size(strategy, training_config.batch_size)
    trainer = build_trainer(model_config, training_config, strategy)
    trainer.run_eagerly = options.run_eagerly
    print(build.format_quantization_table(
        {name: m for name, m in trainer.models.items() if name != "discriminators"}))

    start = _Start()
    if start_from:
        start = _restore(trainer, start_from, resume_from, model_config, training_config,
                         options.init_new_layers)
    if strategy is not None:
        # Every worker must continue from the same checkpoint.
        distribute.agree(strategy, start.step, "the step to resume from")
        if training_config.mode != "acoustic":
            trainer.adversarial_phase = start.step >= training_config.generator_warmup_steps
    if start.step % options.checkpoint_every:
        # Keras counts epochs of checkpoint_every steps from step // every: the
        # run would go past --steps and end between checkpoints.
        raise TrainingInputError(f"{start_from} is at step {start.step}, which "
                                 f"--checkpoint_every={options.checkpoint_every} does not "
                                 "divide: give an interval that divides it")
    if start.step >= options.steps:
        print(f"already at step {start.step} >= --steps={options.steps}; nothing to train")

    manifest = {"model_config": model_config.to_dict(),
                "training_config": dataclasses.asdict(training_config),
                "front_end": corpus.front_end.to_dict(), "corpus": options.corpus,
                "held_out_ids": corpus.held_out_ids,
                "init_from": start.init_record}
    dataset, clock = _dataset_and_clock(strategy, corpus.train, model_config, training_config,
                                        start)
    callback_list, step_log, held_out_eval = _callbacks(
        options, trainer, strategy, is_chief, ckpt_dir, manifest, clock, start.step,
        corpus.held_out, model_config, training_config)
    _fit(options, trainer, strategy, dataset, callback_list, ckpt_dir, start)

    # Held-out losses of the final model.
    evaluation = held_out_eval.evaluate() if options.evaluate and is_chief else {}
    result = {"step": int(trainer.step), "held_out": evaluation,
              "cpu_seconds": clock.seconds(),
              "train_losses": step_log.steps, "checkpoint": checkpoints.latest(ckpt_dir),
              "trainer": trainer}
    return result


def _require_same_held_out(resume_from: str, options: RunOptions, corpus: Corpus) -> None:
    """A resumed run's corpus must hold out what the run held out, or its
    held-out curve would join two sets of utterances."""
    manifest = checkpoints.read_manifest(resume_from)
    if manifest.get("held_out_ids", corpus.held_out_ids) != corpus.held_out_ids:
        raise TrainingInputError(
            f"--corpus={options.corpus} --held_out={options.held_out} does not hold out what "
            f"the run resumed from {resume_from} held out (it was trained on "
            f"--corpus={manifest.get('corpus')}, {len(manifest['held_out_ids'])} held out): "
            "resume with its corpus, or start another --output_dir")


def _configs(options: RunOptions, corpus: Corpus, resume_from: str | None
             ) -> tuple[configs.ModelConfig, TrainingConfig]:
    """New from the options, or the ones the checkpoint was trained with."""
    if resume_from:
        manifest = checkpoints.read_manifest(resume_from)
        model_config = checkpoints.model_config(resume_from, manifest)
        training_config = checkpoints.training_config(resume_from, manifest)
        require_mode(resume_from, training_config.mode, options.mode)
        return model_config, training_config
    return _model_config(options, corpus, corpus.train), run_inputs.training_config(options)


@dataclasses.dataclass
class _Start:
    """Where training starts: a fresh run at step 0, or a checkpoint's step."""

    step: int = 0
    cpu_seconds: float = 0.0
    init_record: str = ""  # the manifest's init_from: the run's first checkpoint


def _restore(trainer, start_from: str, resume_from: str | None,
             model_config: configs.ModelConfig, training_config: TrainingConfig,
             new_layers: bool = False) -> _Start:
    """Resumes exactly where the checkpoint left off: weights, optimizer
    moments, dropout seeds, step and data position. `new_layers` (an init,
    not a resume): model variables the checkpoint lacks keep their initial
    values, and the optimizers start fresh at step 0."""
    models = dict(trainer.models)
    optimizers = {"generator_side": trainer.optimizer,
                  "discriminators": trainer.discriminator_optimizer}
    recovered = not resume_from and is_recovered(checkpoints.read_manifest(start_from))
    if recovered:
        models = {name: models[name] for name in RECOVERED_MODELS[training_config.mode]}
        optimizers = {}
        print(f"{start_from} holds recovered weights only: the optimizers and "
              "discriminators start fresh at step 0")
    elif not resume_from and _discriminators_differ(start_from, model_config):
        # A new adversarial stage may change the discriminators (e.g. drop
        # the scale ones): they start fresh, the generator carries over.
        print(f"discriminators start fresh: their config differs from {start_from}'s")
        models.pop("discriminators", None)
        optimizers.pop("discriminators")
    if new_layers and not resume_from:
        manifest = checkpoints.restore(start_from, models, new_variables_ok=True)
        manifest = {**manifest, "step": 0, "cpu_seconds": 0.0}
        if not recovered:
            print("--init_new_layers: the optimizers start fresh at step 0")
    else:
        manifest = checkpoints.restore(start_from, models, optimizers)
    step = int(manifest["step"])
    cpu_seconds = float(manifest.get("cpu_seconds", 0.0))
    if int(trainer.step) != step:
        raise checkpoints.CheckpointError(f"{start_from}: manifest step {step} but the "
                                          f"optimizer counter says {int(trainer.step)}")
    init_record = manifest.get("init_from", "") if resume_from else start_from
    verb = "resumed" if resume_from else "initialized"
    print(f"{verb} from {start_from} at step {step} ({cpu_seconds / 60:.1f} CPU minutes)")
    return _Start(step, cpu_seconds, init_record)


def _dataset_and_clock(strategy, train_utterances: list, model_config: configs.ModelConfig,
                       training_config: TrainingConfig, start: _Start):
    """The training batches from the start's data position, and the CPU
    clock that goes on from its time (shared between workers)."""
    if strategy is None:
        dataset = data.resumable_dataset(train_utterances, training_config.batch_size,
                                         model_config.audio.hop_length, training_config.seed,
                                         start_batch=start.step)
        return dataset, callbacks.CpuClock(start.cpu_seconds)
    dataset = distribute.distributed_dataset(strategy, train_utterances,
                                             training_config.batch_size,
                                             model_config.audio.hop_length,
                                             training_config.seed, start_batch=start.step)
    return dataset, distribute.SharedClock(strategy, start.cpu_seconds)


def _callbacks(options: RunOptions, trainer, strategy, is_chief: bool, ckpt_dir: str,
               manifest: dict, clock, step: int, held_out: list,
               model_config: configs.ModelConfig, training_config: TrainingConfig):
    """(callbacks, the step log, the held-out evaluation or None): under a
    strategy only the chief writes."""
    sample = data.pad_batch(held_out[:2], model_config.audio.hop_length)
    step_log = callbacks.StepLog(trainer)
    held_out_eval = None
    if is_chief:
        held_out_eval = callbacks.HeldOutEvaluation(
            trainer, held_out_batches(held_out, training_config, model_config.audio.hop_length),
            options.eval_every or options.checkpoint_every,
            os.path.join(options.output_dir, run_log.HELD_OUT), clock, step)
        checkpointer = callbacks.PeriodicCheckpoint(trainer, ckpt_dir, options.checkpoint_every,
                                                    manifest, clock=clock)
        callback_list = [
            callbacks.StopOnNonFinite(trainer, ckpt_dir),   # first: nothing saved after a NaN
            callbacks.LossFile(os.path.join(options.output_dir, run_log.LOSSES), trainer, step),
            step_log,
            callbacks.TensorBoardLogger(trainer, os.path.join(options.output_dir, "tensorboard"),
                                        sample, options.scalar_every, options.media_every,
                                        model_config.audio.sample_rate),
            checkpointer,
        ]
        if options.evaluate:
            callback_list.append(held_out_eval)
    else:
        callback_list = [callbacks.StopOnNonFinite(trainer, ckpt_dir), step_log]
    if strategy is not None:
        callback_list = distribute.worker_callbacks(
            callback_list, trainer, clock, training_config.generator_warmup_steps,
            {options.checkpoint_every, options.eval_every or options.checkpoint_every})
    if options.max_cpu_minutes > 0:
        # Last: it stops the run only after that step's checkpoint is written.
        callback_list.append(callbacks.CpuBudget(trainer, clock, 60.0 * options.max_cpu_minutes,
                                                 options.checkpoint_every))
    return callback_list, step_log, held_out_eval


def _fit(options: RunOptions, trainer, strategy, dataset, callback_list: list, ckpt_dir: str,
         start: _Start) -> None:
    """Trains from the start's step to options.steps, unless the CPU budget
    is spent already."""
    if start.step >= options.steps or (options.max_cpu_minutes > 0
                                       and start.cpu_seconds >= 60.0 * options.max_cpu_minutes):
        return
    with (contextlib.nullcontext() if strategy is None
          else distribute.stop_cleanly_on_lost_worker(trainer, ckpt_dir)):
        trainer.fit(dataset, steps_per_epoch=options.checkpoint_every,
                    initial_epoch=start.step // options.checkpoint_every,
                    epochs=options.steps // options.checkpoint_every,
                    callbacks=callback_list, verbose=options.verbose, shuffle=False)
