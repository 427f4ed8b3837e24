"""bittts_tf: ternary (1.58-bit) text-to-speech for TensorFlow / LiteRT / TFLite Micro."""

__version__ = "0.1.0"
