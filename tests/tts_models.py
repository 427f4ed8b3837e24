"""A random tiny TTS that speaks like a trained one, for export and runtime tests."""

import keras
import numpy as np

from bittts_tf.models import build, configs
from bittts_tf.text import FrontEnd


def random_tts(seed: int, vocoder_overrides: dict | None = None):
    """(config, acoustic, vocoder): the tiny preset, ternary everywhere, with
    durations of a few frames a phoneme as a trained model predicts."""
    keras.utils.set_random_seed(seed)
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols),
                            vocoder_overrides=vocoder_overrides)
    acoustic, vocoder = build.build_acoustic(config), build.build_generator(config)
    head = acoustic.variance_adaptor.duration_predictor.head
    head.bias.assign([np.log(5.0)])
    head.kernel.assign(head.kernel * 0.05)
    return config, acoustic, vocoder
