"""Builds the models of a ModelConfig with the bits its quantization scope
gives each, and lists what ended up quantized."""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import numpy as np

from bittts_tf.models.acoustic import AcousticModel
from bittts_tf.models.configs import ModelConfig
from bittts_tf.models.discriminators import Discriminators
from bittts_tf.models.frame_vocoder import FrameVocoder
from bittts_tf.models.vocoder import HiFiGANGenerator
from bittts_tf.quant import quantized_layers


def dummy_inputs(config: ModelConfig, batch=1, n_tokens=4, n_frames=8) -> dict:
    """A batch that builds every variable of the acoustic model."""
    return {"phonemes": np.ones((batch, n_tokens), np.int32),
            "phoneme_lengths": np.full((batch,), n_tokens, np.int32),
            "mels": np.zeros((batch, n_frames, config.audio.n_mels), np.float32),
            "mel_lengths": np.full((batch,), n_frames, np.int32),
            "f0": np.full((batch, n_frames), 100.0, np.float32),
            "energy": np.ones((batch, n_frames), np.float32),
            "speakers": np.zeros((batch,), np.int32)}


@contextlib.contextmanager
def dtype_policy(name: str):
    """Models built inside take Keras dtype policy `name` whatever the global
    one: "float32" under a mixed-precision run, "float64" for a reference
    that float32 rounding does not reach (tools/check_streaming.py)."""
    saved = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(saved)


def build_acoustic(config: ModelConfig) -> AcousticModel:
    model = AcousticModel(dataclasses.asdict(config.acoustic), weight_bits=config.acoustic_bits,
                          quantize_activations=config.quantize_activations and
                          config.acoustic_bits != 32, name="acoustic")
    model(dummy_inputs(config))
    return model


def build_generator(config: ModelConfig) -> HiFiGANGenerator | FrameVocoder:
    """The vocoder the config names: HiFi-GAN or the frame-rate vocoder."""
    kind = FrameVocoder if config.vocoder.kind == "frame" else HiFiGANGenerator
    model = kind(dataclasses.asdict(config.vocoder), n_mels=config.audio.n_mels,
                 weight_bits=config.vocoder_bits,
                 quantize_activations=config.quantize_activations and config.vocoder_bits != 32,
                 name="generator")
    mels = np.zeros((1, 2, config.audio.n_mels), np.float32)
    if kind is FrameVocoder and model.takes_f0:
        model(mels, f0=np.full((1, 2), 100.0, np.float32))
    else:
        model(mels)
    return model


def build_discriminators(config: ModelConfig) -> Discriminators:
    v = config.vocoder
    model = Discriminators(v.periods, v.n_scales, v.discriminator_width,
                           getattr(v, "resolution_ffts", ()), name="discriminators")
    model(np.zeros((1, 4 * config.audio.hop_length), np.float32))
    return model


def quantization_table(models: dict[str, keras.Model]) -> list[tuple[str, str, float, int]]:
    """(model, layer path, weight bits, kernel size) of every QAT layer whose
    weights are quantized."""
    rows = []
    for model_name, model in models.items():
        for layer in quantized_layers(model):
            if layer.is_quantized:
                rows.append((model_name, layer.path, layer.weight_bits,
                             int(np.prod(layer.kernel.shape))))
    return rows


def format_quantization_table(models: dict[str, keras.Model]) -> str:
    rows = quantization_table(models)
    if not rows:
        return "quantized layers: none (all weights float32)"
    lines = [f"quantized layers ({len(rows)}):"]
    lines += [f"  {bits:>5} bit  {n:>9,d} weights  {model}:{path}" for model, path, bits, n in rows]
    return "\n".join(lines)
