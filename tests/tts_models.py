"""A random tiny TTS that speaks like a trained one, for export and runtime tests."""

import dataclasses
from pathlib import Path

import keras
import numpy as np

from bittts_tf.models import build, configs
from bittts_tf.text import FrontEnd
from bittts_tf.training import checkpoints


def random_tts(seed: int, vocoder_overrides: dict | None = None, weight_bits=1.58,
               source_phase: bool = False):
    """(config, acoustic, vocoder): the tiny preset, ternary everywhere (or
    `weight_bits`), with durations of a few frames a phoneme as a trained
    model predicts. `source_phase`: a frame F0 head (random, so F0 and
    voicing vary) and a vocoder with a 4 kHz source phase."""
    keras.utils.set_random_seed(seed)
    if source_phase:
        vocoder_overrides = {**(vocoder_overrides or {}), "source_phase_cutoff": 4000.0}
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols),
                            vocoder_overrides=vocoder_overrides, weight_bits=weight_bits,
                            frame_f0=source_phase)
    acoustic, vocoder = build.build_acoustic(config), build.build_generator(config)
    head = acoustic.variance_adaptor.duration_predictor.head
    head.bias.assign([np.log(5.0)])
    head.kernel.assign(head.kernel * 0.05)
    if source_phase:
        rng = np.random.default_rng(seed)
        f0_input = vocoder.f0_input.variables if vocoder.f0_input is not None else []
        for variable in acoustic.f0_projection.variables + f0_input:
            variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    return config, acoustic, vocoder


def random_tts_for_int8(seed: int, max_tokens: int):
    """(config, acoustic, vocoder, utterances): random_tts with a mel that
    varies as a trained one does (a random mel projection), and four random
    phoneme sequences of 8..max_tokens ids to calibrate its int8 graphs on."""
    config, acoustic, vocoder = random_tts(seed)
    projection = acoustic.mel_projection
    projection.kernel.assign(np.random.default_rng(seed).normal(
        0, 1 / np.sqrt(projection.kernel.shape[0]), projection.kernel.shape))
    rng = np.random.default_rng(seed)
    utterances = [{"phonemes": rng.integers(1, 71, int(rng.integers(8, max_tokens + 1)))}
                  for _ in range(4)]
    return config, acoustic, vocoder, utterances


def save_small_vocoder_run(seed: int, run: Path, step: int) -> Path:
    """`run`, holding a checkpoint at `step` of a small ternary frame vocoder
    (the tiny preset at 16 channels, 24 hidden, 2 blocks) with random
    weights, saved as a training run saves one."""
    keras.utils.set_random_seed(seed)
    config = configs.preset("tiny", quantize="vocoder")
    config = dataclasses.replace(config, vocoder=dataclasses.replace(
        config.vocoder, channels=16, hidden_channels=24, blocks=2))
    checkpoints.save(str(run / "checkpoints"), step, {"generator": build.build_generator(config)},
                     {}, {"model_config": config.to_dict()})
    return run


def random_recovered_checkpoint(rng: np.random.Generator, folder: Path):
    """(path, acoustic model, metadata) of a checkpoint of both models of the
    tiny ternary preset, random weights (normal, sd 0.1), saved as
    tools/recover_checkpoint.py saves a voice rebuilt from its folder: the
    start of a joint fine-tune."""
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols))
    acoustic, generator = build.build_acoustic(config), build.build_generator(config)
    for variable in acoustic.trainable_variables + generator.trainable_variables:
        variable.assign(rng.normal(0, 0.1, variable.shape))
    metadata = {"model_config": config.to_dict(), "recovered_from": {"model_dir": "a folder"}}
    path = checkpoints.save(str(folder), 0, {"acoustic": acoustic, "generator": generator}, {},
                            metadata, keep=0)
    return path, acoustic, metadata
