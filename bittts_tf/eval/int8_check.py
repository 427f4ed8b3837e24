"""How far a model folder's int8 path is from the Keras models, in what is
heard: the mel cepstral distortion between the Keras waveform of each
segment and the folder's graphs on the same durations.

The durations come from the folder's float graphs, which give the Keras
samples within 1e-4 of the peak (tools/check_streaming.py): an int8
log-duration that rounds to another frame would shift every later sample
and measure the shift, not the quantization.
"""

from __future__ import annotations

import os

import numpy as np

from bittts_tf.eval.metrics import mel_cepstral_distortion


class Int8CheckError(ValueError):
    """The folder and the reference do not describe the same model."""


def waveform_on_float_durations(timing, tts, text: str) -> np.ndarray:
    """`tts`'s graphs speaking `text` on the durations of `timing`'s (both
    bittts_tf.runtime.TextToSpeech of one folder)."""
    from bittts_tf.runtime.tts import regulate, regulate_durations
    shapes = timing.shapes
    audio = []
    for ids in timing.segments(text):
        _, log_duration = timing.encode(ids)
        durations, _ = regulate_durations(log_duration, len(ids), 1.0,
                                          shapes["max_frames_per_token"],
                                          shapes["max_frames_per_segment"])
        hidden, _ = tts.encode(ids)
        audio += [samples for samples, _ in tts.frame_chunks(regulate(hidden, durations))]
    return np.concatenate(audio)


def mcd_against_keras(model_dir: str, texts: list[str], references: list[np.ndarray],
                      audio_config, variant: str = "int8", progress=None) -> dict:
    """MCD (dB, c1..c12) of the folder's `variant` graphs against each Keras
    waveform in `references` (one per text, its segments concatenated)."""
    from bittts_tf.runtime import TextToSpeech
    timing, tts = TextToSpeech(model_dir), TextToSpeech(model_dir, variant=variant)
    mcd = []
    for text, expected in zip(progress(texts) if progress else texts, references):
        audio = waveform_on_float_durations(timing, tts, text)
        if audio.shape != expected.shape:
            raise Int8CheckError(f"{model_dir} does not hold the reference's model: its float "
                                 f"graphs' durations give {audio.size} samples for {text!r}, "
                                 f"the reference {expected.size}")
        mcd.append(mel_cepstral_distortion(expected, audio, audio_config))
    return {"model_dir": os.path.abspath(model_dir), "variant": variant, "mcd_db": mcd,
            "max_mcd_db": max(mcd), "mean_mcd_db": float(np.mean(mcd)), "utterances": len(mcd)}
