/* Unit tests of firmware_stub/bittts_istft.c against references computed in
 * double in this program: the inverse FFT against a naive O(n^2) inverse DFT,
 * the stream against a whole-utterance inverse STFT (spectrum, inverse DFT,
 * Hann window, overlap-add, envelope, floor), and every refused call against
 * canaries (nothing written). Fresh random inputs each run; the seed is
 * printed and BITTTS_TEST_SEED=<seed> (or the first argument, as in QEMU)
 * replays it. No heap: the same file runs bare-metal in QEMU (Cortex-M4/M7),
 * where `make test-cortex-m` also compares the "irfft hash" line (fixed
 * inputs, bit patterns of the outputs) with the host's. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../firmware_stub/bittts_istft.h"

#include "test_harness.h"

#define CANARY_F (-12345.0f)
#define N_MAX BITTTS_ISTFT_N_FFT
#define T_MAX 12 /* frames of the longest test utterance */
#define FLUSH_EXTRA 3 /* flushes beyond the delay: the tails after T * hop */
static const double kPi = 3.14159265358979323846;

/* Shared buffers (static: QEMU's stack is small and there is no heap). */
static float head[T_MAX][N_MAX + 2], masks[T_MAX];
static float state[N_MAX + N_MAX + 8], scratch[N_MAX + 8];
static float out[(T_MAX + 4 + FLUSH_EXTRA) * N_MAX];
static double reference[(T_MAX + 4 + FLUSH_EXTRA) * N_MAX + N_MAX];
static double envelope[(T_MAX + 4 + FLUSH_EXTRA) * N_MAX + N_MAX];
static double cos_table[N_MAX], sin_table[N_MAX], frame_d[N_MAX];
static double spec_re[N_MAX / 2 + 1], spec_im[N_MAX / 2 + 1];
static float spectrum[N_MAX + 2], fft_out[N_MAX + 8];
static double stream_worst; /* the streams' largest error relative to their peak */

/* x[j] = (1 / n) sum_k w_k Re(X_k e^{2 pi i k j / n}), w = 1 at bins 0 and n / 2, else
 * 2: numpy's irfft (imaginary parts of bins 0 and n / 2 ignored), in double. */
static void naive_irfft(const double *re, const double *im, int n, double *x) {
  int j, k;
  for (k = 0; k < n; ++k) {
    cos_table[k] = cos(2.0 * kPi * k / n);
    sin_table[k] = sin(2.0 * kPi * k / n);
  }
  for (j = 0; j < n; ++j) {
    double sum = re[0] + (j % 2 ? -re[n / 2] : re[n / 2]);
    for (k = 1; k < n / 2; ++k) {
      const int a = (int)(((long)k * j) % n);
      sum += 2.0 * (re[k] * cos_table[a] - im[k] * sin_table[a]);
    }
    x[j] = sum / n;
  }
}

/* The error bound of the float inverse FFT: every output and every partial
 * sum of the radix-2 stages is at most A = (1 / n) sum_k w_k |X_k|, and each
 * of the log2(n / 2) stages, the split step (twiddle multiply and the E / O
 * sums) and the final scaling add a few roundings of at most FLT_EPSILON / 2
 * relative each; the measured errors sit 13x (n = 4) to 100x (n = 1024) below. */
static double irfft_tolerance(const double *re, const double *im, int n) {
  double a = fabs(re[0]) + fabs(re[n / 2]);
  int k, log2n = 0;
  for (k = 1; k < n / 2; ++k) a += 2.0 * sqrt(re[k] * re[k] + im[k] * im[k]);
  while ((1 << log2n) < n) ++log2n;
  return (log2n + 3) * (double)FLT_EPSILON * a / n;
}

/* ---- inverse FFT ----------------------------------------------------------- */

static void random_spectrum(int n, int scale_exp) {
  const int bins = n / 2 + 1;
  const float scale = ldexpf(1.0f, scale_exp);
  int k;
  for (k = 0; k < bins; ++k) {
    spectrum[k] = rng_float(-1.0f, 1.0f) * scale;
    spectrum[bins + k] = rng_float(-1.0f, 1.0f) * scale;
    spec_re[k] = spectrum[k];
    spec_im[k] = spectrum[bins + k];
  }
}

