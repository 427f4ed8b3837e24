/* The frame vocoder's inverse STFT, frame by frame: each frame's spectral-head
 * output (n_fft / 2 + 1 log-magnitudes, then n_fft / 2 + 1 phases) in, hop
 * samples out. One C99 implementation for the Python runtime (ctypes), TFLite
 * Micro applications and Cortex-M builds; constants and tables come from
 * bittts_istft_spec.h, generated from bittts_tf/audio/istft_spec.py.
 *
 * The arithmetic is the vocoder's (FrameVocoder.spectrum, istft.istft):
 *   magnitude = expf(min(logmag, BITTTS_ISTFT_MAX_LOG_MAGNITUDE)) * mask
 *   real = magnitude * cosf(phase), imag = magnitude * sinf(phase)
 *   frame = irfft(real, imag) * hann * mask, overlap-added with hop
 *   sample = overlap-added frame / max(overlap-added mask * hann^2, ENVELOPE_FLOOR)
 * with frames centred: frame t covers samples t*hop - n_fft/2 .. t*hop + n_fft/2 - 1.
 * The imaginary parts of bins 0 and n_fft / 2 are ignored (as numpy's irfft).
 *
 * Streaming alignment. Let R = n_fft / (2 hop) (bittts_istft_delay_frames;
 * 2 for 1024 / 256). Pushes are numbered p = 0, 1, ... (frames and flushes
 * alike). Push p completes the samples [(p - R) hop, (p - R + 1) hop) of the
 * whole utterance; pushes 0 .. R-1 complete samples before 0, which are
 * dropped: those pushes return *n_out = 0, every later one *n_out = hop. An
 * utterance of T frames is T pushes then R flushes (masked frames: no FFT);
 * the concatenated output is then exactly the T * hop samples of the
 * whole-utterance inverse STFT (up to float rounding). More flushes go on
 * with the samples after T * hop (the tails of the last windows, which the
 * whole-utterance inverse STFT cuts off). Begin again for the next utterance.
 *
 * No heap and no static mutable state: the record, the state buffer
 * (overlap-add ring and recent masks), the FFT scratch and the output all come
 * from the caller, each with its length; every pointer, length and value is
 * checked before anything is written, and a refused call writes nothing.
 * Buffers must not overlap. */
#ifndef BITTTS_ISTFT_H_
#define BITTTS_ISTFT_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_istft_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *bittts_istft_status_message(bittts_istft_status status);

/* BITTTS_ISTFT_OK when n_fft is a power of two in BITTTS_ISTFT_MIN_N_FFT ..
 * BITTTS_ISTFT_N_FFT and hop a power of two dividing n_fft / 2. */
bittts_istft_status bittts_istft_check(int32_t n_fft, int32_t hop);

/* Lengths in floats; 0 for a configuration bittts_istft_check refuses. */
size_t bittts_istft_head_len(int32_t n_fft);              /* n_fft + 2 */
size_t bittts_istft_scratch_len(int32_t n_fft);           /* n_fft */
size_t bittts_istft_state_len(int32_t n_fft, int32_t hop); /* n_fft + n_fft / hop */
/* R = n_fft / (2 hop): pushes before the first samples, flushes at the end. */
int32_t bittts_istft_delay_frames(int32_t n_fft, int32_t hop);

/* A stream's record. Fields are private; it lives wherever the caller puts it
 * and points at the caller's state buffer, which must outlive the stream. */
typedef struct {
  int32_t n_fft;
  int32_t hop;
  int32_t first;  /* ring block holding the next samples to come out */
  int32_t warmup; /* pushes left before samples come out */
  float *state;   /* n_fft floats of overlap-add ring, then n_fft / hop masks */
  uint32_t magic;
} bittts_istft;

/* sizeof(bittts_istft), for bindings that keep the record opaque (ctypes). */
size_t bittts_istft_record_size(void);

/* Starts an utterance: clears state[0 .. bittts_istft_state_len) and fills
 * the record. */
bittts_istft_status bittts_istft_begin(bittts_istft *stream, int32_t n_fft, int32_t hop,
                                       float *state, size_t state_len);

/* Pushes one frame: head[0 .. n_fft/2] log-magnitudes, head[n_fft/2 + 1 ..
 * n_fft + 1] phases (head_len >= n_fft + 2), mask in 0..1 (0 for a frame
 * outside the utterance: it costs no FFT). Log-magnitudes may be -inf or
 * +inf (clipped), not NaN; phases must be finite. scratch: scratch_len >=
 * n_fft floats, clobbered. Writes out[0 .. *n_out), *n_out being 0 or hop
 * (out_len >= hop always). */
bittts_istft_status bittts_istft_push(bittts_istft *stream, const float *head,
                                      size_t head_len, float mask, float *scratch,
                                      size_t scratch_len, float *out, size_t out_len,
                                      size_t *n_out);

/* Pushes a masked frame (mask 0): R of them finish an utterance. */
bittts_istft_status bittts_istft_flush(bittts_istft *stream, float *out, size_t out_len,
                                       size_t *n_out);

/* A source-phase vocoder's frame (FrameVocoderConfig.source_phase_cutoff):
 * the acoustic model's frame F0 head and how to read it. */
typedef struct {
  float sample_rate;  /* Hz */
  float cutoff;       /* Hz: bins below it take the source phase; > 0 */
  float log_f0_mean;  /* F0 = expf(head[0] * log_f0_std + log_f0_mean) */
  float log_f0_std;
} bittts_istft_source;

/* Adds the source phase to one head frame's phases, in place, and advances
 * *theta, the integrated F0 (in [0, 2 pi); 0 at an utterance's first frame),
 * by the frame. frame_f0[0 .. 1] (frame_f0_len >= 2): the acoustic model's
 * standardized log-F0 and voicing logit. As FrameVocoder.spectrum:
 *   F0 = frame_f0[1] > 0 ? (float)exp(frame_f0[0] * log_f0_std + log_f0_mean) : 0
 *        (the float32 argument's exp in double, rounded to float32)
 *   if F0 > 0, for each bin b with f_b = b * sample_rate / n_fft < cutoff:
 *     phase[b] += fmod(nearbyint(f_b / F0) * theta, 2 pi)  (half to even)
 *   theta = fmod(theta + 2 pi * hop / sample_rate * F0, 2 pi)
 * theta is the caller's: one float of state per utterance, passed in and out.
 * Refused (and nothing written) for non-finite frame_f0, theta outside
 * [0, 2 pi], or a source whose rates, cut-off or std are not positive and
 * finite (BITTTS_ISTFT_VALUE). */
bittts_istft_status bittts_istft_source_phase(float *head, size_t head_len, int32_t n_fft,
                                              int32_t hop, const float *frame_f0,
                                              size_t frame_f0_len,
                                              const bittts_istft_source *source, float *theta);

/* The inverse real DFT alone, as numpy's irfft of n_fft points (1 / n_fft
 * scaling): spectrum[0 .. n_fft/2] real parts, then n_fft/2 + 1 imaginary
 * parts (spectrum_len >= n_fft + 2) -> out[0 .. n_fft) (out_len >= n_fft;
 * out is also the scratch). */
bittts_istft_status bittts_istft_irfft(int32_t n_fft, const float *spectrum,
                                       size_t spectrum_len, float *out, size_t out_len);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_ISTFT_H_ */
