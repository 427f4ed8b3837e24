"""The inverse STFT shared by the frame vocoder (Python) and its C99
implementation (firmware_stub/bittts_istft.c): the single source of truth.

`firmware_stub/bittts_istft_spec.h` is generated from this module (`python -m
bittts_tf.audio.istft_spec --write-header`); a test fails when the committed
header and this module disagree. bittts_tf.models.istft and
bittts_tf.models.frame_vocoder take their constants and window from here.

The vocoder's spectral head emits, per frame, n_fft / 2 + 1 log-magnitudes
then n_fft / 2 + 1 phases. A frame's spectrum is
    magnitude = exp(min(logmag, MAX_LOG_MAGNITUDE)) * mask
    real, imag = magnitude * cos(phase), magnitude * sin(phase)
its inverse real DFT is windowed with the periodic Hann window, times mask,
and overlap-added with hop HOP_LENGTH; frames are centred (frame t covers
samples t * hop - n_fft / 2 ... t * hop + n_fft / 2 - 1) and the sum is divided
by the overlap-added mask * window**2, floored at ENVELOPE_FLOOR.

The C tables are built for N_FFT and serve every power of two n_fft from
MIN_N_FFT to N_FFT by striding (exactly: the strided window equals
hann_window(n_fft) bit for bit, which a test checks).
"""

from __future__ import annotations

import pathlib

import numpy as np

from bittts_tf import header_cli

N_FFT = 1024         # the frame vocoder's n_fft, and the largest the C tables serve
HOP_LENGTH = 256     # its hop (16 kHz: 62.5 frames a second)
MIN_N_FFT = 4        # the real inverse FFT runs a complex FFT of n_fft / 2 >= 2 points
# exp(6) = 403: Vocos clips the magnitude at 100; a little more headroom
# leaves loud vowels of 16 kHz speech (peak bins near 150) unclipped.
MAX_LOG_MAGNITUDE = 6.0
# The overlap-added squared Hann window is at least 0.25 inside an utterance
# (at its last sample); the floor only keeps samples of masked frames finite.
ENVELOPE_FLOOR = 1e-3

# (name, message); the code is the position. 0 must be OK.
STATUSES = (
    ("OK", "ok"),
    ("NULL", "a required pointer is NULL"),
    ("CONFIG", f"n_fft must be a power of two in {MIN_N_FFT}..{N_FFT} and hop a power of two "
               "dividing n_fft / 2"),
    ("SIZE", "buffer shorter than the configuration needs"),
    ("VALUE", "NaN log-magnitude, non-finite phase, or mask outside 0..1"),
    ("STATE", "record not begun"),
)

HEADER_PATH = (pathlib.Path(__file__).resolve().parents[2] / "firmware_stub"
               / "bittts_istft_spec.h")


def status_code(name: str) -> int:
    return [n for n, _ in STATUSES].index(name)


