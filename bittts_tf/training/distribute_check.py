"""Measurements behind tools/check_distribute.py (issue 16's acceptance):

- `gradient_check`: one training step's gradients under MirroredStrategy over
  N devices against the single-device gradients of the same global batch
  (same weights, copied), captured by an optimizer that records the
  gradients Keras hands it after its cross-replica sum.
- `precision_check`: one step in mixed precision against float32 on the same
  weights and batch: ternary codes of every quantized layer's forward kernel,
  and the loss difference.

Both build tiny models on a synthetic corpus drawn from `seed`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.models import build, configs
from bittts_tf.text.g2p import FrontEnd
from bittts_tf.training import data, distribute, jets_trainer, run, run_inputs
from bittts_tf.training.synthetic import synthetic_corpus

NO_DROPOUT = {"dropout": 0.0, "predictor_dropout": 0.0}


class GradientRecorder(keras.optimizers.Optimizer):
    """Stores the (all-reduced) gradient of each variable instead of stepping."""

    def __init__(self):
        super().__init__(learning_rate=0.0, name="gradient_recorder")

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.recorded = [self.add_variable_from_reference(v, "gradient") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        self.assign(self.recorded[self._get_variable_index(variable)], gradient)


def tiny_setup(mode: str, seed: int, batch_size: int = 4, n_utterances: int = 12,
               vocoder_overrides: dict | None = None, stft_loss_weight: float = 9.0,
               quantize: str = "all"):
    """(model config, training config, utterances) of a tiny run on fresh data."""
    front_end = FrontEnd()
    audio = configs.preset("tiny").audio
    utterances = synthetic_corpus(n_utterances, audio, n_symbols=len(front_end.symbols),
                                  seed=seed)
    options = run.RunOptions(output_dir="", config="tiny", mode=mode, batch_size=batch_size,
                             quantize=quantize,
                             segment_frames=16, binarization_start_step=0,
                             stft_loss_weight=stft_loss_weight if mode != "acoustic" else 0.0,
                             acoustic_overrides=dict(NO_DROPOUT),
                             vocoder_overrides=dict(vocoder_overrides or {}), seed=seed)
    corpus = run.Corpus(utterances, [], [], [], front_end, 1)
    return (run._model_config(options, corpus, utterances), run_inputs.training_config(options),
            utterances)


def _trainer(model_config, training_config, optimizer_factory):
    mode = training_config.mode
    with build.dtype_policy("float32"):
        acoustic = build.build_acoustic(model_config) if mode in ("acoustic", "joint") else None
    generator = build.build_generator(model_config) if mode != "acoustic" else None
    discriminators = build.build_discriminators(model_config) if mode != "acoustic" else None
    trainer = jets_trainer.JetsTrainer(training_config, model_config.audio, acoustic, generator,
                                       discriminators, dtype="float32")
    trainer.compile(optimizer_factory(), optimizer_factory() if discriminators else None,
                    loss_scaling=keras.mixed_precision.global_policy().name == "mixed_float16")
    trainer.adversarial_phase = True
    return trainer


def _model_variables(trainer):
    return [v for name in sorted(trainer.models) for v in trainer.models[name].variables]


def _copy_weights(source, target):
    for a, b in zip(_model_variables(source), _model_variables(target), strict=True):
        b.assign(a.numpy())


def _variable_names(trainer) -> list[str]:
    """The names of the variables `_recorded` lists, in its order."""
    names = []
    for optimizer in (trainer.optimizer, trainer.discriminator_optimizer):
        if optimizer is not None:
            names += [v.path for v in optimizer._trainable_variables]
    return names


def _recorded(trainer):
    arrays = []
    for optimizer in (trainer.optimizer, trainer.discriminator_optimizer):
        if optimizer is not None:
            arrays += [np.asarray(v.numpy(), np.float64) for v in optimizer.recorded]
    return arrays


PER_VARIABLE_FLOOR = 1e-5
SMALL_DISCRIMINATORS = {"n_scales": 0, "periods": (2, 3)}


def worst_variable_error(reference: list[np.ndarray], got: list[np.ndarray]) -> tuple[float, int]:
    """The largest error of one variable's gradient and its index.

    Each error is relative to that variable's own gradient, but never to less
    than PER_VARIABLE_FLOOR of the whole gradient: a weight-norm gain's
    gradient is a sum that cancels (seed 438165: a discriminator's conv_post
    g, norm 5.3e-5 of 290, differs by 2.9e-4 of itself from the summation
    order alone), so its own norm is no scale for float32 rounding. A missing
    all-reduce or a wrong scale (off by 0.5) still shows, against a 3e-5
    bound, on every variable whose gradient is above 6e-10 of the whole.
    """
    floor = PER_VARIABLE_FLOOR * np.sqrt(sum(float(np.sum(np.square(a))) for a in reference))
    worst, worst_index = 0.0, -1
    for i, (a, b) in enumerate(zip(reference, got, strict=True)):
        error = float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(a)), floor, 1e-30)
        if error > worst:
            worst, worst_index = error, i
    return worst, worst_index


def gradient_check(mode: str, seed: int, devices: list[str],
                   small_discriminators: bool = False) -> dict:
    """Gradients of one step: single device vs MirroredStrategy over `devices`."""
    model_config, training_config, utterances = tiny_setup(
        mode, seed, vocoder_overrides=SMALL_DISCRIMINATORS if small_discriminators else None)
    hop = model_config.audio.hop_length
    keras.utils.set_random_seed(seed)
    single = _trainer(model_config, training_config, GradientRecorder)
    batch = data.pad_batch([utterances[i] for i in data.batch_indices(
        len(utterances), training_config.batch_size, training_config.seed, 0)], hop)
    # Eager steps, both: the same gradients as traced ones (seed 274260: worst
    # variable 5.378e-6 either way) in 13 s instead of 32 s. The traced
    # distributed step is what tools/train.py runs, checked by multi_worker.
    single_logs = single.train_step(batch)

    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        mirrored = _trainer(model_config, training_config, GradientRecorder)
    _copy_weights(single, mirrored)
    dataset = distribute.distributed_dataset(strategy, utterances, training_config.batch_size,
                                             hop, training_config.seed, start_batch=0)
    outputs = strategy.run(mirrored.train_step, args=(next(iter(dataset)),))

    reference, got = _recorded(single), _recorded(mirrored)
    flat_a = np.concatenate([a.ravel() for a in reference])
    flat_b = np.concatenate([b.ravel() for b in got])
    worst, worst_index = worst_variable_error(reference, got)
    loss_error = max(
        abs(float(np.asarray(x)) - float(single_logs[k])) / max(abs(float(single_logs[k])), 1e-12)
        for k, v in outputs.items() for x in strategy.experimental_local_results(v))
    return {"mode": mode, "seed": seed, "replicas": len(devices),
            "variables": len(reference),
            "max_relative_error_per_variable": float(worst),
            "per_variable_floor": PER_VARIABLE_FLOOR,
            "relative_error_all": float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_a)),
            "max_relative_loss_error": loss_error,
            "gradient_norm": float(np.linalg.norm(flat_a)),
            "worst_variable_norm": float(np.linalg.norm(reference[worst_index]))
            if worst_index >= 0 else 0.0,
            "worst_variable": _variable_names(single)[worst_index] if worst_index >= 0 else ""}


def _forward_codes(trainer) -> dict[str, np.ndarray]:
    """Each quantized layer's forward-pass kernel as it runs (in its compute
    dtype), mapped to codes {-1, 0, 1} by sign: the codes the step used."""
    from bittts_tf.quant import quantized_layers
    codes = {}
    for name in sorted(trainer.models):
        if name == "discriminators":
            continue
        for layer in quantized_layers(trainer.models[name]):
            if not layer.is_ternary:
                continue
            with keras.src.backend.common.variables.AutocastScope(layer.compute_dtype):
                kernel = layer.quantized_kernel()
            codes[f"{name}/{layer.path}"] = np.sign(np.asarray(tf.cast(kernel, tf.float32)))
    return codes


def precision_check(mode: str, precision: str, seed: int, quantize: str = "all",
                    small_discriminators: bool = False) -> dict:
    """One real training step (AdamW) in `precision` vs float32 on the same weights."""
    model_config, training_config, utterances = tiny_setup(
        mode, seed, quantize=quantize,
        vocoder_overrides=SMALL_DISCRIMINATORS if small_discriminators else None)
    hop = model_config.audio.hop_length
    batch = data.pad_batch([utterances[i] for i in data.batch_indices(
        len(utterances), training_config.batch_size, training_config.seed, 0)], hop)
    make = lambda: jets_trainer.make_optimizer(training_config)  # noqa: E731
    keras.utils.set_random_seed(seed)
    reference = _trainer(model_config, training_config, make)
    reference_codes = _forward_codes(reference)
    try:
        keras.mixed_precision.set_global_policy(precision)
        mixed = _trainer(model_config, training_config, make)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    _copy_weights(reference, mixed)
    mixed_codes = _forward_codes(mixed)
    reference_logs = {k: float(v) for k, v in tf.function(reference.train_step)(batch).items()}
    mixed_logs = {k: float(v) for k, v in tf.function(mixed.train_step)(batch).items()}
    after_reference, after_mixed = _forward_codes(reference), _forward_codes(mixed)
    return {"mode": mode, "precision": precision, "seed": seed,
            "ternary_layers": len(reference_codes),
            "layers_in_low_precision": sum(
                1 for m in mixed.models.values() for layer in m._flatten_layers()
                if layer.compute_dtype != "float32"),
            "codes_equal_before_step": all(np.array_equal(reference_codes[k], mixed_codes[k])
                                           for k in reference_codes),
            "codes_differing_after_step": int(sum(np.sum(after_reference[k] != after_mixed[k])
                                                  for k in after_reference)),
            "codes_total": int(sum(c.size for c in reference_codes.values())),
            "loss_float32": reference_logs["loss"], "loss_mixed": mixed_logs["loss"],
            "loss_relative_difference": abs(mixed_logs["loss"] - reference_logs["loss"])
            / abs(reference_logs["loss"]),
            "finite": all(np.isfinite(v) for v in mixed_logs.values())}