static void test_irfft(void) {
  int n, round, j;
  for (n = BITTTS_ISTFT_MIN_N_FFT; n <= N_MAX; n *= 2) {
    const int rounds = n >= 512 ? 1 : 3;
    for (round = 0; round < rounds; ++round) {
      double worst = 0.0, tolerance;
      random_spectrum(n, rng_range(-20, 20));
      for (j = 0; j < N_MAX + 8; ++j) fft_out[j] = CANARY_F;
      CHECK(bittts_istft_irfft(n, spectrum, (size_t)n + 2, fft_out, (size_t)n) ==
                BITTTS_ISTFT_OK, "irfft n=%d", n);
      naive_irfft(spec_re, spec_im, n, frame_d);
      tolerance = irfft_tolerance(spec_re, spec_im, n);
      for (j = 0; j < n; ++j) {
        const double err = fabs(fft_out[j] - frame_d[j]);
        worst = err > worst ? err : worst;
      }
      CHECK(worst <= tolerance, "irfft n=%d: max error %.3g > tolerance %.3g", n, worst,
            tolerance);
      CHECK(fft_out[n] == CANARY_F, "irfft n=%d wrote past n", n);
      if (round == 0 && (n == 64 || n == N_MAX))
        printf("irfft n=%d: max error %.3g (tolerance %.3g, %.1fx below)\n", n, worst,
               tolerance, worst > 0 ? tolerance / worst : 0.0);
    }
  }
}

/* FNV-1a over the outputs' bits for fixed inputs: plain float arithmetic in a
 * fixed order, so the host and both Cortex-M builds must print the same. */
static void print_irfft_hash(void) {
  const unsigned long long saved = rng_state;
  unsigned long hash = 2166136261ul;
  int n, j, b;
  rng_state = 0x243F6A8885A308D3ull;
  for (n = BITTTS_ISTFT_MIN_N_FFT; n <= N_MAX; n *= 2) {
    random_spectrum(n, 0);
    (void)bittts_istft_irfft(n, spectrum, (size_t)n + 2, fft_out, (size_t)n);
    for (j = 0; j < n; ++j) {
      unsigned char bytes[4];
      memcpy(bytes, &fft_out[j], 4);
      for (b = 0; b < 4; ++b) hash = ((hash ^ bytes[b]) * 16777619ul) & 0xFFFFFFFFul;
    }
  }
  printf("irfft hash %08lx\n", hash);
  rng_state = saved;
}

/* ---- the stream against the whole utterance --------------------------------- */

/* The whole-utterance inverse STFT of head[0 .. t_frames) in double: samples
 * from -n / 2 (index 0) to (t_frames - 1) hop + n / 2, unnormalized in
 * reference, envelope in envelope; the caller divides. */
static void reference_istft(int n, int hop, int t_frames) {
  const int bins = n / 2 + 1, total = (t_frames - 1) * hop + n;
  int t, k, j;
  for (j = 0; j < total; ++j) reference[j] = envelope[j] = 0.0;
  for (t = 0; t < t_frames; ++t) {
    const double m = masks[t];
    if (m == 0.0) continue;
    for (k = 0; k < bins; ++k) {
      double logmag = head[t][k];
      double magnitude;
      if (logmag > BITTTS_ISTFT_MAX_LOG_MAGNITUDE) logmag = BITTTS_ISTFT_MAX_LOG_MAGNITUDE;
      magnitude = exp(logmag) * m;
      spec_re[k] = magnitude * cos((double)head[t][bins + k]);
      spec_im[k] = magnitude * sin((double)head[t][bins + k]);
    }
    naive_irfft(spec_re, spec_im, n, frame_d);
    for (j = 0; j < n; ++j) {
      const double w = 0.5 - 0.5 * cos(2.0 * kPi * j / n);
      reference[t * hop + j] += frame_d[j] * w * m;
      envelope[t * hop + j] += m * w * w;
    }
  }
}

