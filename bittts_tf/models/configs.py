"""Model configurations (paper / small / tiny) as plain dataclasses, JSON-saved.

A `ModelConfig` is written next to every checkpoint together with the symbol
table and the audio config, so a checkpoint can be rebuilt without the flags
that trained it.
"""

from __future__ import annotations

import dataclasses
import json

from bittts_tf.audio import istft_spec
from bittts_tf.audio.config import AudioConfig
from bittts_tf.audio.config import preset as audio_preset
from bittts_tf.quant.bits import FLOAT_BITS, normalize_bits

QUANTIZE_SCOPES = ("none", "acoustic", "vocoder", "all")


@dataclasses.dataclass
class AcousticConfig:
    """Conv-JETS. Predictor sizes follow ESPnet JETS defaults (pitch: 5 layers,
    kernel 5; energy and duration: 2 layers, kernel 3)."""

    n_symbols: int = 80
    n_speakers: int = 1
    n_mels: int = 80
    encoder_channels: int = 256
    encoder_blocks: int = 4
    encoder_kernel: int = 5
    decoder_channels: int = 192
    decoder_blocks: int = 4
    decoder_kernel: int = 5
    dropout: float = 0.1
    duration_layers: int = 2
    duration_channels: int = 256
    duration_kernel: int = 3
    pitch_layers: int = 5
    pitch_channels: int = 256
    pitch_kernel: int = 5
    energy_layers: int = 2
    energy_channels: int = 256
    energy_kernel: int = 3
    predictor_dropout: float = 0.5
    variance_embedding_kernel: int = 1
    attention_channels: int = 80
    attention_hidden_multiplier: int = 2
    # What the aligner's text side sees: the phone embeddings (as RAD-TTS) or
    # the encoder output (as JETS).
    aligner_text_input: str = "embedding"
    # Beta-binomial prior sharpness (JETS and RAD-TTS use 1, the default that
    # older checkpoints were trained with): larger keeps the alignment nearer
    # the diagonal of a constant speaking rate. The presets use 0.05. Pauses
    # (festival's leading 0.2 s and final 0.45 s) break that constant rate, and
    # with 1 the learned boundaries were 27 ms off against 17 ms with 0.05
    # (query kernel 1, 900 steps, the festival corpus).
    alignment_prior_scaling: float = 1.0
    # Time context of the aligner's first conv on each side. RAD-TTS uses 3 and
    # 3 (the default, which older checkpoints were trained with); the presets
    # use a query kernel of 1. Over mel frames whose analysis windows overlap,
    # a kernel of 3 let the forward-sum learn a one-frame delay: learned
    # boundaries came 1.5-2 frames late on the festival corpus (33-35 ms mean
    # error against 17 ms with a kernel of 1, same 600 steps).
    attention_query_kernel: int = 3
    attention_key_kernel: int = 3
    # Standardization of the token-averaged log-F0 and energy targets; set from
    # corpus statistics by the trainer.
    log_f0_mean: float = 5.0
    log_f0_std: float = 0.3
    energy_mean: float = 20.0
    energy_std: float = 15.0
    # Log-mel standardization: the model works on (mel - mean) / std and
    # outputs mel in the features' own units (log mels sit around -5, far
    # from where a freshly initialized projection starts).
    mel_mean: float = -5.0
    mel_std: float = 2.5
    # A frame-level F0 beside the mel (standardized log-F0 and a voicing
    # logit from the decoder, trained on the corpus F0): the F0 a source-phase
    # vocoder (FrameVocoderConfig.source_phase_cutoff) runs on. Its harmonics
    # must match the mel's to well under 1 %: of the 2 kHz vocoder's +0.12
    # DNSMOS, F0 1 % high kept +0.03, 2 % low +0.04, 1 % jitter a frame +0.05,
    # and an F0 head inside the vocoder (2.8 % off) lost all of it, so the F0
    # comes from the model that makes the mel.
    frame_f0: bool = False


