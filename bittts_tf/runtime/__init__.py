"""Speaking through an exported model folder with LiteRT and our op library.

    from bittts_tf.runtime import TextToSpeech
    tts = TextToSpeech("models/slt_tiny")
    result = tts.synthesize("Hello there.")   # .audio, .mel, .sample_rate

Imports no TensorFlow.
"""

from bittts_tf.runtime.model_folder import ModelFolderError
from bittts_tf.runtime.tts import (DECODE_MODES, ENGINES, Synthesis, SynthesisError,
                                   TextError, TextToSpeech)

__all__ = ["TextToSpeech", "Synthesis", "SynthesisError", "TextError", "ModelFolderError",
           "DECODE_MODES", "ENGINES"]