static void random_head(int n, int t_frames, int mask_kind) {
  const int bins = n / 2 + 1;
  int t, k;
  for (t = 0; t < t_frames; ++t) {
    for (k = 0; k < bins; ++k) {
      /* Log-magnitudes from silence to past the clip, some infinite. */
      const unsigned r = rng() % 200u;
      head[t][k] = r == 0 ? -INFINITY : r == 1 ? INFINITY : rng_float(-8.0f, 8.0f);
      head[t][bins + k] = rng_float(-40.0f, 40.0f);
    }
    /* 0: all frames exist; 1: random 0 / 1; 2: random fractions and zeros. */
    masks[t] = mask_kind == 0 ? 1.0f
               : mask_kind == 1 ? (float)(rng() % 4u != 0)
               : rng() % 3u == 0 ? 0.0f : rng_float(0.0f, 1.0f);
  }
}

static void test_stream_case(int n, int hop, int t_frames, int mask_kind) {
  bittts_istft s;
  const int delay = n / (2 * hop);
  const int pushes = t_frames + delay + FLUSH_EXTRA;
  int p, i, emitted = 0;
  double peak = 0.0, worst = 0.0;
  size_t n_out = 12345;
  random_head(n, t_frames, mask_kind);
  CHECK(bittts_istft_begin(&s, n, hop, state, sizeof state / sizeof *state) ==
            BITTTS_ISTFT_OK, "begin n=%d hop=%d", n, hop);
  for (i = 0; i < (int)(sizeof out / sizeof *out); ++i) out[i] = CANARY_F;
  for (p = 0; p < pushes; ++p) {
    bittts_istft_status status;
    if (p < t_frames)
      status = bittts_istft_push(&s, head[p], (size_t)n + 2, masks[p], scratch, (size_t)n,
                                 out + emitted, (size_t)hop, &n_out);
    else
      status = bittts_istft_flush(&s, out + emitted, (size_t)hop, &n_out);
    CHECK(status == BITTTS_ISTFT_OK, "push %d: %s", p, bittts_istft_status_message(status));
    CHECK(n_out == (size_t)(p < delay ? 0 : hop), "push %d gave %u samples", p,
          (unsigned)n_out);
    emitted += (int)n_out;
  }
  CHECK(emitted == (pushes - delay) * hop, "emitted %d", emitted);
  CHECK(out[emitted] == CANARY_F, "wrote past the samples put out");
  reference_istft(n, hop, t_frames);
  /* Sample s of the utterance is reference[s + n / 2]; past the frames'
   * reach (the extra flushes' far end) it is 0 / floor = 0. */
  for (i = 0; i < emitted; ++i) {
    const int r = i + n / 2;
    const int inside = r < (t_frames - 1) * hop + n;
    const double e = inside ? envelope[r] : 0.0;
    const double expected =
        inside ? reference[r] / (e > BITTTS_ISTFT_ENVELOPE_FLOOR ? e : BITTTS_ISTFT_ENVELOPE_FLOOR)
               : 0.0;
    const double err = fabs(out[i] - expected);
    peak = fabs(expected) > peak ? fabs(expected) : peak;
    worst = err > worst ? err : worst;
  }
  /* float32 spectra (expf / cosf / sinf within a few ulp), the float inverse
   * FFT (irfft_tolerance, about 1e-6 of the peak at n = 1024) and float
   * overlap-add: 1e-5 of the peak is the Python test's criterion too. */
  CHECK(worst <= 1e-5 * peak, "n=%d hop=%d T=%d masks %d: max error %.3g, peak %.3g", n, hop,
        t_frames, mask_kind, worst, peak);
  if (peak > 0.0 && worst / peak > stream_worst) stream_worst = worst / peak;
}

static void test_stream(void) {
  int round;
  /* The vocoder's configuration, frame 0 alone and a short utterance. */
  test_stream_case(N_MAX, BITTTS_ISTFT_HOP, 1, 0);
  test_stream_case(N_MAX, BITTTS_ISTFT_HOP, 4, 1);
  for (round = 0; round < 40; ++round) {
    const int log2n = rng_range(2, 7); /* 4 .. 128: the naive reference stays fast in QEMU */
    const int n = 1 << log2n, hop = 1 << rng_range(0, log2n - 1);
    test_stream_case(n, hop, rng_range(1, T_MAX), rng_range(0, 2));
  }
  printf("stream: max error %.3g of the peak (tolerance 1e-5)\n", stream_worst);
}