@dataclasses.dataclass
class VocoderConfig:
    """HiFi-GAN generator and discriminators. `initial_channel` overrides the
    version's (the paper uses 128); V1 and V2 differ only by that channel."""

    kind: str = "hifigan"
    version: str = "V1"
    initial_channel: int = 128
    upsample_rates: tuple = (8, 8, 2, 2)
    upsample_kernels: tuple = (16, 16, 4, 4)
    resblock_type: int = 1
    resblock_kernels: tuple = (3, 7, 11)
    resblock_dilations: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    periods: tuple = (2, 3, 5, 7, 11)
    n_scales: int = 3
    # 1.0 gives the published discriminator widths (1024 channels at the top);
    # a CPU run divides them.
    discriminator_width: float = 1.0

    def __post_init__(self):
        self.upsample_rates = tuple(self.upsample_rates)
        self.upsample_kernels = tuple(self.upsample_kernels)
        self.resblock_kernels = tuple(self.resblock_kernels)
        self.resblock_dilations = tuple(tuple(d) for d in self.resblock_dilations)
        self.periods = tuple(self.periods)
        if len(self.upsample_rates) != len(self.upsample_kernels):
            raise ValueError("upsample_rates and upsample_kernels differ in length")
        if len(self.resblock_kernels) != len(self.resblock_dilations):
            raise ValueError("resblock_kernels and resblock_dilations differ in length")

    @property
    def hop_length(self) -> int:
        product = 1
        for rate in self.upsample_rates:
            product *= rate
        return product


@dataclasses.dataclass
class FrameVocoderConfig:
    """The frame-rate vocoder (bittts_tf.models.frame_vocoder): ConvNeXt
    blocks and an inverse STFT. The defaults are the `tiny` preset's: 0.98 M
    parameters, 73 MMAC per second of 16 kHz audio. The discriminator fields
    are HiFi-GAN's, narrowed for a CPU."""

    kind: str = "frame"
    channels: int = 128
    hidden_channels: int = 384
    blocks: int = 8
    block_kernel: int = 7
    input_kernel: int = 5
    layer_scale: float = 0.125
    n_fft: int = istft_spec.N_FFT          # what the C inverse STFT's tables serve
    hop_length: int = istft_spec.HOP_LENGTH
    sample_rate: int = 16000   # the audio's (ModelConfig checks): the source phase's bin frequencies
    # The spectral head is 13% of the weights; float until measurements say
    # a ternary head costs nothing.
    quantize_head: bool = False
    # The layer norms' epsilon. At 1e-6 (Vocos') a fine-tuned tiny vocoder
    # divided one quiet frame's block-5 depthwise output (deviation 0.08,
    # against residual values of 14) by its deviation and carried float32
    # rounding to 3e-4 of the waveform's peak; a larger epsilon bounds that
    # gain at 1 / sqrt(epsilon). Measured: 0.1 put that vocoder's stream
    # within 3e-5 of Keras, and after 20 CPU minutes of fine-tuning its
    # DNSMOS was 0.04 below the shipped voice's: not the default yet.
    norm_epsilon: float = 1e-6
    periods: tuple = (2, 3, 5, 7, 11)
    n_scales: int = 3
    discriminator_width: float = 0.125
    # Window lengths of the multi-resolution spectrogram discriminator (MRD,
    # as Vocos pairs with the MPD), e.g. (256, 512, 1024); () for none.
    resolution_ffts: tuple = ()
    # The source phase (frame_vocoder.source_phase): below this frequency, in
    # voiced frames, each bin's phase is the head's plus that of the nearest
    # harmonic of an F0-driven source, and the vocoder takes frame F0 as an
    # input beside the mel; 0: neither. Measured on the first 40 validation
    # sentences (the vocoder on festival's mels, fine-tuned 3,000 steps from
    # the shipped one with mel and multi-resolution STFT losses): DNSMOS 2.78
    # without, 2.90 with a 2 kHz cut-off, 2.93 with 4 kHz. The phase of the
    # lowest harmonics was where the voice lost to festival's (festival with
    # our 0-1 kHz phases: 3.09 -> 2.90).
    source_phase_cutoff: float = 0.0
    # With a source phase: F0 also enters as two input features (2 x channels
    # float weights after conv_in), so the magnitudes can follow the F0 the
    # phases follow.
    source_f0_input: bool = True

    def __post_init__(self):
        if not 0.0 <= self.source_phase_cutoff:
            raise ValueError(f"source_phase_cutoff={self.source_phase_cutoff} must be >= 0 Hz")
        self.periods = tuple(self.periods)
        self.resolution_ffts = tuple(self.resolution_ffts)
        if any(n < 16 or n & (n - 1) for n in self.resolution_ffts):
            raise ValueError(f"resolution_ffts={self.resolution_ffts}: each must be a power "
                             "of two of at least 16")
        if self.n_fft % self.hop_length:
            raise ValueError(f"n_fft={self.n_fft} must be a multiple of hop_length={self.hop_length}")


