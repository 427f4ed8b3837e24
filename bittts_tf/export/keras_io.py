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


def check_tf_keras_model_path(path) -> pathlib.Path:
    """`path` if it can hold a saved tf-keras model (a SavedModel directory or
    an .h5 file), else ModelFileError. Without TensorFlow, so that a bad path
    is refused before the TFMOT import (about 7 s of CPU)."""
    path = pathlib.Path(path)
    is_saved_model = path.is_dir() and (path / "saved_model.pb").is_file()
    if not is_saved_model and not (path.is_file() and path.suffix in (".h5", ".hdf5")):
        what = "no SavedModel (saved_model.pb) in this directory" if path.is_dir() else (
            "no such file" if not path.exists() else "not a SavedModel directory or .h5 file")
        raise ModelFileError(f"{path}: {what}")
    return path


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