/* A stream begun again gives the same samples (the state is fully reset), and
 * masked frames cost nothing but still advance. */
static void test_restart(void) {
  static float first_run[(T_MAX + 2) * BITTTS_ISTFT_HOP];
  bittts_istft s;
  int run, t, emitted;
  size_t n_out;
  random_head(N_MAX, T_MAX, 1);
  for (run = 0; run < 2; ++run) {
    emitted = 0;
    CHECK(bittts_istft_begin(&s, N_MAX, BITTTS_ISTFT_HOP, state, BITTTS_ISTFT_STATE_LEN) ==
              BITTTS_ISTFT_OK, "begin");
    for (t = 0; t < T_MAX + BITTTS_ISTFT_DELAY_FRAMES; ++t) {
      if (t < T_MAX)
        bittts_istft_push(&s, head[t], BITTTS_ISTFT_HEAD_LEN, masks[t], scratch,
                          BITTTS_ISTFT_SCRATCH_LEN, out + emitted, BITTTS_ISTFT_HOP, &n_out);
      else
        bittts_istft_flush(&s, out + emitted, BITTTS_ISTFT_HOP, &n_out);
      emitted += (int)n_out;
    }
    CHECK(emitted == T_MAX * BITTTS_ISTFT_HOP, "emitted %d", emitted);
    if (run == 0)
      memcpy(first_run, out, sizeof first_run);
    else
      CHECK(memcmp(first_run, out, (size_t)emitted * sizeof *out) == 0, "restart differs");
  }
}

/* ---- lengths, configurations, refused calls -------------------------------- */

static void test_lengths(void) {
  int n, hop;
  CHECK(BITTTS_ISTFT_HEAD_LEN == BITTTS_ISTFT_N_FFT + 2, "head len");
  CHECK(bittts_istft_head_len(N_MAX) == BITTTS_ISTFT_HEAD_LEN, "head len");
  CHECK(bittts_istft_scratch_len(N_MAX) == BITTTS_ISTFT_SCRATCH_LEN, "scratch len");
  CHECK(bittts_istft_state_len(N_MAX, BITTTS_ISTFT_HOP) == BITTTS_ISTFT_STATE_LEN,
        "state len");
  CHECK(bittts_istft_delay_frames(N_MAX, BITTTS_ISTFT_HOP) == BITTTS_ISTFT_DELAY_FRAMES,
        "delay");
  for (n = -3; n <= 2 * N_MAX + 1; ++n) {
    const int valid_n = n >= BITTTS_ISTFT_MIN_N_FFT && n <= N_MAX && (n & (n - 1)) == 0;
    CHECK((bittts_istft_head_len(n) != 0) == valid_n, "head len of n=%d", n);
    CHECK((bittts_istft_scratch_len(n) != 0) == valid_n, "scratch len of n=%d", n);
    for (hop = -1; hop <= (n > 0 ? n : 1) + 1; hop += (hop < 40 ? 1 : hop / 2)) {
      const int valid = valid_n && hop >= 1 && (hop & (hop - 1)) == 0 && hop <= n / 2;
      CHECK((bittts_istft_check(n, hop) == BITTTS_ISTFT_OK) == valid, "check %d %d", n, hop);
      CHECK(valid ? bittts_istft_state_len(n, hop) == (size_t)(n + n / hop)
                  : bittts_istft_state_len(n, hop) == 0, "state len %d %d", n, hop);
      CHECK(valid ? bittts_istft_delay_frames(n, hop) == n / (2 * hop)
                  : bittts_istft_delay_frames(n, hop) == 0, "delay %d %d", n, hop);
    }
  }
  CHECK(strcmp(bittts_istft_status_message(BITTTS_ISTFT_STATE), "record not begun") == 0,
        "message");
  CHECK(strcmp(bittts_istft_status_message((bittts_istft_status)99), "unknown status") == 0,
        "unknown status");
}

static int all_canary(const float *x, size_t len) {
  size_t i;
  for (i = 0; i < len; ++i)
    if (memcmp(&x[i], &(float){CANARY_F}, sizeof(float)) != 0) return 0;
  return 1;
}

static void fill_canary(float *x, size_t len) {
  size_t i;
  for (i = 0; i < len; ++i) x[i] = CANARY_F;
}

