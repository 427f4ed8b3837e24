"""bittts_tf: ternary (1.58-bit) text-to-speech for TensorFlow / LiteRT / TFLite Micro."""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) buries the
# tools' own output; users can still override it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
