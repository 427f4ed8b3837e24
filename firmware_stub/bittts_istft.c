#include "bittts_istft.h"

#include <math.h>
#include <string.h>

#define kIstftMagic 0x49535446u /* "ISTF": a record bittts_istft_begin filled */

/* The tables are indexed by k * (BITTTS_ISTFT_N_FFT / n_fft); the bit
 * reversal table by k, shifted right by log2(BITTTS_ISTFT_N_FFT / n_fft). */
typedef char bittts_istft_table_is_a_power_of_two
    [(BITTTS_ISTFT_N_FFT & (BITTTS_ISTFT_N_FFT - 1)) == 0 &&
     BITTTS_ISTFT_N_FFT >= BITTTS_ISTFT_MIN_N_FFT && BITTTS_ISTFT_N_FFT <= 65536 ? 1 : -1];

const char *bittts_istft_status_message(bittts_istft_status status) {
  static const char *const messages[BITTTS_ISTFT_NUM_STATUSES] = BITTTS_ISTFT_STATUS_MESSAGES;
  if ((unsigned)status >= BITTTS_ISTFT_NUM_STATUSES) return "unknown status";
  return messages[status];
}

static int is_power_of_two(int32_t v) { return v > 0 && (v & (v - 1)) == 0; }

static int log2_of(int32_t v) {
  int bits = 0;
  while ((v >>= 1) != 0) ++bits;
  return bits;
}

bittts_istft_status bittts_istft_check(int32_t n_fft, int32_t hop) {
  if (!is_power_of_two(n_fft) || n_fft < BITTTS_ISTFT_MIN_N_FFT || n_fft > BITTTS_ISTFT_N_FFT)
    return BITTTS_ISTFT_CONFIG;
  if (!is_power_of_two(hop) || hop > n_fft / 2) return BITTTS_ISTFT_CONFIG;
  return BITTTS_ISTFT_OK;
}

static int n_fft_ok(int32_t n_fft) { return bittts_istft_check(n_fft, 1) == BITTTS_ISTFT_OK; }

size_t bittts_istft_head_len(int32_t n_fft) {
  return n_fft_ok(n_fft) ? (size_t)n_fft + 2 : 0;
}

size_t bittts_istft_scratch_len(int32_t n_fft) { return n_fft_ok(n_fft) ? (size_t)n_fft : 0; }

size_t bittts_istft_state_len(int32_t n_fft, int32_t hop) {
  if (bittts_istft_check(n_fft, hop) != BITTTS_ISTFT_OK) return 0;
  return (size_t)n_fft + (size_t)(n_fft / hop);
}

int32_t bittts_istft_delay_frames(int32_t n_fft, int32_t hop) {
  if (bittts_istft_check(n_fft, hop) != BITTTS_ISTFT_OK) return 0;
  return n_fft / (2 * hop);
}

/* ---- the real inverse FFT ------------------------------------------------
 *
 * n = 2m real samples from the half spectrum X[0 .. m] through one complex
 * FFT of m points: with W = exp(2 pi i / n),
 *   E[k] = X[k] + conj(X[m - k]),  O[k] = (X[k] - conj(X[m - k])) W^k,
 *   z = sum_k (E[k] + i O[k]) exp(2 pi i k j / m) = n (x[2j] + i x[2j + 1]),
 * so z, stored as interleaved (re, im) floats, is n times the signal in
 * order. Bins k and m - k are formed together (Z[m - k] = conj(E[k]) +
 * i conj(O[k])), which needs W^k for k <= m / 2 only. */

/* Bin k of the spectrum: from the vocoder's head (log-magnitude, phase),
 * as FrameVocoder.spectrum computes it, or read directly. */
static void spectrum_bin(const float *src, int32_t bins, int32_t k, int from_head, float mask,
                         float *re, float *im) {
  if (from_head) {
    float logmag = src[k];
    float magnitude, phase;
    if (logmag > BITTTS_ISTFT_MAX_LOG_MAGNITUDE) logmag = BITTTS_ISTFT_MAX_LOG_MAGNITUDE;
    magnitude = expf(logmag) * mask;
    phase = src[bins + k];
    *re = magnitude * cosf(phase);
    *im = magnitude * sinf(phase);
  } else {
    *re = src[k];
    *im = src[bins + k];
  }
}

