"""Keras-fit trainer for the three modes of TrainingConfig.

"acoustic": the acoustic model alone (stage 1 of two-stage training).
"vocoder": HiFi-GAN on random segments of ground-truth mels (stage 2).
"joint": text to wave as in JETS: the acoustic model's mel output, sliced
into random segments, feeds the generator, and every loss trains both. (JETS
feeds the decoder's hidden states; feeding the mel keeps one generator
architecture for both regimes and lets a jointly trained vocoder run on any
acoustic model's output.)

Segment starts are drawn from a stateless RNG keyed by (seed, step), and the
dropout seed states are model variables, so a run restored from a checkpoint
repeats exactly the steps of the run it continues.

Under a tf.distribute strategy (training.distribute) each replica holds a
contiguous slice of the global batch; the losses are the global batch's
(cross-replica sums), the segment starts are the global batch's draws, and the
adversarial phase is a Python flag (`adversarial_phase`, set by a callback)
instead of a tf.cond, since a strategy cannot synchronize inside one.
Mixed precision: the models compute in float16/bfloat16, their outputs and
every loss in float32 (and the alignment module stays float32, see run.py).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bittts_tf.audio.config import AudioConfig
from bittts_tf.eval.alignment_metrics import boundary_error_ms
from bittts_tf.models import frame_vocoder
from bittts_tf.models.variance import durations_from_log
from bittts_tf.training import distribute
from bittts_tf.training import losses as losses_lib
from bittts_tf.training.config import TrainingConfig
from bittts_tf.training.mel import LogMel


def make_optimizer(config: TrainingConfig) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=config.lr_decay_steps, decay_rate=config.lr_decay_rate)
    return keras.optimizers.AdamW(learning_rate=schedule, beta_1=config.beta_1,
                                  beta_2=config.beta_2, weight_decay=config.weight_decay)


def _float32(structure):
    """Float tensors of a model's outputs in float32 (mixed precision: the
    losses and the alignment bookkeeping stay float32); others unchanged."""
    def cast(x):
        if isinstance(x, (tf.Tensor, tf.Variable)) and x.dtype.is_floating and x.dtype != tf.float32:
            return tf.cast(x, tf.float32)
        return x
    return tf.nest.map_structure(cast, structure)


class JetsTrainer(keras.Model):
    """Holds the models being trained; `models` maps names to them."""

    def __init__(self, config: TrainingConfig, audio_config: AudioConfig, acoustic=None,
                 generator=None, discriminators=None, teacher=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.audio_config = audio_config
        needs = {"acoustic": ("acoustic",), "vocoder": ("generator", "discriminators"),
                 "joint": ("acoustic", "generator", "discriminators")}[config.mode]
        given = {"acoustic": acoustic, "generator": generator, "discriminators": discriminators}
        missing = [name for name in needs if given[name] is None]
        if missing:
            raise ValueError(f"mode {config.mode!r} needs the models {missing}")
        self.acoustic = acoustic if "acoustic" in needs else None
        self.generator = generator if "generator" in needs else None
        self.discriminators = discriminators if "discriminators" in needs else None
        self.models = {name: given[name] for name in needs}
        if (config.mode == "joint" and getattr(generator, "takes_f0", False)
                and acoustic.f0_projection is None):
            raise ValueError("a source-phase vocoder trained jointly needs an acoustic model "
                             "with a frame F0 (AcousticConfig.frame_f0)")
        # A frozen acoustic model whose mels the vocoder learns from; not saved.
        self.teacher = teacher
        self.log_mel = LogMel(audio_config)
        self.discriminator_optimizer = None
        # None: the graph decides (tf.cond on the step, one device); True /
        # False: fixed at trace time (under a strategy; run.py retraces at
        # --generator_warmup_steps).
        self.adversarial_phase = None
        # mixed_float16: dynamic loss scaling (keras.optimizers.LossScaleOptimizer
        # around each optimizer; the checkpoints keep the inner optimizers).
        self.loss_scaling = False

    def generator_side_variables(self):
        return [v for name, m in self.models.items() if name != "discriminators"
                for v in m.trainable_variables]

    def compile(self, optimizer, discriminator_optimizer=None, loss_scaling=False):
        super().compile(optimizer=optimizer)
        self.loss_scaling = loss_scaling
        self._scaled = {}
        # Built now (not lazily inside the traced step) so that a checkpoint can
        # be restored into them before the first step.
        optimizer.build(self.generator_side_variables())
        if self.discriminators is not None:
            if discriminator_optimizer is None:
                raise ValueError(f"mode {self.config.mode!r} needs a discriminator optimizer")
            discriminator_optimizer.build(self.discriminators.trainable_variables)
        self.discriminator_optimizer = discriminator_optimizer
        if loss_scaling:
            for opt in (optimizer, discriminator_optimizer):
                if opt is not None:
                    scaled = keras.optimizers.LossScaleOptimizer(opt)
                    scaled.build(opt._trainable_variables)
                    self._scaled[id(opt)] = scaled

    def _apply(self, optimizer, tape, loss, variables):
        """Gradients of `loss` applied by `optimizer`; with loss scaling, a
        step whose scaled gradients overflow is skipped (the scale halves)."""
        if not self.loss_scaling:
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return
        scaled = self._scaled[id(optimizer)]
        gradients = tape.gradient(scaled.scale_loss(loss), variables)
        scaled.apply_gradients(zip(gradients, variables))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # The models and optimizers are built already (compile). Under a
        # strategy Keras would otherwise take one batch from the iterator and
        # average it over the replicas to trace a build, which a dict of
        # per-replica batches cannot be; on one device it does nothing.
        return

    @property
    def step(self):
        if self._distribute_strategy is None:
            return self.optimizer.iterations
        # A distributed variable: its value (callbacks take int() of it).
        return tf.convert_to_tensor(self.optimizer.iterations)

    def random_segments(self, mels, audio, mel_lengths, reduce=None, frame_values=None):
        """Same random window of `segment_frames` frames from the mels and the
        audio, and from `frame_values` [B, T, k] when given (0 past the end):
        (mel segment, audio segment[, values segment])."""
        frames = self.config.segment_frames
        hop = self.audio_config.hop_length
        uniform = self._step_draw(tf.random.stateless_uniform, tf.shape(mels)[:1], 0, reduce)
        max_start = tf.maximum(mel_lengths - frames, 0)
        start = tf.cast(tf.floor(uniform * tf.cast(max_start + 1, tf.float32)), tf.int32)
        start = tf.minimum(start, max_start)
        frame_index = start[:, None] + tf.range(frames)[None, :]
        mels = tf.pad(mels, [[0, 0], [0, frames], [0, 0]])
        segment = tf.gather(mels, frame_index, batch_dims=1)
        # Frames past an utterance's end become silence, matching its zero audio.
        valid = (frame_index < mel_lengths[:, None])[..., None]
        segment = tf.where(valid, segment, float(np.log(self.audio_config.log_floor)))
        sample_index = start[:, None] * hop + tf.range(frames * hop)[None, :]
        audio = tf.pad(audio, [[0, 0], [0, frames * hop]])
        audio = tf.gather(audio, sample_index, batch_dims=1)
        if frame_values is None:
            return segment, audio
        frame_values = tf.pad(frame_values, [[0, 0], [0, frames], [0, 0]])
        values = tf.gather(frame_values, frame_index, batch_dims=1)
        return segment, audio, values * tf.cast(valid, values.dtype)

    def vocoder_f0(self, batch, outputs=None):
        """[B, T, 3] for a source-phase vocoder: F0 in Hz (0: unvoiced) and its
        two input features; None for a vocoder without one. Joint mode after
        target_f0_steps: the acoustic model's frame F0 (no gradient flows back
        through it: its own losses train it); before, and in vocoder mode: the
        recording's."""
        if not getattr(self.generator, "takes_f0", False):
            return None
        f0 = tf.cast(batch["f0"], tf.float32)
        target = tf.concat([f0[..., None], frame_vocoder.f0_features_from_hz(f0)], axis=-1)
        if outputs is None:
            return target
        a = self.acoustic.config
        f0_hz, features = frame_vocoder.f0_from_head(tf.stop_gradient(outputs["frame_f0"]),
                                                     a["log_f0_mean"], a["log_f0_std"])
        predicted = tf.concat([f0_hz[..., None], features], axis=-1)
        use_target = tf.cast(self.step, tf.int64) < self.config.target_f0_steps
        return tf.where(use_target, target, predicted)

    def generate(self, mel_segment, f0_segment=None):
        """The vocoder's waveform (float32) for a mel segment and, for a
        source-phase vocoder, the [B, T, 3] segment of vocoder_f0."""
        if f0_segment is None:
            fake = self.generator(mel_segment)
        else:
            f0_segment = tf.cast(f0_segment, mel_segment.dtype)
            fake = self.generator(mel_segment, f0=f0_segment[..., 0],
                                  f0_feature_values=f0_segment[..., 1:])
        return tf.cast(fake, tf.float32) if fake.dtype != tf.float32 else fake

    def _step_draw(self, draw, shape, stream: int, reduce=None):
        """draw(shape, seed=...) from the run's seed, `stream` and the step: the
        same numbers on a resume; under a strategy, this replica's rows of the
        global batch's draw."""
        seed = tf.stack([tf.constant(self.config.seed + stream, tf.int64),
                         tf.cast(self.step, tf.int64)])
        if reduce is None:
            return draw(shape, seed=seed)
        rows = tf.concat([[shape[0] * reduce.replicas], shape[1:]], axis=0)
        full = tf.reshape(draw(rows, seed=seed), tf.concat([[reduce.replicas], shape], axis=0))
        return full[reduce.replica_id]

    def with_input_noise(self, mel_segment, reduce=None):
        """The training segment's log-mels plus Gaussian noise of standard
        deviation config.vocoder_input_noise (none at 0, nor in evaluation)."""
        sigma = self.config.vocoder_input_noise
        if not sigma:
            return mel_segment
        noise = self._step_draw(tf.random.stateless_normal, tf.shape(mel_segment), 1, reduce)
        return mel_segment + tf.cast(sigma, mel_segment.dtype) * tf.cast(noise, mel_segment.dtype)

    def vocoder_input(self, batch):
        """The mels the vocoder learns from: the corpus's, or the teacher's
        with the corpus durations (so they stay aligned with the audio)."""
        if self.teacher is None:
            return batch["mels"]
        outputs = self.teacher(batch, training=False, use_ground_truth_durations=True)
        return tf.stop_gradient(outputs["mel"])

    def _acoustic_forward(self, batch, training, reduce=None):
        outputs = self.acoustic(batch, training=training,
                                use_ground_truth_durations=self.config.use_ground_truth_durations)
        outputs = _float32(outputs)
        return outputs, losses_lib.acoustic_losses(outputs, batch, self.step, self.config, reduce)

    def _discriminate(self, real, fake):
        """(real scores, real features, fake scores, fake features) from one
        call on the stacked batch: half the graph to trace."""
        scores, features = _float32(self.discriminators(tf.concat([real, fake], axis=0)))
        n = tf.shape(real)[0]
        return ([s[:n] for s in scores], [[f[:n] for f in fs] for fs in features],
                [s[n:] for s in scores], [[f[n:] for f in fs] for fs in features])

    def _update_discriminators(self, real, fake, reduce=None):
        with tf.GradientTape() as tape:
            real_scores, _, fake_scores, _ = self._discriminate(real, fake)
            loss = losses_lib.discriminator_loss(real_scores, fake_scores, reduce)
        self._apply(self.discriminator_optimizer, tape, loss,
                    self.discriminators.trainable_variables)
        return loss

    def _generator_adversarial_losses(self, real, fake, reduce=None):
        """(feature matching, adversarial) losses of the generator."""
        _, real_features, fake_scores, fake_features = self._discriminate(real, fake)
        return (losses_lib.feature_matching_loss(real_features, fake_features, reduce),
                losses_lib.generator_adversarial_loss(fake_scores, reduce))

    def train_step(self, batch):
        c = self.config
        variables = self.generator_side_variables()
        # Cross-replica sums under a strategy; None (the original ops) on one device.
        reduce = distribute.replica_reduce()
        logs = {}
        with tf.GradientTape() as tape:
            total = 0.0
            if self.acoustic is not None:
                outputs, acoustic_losses = self._acoustic_forward(batch, training=True,
                                                                  reduce=reduce)
                total += acoustic_losses["acoustic_total"]
                logs.update(acoustic_losses)
            if self.generator is not None:
                joint = c.mode == "joint"
                mels = outputs["mel"] if joint else self.vocoder_input(batch)
                f0 = self.vocoder_f0(batch, outputs if joint else None)
                mel_segment, real, *f0_segment = self.random_segments(
                    mels, batch["audio"], batch["mel_lengths"], reduce, f0)
                fake = self.generate(self.with_input_noise(mel_segment, reduce), *f0_segment)
                difference = tf.abs(self.log_mel(fake) - self.log_mel(real))
                logs["wave_mel_l1"] = (tf.reduce_mean(difference) if reduce is None
                                       else reduce.mean(difference))
                total += c.mel_weight * logs["wave_mel_l1"]
                if c.stft_loss_weight:
                    logs["stft"] = losses_lib.multi_resolution_stft_loss(fake, real,
                                                                         reduce=reduce)
                    total += c.stft_loss_weight * logs["stft"]
                if c.cepstral_loss_weight:
                    logs["cepstral"] = losses_lib.cepstral_loss(fake, real, reduce=reduce)
                    total += c.cepstral_loss_weight * logs["cepstral"]
                if c.phase_loss_weight:
                    logs["phase"] = losses_lib.phase_loss(fake, real, reduce=reduce)
                    total += c.phase_loss_weight * logs["phase"]
                if self.adversarial_phase is None:
                    if reduce is not None:
                        raise ValueError("under a strategy, set trainer.adversarial_phase "
                                         "(a replica cannot synchronize inside tf.cond)")
                    adversarial = self.step >= c.generator_warmup_steps
                    with tape.stop_recording():
                        logs["discriminator"] = tf.cond(
                            adversarial,
                            lambda: self._update_discriminators(real, tf.stop_gradient(fake)),
                            lambda: tf.constant(0.0))
                    logs["feature_matching"], logs["adversarial"] = tf.cond(
                        adversarial, lambda: self._generator_adversarial_losses(real, fake),
                        lambda: (tf.constant(0.0), tf.constant(0.0)))
                elif self.adversarial_phase:
                    with tape.stop_recording():
                        logs["discriminator"] = self._update_discriminators(
                            real, tf.stop_gradient(fake), reduce)
                    logs["feature_matching"], logs["adversarial"] = \
                        self._generator_adversarial_losses(real, fake, reduce)
                else:
                    logs["discriminator"] = tf.constant(0.0)
                    logs["feature_matching"], logs["adversarial"] = (tf.constant(0.0),
                                                                     tf.constant(0.0))
                total += (c.feature_matching_weight * logs["feature_matching"]
                          + c.adversarial_weight * logs["adversarial"])
            logs["loss"] = total
        self._apply(self.optimizer, tape, total, variables)
        if reduce is not None and distribute.multi_worker():
            # Keras averages a multi-worker step's logs along axis 0.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def test_step(self, batch):
        logs = {}
        if self.acoustic is not None:
            outputs, acoustic_losses = self._acoustic_forward(batch, training=False)
            logs.update(acoustic_losses)
            # Against the corpus durations, when it has them (festival corpora do):
            # the learned alignment, and the duration predictor's own guess.
            frame_ms = 1000.0 * self.audio_config.hop_length / self.audio_config.sample_rate
            text_weights = tf.sequence_mask(batch["phoneme_lengths"],
                                            tf.shape(batch["phonemes"])[1], tf.float32)
            predicted = durations_from_log(outputs["log_duration"], text_weights[..., None])
            logs["alignment_boundary_ms"] = boundary_error_ms(
                outputs["durations"], batch["durations"], batch["phoneme_lengths"], frame_ms)
            logs["predicted_boundary_ms"] = boundary_error_ms(
                predicted, batch["durations"], batch["phoneme_lengths"], frame_ms)
        if self.generator is not None:
            mels = self.vocoder_input(batch)
            mel_segment, real, *f0_segment = self.random_segments(
                mels, batch["audio"], batch["mel_lengths"], frame_values=self.vocoder_f0(batch))
            fake = self.generate(mel_segment, *f0_segment)
            logs["wave_mel_l1"] = tf.reduce_mean(tf.abs(self.log_mel(fake) - self.log_mel(real)))
            if self.config.stft_loss_weight:
                logs["stft"] = losses_lib.multi_resolution_stft_loss(fake, real)
            if self.config.cepstral_loss_weight:
                logs["cepstral"] = losses_lib.cepstral_loss(fake, real)
            if self.config.phase_loss_weight:
                logs["phase"] = losses_lib.phase_loss(fake, real)
        return logs
