"""What a training run is asked to do (RunOptions) and the checks of it that
need no TensorFlow: tools/train.py runs `check_inputs` before importing `run`,
so a bad flag, corpus, checkpoint or TF_CONFIG costs a second, not the ~8 s
of CPU that importing TensorFlow and Keras took here; `run.train` runs the
same checks."""

from __future__ import annotations

import dataclasses
import os

from bittts_tf.models import configs
from bittts_tf.text.g2p import FrontEnd
from bittts_tf.training import checkpoints, cluster
from bittts_tf.training.config import TrainingConfig, TrainingInputError


@dataclasses.dataclass
class RunOptions:
    output_dir: str
    corpus: str = "synthetic:64"
    config: str = "tiny"
    mode: str = "acoustic"
    quantize: str = "none"
    weight_bits: str = "1.58"
    quantize_activations: bool = False
    steps: int = 1000
    checkpoint_every: int = 100
    batch_size: int = TrainingConfig.batch_size
    held_out: int = 20
    segment_frames: int = TrainingConfig.segment_frames
    learning_rate: float = TrainingConfig.learning_rate
    lr_decay_rate: float = TrainingConfig.lr_decay_rate
    use_ground_truth_durations: bool = TrainingConfig.use_ground_truth_durations
    binarization_start_step: int = TrainingConfig.binarization_start_step
    forward_sum: str = TrainingConfig.forward_sum
    stft_loss_weight: float = TrainingConfig.stft_loss_weight
    cepstral_loss_weight: float = TrainingConfig.cepstral_loss_weight
    phase_loss_weight: float = TrainingConfig.phase_loss_weight
    teacher_acoustic: str = TrainingConfig.teacher_acoustic
    vocoder_input_noise: float = TrainingConfig.vocoder_input_noise
    generator_warmup_steps: int = TrainingConfig.generator_warmup_steps
    frame_f0_weight: float = TrainingConfig.frame_f0_weight
    target_f0_steps: int = TrainingConfig.target_f0_steps
    scalar_every: int = 10
    media_every: int = 500
    eval_every: int = 0          # 0: at every checkpoint
    max_cpu_minutes: float = 0.0  # 0: no budget, train to `steps`
    seed: int = TrainingConfig.seed
    # AcousticConfig fields to change from the preset, e.g. {"alignment_prior_scaling": 0.5}.
    acoustic_overrides: dict = dataclasses.field(default_factory=dict)
    # Vocoder config fields to change, e.g. {"n_scales": 0}.
    vocoder_overrides: dict = dataclasses.field(default_factory=dict)
    # A checkpoint (or run directory) to start from when output_dir has none:
    # its weights, optimizer state, step, data position and CPU time carry over,
    # the configs come from these options. Float pre-training, then QAT.
    init_from: str = ""
    # With init_from: variables the checkpoint lacks (layers a config field
    # adds, e.g. the frame F0 head) keep their initial values instead of the
    # checkpoint being refused; every one is listed.
    init_new_layers: bool = False
    verbose: int = 1
    evaluate: bool = True
    # Keras' run_eagerly: no tracing of the train step (about 50 of the 60 s
    # that four joint steps of the tiny model took here), slower steps.
    run_eagerly: bool = False
    # tf.distribute: "default" (one device), "mirrored" (local GPUs) or
    # "multi_worker" (TF_CONFIG); --batch_size is the global batch.
    strategy: str = "default"
    # "float32", or a mixed Keras policy for accelerators.
    precision: str = "float32"


@dataclasses.dataclass
class Corpus:
    train: list
    held_out: list
    held_out_ids: list
    held_out_texts: list
    front_end: FrontEnd
    n_speakers: int


def check_corpus(spec: str, audio_config, n_held_out: int):
    """The corpus `spec` names, checked without loading its features: None for
    `synthetic:N`, else (the FeatureCache, its training entries, its held-out
    entries)."""
    if spec.startswith("synthetic:"):
        n = int(spec.split(":", 1)[1])
        if n <= n_held_out:
            raise TrainingInputError(f"{spec} has too few utterances to hold out {n_held_out}")
        return None
    from bittts_tf.data.cache import FeatureCache, split_of
    cache = FeatureCache(spec)
    if cache.audio_config != audio_config:
        raise TrainingInputError(
            f"corpus {spec} was built for {cache.audio_config}, the model config expects "
            f"{audio_config}; rebuild the cache or pick another config")
    train = [e for e in cache.entries if split_of(e["utt_id"]) == "train"]
    held_out = [e for e in cache.entries if split_of(e["utt_id"]) == "validation"][:n_held_out]
    if not train or len(held_out) < n_held_out:
        raise TrainingInputError(f"corpus {spec}: {len(train)} training and {len(held_out)} "
                                 f"validation utterances; need some and {n_held_out}")
    return cache, train, held_out


