/* Instructions per frame of the C inverse STFT (firmware_stub/bittts_istft.c)
 * at the vocoder's n_fft 1024 / hop 256, measured in QEMU with `-icount
 * shift=0` (`make bench-istft-cortex-m`): the CMSDK APB timer then counts
 * instructions (calibrated on a loop of known length, as bench_decode.c
 * does). QEMU models neither pipelines nor wait states: these are
 * instructions, not cycles.
 *
 * Prints "<what> <instructions per frame>" for: a whole push (spectrum from
 * the head with expf / cosf / sinf, inverse FFT, window and overlap-add,
 * envelope and division of the hop samples put out), the spectrum's libm
 * calls alone (the same loop outside the library), the inverse FFT alone
 * (bittts_istft_irfft, with its 1 / n scaling), and a flush (a masked frame:
 * envelope and division only). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../../firmware_stub/bittts_istft.h"
#include "../../../firmware_stub/board/mps2_timer.h"

enum { kN = BITTTS_ISTFT_N_FFT, kHop = BITTTS_ISTFT_HOP, kFrames = 8 };

static float head[kFrames][BITTTS_ISTFT_HEAD_LEN];
static float state[BITTTS_ISTFT_STATE_LEN], scratch[BITTTS_ISTFT_SCRATCH_LEN];
static float out[kHop], spectrum[kN + 2];
static volatile float sink;

/* The spectrum's libm work as the library does it, outside the library. */
static void __attribute__((noinline)) spectrum_only(const float *h) {
  int k;
  float acc = 0.0f;
  for (k = 0; k <= kN / 2; ++k) {
    float l = h[k] > BITTTS_ISTFT_MAX_LOG_MAGNITUDE ? BITTTS_ISTFT_MAX_LOG_MAGNITUDE : h[k];
    const float m = expf(l);
    acc += m * cosf(h[kN / 2 + 1 + k]) + m * sinf(h[kN / 2 + 1 + k]);
  }
  sink = acc;
}

int main(void) {
  unsigned long long rng = 0x9E3779B97F4A7C15ull;
  bittts_istft s;
  uint32_t start, calibration, t_push = 0, t_flush = 0, t_fft = 0, t_spec = 0;
  size_t n_out;
  int f, k, failures = 0;
  for (f = 0; f < kFrames; ++f)
    for (k = 0; k < BITTTS_ISTFT_HEAD_LEN; ++k) {
      rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
      /* log-magnitudes -8 .. 8, phases -pi .. pi (the head's typical ranges) */
      head[f][k] = (float)((rng >> 40) & 0xFFFF) / 65536.0f * (k <= kN / 2 ? 16.0f : 6.2831853f) -
                   (k <= kN / 2 ? 8.0f : 3.14159265f);
    }
  memcpy(spectrum, head[0], sizeof spectrum);
  calibration = mps2_timer_start();
  if (bittts_istft_begin(&s, kN, kHop, state, BITTTS_ISTFT_STATE_LEN) != BITTTS_ISTFT_OK)
    return 1;
  /* Past the warm-up first, so every timed push puts out samples. */
  for (f = 0; f < BITTTS_ISTFT_DELAY_FRAMES; ++f)
    failures += bittts_istft_push(&s, head[f], BITTTS_ISTFT_HEAD_LEN, 1.0f, scratch,
                                  BITTTS_ISTFT_SCRATCH_LEN, out, kHop, &n_out) != 0;
  for (f = 0; f < kFrames; ++f) {
    start = mps2_ticks();
    failures += bittts_istft_push(&s, head[f], BITTTS_ISTFT_HEAD_LEN, 1.0f, scratch,
                                  BITTTS_ISTFT_SCRATCH_LEN, out, kHop, &n_out) != 0;
    t_push += start - mps2_ticks();
    failures += n_out != kHop;
    start = mps2_ticks();
    failures += bittts_istft_flush(&s, out, kHop, &n_out) != 0;
    t_flush += start - mps2_ticks();
    start = mps2_ticks();
    failures += bittts_istft_irfft(kN, spectrum, kN + 2, scratch, kN) != 0;
    t_fft += start - mps2_ticks();
    start = mps2_ticks();
    spectrum_only(head[f]);
    t_spec += start - mps2_ticks();
  }
  /* instructions = ticks * MPS2_CALIBRATION_INSTRUCTIONS / calibration */
#define PER_FRAME(t) \
  ((unsigned long)((unsigned long long)(t) * MPS2_CALIBRATION_INSTRUCTIONS / calibration / kFrames))
  printf("calibration: %lu instructions per timer tick\n",
         (unsigned long)(MPS2_CALIBRATION_INSTRUCTIONS / calibration));
  printf("push (mask 1, n_fft %d, hop %d) %lu\n", kN, kHop, PER_FRAME(t_push));
  printf("  of which spectrum libm (expf, cosf, sinf x %d) %lu\n", kN / 2 + 1,
         PER_FRAME(t_spec));
  printf("irfft alone %lu\n", PER_FRAME(t_fft));
  printf("flush (masked frame) %lu\n", PER_FRAME(t_flush));
  return failures != 0;
}