/* In-place complex FFT with exp(+2 pi i ...) (unnormalized inverse) of m
 * points, input in bit-reversed order, output in natural order: radix-2
 * decimation in time, two stages per pass. The first pass (stages of 2 and
 * 4 points) needs no twiddles; each later pass does stages len and 2 len on
 * four points at once (twiddles W_len^j, W_2len^j and i W_2len^j), so the
 * data is loaded and stored half as often: a 1024-point bittts_istft_irfft
 * took 86 k instructions on Cortex-M7 (QEMU) with one stage per pass, 67 k
 * with two. */
static void complex_inverse_fft(float *z, int32_t m) {
  int32_t len, a;
  if (m == 2) {
    const float r = z[0] - z[2], i = z[1] - z[3];
    z[0] += z[2];
    z[1] += z[3];
    z[2] = r;
    z[3] = i;
    return;
  }
  for (a = 0; a < m; a += 4) {
    float *p = z + 2 * a;
    const float b0r = p[0] + p[2], b0i = p[1] + p[3], b1r = p[0] - p[2], b1i = p[1] - p[3];
    const float b2r = p[4] + p[6], b2i = p[5] + p[7], b3r = p[4] - p[6], b3i = p[5] - p[7];
    p[0] = b0r + b2r;
    p[1] = b0i + b2i;
    p[4] = b0r - b2r;
    p[5] = b0i - b2i;
    p[2] = b1r - b3i; /* b1 + i b3 */
    p[3] = b1i + b3r;
    p[6] = b1r + b3i; /* b1 - i b3 */
    p[7] = b1i - b3r;
  }
  for (len = 8; 2 * len <= m; len *= 4) {
    /* Points g + j + {0, 1, 2, 3} * len / 2 of each group g of 2 len. */
    const int32_t quarter = len / 2, step = BITTTS_ISTFT_N_FFT / (2 * len);
    int32_t j, g;
    for (j = 0; j < quarter; ++j) {
      const float w1r = BITTTS_ISTFT_TWIDDLES[2 * j * step][0];
      const float w1i = BITTTS_ISTFT_TWIDDLES[2 * j * step][1];
      const float w2r = BITTTS_ISTFT_TWIDDLES[j * step][0];
      const float w2i = BITTTS_ISTFT_TWIDDLES[j * step][1];
      for (g = 0; g < m; g += 2 * len) {
        float *p0 = z + 2 * (g + j), *p1 = p0 + 2 * quarter, *p2 = p0 + 2 * len;
        float *p3 = p2 + 2 * quarter;
        /* Stage len: (p0, p1) and (p2, p3) with W_len^j. */
        const float t1r = w1r * p1[0] - w1i * p1[1], t1i = w1r * p1[1] + w1i * p1[0];
        const float t3r = w1r * p3[0] - w1i * p3[1], t3i = w1r * p3[1] + w1i * p3[0];
        const float y0r = p0[0] + t1r, y0i = p0[1] + t1i, y1r = p0[0] - t1r, y1i = p0[1] - t1i;
        const float y2r = p2[0] + t3r, y2i = p2[1] + t3i, y3r = p2[0] - t3r, y3i = p2[1] - t3i;
        /* Stage 2 len: (y0, y2) with W_2len^j, (y1, y3) with W_2len^(j + len/2)
         * = i W_2len^j. */
        const float u2r = w2r * y2r - w2i * y2i, u2i = w2r * y2i + w2i * y2r;
        const float u3r = w2r * y3r - w2i * y3i, u3i = w2r * y3i + w2i * y3r;
        p0[0] = y0r + u2r;
        p0[1] = y0i + u2i;
        p2[0] = y0r - u2r;
        p2[1] = y0i - u2i;
        p1[0] = y1r - u3i; /* y1 + i u3 */
        p1[1] = y1i + u3r;
        p3[0] = y1r + u3i; /* y1 - i u3 */
        p3[1] = y1i - u3r;
      }
    }
  }
  if (len <= m) { /* one stage left: len == m */
    const int32_t half = len / 2, step = BITTTS_ISTFT_N_FFT / len;
    int32_t j;
    for (j = 0; j < half; ++j) {
      const float wr = BITTTS_ISTFT_TWIDDLES[j * step][0];
      const float wi = BITTTS_ISTFT_TWIDDLES[j * step][1];
      float *p = z + 2 * j, *q = p + 2 * half;
      const float tr = wr * q[0] - wi * q[1], ti = wr * q[1] + wi * q[0];
      q[0] = p[0] - tr;
      q[1] = p[1] - ti;
      p[0] += tr;
      p[1] += ti;
    }
  }
}

