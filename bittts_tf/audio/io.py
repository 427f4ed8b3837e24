"""Reading and writing waveforms: mono float32, resampled on request."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import soundfile as sf

from bittts_tf import fileio


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


def check_riff(path: str) -> None:
    """Raise AudioError if a RIFF/WAVE file is cut short.

    libsndfile reads a truncated WAV without complaint (it returns whatever
    samples are there), so a file cut off by a crashed copy would silently
    yield a clip whose transcript no longer matches. The chunk sizes in the
    header say how long the file must be.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not RIFF; libsndfile decides whether it is audio at all
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if pos + 8 + chunk_size > size:
                    raise AudioError(f"{path}: truncated WAV: header promises {chunk_size} bytes "
                                     f"of audio, the file holds {size - pos - 8}")
                return
            pos += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(f"{path}: WAV file has no data chunk")


def load_wav(path: str, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a sound file as mono float32 in [-1, 1]; resample if sample_rate is given."""
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    check_riff(path)
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError(f"{path}: not readable audio ({e})") from None
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, sr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    import librosa  # slow to import; only needed when rates differ
    if orig_sr == target_sr:
        return audio.astype(np.float32)
    return librosa.resample(audio.astype(np.float32), orig_sr=orig_sr, target_sr=target_sr,
                            res_type="soxr_hq").astype(np.float32)


# Samples kept as int16 (the feature cache, pocketsphinx's input) use one
# scale both ways: full scale maps to 32767, so a float in [-1, 1] comes back
# within half a step and +1 and -1 come back exactly.
PCM16_SCALE = 32767.0


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples (clipped to [-1, 1]) as int16 at PCM16_SCALE."""
    return np.round(np.clip(np.asarray(audio), -1, 1) * PCM16_SCALE).astype(np.int16)


def from_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float32 samples from int16 ones written by to_pcm16; float input passes through."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / np.float32(PCM16_SCALE)
    return samples.astype(np.float32)


WAV_SUBTYPES = ("PCM_16", "FLOAT")


def wav_bytes(audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16",
              name: str = "<wav>") -> bytes:
    """A whole WAV file in memory (16-bit PCM, or 32-bit float samples that
    keep every bit of the model's output); name is what an error names."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"{name}: a WAV here is mono audio, got shape {audio.shape}")
    if subtype not in WAV_SUBTYPES:
        raise AudioError(f"{name}: WAV subtype {subtype!r} is not one of {WAV_SUBTYPES}")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def save_wav(path: str, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write a WAV (wav_bytes) atomically: a reader never sees a half-written file."""
    fileio.atomic_write_bytes(path, wav_bytes(audio, sample_rate, subtype, name=str(path)))


def probe(path: str) -> tuple[int, int]:
    """(frames, sample_rate) from the header, cheaply; AudioError if unusable."""
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    check_riff(path)
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError(f"{path}: not readable audio ({e})") from None
    return int(info.frames), int(info.samplerate)
