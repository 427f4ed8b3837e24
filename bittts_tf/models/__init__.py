"""BitTTS models: conv-JETS acoustic model, alignment module, HiFi-GAN."""

from bittts_tf.models.acoustic import AcousticModel
from bittts_tf.models.alignment import AlignmentModule
from bittts_tf.models.configs import (QUANTIZE_SCOPES, AcousticConfig, ModelConfig,
                                      VocoderConfig, hifigan, preset)
from bittts_tf.models.discriminators import Discriminators
from bittts_tf.models.vocoder import HiFiGANGenerator
