"""Text front end: normalization, grapheme-to-phoneme conversion, symbol ids."""

from bittts_tf.text.normalize import TextError, normalize_text
from bittts_tf.text.symbols import PAD, PAUSE, SymbolError, SymbolTable
from bittts_tf.text.g2p import G2P, FrontEnd

__all__ = ["TextError", "normalize_text", "PAD", "PAUSE", "SymbolError", "SymbolTable",
           "G2P", "FrontEnd"]
