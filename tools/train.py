"""Trains BitTTS with Keras fit: the acoustic model, the vocoder, or both jointly.

Two-stage training (cheaper on a CPU):
  python tools/train.py --mode=acoustic --corpus=CACHE --output_dir=runs/am
  python tools/train.py --mode=vocoder  --corpus=CACHE --output_dir=runs/voc
Joint text-to-wave training, as JETS does:
  python tools/train.py --mode=joint --corpus=CACHE --output_dir=runs/jets

--quantize picks which models train with quantized (QAT) conv weights and
--weight_bits their precision. Running the same command again after a kill
resumes from the newest checkpoint in --output_dir at the same step, with the
same optimizer state and the same next batch. A NaN or Inf loss stops the run
with an error, without writing a checkpoint.
"""

from bittts_tf import cli

cli.quiet_startup()   # first: before TensorFlow or LiteRT loads

import json
import os
import sys

from absl import app, flags

from bittts_tf.models import configs
from bittts_tf.training import run_inputs
from bittts_tf.training.cluster import PRECISIONS, STRATEGIES
from bittts_tf.training.config import FORWARD_SUMS, MODES

FLAGS = flags.FLAGS
_DEFAULTS = run_inputs.RunOptions(output_dir="")  # one home for every default
flags.DEFINE_enum("config", _DEFAULTS.config, sorted(configs.PRESETS), "Model size preset.")
flags.DEFINE_string("corpus", _DEFAULTS.corpus,
                    "A feature-cache directory (tools/make_corpus.py), or synthetic:N.")
flags.DEFINE_enum("mode", _DEFAULTS.mode, MODES,
                  "acoustic / vocoder: the two stages of two-stage training; joint: JETS.")
flags.DEFINE_enum("quantize", _DEFAULTS.quantize, configs.QUANTIZE_SCOPES,
                  "Models whose conv weights are quantized (the vocoder's final conv never is).")
flags.DEFINE_enum("weight_bits", _DEFAULTS.weight_bits, ["1.58", "2", "4", "8"], "Quantized weight precision.")
flags.DEFINE_boolean("quantize_activations", _DEFAULTS.quantize_activations,
                     "Also quantize conv inputs to 8 bit (LayerNorm + absmax), as the paper does.")