def load_corpus(spec: str, audio_config, n_held_out: int) -> Corpus:
    """`synthetic:N` (tests, smoke runs; the first utterances are held out) or
    a feature-cache directory (held out: the cache's validation split,
    so every model of the project is evaluated on the same utterances)."""
    checked = check_corpus(spec, audio_config, n_held_out)
    if checked is None:
        from bittts_tf.training.synthetic import synthetic_corpus
        front_end = FrontEnd()
        n = int(spec.split(":", 1)[1])
        utterances = synthetic_corpus(n, audio_config, n_symbols=len(front_end.symbols), seed=0)
        return Corpus(utterances[n_held_out:], utterances[:n_held_out],
                      [f"synthetic_{i}" for i in range(n_held_out)], [""] * n_held_out,
                      front_end, 1)
    cache, train, held_out = checked
    return Corpus([cache.load(e["utt_id"]) for e in train],
                  [cache.load(e["utt_id"]) for e in held_out],
                  [e["utt_id"] for e in held_out], [e.get("text", "") for e in held_out],
                  cache.front_end, max(cache.speakers.values(), default=0) + 1)


def training_config(options: RunOptions) -> TrainingConfig:
    return TrainingConfig(mode=options.mode, batch_size=options.batch_size,
                          learning_rate=options.learning_rate,
                          lr_decay_rate=options.lr_decay_rate,
                          segment_frames=options.segment_frames,
                          use_ground_truth_durations=options.use_ground_truth_durations,
                          binarization_start_step=options.binarization_start_step,
                          forward_sum=options.forward_sum,
                          stft_loss_weight=options.stft_loss_weight,
                          cepstral_loss_weight=options.cepstral_loss_weight,
                          phase_loss_weight=options.phase_loss_weight,
                          teacher_acoustic=options.teacher_acoustic,
                          vocoder_input_noise=options.vocoder_input_noise,
                          generator_warmup_steps=options.generator_warmup_steps,
                          frame_f0_weight=options.frame_f0_weight,
                          target_f0_steps=options.target_f0_steps,
                          seed=options.seed)


def init_checkpoint(init_from: str, mode: str) -> str | None:
    """The checkpoint --init_from names (a file, or a run's newest), checked for mode."""
    if not init_from:
        return None
    path = checkpoints.resolve(init_from, f"--init_from={init_from}")
    manifest = checkpoints.read_manifest(path)
    if is_recovered(manifest):
        for group in (f"model/{name}" for name in RECOVERED_MODELS[mode]):
            if group not in manifest["layout"]:
                raise checkpoints.CheckpointError(
                    f"--init_from={path} holds no {group!r} for mode {mode!r} "
                    f"(it holds {sorted(manifest['layout'])})")
        return path
    require_mode(f"--init_from={path}", manifest["training_config"]["mode"], mode)
    return path


# A checkpoint rebuilt from a model folder's graphs (tools/recover_checkpoint.py)
# holds weights only: no optimizer, step or discriminators. It is how a run
# continues on a new machine from the committed voice, so training starts
# from its model weights with fresh optimizers at step 0.
RECOVERED_MODELS = {"vocoder": ("generator",), "acoustic": ("acoustic",),
                     "joint": ("acoustic", "generator")}


def is_recovered(manifest: dict) -> bool:
    return "recovered_from" in manifest and "training_config" not in manifest


def require_mode(source: str, trained_mode: str, mode: str) -> None:
    if trained_mode != mode:
        raise TrainingInputError(f"{source} was trained in mode {trained_mode!r}, not {mode!r}")


def check_steps(options: RunOptions) -> None:
    if options.steps < 1 or options.checkpoint_every < 1:
        raise TrainingInputError(f"--steps={options.steps} and --checkpoint_every="
                                 f"{options.checkpoint_every} must be positive")
    if options.steps % options.checkpoint_every:
        raise TrainingInputError(f"--steps={options.steps} must be a multiple of "
                                 f"--checkpoint_every={options.checkpoint_every}")


def check_inputs(options: RunOptions) -> None:
    """Everything about `options` that can be checked before TensorFlow is
    imported, in the order `run.train` meets it: the steps, the strategy's
    TF_CONFIG, the training config, the checkpoint to start from (when
    output_dir has none to resume) and the corpus. Writes nothing."""
    check_steps(options)
    cluster.check_strategy(options.strategy)
    cluster.check_precision(options.precision)
    if options.strategy == "multi_worker":
        cluster.parse_tf_config(os.environ.get("TF_CONFIG"))
    training_config(options)
    if not checkpoints.latest(os.path.join(options.output_dir, "checkpoints")):
        init_checkpoint(options.init_from, options.mode)
    check_corpus(options.corpus, configs.preset(options.config).audio, options.held_out)
