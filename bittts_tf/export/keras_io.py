"""Loading and saving .keras models that use the bittts_tf layers."""

from __future__ import annotations

import os
import pathlib
import tempfile

import keras

import bittts_tf.quant  # noqa: F401  (registers the layers for deserialization)


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file."""


def load_keras_model(path) -> keras.Model:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5 and config errors all mean "unreadable"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path}: not a readable .keras model ({first_line})") from None


def save_keras_model(model: keras.Model, path) -> pathlib.Path:
    """Saves atomically: a killed save never leaves a half-written model behind."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