flags.DEFINE_integer("steps", _DEFAULTS.steps, "Total training steps (a resumed run counts from zero too).", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints; divides --steps.", lower_bound=1)
flags.DEFINE_string("output_dir", None, "Checkpoints, losses.jsonl and TensorBoard logs.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Utterances per batch.", lower_bound=1)
flags.DEFINE_integer("held_out", _DEFAULTS.held_out, "Utterances held out for evaluation (the first ones).", lower_bound=0)
flags.DEFINE_integer("segment_frames", _DEFAULTS.segment_frames, "Mel frames per vocoder training segment.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Initial AdamW learning rate (decays exponentially).")
flags.DEFINE_float("lr_decay_rate", _DEFAULTS.lr_decay_rate,
                   "Learning-rate factor per 100 steps (exponential decay; 0.999 is HiFi-GAN's).")
flags.register_validator("lr_decay_rate", lambda rate: 0.0 < rate <= 1.0,
                         message="--lr_decay_rate must be in (0, 1]")
flags.DEFINE_boolean("use_ground_truth_durations", _DEFAULTS.use_ground_truth_durations,
                     "Shortcut: take the corpus durations instead of the learned alignment.")
flags.DEFINE_integer("binarization_start_step", _DEFAULTS.binarization_start_step, "Step at which the binarization loss starts.")
flags.DEFINE_enum("forward_sum", _DEFAULTS.forward_sum, FORWARD_SUMS,
                  "Alignment likelihood: ctc (with a blank, as RAD-TTS and JETS) or monotonic "
                  "(every frame belongs to a phone).")
flags.DEFINE_float("stft_loss_weight", _DEFAULTS.stft_loss_weight,
                   "Weight of the multi-resolution STFT loss on the vocoder's waveform (0: off, as "
                   "HiFi-GAN; 9 for the frame-rate vocoder of the tiny config).")
flags.DEFINE_float("cepstral_loss_weight", _DEFAULTS.cepstral_loss_weight,
                   "Weight of the cepstral loss on the vocoder's waveform: its cepstrum against "
                   "the recording's over the pitch quefrencies (0: off).", lower_bound=0.0)
flags.DEFINE_float("phase_loss_weight", _DEFAULTS.phase_loss_weight,
                   "Weight of the phase loss on the vocoder's waveform: its phase steps frame to "
                   "frame and bin to bin against the recording's (0: off).", lower_bound=0.0)
flags.DEFINE_integer("generator_warmup_steps", _DEFAULTS.generator_warmup_steps,
                     "Steps of vocoder training on the spectral losses alone before the "
                     "discriminators start (0: adversarial from the start).")
flags.DEFINE_float("frame_f0_weight", _DEFAULTS.frame_f0_weight,
                   "Weight of the frame F0 head's losses (--acoustic_config=frame_f0=true): "
                   "log-F0 L1 on voiced frames plus the voicing cross-entropy.", lower_bound=0.0)
flags.DEFINE_integer("target_f0_steps", _DEFAULTS.target_f0_steps,
                     "Joint mode, source-phase vocoder: steps that feed the vocoder the "
                     "recording's F0 before the acoustic model's own.", lower_bound=0)
flags.DEFINE_string("teacher_acoustic", _DEFAULTS.teacher_acoustic,
                    "Vocoder mode: fine-tune on this acoustic checkpoint's (or run's) mels, "
                    "aligned to the recordings by the corpus durations, instead of the corpus "
                    "mels. Usually with --init_from=<the vocoder run>.")
flags.DEFINE_float("vocoder_input_noise", _DEFAULTS.vocoder_input_noise,
                   "Vocoder mode: standard deviation of Gaussian noise on the training "
                   "segments' log-mels (0: none; evaluation and export never see it).")
flags.DEFINE_integer("scalar_every", _DEFAULTS.scalar_every, "Steps between TensorBoard scalar logs.")
flags.DEFINE_integer("media_every", _DEFAULTS.media_every, "Steps between TensorBoard mel images and audio.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                     "Steps between held-out evaluations (held_out.jsonl); 0: at every checkpoint.")
flags.DEFINE_float("max_cpu_minutes", _DEFAULTS.max_cpu_minutes,
                   "Stop at the first checkpoint after this much training CPU time (kept across "
                   "resumes; 0: no limit). For comparing runs at equal CPU time.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of initialization, batch order and segments.")
flags.DEFINE_list("acoustic_config", [],
                  "AcousticConfig fields to change from the preset, as field=value "
                  "(e.g. alignment_prior_scaling=0.5,aligner_text_input=encoder). "
                  "Ignored on resume: the checkpoint's config wins.")
flags.DEFINE_list("vocoder_config", [],
                  "Vocoder config fields to change from the preset, as field=value (tuples as "
                  "2:3:5), e.g. n_scales=0 for period discriminators only, about 10x cheaper "
                  "an adversarial step on a CPU. Ignored on resume.")
flags.DEFINE_string("init_from", "",
                    "A checkpoint, or a run directory (its newest checkpoint), to start from when "
                    "--output_dir has none: weights, optimizer state, step, data position and CPU "
                    "time carry over; the configs come from the flags. For QAT after float "
                    "pre-training: --quantize=acoustic --init_from=runs/float.")
flags.DEFINE_boolean("init_new_layers", False,
                     "With --init_from: layers the checkpoint lacks (added by a config field, "
                     "e.g. --acoustic_config=frame_f0=true) start from their initializers and "
                     "are listed, instead of the checkpoint being refused; the optimizers start "
                     "fresh at step 0.")
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, list(STRATEGIES),
                  "tf.distribute strategy: default (one device), mirrored (every local GPU; "
                  "the CPU when there is none) or multi_worker (the machines of TF_CONFIG; every "
                  "worker runs the same command on a shared --output_dir). --batch_size is the "
                  "global batch, split evenly over the replicas; only the chief writes.")
flags.DEFINE_enum("precision", _DEFAULTS.precision, list(PRECISIONS),
                  "float32, or mixed precision for accelerators (the quantizers, the alignment "
                  "and the losses stay float32; mixed_float16 scales the loss dynamically).")
flags.DEFINE_boolean("run_eagerly", _DEFAULTS.run_eagerly,
                     "Run each step eagerly (Keras' run_eagerly): no graph tracing, slower "
                     "steps. For debugging, and for runs of a few steps.")
flags.mark_flag_as_required("output_dir")
cli.output_flags(folders=("output_dir",))


def main(argv):
    del argv
    try:
        acoustic_overrides = configs.parse_acoustic_overrides(FLAGS.acoustic_config)
    except ValueError as e:
        raise app.UsageError(f"--acoustic_config: {e}") from None
    try:
        vocoder_overrides = configs.parse_vocoder_overrides(FLAGS.vocoder_config, FLAGS.config)
    except ValueError as e:
        raise app.UsageError(f"--vocoder_config: {e}") from None
    options = run_inputs.RunOptions(**{name: FLAGS[name].value for name in (
        "output_dir", "corpus", "config", "mode", "quantize", "weight_bits",
        "quantize_activations", "steps", "checkpoint_every", "batch_size", "held_out",
        "segment_frames", "learning_rate", "lr_decay_rate", "use_ground_truth_durations",
        "binarization_start_step", "forward_sum", "stft_loss_weight", "cepstral_loss_weight",
        "phase_loss_weight",
        "teacher_acoustic",
        "vocoder_input_noise",
        "generator_warmup_steps", "frame_f0_weight", "target_f0_steps", "scalar_every", "media_every", "eval_every",
        "max_cpu_minutes", "seed", "init_from", "init_new_layers", "strategy", "precision", "run_eagerly")},
        acoustic_overrides=acoustic_overrides, vocoder_overrides=vocoder_overrides)
    # Refused here, before TensorFlow and Keras are imported (about 8 s of CPU).
    run_inputs.check_inputs(options)
    from bittts_tf.training import run
    from bittts_tf.training.cluster import WorkerLost
    try:
        result = run.train(options)
    except WorkerLost as e:
        # TensorFlow's runtime waits forever at exit for the lost peer: leave now.
        print(f"train: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    print(f"finished at step {result['step']} after {result['cpu_seconds'] / 60:.1f} CPU minutes; "
          f"checkpoint {result['checkpoint']}")
    print("held-out losses: " + json.dumps({k: round(v, 4) for k, v in result["held_out"].items()}))


if __name__ == "__main__":
    cli.run(main)