def vocoder_config_from_dict(data: dict):
    """The vocoder config a saved dict describes (HiFi-GAN when it names no kind)."""
    kinds = {"hifigan": VocoderConfig, "frame": FrameVocoderConfig}
    kind = data.get("kind", "hifigan")
    if kind not in kinds:
        raise ValueError(f"vocoder kind {kind!r} is none of {sorted(kinds)}")
    return kinds[kind](**data)


HIFIGAN_VERSIONS = {
    "V1": dict(initial_channel=512, upsample_rates=(8, 8, 2, 2), upsample_kernels=(16, 16, 4, 4),
               resblock_type=1, resblock_kernels=(3, 7, 11),
               resblock_dilations=((1, 3, 5), (1, 3, 5), (1, 3, 5))),
    "V2": dict(initial_channel=128, upsample_rates=(8, 8, 2, 2), upsample_kernels=(16, 16, 4, 4),
               resblock_type=1, resblock_kernels=(3, 7, 11),
               resblock_dilations=((1, 3, 5), (1, 3, 5), (1, 3, 5))),
    "V3": dict(initial_channel=256, upsample_rates=(8, 8, 4), upsample_kernels=(16, 16, 8),
               resblock_type=2, resblock_kernels=(3, 5, 7),
               resblock_dilations=((1, 2), (2, 6), (3, 12))),
}


def hifigan(version: str, initial_channel: int | None = None, **overrides) -> VocoderConfig:
    try:
        fields = dict(HIFIGAN_VERSIONS[version])
    except KeyError:
        raise ValueError(f"unknown HiFi-GAN version {version!r}; "
                         f"choose from {sorted(HIFIGAN_VERSIONS)}") from None
    if initial_channel is not None:
        fields["initial_channel"] = initial_channel
    fields.update(overrides)
    return VocoderConfig(version=version, **fields)


# The integer fields that may be 0 (no multi-scale discriminator); every
# other count, size and kernel is at least 1.
_MAY_BE_ZERO = frozenset({"n_scales"})


def _check_counts(part) -> None:
    """Every int field of an acoustic or vocoder config a positive int (a
    damaged checkpoint's channels=-4 would otherwise fail deep in Keras)."""
    for field in dataclasses.fields(part):
        if field.type not in (int, "int"):
            continue
        value = getattr(part, field.name)
        least = 0 if field.name in _MAY_BE_ZERO else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{type(part).__name__}.{field.name}={value!r} must be an "
                             f"integer >= {least}")


