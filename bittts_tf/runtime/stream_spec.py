"""Constants and record layouts shared by the C99 stream walker
(`firmware_stub/bittts_stream.c`) and Python: the single source of truth.
No TensorFlow: the runtime drives the C walker through ctypes with them.

`firmware_stub/bittts_stream_spec.h` is generated from this module (`python -m
bittts_tf.runtime.stream_spec --write-header`); a test fails when the
committed header and this module disagree. tools/firmware.py fills the
config record from a model folder's manifest with `config_values` and sizes
the stream's work buffer with `work_len`; the ctypes tests build their
structures from the same lists.
"""

from __future__ import annotations

import pathlib

from bittts_tf import header_cli
from bittts_tf.litert.tflite_file import TFLITE_IDENTIFIER

# bittts_stream_config: int32 fields in this order, then the CONFIG_ARRAYS of
# MAX_STATES entries each, then the float32 CONFIG_SOURCE_FIELDS.
# `config_values` fills them from a model folder's manifest (shapes,
# shapes.stream, shapes.source_phase), the front end's symbol count and the
# sample rate.
CONFIG_FIELDS = (
    ("max_tokens", "phoneme ids per text-graph call (its input length)"),
    ("num_symbols", "phoneme ids are 0 .. num_symbols - 1"),
    ("encoder_channels", "values per regulated frame (text graph hidden width)"),
    ("hop_length", "samples per frame"),
    ("max_frames_per_token", "cap on one phoneme's duration"),
    ("max_frames_per_segment", "cap on a segment's total frames"),
    ("step", "frames in and spectrum rows out per frames-graph invoke"),
    ("delay", "the spectrum rows lag the input frames by this many frames"),
    ("n_fft", "the inverse STFT's window (a power of two)"),
    ("head_width", "values per spectrum row: log-magnitudes, then phases"),
    ("num_states", "frames-graph states (state_00 ..): inputs and outputs"),
)
# State NN's tensor is [1, 1, state_frames[NN], state_channels[NN]].
CONFIG_ARRAYS = (
    ("state_frames", "frames state NN holds (entries past num_states: 0)"),
    ("state_channels", "values per frame of state NN"),
)
# The frames graph's states a config can describe (the tiny preset has 15).
MAX_STATES = 32
# A source-phase vocoder's (shapes.source_phase): the stream reads the frames
# graph's frame_f0 output and hands these to bittts_istft_source_phase (the
# fields of bittts_istft_source, in its order). All 0 for a vocoder without:
# source_cutoff > 0 is what turns the source phase on, as
# FrameVocoderConfig.source_phase_cutoff does.
CONFIG_SOURCE_FIELDS = (
    ("source_sample_rate", "Hz: the bins' and the F0's time base (0: no source phase)"),
    ("source_cutoff", "Hz: bins below it take the source phase (0: no source phase)"),
    ("source_log_f0_mean", "F0 = exp(frame_f0[0] * log_f0_std + log_f0_mean) Hz (0: none)"),
    ("source_log_f0_std", "the log-F0 standardization's deviation (0: no source phase)"),
)

# bittts_duration_info: int32 fields, what regulation did to a segment.
DURATION_INFO_FIELDS = (
    ("total_frames", "frames after the caps"),
    ("capped_tokens", "phonemes shortened to max_frames_per_token"),
    ("uncapped_total", "the total before the segment cap sped it up, 0 if it did not"),
)

# The Python runtime (TextToSpeech._check) and the C stream refuse duration
# scales outside this range.
DURATION_SCALE_MIN = 0.1
DURATION_SCALE_MAX = 10.0

