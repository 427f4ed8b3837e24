"""BitTTS models: conv-JETS acoustic model, alignment module, HiFi-GAN.

The models need TensorFlow; their configs (`configs`) need only the standard
library. Names are loaded on first use, so a tool can read a config, or
refuse a bad flag or file, before it pays for a TensorFlow import (about 4 s
of CPU a process).
"""

import importlib

_EXPORTS = {
    "bittts_tf.models.acoustic": ("AcousticModel",),
    "bittts_tf.models.alignment": ("AlignmentModule",),
    "bittts_tf.models.configs": ("QUANTIZE_SCOPES", "AcousticConfig", "ModelConfig",
                                 "VocoderConfig", "hifigan", "preset"),
    "bittts_tf.models.discriminators": ("Discriminators",),
    "bittts_tf.models.vocoder": ("HiFiGANGenerator",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'bittts_tf.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