static void test_refused(void) {
  enum { kN = 64, kHop = 16 };
  static float st[kN + kN / kHop + 4], sc[kN + 4], o[kHop + 4], h[kN + 2 + 4];
  static float saved_state[kN + kN / kHop + 4];
  bittts_istft s, saved, blank;
  size_t n_out = 777;
  int k, trial;
  const size_t st_len = kN + kN / kHop;
  /* begin: nothing written when refused. */
  memset(&blank, 0x5A, sizeof blank);
  s = blank;
  fill_canary(st, sizeof st / sizeof *st);
  CHECK(bittts_istft_begin(NULL, kN, kHop, st, st_len) == BITTTS_ISTFT_NULL, "NULL record");
  CHECK(bittts_istft_begin(&s, kN, kHop, NULL, st_len) == BITTTS_ISTFT_NULL, "NULL state");
  CHECK(bittts_istft_begin(&s, kN, kHop, st, st_len - 1) == BITTTS_ISTFT_SIZE, "small state");
  CHECK(bittts_istft_begin(&s, kN + 1, kHop, st, 4 * st_len) == BITTTS_ISTFT_CONFIG, "n_fft");
  CHECK(bittts_istft_begin(&s, kN, 3, st, 4 * st_len) == BITTTS_ISTFT_CONFIG, "hop 3");
  CHECK(bittts_istft_begin(&s, kN, kN, st, 4 * st_len) == BITTTS_ISTFT_CONFIG, "hop n_fft");
  CHECK(bittts_istft_begin(&s, 2 * N_MAX, 16, st, 4 * st_len) == BITTTS_ISTFT_CONFIG,
        "n_fft beyond the tables");
  CHECK(memcmp(&s, &blank, sizeof s) == 0, "refused begin wrote the record");
  CHECK(all_canary(st, sizeof st / sizeof *st), "refused begin wrote the state");
  /* push / flush on a record never begun. */
  fill_canary(o, sizeof o / sizeof *o);
  for (k = 0; k < kN + 2; ++k) h[k] = 0.5f;
  CHECK(bittts_istft_push(&s, h, kN + 2, 1.0f, sc, kN, o, kHop, &n_out) == BITTTS_ISTFT_STATE,
        "push before begin");
  CHECK(bittts_istft_flush(&s, o, kHop, &n_out) == BITTTS_ISTFT_STATE, "flush before begin");
  CHECK(all_canary(o, sizeof o / sizeof *o) && n_out == 777, "refused push wrote");

  CHECK(bittts_istft_begin(&s, kN, kHop, st, st_len) == BITTTS_ISTFT_OK, "begin");
  CHECK(st[st_len] == CANARY_F, "begin wrote past the state");
  /* A few pushes so the state holds something. */
  for (k = 0; k < 3; ++k)
    CHECK(bittts_istft_push(&s, h, kN + 2, 1.0f, sc, kN, o, kHop, &n_out) == BITTTS_ISTFT_OK,
          "push");
  for (trial = 0; trial < 16; ++trial) {
    bittts_istft_status expected, got;
    const float *hp = h;
    float *scp = sc, *op = o, mask = 1.0f;
    size_t *np = &n_out, h_len = kN + 2, sc_len = kN, o_len = kHop;
    bittts_istft *sp = &s;
    for (k = 0; k < kN + 2; ++k) h[k] = rng_float(-3.0f, 3.0f);
    switch (trial) {
      case 0: sp = NULL; expected = BITTTS_ISTFT_NULL; break;
      case 1: hp = NULL; expected = BITTTS_ISTFT_NULL; break;
      case 2: scp = NULL; expected = BITTTS_ISTFT_NULL; break;
      case 3: op = NULL; expected = BITTTS_ISTFT_NULL; break;
      case 4: np = NULL; expected = BITTTS_ISTFT_NULL; break;
      case 5: h_len = kN + 1; expected = BITTTS_ISTFT_SIZE; break;
      case 6: sc_len = kN - 1; expected = BITTTS_ISTFT_SIZE; break;
      case 7: o_len = kHop - 1; expected = BITTTS_ISTFT_SIZE; break;
      case 8: mask = -0.25f; expected = BITTTS_ISTFT_VALUE; break;
      case 9: mask = 1.5f; expected = BITTTS_ISTFT_VALUE; break;
      case 10: mask = NAN; expected = BITTTS_ISTFT_VALUE; break;
      case 11: h[rng_range(0, kN / 2)] = NAN; expected = BITTTS_ISTFT_VALUE; break;
      case 12: h[rng_range(kN / 2 + 1, kN + 1)] = INFINITY; expected = BITTTS_ISTFT_VALUE; break;
      case 13: h[rng_range(kN / 2 + 1, kN + 1)] = NAN; expected = BITTTS_ISTFT_VALUE; break;
      case 14: h[kN + 1] = -INFINITY; mask = 0.0f; expected = BITTTS_ISTFT_VALUE; break;
      default: expected = BITTTS_ISTFT_STATE; break; /* a damaged record, below */
    }
    saved = s;
    if (trial == 15) s.first = 999;
    memcpy(saved_state, st, sizeof st);
    fill_canary(sc, sizeof sc / sizeof *sc);
    fill_canary(o, sizeof o / sizeof *o);
    n_out = 777;
    got = bittts_istft_push(sp, hp, h_len, mask, scp, sc_len, op, o_len, np);
    CHECK(got == expected, "trial %d: %s, expected %s", trial, bittts_istft_status_message(got),
          bittts_istft_status_message(expected));
    CHECK(all_canary(sc, sizeof sc / sizeof *sc) && all_canary(o, sizeof o / sizeof *o) &&
              n_out == 777, "trial %d: a refused push wrote", trial);
    CHECK(memcmp(saved_state, st, sizeof st) == 0, "trial %d: a refused push changed the state",
          trial);
    if (trial == 15) {
      CHECK(bittts_istft_flush(&s, o, kHop, &n_out) == BITTTS_ISTFT_STATE, "damaged flush");
      CHECK(s.first == 999, "a refused push changed the damaged record");
      s = saved;
    }
    CHECK(memcmp(&saved, &s, sizeof s) == 0, "trial %d: a refused push changed the record",
          trial);
  }
  /* flush */
  memcpy(saved_state, st, sizeof st);
  saved = s;
  CHECK(bittts_istft_flush(NULL, o, kHop, &n_out) == BITTTS_ISTFT_NULL, "flush NULL record");
  CHECK(bittts_istft_flush(&s, NULL, kHop, &n_out) == BITTTS_ISTFT_NULL, "flush NULL out");
  CHECK(bittts_istft_flush(&s, o, kHop, NULL) == BITTTS_ISTFT_NULL, "flush NULL n_out");
  CHECK(bittts_istft_flush(&s, o, kHop - 1, &n_out) == BITTTS_ISTFT_SIZE, "flush small out");
  CHECK(all_canary(o, sizeof o / sizeof *o) && n_out == 777, "a refused flush wrote");
  CHECK(memcmp(saved_state, st, sizeof st) == 0 && memcmp(&saved, &s, sizeof s) == 0,
        "a refused flush changed the stream");
  /* Infinite log-magnitudes are accepted (clipped, or silent). */
  for (k = 0; k < kN + 2; ++k) h[k] = 0.0f;
  h[1] = INFINITY;
  h[2] = -INFINITY;
  CHECK(bittts_istft_push(&s, h, kN + 2, 1.0f, sc, kN, o, kHop, &n_out) == BITTTS_ISTFT_OK,
        "infinite log-magnitudes");
  for (k = 0; k < kHop; ++k) CHECK(isfinite(o[k]), "sample %d not finite", k);
  /* irfft */
  fill_canary(o, sizeof o / sizeof *o);
  CHECK(bittts_istft_irfft(kN, NULL, kN + 2, sc, kN) == BITTTS_ISTFT_NULL, "irfft NULL in");
  CHECK(bittts_istft_irfft(kN, h, kN + 2, NULL, kN) == BITTTS_ISTFT_NULL, "irfft NULL out");
  CHECK(bittts_istft_irfft(kN + 2, h, 4 * kN, o, kHop) == BITTTS_ISTFT_CONFIG, "irfft n_fft");
  CHECK(bittts_istft_irfft(kHop, h, kHop + 1, o, kHop) == BITTTS_ISTFT_SIZE, "irfft small in");
  CHECK(bittts_istft_irfft(kHop, h, kHop + 2, o, kHop - 1) == BITTTS_ISTFT_SIZE,
        "irfft small out");
  CHECK(all_canary(o, sizeof o / sizeof *o), "a refused irfft wrote");
}