/* z[0 .. n) = n * irfft of the spectrum in src (see spectrum_bin). */
static void real_inverse_fft(const float *src, int32_t n, int from_head, float mask, float *z) {
  const int32_t m = n / 2, bins = m + 1, step = BITTTS_ISTFT_N_FFT / n;
  const int shift = log2_of(BITTTS_ISTFT_N_FFT / n);
  float x0r, x0i, xmr, xmi;
  int32_t k;
  /* Bins 0 and m: real parts only. */
  spectrum_bin(src, bins, 0, from_head, mask, &x0r, &x0i);
  spectrum_bin(src, bins, m, from_head, mask, &xmr, &xmi);
  z[0] = x0r + xmr;
  z[1] = x0r - xmr;
  for (k = 1; k <= m / 2; ++k) {
    float ar, ai, br, bi;
    int32_t slot;
    spectrum_bin(src, bins, k, from_head, mask, &ar, &ai);
    spectrum_bin(src, bins, m - k, from_head, mask, &br, &bi);
    {
      const float c = BITTTS_ISTFT_TWIDDLES[k * step][0], s = BITTTS_ISTFT_TWIDDLES[k * step][1];
      const float er = ar + br, ei = ai - bi; /* E = X[k] + conj(X[m - k]) */
      const float dr = ar - br, di = ai + bi; /* X[k] - conj(X[m - k]) */
      const float o_r = dr * c - di * s, o_i = dr * s + di * c;
      /* At k = m / 2 both land on the same slot with the same value. */
      slot = BITTTS_ISTFT_BIT_REVERSAL[k] >> shift;
      z[2 * slot] = er - o_i;
      z[2 * slot + 1] = ei + o_r;
      slot = BITTTS_ISTFT_BIT_REVERSAL[m - k] >> shift;
      z[2 * slot] = er + o_i;
      z[2 * slot + 1] = o_r - ei;
    }
  }
  complex_inverse_fft(z, m);
}

bittts_istft_status bittts_istft_irfft(int32_t n_fft, const float *spectrum,
                                       size_t spectrum_len, float *out, size_t out_len) {
  int32_t i;
  float scale;
  if (spectrum == NULL || out == NULL) return BITTTS_ISTFT_NULL;
  if (!n_fft_ok(n_fft)) return BITTTS_ISTFT_CONFIG;
  if (spectrum_len < (size_t)n_fft + 2 || out_len < (size_t)n_fft) return BITTTS_ISTFT_SIZE;
  real_inverse_fft(spectrum, n_fft, 0, 1.0f, out);
  scale = 1.0f / (float)n_fft; /* exact: n_fft is a power of two */
  for (i = 0; i < n_fft; ++i) out[i] *= scale;
  return BITTTS_ISTFT_OK;
}

/* ---- the stream ------------------------------------------------------------
 *
 * state[0 .. n_fft) is a ring of K = n_fft / hop blocks of hop samples: block
 * `first` holds samples [(p - R) hop, (p - R + 1) hop) once push p has added
 * its frame (which spans the K blocks from `first` on), so it is complete and
 * comes out; it is then cleared and becomes the ring's last block. state[n_fft
 * + j] is the mask of the frame pushed when `first` was j: the envelope of a
 * block is computed from the K masks that reach it, when it comes out, rather
 * than overlap-added (n_fft floats of RAM saved for the same K * hop
 * multiply-adds). Frames before 0 have mask 0 (the cleared state). */

size_t bittts_istft_record_size(void) { return sizeof(bittts_istft); }

