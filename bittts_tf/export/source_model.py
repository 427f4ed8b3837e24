"""The model a conversion starts from: a .keras file, or a model of a
training checkpoint (the tools' --keras_model / --checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


CHECKPOINT_MODELS = ("generator", "acoustic")


class CheckpointModelError(ValueError):
    """A checkpoint that cannot give the requested model; the message names it."""


def from_checkpoint(path: str, which: str = "generator") -> keras.Model:
    """A model of a training checkpoint (a file, or a run / checkpoints
    directory: its newest checkpoint), ready for `converter.convert`.

    "generator": the vocoder, wrapped as a keras.Model with a concrete input,
    mel [batch, frames, n_mels] -> waveform. "acoustic" is refused: its
    text -> mel path has a data-dependent length (durations), so it has no
    single graph; tools/export_tts.py exports it as fixed-shape graphs."""
    from bittts_tf.training import checkpoints

    if which not in CHECKPOINT_MODELS:
        raise CheckpointModelError(f"model {which!r}: must be one of {CHECKPOINT_MODELS}")
    if which == "acoustic":
        raise CheckpointModelError(
            "the acoustic model's text -> mel path has a data-dependent "
            "length, so it has no single graph to convert; tools/export_tts.py exports it")
    try:
        checkpoint = checkpoints.resolve(path)
        manifest = checkpoints.read_manifest(checkpoint)
        layout = manifest.get("layout", {})
        if f"model/{which}" not in layout:
            raise CheckpointModelError(f"{checkpoint}: holds no {which} (it holds "
                                       f"{', '.join(sorted(layout)) or 'nothing'})")
        config = checkpoints.model_config(checkpoint, manifest)
        import keras   # TensorFlow: only once the checkpoint is known to hold the model

        from bittts_tf.models import build
        generator = build.build_generator(config)
        checkpoints.restore(checkpoint, {"generator": generator})
    except checkpoints.CheckpointError as error:
        raise CheckpointModelError(str(error)) from None
    mels = keras.Input((None, config.audio.n_mels), name="mel")
    return keras.Model(mels, generator(mels), name="generator")


def load(keras_model: str | None, checkpoint: str | None,
         which: str = "generator") -> keras.Model:
    """The model a conversion starts from: a .keras file or a checkpoint's
    model, exactly one of them (the tools' --keras_model / --checkpoint)."""
    from bittts_tf.export import keras_io

    if (keras_model is None) == (checkpoint is None):
        raise CheckpointModelError("give exactly one of --keras_model and --checkpoint")
    if keras_model is not None:
        return keras_io.load_keras_model(keras_model)
    return from_checkpoint(checkpoint, which)
