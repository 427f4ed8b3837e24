"""Training hyper-parameters, saved with each checkpoint next to the ModelConfig."""

from __future__ import annotations

import dataclasses
import json

MODES = ("acoustic", "vocoder", "joint")
FORWARD_SUMS = ("ctc", "monotonic")


class TrainingInputError(ValueError):
    """A training run's options or inputs are wrong (the message names which):
    the tools refuse them in one line."""


@dataclasses.dataclass
class TrainingConfig:
    """`mode`: "acoustic" and "vocoder" are the two stages of two-stage
    training (the vocoder learns from ground-truth mels); "joint" trains text to
    wave at once as JETS does. Loss weights are JETS / HiFi-GAN's."""

    mode: str = "acoustic"
    batch_size: int = 16
    learning_rate: float = 2e-4
    beta_1: float = 0.8
    beta_2: float = 0.99
    weight_decay: float = 0.01
    # Exponential decay: the rate is multiplied by lr_decay_rate every lr_decay_steps.
    lr_decay_rate: float = 0.999
    lr_decay_steps: int = 100
    segment_frames: int = 32
    mel_weight: float = 45.0
    # Multi-resolution STFT loss (0: off, as HiFi-GAN). The frame-rate
    # vocoder's recipe: 9, i.e. one fifth of the mel weight (the shipped voice,
    # models/slt_tiny, was trained with it).
    stft_loss_weight: float = 0.0
    # The cepstral loss (losses.cepstral_loss) on the vocoder's waveform; 0: off.
    cepstral_loss_weight: float = 0.0
    # The phase loss (losses.phase_loss) on the vocoder's waveform; 0: off.
    phase_loss_weight: float = 0.0
    # Steps of generator-only training on the spectral losses before the
    # discriminators start (0: adversarial from the first step, as HiFi-GAN).
    generator_warmup_steps: int = 0
    feature_matching_weight: float = 2.0
    adversarial_weight: float = 1.0
    acoustic_mel_weight: float = 1.0
    variance_weight: float = 1.0
    forward_sum_weight: float = 1.0
    # "ctc": RAD-TTS / JETS (blank token, per-token normalization);
    # "monotonic": every frame belongs to a token, per-frame normalization.
    forward_sum: str = "ctc"
    binarization_weight: float = 1.0
    # The hard alignment is poor at first; binarizing the soft one towards it
    # too early locks in a bad path (RAD-TTS waits as well).
    binarization_start_step: int = 1000
    use_ground_truth_durations: bool = False
    # The frame F0 head's losses (AcousticConfig.frame_f0): weight of the
    # standardized log-F0 L1 and of the voicing cross-entropy.
    frame_f0_weight: float = 1.0
    # Joint mode with a source-phase vocoder: the first steps feed the
    # vocoder the recording's F0 rather than the acoustic model's, while a
    # fresh frame F0 head would feed it noise.
    target_f0_steps: int = 0
    # Vocoder mode: an acoustic checkpoint whose mels, aligned to the
    # recordings by the corpus durations, replace the corpus mels as the
    # vocoder's input (fine-tuning for what it will hear at inference).
    teacher_acoustic: str = ""
    # Vocoder mode: standard deviation of Gaussian noise added to the training
    # segments' log-mels (0: none). Tried against a vocoder whose phases moved
    # 5.6e-4 rad at one quiet frame for log-mel differences of 4e-6 (float32
    # rounding, LiteRT against Keras): 0.1 over 28 CPU minutes of fine-tuning
    # left that error where it was (3.0e-4 of the peak) and scored validation
    # WER 0.093 against 0.088 without, so it is off by default.
    vocoder_input_noise: float = 0.0
    seed: int = 1234

    def __post_init__(self):
        if self.forward_sum not in FORWARD_SUMS:
            raise TrainingInputError(f"forward_sum must be one of {FORWARD_SUMS}, "
                                     f"got {self.forward_sum!r}")
        if self.mode not in MODES:
            raise TrainingInputError(f"training mode must be one of {MODES}, got {self.mode!r}")
        if not self.vocoder_input_noise >= 0.0:
            raise TrainingInputError(f"vocoder_input_noise must be >= 0, "
                                     f"got {self.vocoder_input_noise}")
        if not 0.0 < self.lr_decay_rate <= 1.0:
            raise TrainingInputError(f"lr_decay_rate must be in (0, 1], got {self.lr_decay_rate}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingConfig:
        return cls(**json.loads(text))
