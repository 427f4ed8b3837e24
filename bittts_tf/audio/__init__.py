"""Audio: wav I/O, feature settings, log-mel / F0 / energy extraction."""

from bittts_tf.audio.config import PRESETS, AudioConfig, preset
from bittts_tf.audio.io import AudioError, load_wav, probe, resample, save_wav
from bittts_tf.audio.features import (durations_to_frames, energy, frame_features, log_mel,
                                      phone_average, pitch)

__all__ = ["PRESETS", "AudioConfig", "preset", "AudioError", "load_wav", "probe", "resample", "save_wav",
           "durations_to_frames", "energy", "frame_features", "log_mel", "phone_average", "pitch"]
