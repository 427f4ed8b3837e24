"""BitTTS models: conv-JETS acoustic model, alignment module, HiFi-GAN.

The models need TensorFlow; their configs (`configs`) do not. Names are
loaded on first use, so a tool can read a config, or refuse a bad flag or
file, before it pays for a TensorFlow import (about 4 s of CPU a process).
"""

from bittts_tf import lazy_exports

__getattr__, __all__ = lazy_exports.exports(__name__, {
    "bittts_tf.models.acoustic": ("AcousticModel",),
    "bittts_tf.models.alignment": ("AlignmentModule",),
    "bittts_tf.models.configs": ("QUANTIZE_SCOPES", "AcousticConfig", "ModelConfig",
                                 "VocoderConfig", "hifigan", "preset"),
    "bittts_tf.models.discriminators": ("Discriminators",),
    "bittts_tf.models.vocoder": ("HiFiGANGenerator",),
})
