"""Loading and saving .keras models that use the bittts_tf layers."""

from __future__ import annotations

import pathlib
import zipfile
from typing import TYPE_CHECKING

from bittts_tf import fileio

if TYPE_CHECKING:
    import keras


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file."""


def load_keras_model(path) -> keras.Model:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    # A .keras file is a zip archive: anything else is refused before the
    # TensorFlow import (Keras' own message for it says "File not found").
    # Other suffixes (a legacy .h5) are Keras' to read.
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a readable .keras model (not a zip archive)")
    import keras

    import bittts_tf.quant.layers  # noqa: F401  (registers the layers for deserialization)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5 and config errors all mean "unreadable"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path}: not a readable .keras model ({first_line})") from None


def save_keras_model(model: keras.Model, path) -> pathlib.Path:
    """Saves atomically: a killed save never leaves a half-written model behind."""
    # Keras picks the format from the suffix, so the temporary file keeps it.
    fileio.atomic_write(path, model.save, suffix=".keras")
    return pathlib.Path(path)