@dataclasses.dataclass
class ModelConfig:
    name: str
    audio: AudioConfig
    acoustic: AcousticConfig
    vocoder: VocoderConfig | FrameVocoderConfig
    quantize: str = "none"
    weight_bits: float = 1.58
    quantize_activations: bool = False

    def __post_init__(self):
        if self.quantize not in QUANTIZE_SCOPES:
            raise ValueError(f"quantize scope must be one of {QUANTIZE_SCOPES}, "
                             f"got {self.quantize!r}")
        self.weight_bits = normalize_bits(self.weight_bits)
        if self.vocoder.hop_length != self.audio.hop_length:
            raise ValueError(f"vocoder upsamples by {self.vocoder.hop_length} but the audio hop "
                             f"is {self.audio.hop_length}")
        if getattr(self.vocoder, "sample_rate", self.audio.sample_rate) != self.audio.sample_rate:
            raise ValueError(f"vocoder sample_rate={self.vocoder.sample_rate} but the audio's is "
                             f"{self.audio.sample_rate}")
        if self.acoustic.n_mels != self.audio.n_mels:
            raise ValueError(f"acoustic n_mels={self.acoustic.n_mels} but audio n_mels="
                             f"{self.audio.n_mels}")
        for part in (self.acoustic, self.vocoder):
            _check_counts(part)

    @property
    def acoustic_bits(self) -> float:
        return self.weight_bits if self.quantize in ("acoustic", "all") else FLOAT_BITS

    @property
    def vocoder_bits(self) -> float:
        return self.weight_bits if self.quantize in ("vocoder", "all") else FLOAT_BITS

    def to_dict(self) -> dict:
        return {"name": self.name, "audio": self.audio.to_dict(),
                "acoustic": dataclasses.asdict(self.acoustic),
                "vocoder": dataclasses.asdict(self.vocoder), "quantize": self.quantize,
                "weight_bits": self.weight_bits,
                "quantize_activations": self.quantize_activations}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        try:
            return cls(name=data["name"], audio=AudioConfig.from_dict(data["audio"]),
                       acoustic=AcousticConfig(**data["acoustic"]),
                       vocoder=vocoder_config_from_dict(data["vocoder"]), quantize=data["quantize"],
                       weight_bits=data["weight_bits"],
                       quantize_activations=data["quantize_activations"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a ModelConfig: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))


# The aligner settings every preset uses (see the AcousticConfig fields for why).
_PRESET_ALIGNER = dict(attention_query_kernel=1, alignment_prior_scaling=0.05)


def _paper() -> ModelConfig:
    acoustic = AcousticConfig(**_PRESET_ALIGNER)
    return ModelConfig("paper", audio_preset("ljspeech"), acoustic, hifigan("V1", initial_channel=128))


def _small() -> ModelConfig:
    # Channel-reduced float baseline, sized near the paper's 12.78 MB (3.2 M params).
    acoustic = AcousticConfig(encoder_channels=184, decoder_channels=136, duration_channels=184,
                              pitch_channels=184, energy_channels=184, **_PRESET_ALIGNER)
    return ModelConfig("small", audio_preset("ljspeech"), acoustic,
                       hifigan("V1", initial_channel=96))


def _tiny() -> ModelConfig:
    # About 1 M parameters in total: CPU training and microcontrollers.
    acoustic = AcousticConfig(encoder_channels=128, decoder_channels=96, duration_channels=96,
                              pitch_channels=96, pitch_layers=2, pitch_kernel=3,
                              energy_channels=96, attention_channels=64,
                              attention_hidden_multiplier=1, **_PRESET_ALIGNER)
    # The frame-rate vocoder: the tiny HiFi-GAN V3 was unintelligible after
    # 45 CPU minutes (pocketsphinx WER 0.95 on ground-truth mels).
    return ModelConfig("tiny", audio_preset("tiny"), acoustic, FrameVocoderConfig())


def _tiny_hifigan() -> ModelConfig:
    # The tiny preset with the HiFi-GAN it had before the frame-rate vocoder:
    # the other side of the equal-CPU vocoder comparison (tools/compare_runs.py).
    tiny = _tiny()
    vocoder = hifigan("V3", initial_channel=64, upsample_rates=(8, 8, 4),
                      upsample_kernels=(16, 16, 8), discriminator_width=0.125)
    return ModelConfig("tiny_hifigan", tiny.audio, tiny.acoustic, vocoder)


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny, "tiny_hifigan": _tiny_hifigan}