def check_config(n_fft: int, hop: int) -> None:
    """Raises ValueError unless the C implementation serves (n_fft, hop)."""
    if not (MIN_N_FFT <= n_fft <= N_FFT and n_fft & (n_fft - 1) == 0):
        raise ValueError(f"n_fft={n_fft} must be a power of two in {MIN_N_FFT}..{N_FFT}")
    if not (1 <= hop and hop & (hop - 1) == 0 and (n_fft // 2) % hop == 0):
        raise ValueError(f"hop={hop} must be a power of two dividing n_fft / 2 = {n_fft // 2}")


def delay_frames(n_fft: int = N_FFT, hop: int = HOP_LENGTH) -> int:
    """Frames pushed before the first samples come out, and masked frames that
    finish an utterance: n_fft / (2 hop)."""
    return n_fft // (2 * hop)


def state_len(n_fft: int = N_FFT, hop: int = HOP_LENGTH) -> int:
    """Floats of stream state: the overlap-add ring (n_fft) and the masks of
    the n_fft / hop frames a sample hears."""
    return n_fft + n_fft // hop


def scratch_len(n_fft: int = N_FFT) -> int:
    """Floats of FFT scratch: n_fft / 2 complex values, in place."""
    return n_fft


def head_len(n_fft: int = N_FFT) -> int:
    """Floats of one frame's head output: log-magnitudes, then phases."""
    return n_fft + 2


def hann_window(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa's STFT uses (float32)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def half_window() -> np.ndarray:
    """hann_window(N_FFT)[0 .. N_FFT / 2]: the window is symmetric,
    w[n_fft - n] == w[n] (bit for bit in float32, a test checks)."""
    return hann_window(N_FFT)[:N_FFT // 2 + 1]


def twiddles() -> np.ndarray:
    """[N_FFT / 2, 2] float32: cos and sin of 2 pi k / N_FFT, k < N_FFT / 2,
    from double, with the quarter turn's cosine exactly 0."""
    angle = 2.0 * np.pi * np.arange(N_FFT // 2) / N_FFT
    table = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    table[np.abs(table) < 1e-12] = 0.0
    return table.astype(np.float32)


def bit_reversal() -> np.ndarray:
    """[N_FFT / 2] uint16: k with its log2(N_FFT / 2) bits reversed. For a
    complex FFT of m = n_fft / 2 < N_FFT / 2 points, shift right by
    log2(N_FFT / n_fft)."""
    bits = (N_FFT // 2).bit_length() - 1
    k = np.arange(N_FFT // 2)
    out = np.zeros_like(k)
    for b in range(bits):
        out |= ((k >> b) & 1) << (bits - 1 - b)
    return out.astype(np.uint16)


def _c_float(value) -> str:
    text = str(np.float32(value))   # shortest decimal that reads back as this float32
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _rows(items: list[str], per_row: int) -> str:
    return ",\n".join("    " + ", ".join(items[i:i + per_row])
                      for i in range(0, len(items), per_row))


def c_header() -> str:
    check_config(N_FFT, HOP_LENGTH)
    statuses = ",\n".join(f"  BITTTS_ISTFT_{name} = {code}"
                          for code, (name, _) in enumerate(STATUSES))
    messages = ",\n".join(f'    "{message}"' for _, message in STATUSES)
    window = _rows([_c_float(v) for v in half_window()], 6)
    twiddle = _rows(["{" + _c_float(c) + ", " + _c_float(s) + "}" for c, s in twiddles()], 3)
    reversal = _rows([f"{v}" for v in bit_reversal()], 16)
    return f"""/* Generated by `python -m bittts_tf.audio.istft_spec --write-header`. Do not
 * edit: bittts_tf/audio/istft_spec.py is the source of truth and a test checks
 * they agree. */
#ifndef BITTTS_ISTFT_SPEC_H_
#define BITTTS_ISTFT_SPEC_H_

#include <stdint.h>

typedef enum {{
{statuses}
}} bittts_istft_status;

#define BITTTS_ISTFT_NUM_STATUSES {len(STATUSES)}
#define BITTTS_ISTFT_STATUS_MESSAGES {{ \\
{messages.replace(chr(10), " " + chr(92) + chr(10))} \\
}}

/* The frame vocoder's configuration; the tables below serve every power of
 * two n_fft from BITTTS_ISTFT_MIN_N_FFT to BITTTS_ISTFT_N_FFT. */
#define BITTTS_ISTFT_N_FFT {N_FFT}
#define BITTTS_ISTFT_HOP {HOP_LENGTH}
#define BITTTS_ISTFT_MIN_N_FFT {MIN_N_FFT}
#define BITTTS_ISTFT_MAX_LOG_MAGNITUDE {_c_float(MAX_LOG_MAGNITUDE)}
#define BITTTS_ISTFT_ENVELOPE_FLOOR {_c_float(ENVELOPE_FLOOR)}

/* Buffer lengths (floats) for BITTTS_ISTFT_N_FFT and BITTTS_ISTFT_HOP, for
 * static allocation; bittts_istft_*_len give them for any configuration. */
#define BITTTS_ISTFT_HEAD_LEN {head_len()}
#define BITTTS_ISTFT_STATE_LEN {state_len()}
#define BITTTS_ISTFT_SCRATCH_LEN {scratch_len()}
#define BITTTS_ISTFT_DELAY_FRAMES {delay_frames()}

/* Periodic Hann window of BITTTS_ISTFT_N_FFT points, samples 0 .. N / 2
 * (w[N - n] == w[n]); for n_fft = N / s, w_n_fft[n] = BITTTS_ISTFT_HALF_WINDOW[n * s]. */
static const float BITTTS_ISTFT_HALF_WINDOW[BITTTS_ISTFT_N_FFT / 2 + 1] = {{
{window}
}};

/* {{cos, sin}} of 2 pi k / BITTTS_ISTFT_N_FFT, k < BITTTS_ISTFT_N_FFT / 2. */
static const float BITTTS_ISTFT_TWIDDLES[BITTTS_ISTFT_N_FFT / 2][2] = {{
{twiddle}
}};

/* k < BITTTS_ISTFT_N_FFT / 2 with its log2(BITTTS_ISTFT_N_FFT / 2) bits reversed. */
static const uint16_t BITTTS_ISTFT_BIT_REVERSAL[BITTTS_ISTFT_N_FFT / 2] = {{
{reversal}
}};

#endif  /* BITTTS_ISTFT_SPEC_H_ */
"""


def main(argv=None) -> int:
    return header_cli.main(__doc__.splitlines()[0], HEADER_PATH, c_header, argv)


if __name__ == "__main__":
    raise SystemExit(main())