# (name, message); the code is the position. 0 must be OK.
STATUSES = (
    ("OK", "ok"),
    ("NULL", "a required pointer is NULL"),
    ("CONFIG", "model config out of range"),
    ("SIZE", "buffer length does not fit the model config"),
    ("ID", "phoneme id outside the model's symbols"),
    ("LENGTH", "phoneme count outside 1..max_tokens"),
    ("VALUE", "non-finite log-duration, or a duration outside 1..max_frames_per_token"),
    ("SCALE", f"duration scale outside {DURATION_SCALE_MIN:g}..{DURATION_SCALE_MAX:g}"),
    ("STATE", "stream not begun, already finished, or stopped by an error"),
    ("CALLBACK", "a callback returned non-zero"),
    ("MODEL", "model array truncated, corrupt, or not a .tflite flatbuffer"),
    ("QUANT", "int8 scale not positive and finite, or a zero point outside -128..127"),
    ("SPECTRUM", "the inverse STFT refused a spectrum row (NaN log-magnitude, infinite phase, "
                 "non-finite frame F0)"),
)

# Caps above 2**24 would not be exact in float32, where durations are compared.
MAX_FRAMES_LIMIT = 1 << 24

# int16 PCM as tools/speak.py's wav holds it (bittts_tf.audio.io.save_wav,
# libsndfile 1.2.2 through soundfile): the clipped sample goes to int32 first,
# round-half-even of x * 2**31 (saturated), and int16 keeps its top 16 bits,
# i.e. floor(that / 2**16). Not floor(x * 32768): samples within 2**-32 below a
# multiple of 2**-15 round up. A test compares with a wav written by save_wav.
PCM_INT32_SCALE = 2**31
PCM16_SHIFT = 16

# zlib's CRC-32 (reflected), which tools/firmware.py records for each model
# array; C checks it four bits at a time with this 16-entry table.
CRC32_POLYNOMIAL = 0xEDB88320