static float sp_head[N_MAX + 3]; /* a head frame and a canary */

/* The source phase against a double-precision reference, frame by frame
 * with theta carried; refused calls leave the head and theta as they were. */
static void test_source_phase(void) {
  const bittts_istft_source source = {16000.0f, rng_float(500.0f, 7000.0f), 5.2f, 0.09f};
  const int n = N_MAX, hop = BITTTS_ISTFT_HOP, bins = N_MAX / 2 + 1;
  double theta_ref = 0.0, worst = 0.0;
  float theta = 0.0f, frame_f0[2], before[N_MAX + 2];
  int t, b;
  for (t = 0; t < 60; ++t) {
    double f0;
    frame_f0[0] = rng_float(-3.0f, 3.0f);
    frame_f0[1] = rng_float(-2.0f, 4.0f);
    for (b = 0; b < n + 2; ++b) sp_head[b] = before[b] = rng_float(-3.0f, 3.0f);
    sp_head[n + 2] = CANARY_F;
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 2, n, hop, frame_f0, 2, &source,
                                    &theta) == BITTTS_ISTFT_OK, "source phase frame %d", t);
    /* F0 and the harmonic index in float, as specified: near a tie of
     * f_b / F0 a double quotient would round to the other harmonic. */
    f0 = frame_f0[1] > 0.0f
             ? (float)exp((double)(frame_f0[0] * source.log_f0_std + source.log_f0_mean))
             : 0.0f;
    for (b = 0; b < n + 2; ++b) {
      double expected = before[b], d;
      const float hz = (float)(b - bins) * (source.sample_rate / (float)n);
      if (b >= bins && f0 > 0.0 && hz < source.cutoff)
        expected += fmod(nearbyintf(hz / (float)f0) * theta_ref, 2.0 * kPi);
      d = fabs(remainder(sp_head[b] - expected, 2.0 * kPi));
      if (d > worst) worst = d;
    }
    CHECK(sp_head[n + 2] == CANARY_F, "source phase wrote past the head");
    theta_ref = fmod(theta_ref + 2.0 * kPi * hop / source.sample_rate * f0, 2.0 * kPi);
    CHECK(fabs(remainder(theta - theta_ref, 2.0 * kPi)) < 1e-4, "theta %g against %g", theta,
          theta_ref);
  }
  CHECK(worst < 5e-3, "source phase: max error %.3g rad", worst);
  memcpy(before, sp_head, sizeof before);
  {
    float saved = theta, bad_theta = 7.0f;
    frame_f0[0] = NAN;
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 2, n, hop, frame_f0, 2, &source,
                                    &theta) == BITTTS_ISTFT_VALUE, "NaN F0 refused");
    frame_f0[0] = 0.0f;
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 1, n, hop, frame_f0, 2, &source,
                                    &theta) == BITTTS_ISTFT_SIZE, "short head refused");
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 2, n, hop, frame_f0, 1, &source,
                                    &theta) == BITTTS_ISTFT_SIZE, "short frame F0 refused");
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 2, n, hop, frame_f0, 2, &source,
                                    &bad_theta) == BITTTS_ISTFT_VALUE, "theta > 2 pi refused");
    CHECK(bittts_istft_source_phase(sp_head, (size_t)n + 2, n, hop, frame_f0, 2, NULL,
                                    &theta) == BITTTS_ISTFT_NULL, "NULL source refused");
    CHECK(memcmp(before, sp_head, sizeof before) == 0 && theta == saved && bad_theta == 7.0f,
          "a refused source phase wrote");
  }
}

int main(int argc, char **argv) {
  seed_rng("test_istft", argc > 1 ? argv[1] : getenv("BITTTS_TEST_SEED"));
  test_lengths();
  test_refused();
  test_irfft();
  print_irfft_hash();
  test_stream();
  test_restart();
  test_source_phase();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