bittts_istft_status bittts_istft_begin(bittts_istft *s, int32_t n_fft, int32_t hop,
                                       float *state, size_t state_len) {
  bittts_istft_status status;
  if (s == NULL || state == NULL) return BITTTS_ISTFT_NULL;
  if ((status = bittts_istft_check(n_fft, hop)) != BITTTS_ISTFT_OK) return status;
  if (state_len < bittts_istft_state_len(n_fft, hop)) return BITTTS_ISTFT_SIZE;
  memset(state, 0, bittts_istft_state_len(n_fft, hop) * sizeof *state);
  s->n_fft = n_fft;
  s->hop = hop;
  s->first = 0;
  s->warmup = n_fft / (2 * hop);
  s->state = state;
  s->magic = kIstftMagic;
  return BITTTS_ISTFT_OK;
}

/* The record as bittts_istft_begin left it, or a later push. */
static int stream_ok(const bittts_istft *s) {
  return s->magic == kIstftMagic && s->state != NULL &&
         bittts_istft_check(s->n_fft, s->hop) == BITTTS_ISTFT_OK && s->first >= 0 &&
         s->first < s->n_fft / s->hop && s->warmup >= 0 && s->warmup <= s->n_fft / (2 * s->hop);
}

/* Window value n of n_fft = BITTTS_ISTFT_N_FFT / stride from the half table,
 * for the hop samples of block j of a frame: w[j hop + i], i = 0 .. hop - 1.
 * No block straddles n_fft / 2 (hop divides it), so a block reads the table
 * forwards (first half) or backwards (second half, w[n] = w[n_fft - n]). */
static const float *window_block(int32_t n, int32_t hop, int32_t j, int32_t *step) {
  const int32_t stride = BITTTS_ISTFT_N_FFT / n;
  if (j * hop < n / 2) {
    *step = stride;
    return BITTTS_ISTFT_HALF_WINDOW + j * hop * stride;
  }
  *step = -stride;
  return BITTTS_ISTFT_HALF_WINDOW + (n - j * hop) * stride;
}

/* Adds frame z (n times the irfft) times window * mask into the ring. */
static void overlap_add(bittts_istft *s, const float *z, float mask) {
  const int32_t n = s->n_fft, hop = s->hop, blocks = n / hop;
  const float gain = mask / (float)n; /* exact division: n is a power of two */
  int32_t j, i;
  for (j = 0; j < blocks; ++j) {
    int32_t slot = s->first + j, step;
    const float *w = window_block(n, hop, j, &step);
    const float *src = z + j * hop;
    float *dst;
    if (slot >= blocks) slot -= blocks;
    dst = s->state + slot * hop;
    for (i = 0; i < hop; ++i) dst[i] += src[i] * w[i * step] * gain;
  }
}

/* Records this push's mask, puts out the block at `first` (after the
 * warm-up), clears it and moves on. */
static void advance(bittts_istft *s, float mask, float *out, size_t *n_out) {
  const int32_t n = s->n_fft, hop = s->hop, blocks = n / hop;
  float *ring = s->state, *masks = s->state + n, *block = ring + s->first * hop;
  int32_t i, j;
  masks[s->first] = mask;
  if (s->warmup > 0) {
    --s->warmup;
    *n_out = 0;
  } else {
    /* The block of samples [(p - R) hop, ...) hears frames p - j, j = 0 ..
     * K - 1, at window offsets j * hop + i. */
    for (i = 0; i < hop; ++i) out[i] = 0.0f;
    for (j = 0; j < blocks; ++j) {
      int32_t slot = s->first - j, step;
      const float *w;
      float m;
      if (slot < 0) slot += blocks;
      m = masks[slot];
      if (m == 0.0f) continue;
      w = window_block(n, hop, j, &step);
      for (i = 0; i < hop; ++i) {
        const float wi = w[i * step];
        out[i] += m * (wi * wi);
      }
    }
    for (i = 0; i < hop; ++i) {
      const float envelope = out[i] > BITTTS_ISTFT_ENVELOPE_FLOOR ? out[i]
                                                                  : BITTTS_ISTFT_ENVELOPE_FLOOR;
      out[i] = block[i] / envelope;
    }
    *n_out = (size_t)hop;
  }
  memset(block, 0, (size_t)hop * sizeof *block);
  s->first = s->first + 1 < blocks ? s->first + 1 : 0;
}