def crc32_nibble_table() -> list[int]:
    table = []
    for nibble in range(16):
        crc = nibble
        for _ in range(4):
            crc = (crc >> 1) ^ (CRC32_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return table

HEADER_PATH = pathlib.Path(__file__).resolve().parents[2] / "firmware_stub" / "bittts_stream_spec.h"


def status_code(name: str) -> int:
    return [n for n, _ in STATUSES].index(name)


def config_values(shapes: dict, num_symbols: int, sample_rate: float | None = None) -> dict:
    """bittts_stream_config's fields (the arrays as MAX_STATES-long lists)
    from a model folder's manifest shapes; a source-phase vocoder's
    (shapes.source_phase) needs the manifest's audio sample rate. ValueError
    for a stream this record cannot describe."""
    stream, states = shapes["stream"], shapes["stream"]["states"]
    source = shapes.get("source_phase")
    if bool(stream.get("frame_f0", False)) != (source is not None):
        raise ValueError("shapes.stream.frame_f0 and shapes.source_phase go together")
    if source is not None and not (sample_rate is not None and sample_rate > 0):
        raise ValueError(f"a source-phase vocoder needs a positive sample rate, not {sample_rate}")
    if len(states) > MAX_STATES:
        raise ValueError(f"the frames graph has {len(states)} states, the firmware's config "
                         f"holds at most {MAX_STATES} (MAX_STATES in stream_spec.py)")
    if stream["channels"] != shapes["encoder_channels"]:
        raise ValueError(f"shapes.stream.channels {stream['channels']} differs from "
                         f"shapes.encoder_channels {shapes['encoder_channels']}")
    values = {name: shapes[name] for name in ("max_tokens", "encoder_channels", "hop_length",
                                              "max_frames_per_token", "max_frames_per_segment",
                                              "n_fft")}
    values.update(num_symbols=num_symbols, step=stream["step"], delay=stream["delay"],
                  head_width=stream["head_width"], num_states=len(states))
    padding = [0] * (MAX_STATES - len(states))
    values["state_frames"] = [int(frames) for _, frames, _ in states] + padding
    values["state_channels"] = [int(channels) for _, _, channels in states] + padding
    values.update(dict.fromkeys((name for name, _ in CONFIG_SOURCE_FIELDS), 0.0))
    if source is not None:
        values.update(source_sample_rate=float(sample_rate), source_cutoff=float(source["cutoff"]),
                      source_log_f0_mean=float(source["log_f0_mean"]),
                      source_log_f0_std=float(source["log_f0_std"]))
    return values


def layout_check() -> str:
    """The preprocessor condition a generated header refuses to build under:
    a bittts_stream_spec.h whose record is not the one it was written for."""
    return (f"BITTTS_CONFIG_NUM_FIELDS != {len(CONFIG_FIELDS)} || BITTTS_CONFIG_NUM_SOURCE_FIELDS "
            f"!= {len(CONFIG_SOURCE_FIELDS)} || BITTTS_MAX_STATES != {MAX_STATES}")


def work_len(n_fft: int, hop: int, head_width: int, int8: bool, source: bool = False) -> int:
    """Floats of the work buffer bittts_stream_begin takes (bittts_stream_work_len):
    the inverse STFT's state (n_fft + n_fft / hop), its scratch (n_fft) and
    one hop of output, and for an int8 stream or a source-phase one (whose
    phases change in place) one spectrum row."""
    return n_fft + n_fft // hop + n_fft + hop + (head_width if int8 or source else 0)


def _struct(name: str, fields, arrays=(), floats=()) -> str:
    width = max(len(f) for f, _ in fields)
    lines = [f"  int32_t {f + ';':<{width + 1}}  /* {doc} */" for f, doc in fields]
    lines += [f"  int32_t {f}[BITTTS_MAX_STATES];  /* {doc} */" for f, doc in arrays]
    lines += [f"  float {f + ';':<{width + 3}}  /* {doc} */" for f, doc in floats]
    return "typedef struct {\n" + "\n".join(lines) + f"\n}} {name};\n"


def c_header() -> str:
    statuses = ",\n".join(f"  BITTTS_STREAM_{name} = {code}"
                          for code, (name, _) in enumerate(STATUSES))
    messages = ",\n".join(f'    "{message}"' for _, message in STATUSES)
    identifier = TFLITE_IDENTIFIER.decode()
    table = crc32_nibble_table()
    crc_rows = ", \\\n".join("    " + ", ".join(f"0x{v:08X}u" for v in table[i:i + 4])
                            for i in range(0, 16, 4))
    return f"""/* Generated by `python -m bittts_tf.runtime.stream_spec --write-header`. Do not
 * edit: bittts_tf/runtime/stream_spec.py is the source of truth and a test
 * checks they agree. */
#ifndef BITTTS_STREAM_SPEC_H_
#define BITTTS_STREAM_SPEC_H_

#include <stdint.h>

typedef enum {{
{statuses}
}} bittts_stream_status;

#define BITTTS_STREAM_NUM_STATUSES {len(STATUSES)}
#define BITTTS_STREAM_STATUS_MESSAGES {{ \\
{messages.replace(chr(10), " " + chr(92) + chr(10))} \\
}}

#define BITTTS_DURATION_SCALE_MIN {DURATION_SCALE_MIN!r}f
#define BITTTS_DURATION_SCALE_MAX {DURATION_SCALE_MAX!r}f
#define BITTTS_MAX_FRAMES_LIMIT {MAX_FRAMES_LIMIT}
#define BITTTS_PCM_INT32_SCALE {float(PCM_INT32_SCALE)!r}f
#define BITTTS_PCM16_SHIFT {PCM16_SHIFT}
#define BITTTS_TFLITE_IDENTIFIER "{identifier}"
#define BITTTS_CONFIG_NUM_FIELDS {len(CONFIG_FIELDS)}
#define BITTTS_CONFIG_NUM_SOURCE_FIELDS {len(CONFIG_SOURCE_FIELDS)}
#define BITTTS_MAX_STATES {MAX_STATES}
#define BITTTS_CRC32_NIBBLE_TABLE {{ \\
{crc_rows} \\
}}

{_struct("bittts_stream_config", CONFIG_FIELDS, CONFIG_ARRAYS, CONFIG_SOURCE_FIELDS)}
{_struct("bittts_duration_info", DURATION_INFO_FIELDS)}
#endif  /* BITTTS_STREAM_SPEC_H_ */
"""


def main(argv=None) -> int:
    return header_cli.main(__doc__.splitlines()[0], HEADER_PATH, c_header, argv)


if __name__ == "__main__":
    raise SystemExit(main())