def parse_overrides(items, defaults, what: str) -> dict:
    """["field=value", ...] -> {field: value} for the dataclass `defaults`, each
    value converted to the type of the field's default (tuples of ints are
    written with ':' between the numbers, e.g. periods=2:3:5)."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{what} override {item!r} is not of the form field=value")
        if not hasattr(defaults, key):
            raise ValueError(f"{what} override {item!r}: {type(defaults).__name__} has no "
                             f"field {key!r}")
        kind = type(getattr(defaults, key))
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                value = text.lower() in ("true", "1")
            elif kind is tuple:
                value = tuple(int(part) for part in text.split(":") if part)
            else:
                value = kind(text)
        except ValueError:
            raise ValueError(f"{what} override {item!r}: {text!r} is not a {kind.__name__}") from None
        overrides[key] = value
    return overrides


def parse_acoustic_overrides(items) -> dict:
    """["field=value", ...] -> {field: value} for AcousticConfig."""
    return parse_overrides(items, AcousticConfig(), "acoustic")


def parse_vocoder_overrides(items, preset_name: str) -> dict:
    """["field=value", ...] -> {field: value} for the preset's vocoder config
    (e.g. n_scales=0 keeps only the period discriminators, 10x cheaper a step)."""
    try:
        vocoder = PRESETS[preset_name]().vocoder
    except KeyError:
        raise ValueError(f"unknown model config {preset_name!r}; choose from {sorted(PRESETS)}") from None
    return parse_overrides(items, vocoder, "vocoder")


def preset(name: str, quantize: str = "none", weight_bits=1.58, vocoder_overrides=None,
           **acoustic_overrides) -> ModelConfig:
    try:
        config = PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; choose from {sorted(PRESETS)}") from None
    for key, value in acoustic_overrides.items():
        if not hasattr(config.acoustic, key):
            raise ValueError(f"AcousticConfig has no field {key!r}")
        setattr(config.acoustic, key, value)
    vocoder = config.vocoder
    if vocoder_overrides:
        unknown = [key for key in vocoder_overrides if not hasattr(vocoder, key)]
        if unknown:
            raise ValueError(f"{type(vocoder).__name__} has no field {unknown[0]!r}")
        vocoder = dataclasses.replace(vocoder, **vocoder_overrides)
    return ModelConfig(config.name, config.audio, config.acoustic, vocoder,
                       quantize=quantize, weight_bits=weight_bits)


def with_vocoder_of(acoustic: ModelConfig, vocoder: ModelConfig) -> ModelConfig:
    """One config for a TTS whose acoustic model and vocoder were trained
    apart (the exported manifest records it, and rebuilding the models from
    a folder reads it): the acoustic run's config with the vocoder run's
    vocoder and quantization. Without this, a folder exported from an
    acoustic checkpoint and a vocoder trained with a ternary spectral head
    said the head was float and could not be recovered."""
    acoustic_quantized = acoustic.quantize in ("acoustic", "all")
    vocoder_quantized = vocoder.quantize in ("vocoder", "all")
    if acoustic_quantized and vocoder_quantized and acoustic.weight_bits != vocoder.weight_bits:
        raise ValueError(f"the acoustic model has {acoustic.weight_bits}-bit weights and the "
                         f"vocoder {vocoder.weight_bits}-bit: one config holds one width")
    if acoustic.quantize_activations != vocoder.quantize_activations:
        raise ValueError("the acoustic model and the vocoder differ in quantize_activations")
    quantize = {(False, False): "none", (True, False): "acoustic", (False, True): "vocoder",
                (True, True): "all"}[(acoustic_quantized, vocoder_quantized)]
    bits = acoustic.weight_bits if acoustic_quantized else vocoder.weight_bits
    return dataclasses.replace(acoustic, vocoder=vocoder.vocoder, quantize=quantize,
                               weight_bits=bits)
