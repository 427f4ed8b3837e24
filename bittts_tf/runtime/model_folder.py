"""The exported model folder: what tools/export_tts.py writes and
bittts_tf.runtime (and tools/firmware.py) read. No TensorFlow here.

    manifest.json      format, version, audio config, front end, graph shapes,
                       speakers, and every graph file with its size and SHA-256
    text.tflite        phonemes -> encoder states, log-durations (ternary packed)
    frames.tflite      a stream: `step` regulated frames and every conv's state
                       -> the spectral head's output and the mel of frames
                       `delay` behind, and the new states (ternary packed)
    *.int8.tflite      the integer variants (optional)
    size_report.json   per graph and in total, next to float32

Every file is checked against the manifest on load, so a truncated or
corrupt file is refused by name before an interpreter sees it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re

from bittts_tf import fileio
from bittts_tf.audio import istft_spec
from bittts_tf.text.segment import MIN_TOKENS

FORMAT_NAME = "bittts-tts-model"
# 2: the frames graph is a stream with state (version 1's stateless graph
# recomputed 71 context frames for every 32 it emitted).
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SIZE_REPORT = "size_report.json"
# Graph roles and their variants: "packed" keeps the ternary kernels packed
# with BitTTSTernaryDecode in the graph; "int8" has int8 activations too;
# "float32" holds the same weights as float constants (benchmarks only).
GRAPHS = ("text", "frames")
VARIANTS = ("packed", "int8", "float32")


class ModelFolderError(ValueError):
    """A model folder that cannot be used; the message names the file."""


def graph_key(graph: str, variant: str) -> str:
    return graph if variant == "packed" else f"{graph}.{variant}"


def graph_file(graph: str, variant: str) -> str:
    return graph_key(graph, variant) + ".tflite"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class ModelFolder:
    path: str
    manifest: dict

    @property
    def shapes(self) -> dict:
        return self.manifest["shapes"]

    @property
    def variants(self) -> list[str]:
        return [v for v in VARIANTS if all(graph_key(g, v) in self.manifest["graphs"] for g in GRAPHS)]

    def read_graph(self, graph: str, variant: str = "packed") -> bytes:
        key = graph_key(graph, variant)
        entry = self.manifest["graphs"].get(key)
        if entry is None:
            raise ModelFolderError(f"{self.path}: the model has no {variant} {graph} graph "
                                   f"(variants: {', '.join(self.variants) or 'none'})")
        path = os.path.join(self.path, entry["file"])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelFolderError(f"{path}: cannot read the {graph} graph ({e.strerror})") from None
        if len(data) != entry["bytes"]:
            raise ModelFolderError(f"{path}: {len(data)} bytes, the manifest says {entry['bytes']} "
                                   "(truncated or replaced)")
        if sha256(data) != entry["sha256"]:
            raise ModelFolderError(f"{path}: contents differ from the manifest's SHA-256 (corrupt)")
        return data


_REQUIRED = ("format", "format_version", "audio", "front_end", "speakers", "shapes", "graphs")
_OBJECTS = ("audio", "front_end", "shapes", "graphs")
_SHAPES = ("max_tokens", "hop_length", "encoder_channels", "n_mels", "n_fft",
           "max_frames_per_token", "max_frames_per_segment", "stream")
_STREAM = ("step", "delay", "channels", "n_mels", "head_width", "states")
# A source-phase vocoder's (shapes.source_phase, with shapes.stream.frame_f0):
# its cut-off in Hz and the acoustic model's log-F0 standardization.
SOURCE_PHASE = ("cutoff", "log_f0_mean", "log_f0_std")


# No size in shapes exceeds this: the engine's tensor dims are uint16, and the
# runtime allocates from these sizes before any graph is read (a damaged
# max_tokens of 10^12 asked numpy for 3.6 TiB).
MAX_SIZE = 0xFFFF


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


def _check_shapes(shapes: dict, where: str) -> None:
    """Every size a positive int and every state [name, frames >= 0, channels > 0]:
    the runtime allocates from them."""
    stream = shapes["stream"]
    bad = [f"shapes.{k}" for k in _SHAPES if k != "stream" and not _positive(shapes[k])]
    if _positive(shapes["max_tokens"]) and shapes["max_tokens"] < MIN_TOKENS:
        # Text could not be cut into segments: each needs a word between two pauses.
        bad.append(f"shapes.max_tokens (at least {MIN_TOKENS})")
    bad += [f"shapes.stream.{k}" for k in _STREAM if k != "states" and not _positive(stream[k])]
    states = stream["states"]
    if not isinstance(states, list) or not states or not all(
            isinstance(s, list) and len(s) == 3 and isinstance(s[0], str)
            and isinstance(s[1], int) and 0 <= s[1] <= MAX_SIZE and _positive(s[2]) for s in states):
        bad.append("shapes.stream.states")
    source = shapes.get("source_phase")
    if stream.get("frame_f0", False) is not (source is not None):
        bad.append("shapes.stream.frame_f0 (a frame F0 goes with shapes.source_phase)")
    elif source is not None:
        def finite(value):
            return (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value))
        if not (isinstance(source, dict) and all(finite(source.get(k)) for k in SOURCE_PHASE)
                and source["cutoff"] > 0 and source["log_f0_std"] > 0):
            bad.append("shapes.source_phase")
    if not bad:
        # The inverse STFT's: a spectrum row holds n_fft / 2 + 1 log-magnitudes
        # and as many phases, and the C inverse STFT serves only some sizes.
        try:
            istft_spec.check_config(shapes["n_fft"], shapes["hop_length"])
        except ValueError as error:
            bad.append(f"shapes.n_fft / shapes.hop_length ({error})")
        if stream["head_width"] != shapes["n_fft"] + 2:
            bad.append(f"shapes.stream.head_width (n_fft + 2 = {shapes['n_fft'] + 2})")
    if bad:
        raise ModelFolderError(f"{where}: fields out of range or of the wrong type: {bad}")


def _check_fields(manifest: dict, where: str) -> None:
    """The fields outside shapes that tools read as they are: the speaker
    count, the audio's rates, and each graph's file, size and hash."""
    bad = [] if _positive(manifest["speakers"]) else ["speakers"]
    audio = manifest["audio"]   # AudioConfig's defaults stand in for an absent hop or n_fft
    bad += [f"audio.{k}" for k in ("sample_rate", "hop_length", "n_fft")
            if k in audio and not _positive(audio[k])]
    for key, entry in manifest["graphs"].items():
        if not isinstance(entry, dict):
            bad.append(f"graphs.{key}")
            continue
        file, size, digest = entry.get("file"), entry.get("bytes"), entry.get("sha256")
        # A bare name: the graph is a file of this folder, not a path elsewhere.
        if not (isinstance(file, str) and file not in ("", ".", "..")
                and os.path.basename(file) == file):
            bad.append(f"graphs.{key}.file")
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            bad.append(f"graphs.{key}.bytes")
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            bad.append(f"graphs.{key}.sha256")
    if bad:
        raise ModelFolderError(f"{where}: fields out of range or of the wrong type: {bad}")


def load(path: str) -> ModelFolder:
    """Reads and checks a model folder's manifest (graphs are checked when read)."""
    if not os.path.isdir(path):
        raise ModelFolderError(f"{path}: not a model folder (no such directory)")
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ModelFolderError(f"{manifest_path}: missing; export a model with "
                               "tools/export_tts.py") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFolderError(f"{manifest_path}: not a readable JSON manifest "
                               f"({e if not isinstance(e, RecursionError) else 'nested too deep'})"
                               ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFolderError(f"{manifest_path}: not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFolderError(f"{manifest_path}: format version {version!r} is newer than this "
                               f"runtime's {FORMAT_VERSION}; update bittts_tf")
    if version < FORMAT_VERSION:
        raise ModelFolderError(f"{manifest_path}: format version {version} (a stateless frames "
                               "graph) is no longer read; export the model again with "
                               "tools/export_tts.py (tools/recover_checkpoint.py rebuilds its "
                               "checkpoint from the folder)")
    missing = [k for k in _REQUIRED if k not in manifest]
    shapes = manifest.get("shapes")
    if isinstance(shapes, dict):
        missing += [f"shapes.{k}" for k in _SHAPES if k not in shapes]
        if isinstance(shapes.get("stream"), dict):
            missing += [f"shapes.stream.{k}" for k in _STREAM if k not in shapes["stream"]]
    if isinstance(manifest.get("audio"), dict) and "sample_rate" not in manifest["audio"]:
        missing.append("audio.sample_rate")
    if missing:
        raise ModelFolderError(f"{manifest_path}: missing fields {missing}")
    not_objects = [k for k in _OBJECTS if not isinstance(manifest[k], dict)]
    if isinstance(shapes, dict) and not isinstance(shapes["stream"], dict):
        not_objects.append("shapes.stream")
    if not_objects:
        raise ModelFolderError(f"{manifest_path}: fields that are not JSON objects: {not_objects}")
    _check_shapes(shapes, manifest_path)
    _check_fields(manifest, manifest_path)
    for graph in GRAPHS:
        if graph not in manifest["graphs"]:
            raise ModelFolderError(f"{manifest_path}: no {graph} graph listed")
    return ModelFolder(path, manifest)


def write(path: str, manifest: dict, files: dict[str, bytes], extra_json: dict | None = None) -> None:
    """Writes the files, then the manifest (with each file's size and hash)
    last and atomically: a folder with a manifest is complete."""
    os.makedirs(path, exist_ok=True)
    # An old manifest would vouch for files half replaced by this export.
    if os.path.exists(os.path.join(path, MANIFEST)):
        os.remove(os.path.join(path, MANIFEST))
    for name, data in files.items():
        fileio.atomic_write_bytes(os.path.join(path, name), data)
    for name, value in (extra_json or {}).items():
        fileio.atomic_write_json(os.path.join(path, name), value)
    fileio.atomic_write_json(os.path.join(path, MANIFEST), manifest)
