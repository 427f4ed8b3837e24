"""Conversion to TFLite with packed ternary weights, the TTS graphs and model
folders, and the tooling for firmware (TFLite Micro, the budget, C sources)."""


class ConversionError(RuntimeError):
    """A model that cannot be converted or packed; the message names the layer
    or the step that failed."""