bittts_istft_status bittts_istft_push(bittts_istft *s, const float *head, size_t head_len,
                                      float mask, float *scratch, size_t scratch_len,
                                      float *out, size_t out_len, size_t *n_out) {
  int32_t n, bins, k;
  if (s == NULL || head == NULL || scratch == NULL || out == NULL || n_out == NULL)
    return BITTTS_ISTFT_NULL;
  if (!stream_ok(s)) return BITTTS_ISTFT_STATE;
  n = s->n_fft;
  bins = n / 2 + 1;
  if (head_len < (size_t)n + 2 || scratch_len < (size_t)n || out_len < (size_t)s->hop)
    return BITTTS_ISTFT_SIZE;
  if (!(mask >= 0.0f && mask <= 1.0f)) return BITTTS_ISTFT_VALUE;
  for (k = 0; k < bins; ++k)
    if (isnan(head[k]) || !isfinite(head[bins + k])) return BITTTS_ISTFT_VALUE;
  /* A masked frame adds exactly zero (its magnitudes are multiplied by 0). */
  if (mask != 0.0f) {
    real_inverse_fft(head, n, 1, mask, scratch);
    overlap_add(s, scratch, mask);
  }
  advance(s, mask, out, n_out);
  return BITTTS_ISTFT_OK;
}

bittts_istft_status bittts_istft_flush(bittts_istft *s, float *out, size_t out_len,
                                       size_t *n_out) {
  if (s == NULL || out == NULL || n_out == NULL) return BITTTS_ISTFT_NULL;
  if (!stream_ok(s)) return BITTTS_ISTFT_STATE;
  if (out_len < (size_t)s->hop) return BITTTS_ISTFT_SIZE;
  advance(s, 0.0f, out, n_out);
  return BITTTS_ISTFT_OK;
}

#define kTwoPi 6.283185307179586f

bittts_istft_status bittts_istft_source_phase(float *head, size_t head_len, int32_t n_fft,
                                              int32_t hop, const float *frame_f0,
                                              size_t frame_f0_len,
                                              const bittts_istft_source *source, float *theta) {
  int32_t bins, b;
  float f0, bin_hz, wrapped;
  if (head == NULL || frame_f0 == NULL || source == NULL || theta == NULL)
    return BITTTS_ISTFT_NULL;
  if (bittts_istft_check(n_fft, hop) != BITTTS_ISTFT_OK) return BITTTS_ISTFT_CONFIG;
  if (head_len < (size_t)n_fft + 2 || frame_f0_len < 2) return BITTTS_ISTFT_SIZE;
  if (!isfinite(frame_f0[0]) || !isfinite(frame_f0[1]) || !(*theta >= 0.0f && *theta <= kTwoPi))
    return BITTTS_ISTFT_VALUE;
  if (!(isfinite(source->sample_rate) && source->sample_rate > 0.0f &&
        isfinite(source->cutoff) && source->cutoff > 0.0f && isfinite(source->log_f0_mean) &&
        isfinite(source->log_f0_std) && source->log_f0_std > 0.0f))
    return BITTTS_ISTFT_VALUE;
  /* exp in double rounded to float32, not expf: theta integrates F0 over the
   * utterance, so an F0 an ulp apart (the Cortex-M4 newlib's expf against
   * glibc's) put a random voice's board PCM up to 5 steps off the host's;
   * the double exp rounded to float agrees on host, M4 and M7 (the stream's
   * durations rely on it too). */
  f0 = frame_f0[1] > 0.0f
           ? (float)exp((double)(frame_f0[0] * source->log_f0_std + source->log_f0_mean))
           : 0.0f;
  /* A log-F0 so large that expf overflows is no voice: refused, not inf. */
  if (!isfinite(f0)) return BITTTS_ISTFT_VALUE;
  bins = n_fft / 2 + 1;
  bin_hz = source->sample_rate / (float)n_fft;
  if (f0 > 0.0f) {
    for (b = 0; b < bins; ++b) {
      const float frequency = (float)b * bin_hz;
      float phase;
      if (!(frequency < source->cutoff)) break;
      /* nearbyintf rounds half to even in the default rounding mode, as tf.round. */
      phase = fmodf(nearbyintf(frequency / f0) * *theta, kTwoPi);
      head[bins + b] += phase;
    }
  }
  wrapped = fmodf(*theta + kTwoPi * (float)hop / source->sample_rate * f0, kTwoPi);
  *theta = wrapped;
  return BITTTS_ISTFT_OK;
}
