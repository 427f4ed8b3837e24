/* Unit tests of the fused ternary convolution (tflite/bittts_ternary_conv.c)
 * against a naive reference written here: trits encoded by the format's
 * definition (byte = sum_k t_k 3^k), the convolution as TFLite's reference
 * CONV_2D loops it (every tap, its frame checked against the padding), and
 * the fixed-point rescale from the rounding rules (ties away from zero)
 * with libm's frexp and llround, independent of the kernel's own helpers.
 *
 * Random shapes (stride, dilation, SAME and VALID, activations, bias or
 * none), then every refusal: NULL, sizes, parameters, overlaps, each invalid
 * byte; on a refusal neither the output nor the scratch may change. Canary
 * bytes around every written buffer catch writes out of bounds; `make test-c`
 * also builds this file with AddressSanitizer and UBSan, `make test-cortex-m`
 * for Cortex-M4 and M7 in QEMU, twice: with the DSP extension's SIMD path
 * and with -DBITTTS_CONV_NO_ACLE (the plain C path on the same cores). The
 * streaming rounds draw what the C engine runs (T_out 1..8, Cin a multiple
 * of 4 or not, odd K, stride, dilation) and compare bittts_conv_i8 and
 * bittts_conv_i8_trusted, each with the plain and the fast scratch size
 * (bittts_conv_i8_fast_scratch_size: the widened-window SIMD path), with the
 * reference. The seed is printed; BITTTS_TEST_SEED=<seed> (or the first
 * argument) replays a run. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../tflite/bittts_spec.h"
#include "../../tflite/bittts_ternary.h"
#include "../../tflite/bittts_ternary_conv.h"

#include "reference_rescale.h"
#include "test_harness.h"
static size_t pick(size_t lo, size_t hi) { return lo + rng() % (hi - lo + 1); }

#define CANARY 0x5A
enum { kGuard = 16 };

/* A buffer of `bytes` with kGuard canary bytes on both sides. */
typedef struct {
  unsigned char *block;
  size_t bytes;
} Guarded;

static void *guarded(Guarded *g, size_t bytes) {
  g->bytes = bytes;
  g->block = malloc(bytes + 2 * kGuard);
  memset(g->block, CANARY, bytes + 2 * kGuard);
  return g->block + kGuard;
}

static int guards_intact(const Guarded *g) {
  size_t i;
  for (i = 0; i < kGuard; ++i)
    if (g->block[i] != CANARY || g->block[kGuard + g->bytes + i] != CANARY) return 0;
  return 1;
}

/* --- The reference. */

static void encode(const int *trits, size_t n, int8_t *packed) {
  size_t g, k;
  for (g = 0; g < (n + 4) / 5; ++g) {
    int value = 0, power = 1;
    for (k = 0; k < 5; ++k, power *= 3) value += (g * 5 + k < n ? trits[g * 5 + k] : 0) * power;
    packed[g] = (int8_t)value;
  }
}

typedef struct {
  bittts_conv_shape s;
  size_t out_length, pad;
} RefShape;

/* TFLite's sizes and padding, spelled as its padding helper states them. */
static int ref_shape(const bittts_conv_shape *s, RefShape *r) {
  long span = (long)((s->kernel_size - 1) * s->dilation + 1), total;
  long in = (long)s->input_length, stride = (long)s->stride, out;
  out = s->padding == BITTTS_CONV_PADDING_SAME ? (in + stride - 1) / stride
                                                : (in + stride - span) / stride;
  if (out <= 0) return 0;
  total = (out - 1) * stride + span - in;
  r->s = *s;
  r->out_length = (size_t)out;
  r->pad = total > 0 ? (size_t)(total / 2) : 0;
  return 1;
}

static void ref_conv_f32(const RefShape *r, const float *x, const int *trits, float beta,
                         const float *bias, float lo, float hi, float *y) {
  const bittts_conv_shape *s = &r->s;
  size_t n, t, o, k, c;
  for (n = 0; n < s->batches; ++n)
    for (t = 0; t < r->out_length; ++t)
      for (o = 0; o < s->output_channels; ++o) {
        float acc = 0.0f, v;
        for (k = 0; k < s->kernel_size; ++k) {
          long frame = (long)(t * s->stride + k * s->dilation) - (long)r->pad;
          if (frame < 0 || frame >= (long)s->input_length) continue;
          for (c = 0; c < s->input_channels; ++c)
            acc += (float)trits[(o * s->kernel_size + k) * s->input_channels + c] *
                   x[(n * s->input_length + (size_t)frame) * s->input_channels + c];
        }
        v = beta * acc + (bias ? bias[o] : 0.0f);
        y[(n * r->out_length + t) * s->output_channels + o] = v < lo ? lo : (v > hi ? hi : v);
      }
}

static int8_t ref_requantize(int32_t acc, const bittts_conv_quant *q) {
  long long v = (long long)reference_rescale(acc, q->multiplier, q->shift) + q->output_offset;
  if (v < q->act_min) v = q->act_min;
  if (v > q->act_max) v = q->act_max;
  return (int8_t)v;
}

static void ref_conv_i8(const RefShape *r, const bittts_conv_quant *q, const int8_t *x,
                        const int *trits, const int32_t *bias, int8_t *y) {
  const bittts_conv_shape *s = &r->s;
  size_t n, t, o, k, c;
  for (n = 0; n < s->batches; ++n)
    for (t = 0; t < r->out_length; ++t)
      for (o = 0; o < s->output_channels; ++o) {
        long long acc = 0;
        for (k = 0; k < s->kernel_size; ++k) {
          long frame = (long)(t * s->stride + k * s->dilation) - (long)r->pad;
          if (frame < 0 || frame >= (long)s->input_length) continue;
          for (c = 0; c < s->input_channels; ++c)
            acc += (long long)trits[(o * s->kernel_size + k) * s->input_channels + c] *
                   (x[(n * s->input_length + (size_t)frame) * s->input_channels + c] +
                    q->input_offset);
        }
        acc += bias ? bias[o] : 0;
        y[(n * r->out_length + t) * s->output_channels + o] =
            ref_requantize((int32_t)acc, q);
      }
}

/* TFLite's QuantizeMultiplier from libm. */
static void ref_quantize_multiplier(double real, int32_t *m, int32_t *shift) {
  int e;
  double q;
  long long fixed;
  if (real == 0.0) {
    *m = 0, *shift = 0;
    return;
  }
  q = frexp(real, &e);
  fixed = llround(q * 2147483648.0);
  if (fixed == 1LL << 31) fixed /= 2, ++e;
  if (e < -31) e = 0, fixed = 0;
  *m = (int32_t)fixed, *shift = e;
}

/* --- Random cases. */

static void random_shape(bittts_conv_shape *s, RefShape *r) {
  do {
    s->batches = pick(1, 2);
    s->input_length = pick(1, 40);
    s->input_channels = pick(1, 9);
    s->output_channels = pick(1, 9);
    s->kernel_size = pick(1, 6);
    s->stride = rng() % 3 ? 1 : pick(2, 3);
    s->dilation = rng() % 3 ? 1 : pick(2, 3);
    s->padding = rng() % 2 ? BITTTS_CONV_PADDING_SAME : BITTTS_CONV_PADDING_VALID;
  } while (!ref_shape(s, r));
}

static int *random_trits(size_t n) {
  int *trits = malloc(n * sizeof *trits);
  size_t i;
  const unsigned zeros = rng() % 4; /* some kernels mostly zero, some dense */
  for (i = 0; i < n; ++i) trits[i] = rng() % 4 < zeros ? 0 : (int)(rng() % 3) - 1;
  return trits;
}

static void test_random_f32(int round) {
  bittts_conv_shape s;
  RefShape r;
  Guarded go, gs;
  size_t i, n_in, n_out, n_w, scratch_len;
  float *x, *bias = NULL, *y, *expected, lo, hi, beta, *scratch;
  int8_t *packed;
  int *trits, activation = (int)(rng() % 4);
  bittts_conv_status status;
  random_shape(&s, &r);
  n_in = s.batches * s.input_length * s.input_channels;
  n_out = s.batches * r.out_length * s.output_channels;
  n_w = s.output_channels * s.kernel_size * s.input_channels;
  CHECK(bittts_conv_check_shape(&s) == BITTTS_CONV_OK && bittts_conv_output_length(&s) ==
            r.out_length && bittts_conv_pad_before(&s) == r.pad &&
            bittts_conv_input_size(&s) == n_in && bittts_conv_output_size(&s) == n_out &&
            bittts_conv_weight_count(&s) == n_w,
        "f32 round %d: sizes of T=%zu K=%zu stride %zu dilation %zu padding %d", round,
        s.input_length, s.kernel_size, s.stride, s.dilation, s.padding);
  scratch_len = bittts_conv_scratch_size(&s);
  CHECK(scratch_len >= s.kernel_size * s.input_channels &&
            scratch_len <= s.kernel_size * s.input_channels + 8,
        "scratch size %zu for a row of %zu", scratch_len, s.kernel_size * s.input_channels);
  x = malloc(n_in * sizeof *x);
  for (i = 0; i < n_in; ++i) x[i] = (float)((int)(rng() % 20001) - 10000) / 1000.0f;
  trits = random_trits(n_w);
  packed = malloc(bittts_packed_size(n_w));
  encode(trits, n_w, packed);
  if (rng() % 2) {
    bias = malloc(s.output_channels * sizeof *bias);
    for (i = 0; i < s.output_channels; ++i) bias[i] = (float)((int)(rng() % 2001) - 1000) / 100.0f;
  }
  beta = (float)(1 + rng() % 1000) / 997.0f;
  CHECK(bittts_conv_activation_range_f32(activation, &lo, &hi) == BITTTS_CONV_OK, "range");
  expected = malloc(n_out * sizeof *expected);
  ref_conv_f32(&r, x, trits, beta, bias, lo, hi, expected);
  y = guarded(&go, n_out * sizeof *y);
  scratch = guarded(&gs, scratch_len * sizeof *scratch);
  status = bittts_conv_f32(&s, x, n_in, packed, bittts_packed_size(n_w), beta, bias,
                           bias ? s.output_channels : 0, lo, hi, scratch, scratch_len, y, n_out,
                           NULL);
  CHECK(status == BITTTS_CONV_OK, "f32 round %d: status %d", round, (int)status);
  /* The same sums in the same order: the same bits. */
  for (i = 0; i < n_out && status == BITTTS_CONV_OK; ++i) {
    if (memcmp(&y[i], &expected[i], sizeof(float)) != 0) {
      CHECK(0, "f32 round %d: output %zu is %.9g, reference %.9g (T=%zu Cin=%zu Cout=%zu K=%zu "
            "stride %zu dilation %zu padding %d)", round, i, y[i], expected[i], s.input_length,
            s.input_channels, s.output_channels, s.kernel_size, s.stride, s.dilation, s.padding);
      break;
    }
  }
  CHECK(guards_intact(&go) && guards_intact(&gs), "f32 round %d: canary", round);
  free(x), free(trits), free(packed), free(bias), free(expected), free(go.block), free(gs.block);
}

static void random_quant(bittts_conv_quant *q, int activation) {
  const float input_scale = (float)(1 + rng() % 1000) / 20000.0f;
  const float beta = (float)(1 + rng() % 1000) / 5000.0f;
  const float output_scale = (float)(1 + rng() % 1000) / 4000.0f;
  const int32_t output_zero_point = (int32_t)(rng() % 256) - 128;
  const double real = (double)input_scale * (double)beta / (double)output_scale;
  q->input_offset = -((int32_t)(rng() % 256) - 128);
  q->output_offset = output_zero_point;
  CHECK(bittts_conv_quantize_multiplier(real, &q->multiplier, &q->shift) == BITTTS_CONV_OK,
        "multiplier of %g", real);
  CHECK(bittts_conv_activation_range_i8(activation, output_scale, output_zero_point,
                                        &q->act_min, &q->act_max) == BITTTS_CONV_OK,
        "activation range");
}

/* One int8 case on shape s: random input (at the extremes on every
 * `extremes_every`-th round, if not 0), trits and their packed bytes, a bias
 * three times in four, and the reference output. Free with free_i8_case. */
typedef struct {
  size_t n_in, n_out, n_w;
  int8_t *x, *packed, *expected;
  int32_t *bias;
  int *trits;
} I8Case;

static void make_i8_case(const bittts_conv_shape *s, const RefShape *r, bittts_conv_quant *q,
                         int round, int extremes_every, I8Case *c) {
  size_t i;
  c->n_in = s->batches * s->input_length * s->input_channels;
  c->n_out = s->batches * r->out_length * s->output_channels;
  c->n_w = s->output_channels * s->kernel_size * s->input_channels;
  c->x = malloc(c->n_in);
  for (i = 0; i < c->n_in; ++i) c->x[i] = (int8_t)((int)(rng() % 256) - 128);
  if (extremes_every && round % extremes_every == 0) /* every product at its largest */
    for (i = 0; i < c->n_in; ++i) c->x[i] = (int8_t)(rng() % 2 ? 127 : -128);
  c->trits = random_trits(c->n_w);
  if (round % 16 == 4) {
    /* The SIMD path's lane fields at their limit: every product +-255 with
     * one sign, so each 32-position partial sum of a row is +-8160, next to
     * the 14-bit field's 8191 (and row B's field at its largest). */
    const int sign = rng() % 2 ? 1 : -1, low = rng() % 2;
    for (i = 0; i < c->n_in; ++i) c->x[i] = (int8_t)(low ? -128 : 127);
    q->input_offset = low ? -127 : 128;
    for (i = 0; i < c->n_w; ++i) c->trits[i] = sign;
  }
  c->packed = malloc(bittts_packed_size(c->n_w));
  encode(c->trits, c->n_w, c->packed);
  c->bias = NULL;
  if (rng() % 4) {
    c->bias = malloc(s->output_channels * sizeof *c->bias);
    for (i = 0; i < s->output_channels; ++i) c->bias[i] = (int32_t)(rng() % 20001) - 10000;
  }
  c->expected = malloc(c->n_out);
  ref_conv_i8(r, q, c->x, c->trits, c->bias, c->expected);
}

static void free_i8_case(I8Case *c) {
  free(c->x), free(c->trits), free(c->packed), free(c->bias), free(c->expected);
}

static void test_random_i8(int round) {
  bittts_conv_shape s;
  RefShape r;
  bittts_conv_quant q;
  Guarded go, gs;
  I8Case c;
  size_t i, scratch_len;
  int8_t *y, *scratch;
  bittts_conv_status status;
  random_shape(&s, &r);
  random_quant(&q, (int)(rng() % 4));
  make_i8_case(&s, &r, &q, round, 0, &c);
  scratch_len = bittts_conv_scratch_size(&s);
  y = guarded(&go, c.n_out);
  scratch = guarded(&gs, scratch_len);
  status = bittts_conv_i8(&s, &q, c.x, c.n_in, c.packed, bittts_packed_size(c.n_w), c.bias,
                          c.bias ? s.output_channels : 0, scratch, scratch_len, y, c.n_out, NULL);
  CHECK(status == BITTTS_CONV_OK, "i8 round %d: status %d", round, (int)status);
  if (status == BITTTS_CONV_OK && memcmp(y, c.expected, c.n_out) != 0) {
    for (i = 0; i < c.n_out && y[i] == c.expected[i]; ++i) continue;
    CHECK(0, "i8 round %d: output %zu is %d, reference %d (T=%zu Cin=%zu Cout=%zu K=%zu "
          "stride %zu dilation %zu padding %d, multiplier %ld shift %ld)", round, i, y[i],
          c.expected[i], s.input_length, s.input_channels, s.output_channels, s.kernel_size,
          s.stride, s.dilation, s.padding, (long)q.multiplier, (long)q.shift);
  }
  CHECK(guards_intact(&go) && guards_intact(&gs), "i8 round %d: canary", round);
  free_i8_case(&c), free(go.block), free(gs.block);
}

/* --- The streaming shapes, both entry points, both scratch sizes. */

static void stream_shape(bittts_conv_shape *s, RefShape *r) {
  static const size_t kChannels[] = {4, 8, 12, 16, 20, 32, 36, 64, 128, 1, 3, 5, 6, 7, 9, 10, 13};
  do {
    const size_t t_out = rng() % 8 ? pick(1, 8) : pick(9, 40); /* past a 16-frame chunk too */
    s->batches = rng() % 4 ? 1 : 2;
    s->input_channels = rng() % 3 ? kChannels[rng() % 9] : kChannels[rng() % 17];
    s->output_channels = rng() % 4 ? pick(1, 12) : pick(13, 27); /* pairs o, o + 5; rows alone */
    s->kernel_size = rng() % 2 ? 2 * pick(0, 3) + 1 : pick(1, 6); /* odd half the time */
    s->stride = rng() % 3 ? 1 : pick(2, 3);
    s->dilation = rng() % 3 ? 1 : pick(2, 3);
    s->padding = rng() % 3 ? BITTTS_CONV_PADDING_VALID : BITTTS_CONV_PADDING_SAME;
    /* T giving about t_out frames; ref_shape says what it gives exactly. */
    s->input_length = s->padding == BITTTS_CONV_PADDING_SAME
                          ? (t_out - 1) * s->stride + pick(1, s->stride)
                          : (t_out - 1) * s->stride + (s->kernel_size - 1) * s->dilation + 1 +
                                (rng() % 4 ? 0 : pick(0, s->stride - 1));
  } while (!ref_shape(s, r) || s->kernel_size * s->input_channels > 640);
}

static void test_stream_i8(int round) {
  bittts_conv_shape s;
  RefShape r;
  bittts_conv_quant q;
  I8Case c;
  size_t i, plain_len, fast_len;
  int trusted, fast;
  stream_shape(&s, &r);
  random_quant(&q, (int)(rng() % 4));
  plain_len = bittts_conv_scratch_size(&s);
  fast_len = bittts_conv_i8_fast_scratch_size(&s);
  CHECK(fast_len >= plain_len && (s.input_channels % 4 != 0 || fast_len > plain_len),
        "stream round %d: fast scratch %zu, plain %zu", round, fast_len, plain_len);
  make_i8_case(&s, &r, &q, round, 8, &c);
  for (trusted = 0; trusted < 2; ++trusted)
    for (fast = 0; fast < 2; ++fast) {
      Guarded go, gs;
      /* an odd start for the scratch: the window must align itself */
      const size_t scratch_len = (fast ? fast_len : plain_len) + (size_t)(rng() % 3);
      int8_t *y = guarded(&go, c.n_out), *scratch = guarded(&gs, scratch_len + 1) + 1;
      bittts_conv_status status =
          trusted ? bittts_conv_i8_trusted(&s, &q, c.x, c.n_in, c.packed, bittts_packed_size(c.n_w),
                                           c.bias, c.bias ? s.output_channels : 0, scratch,
                                           scratch_len, y, c.n_out)
                  : bittts_conv_i8(&s, &q, c.x, c.n_in, c.packed, bittts_packed_size(c.n_w), c.bias,
                                   c.bias ? s.output_channels : 0, scratch, scratch_len, y,
                                   c.n_out, NULL);
      CHECK(status == BITTTS_CONV_OK, "stream round %d: status %d", round, (int)status);
      if (status == BITTTS_CONV_OK && memcmp(y, c.expected, c.n_out) != 0) {
        for (i = 0; i < c.n_out && y[i] == c.expected[i]; ++i) continue;
        CHECK(0, "stream round %d (%s, %s scratch): output %zu is %d, reference %d (N=%zu T=%zu "
              "Cin=%zu Cout=%zu K=%zu stride %zu dilation %zu padding %d)", round,
              trusted ? "trusted" : "checked", fast ? "fast" : "plain", i, y[i], c.expected[i],
              s.batches, s.input_length, s.input_channels, s.output_channels, s.kernel_size,
              s.stride, s.dilation, s.padding);
      }
      CHECK(guards_intact(&go) && guards_intact(&gs), "stream round %d: canary", round);
      free(go.block), free(gs.block);
    }
  free_i8_case(&c);
}

/* Every valid byte through both paths' decode: Cout 243 rows of one byte
 * each (K 1, Cin 5), one-hot inputs, a rescale by exactly 1: output t of row
 * o is trit t of byte o - 121. Then the trusted entry point on invalid bytes:
 * no refusal, no access outside anything (ASan), the trits read as 0. */
static void test_every_byte(void) {
  enum { kRows = BITTTS_NUM_PATTERNS };
  bittts_conv_shape s = {1, 5, 5, kRows, 1, 1, 1, BITTTS_CONV_PADDING_VALID};
  bittts_conv_quant q = {0, 0, 1 << 30, 1, -128, 127};
  int8_t x[25], packed[kRows], y[5 * kRows], scratch[16];
  int i, t, wrong = 0;
  for (i = 0; i < 25; ++i) x[i] = (int8_t)(i % 6 == 0); /* frame t: channel t is 1 */
  for (i = 0; i < kRows; ++i) packed[i] = (int8_t)(i - BITTTS_INDEX_OFFSET);
  CHECK(bittts_conv_i8_trusted(&s, &q, x, 25, packed, kRows, NULL, 0, scratch, sizeof scratch, y,
                               sizeof y) == BITTTS_CONV_OK, "every byte runs");
  for (i = 0; i < kRows; ++i)
    for (t = 0; t < 5; ++t) wrong += y[t * kRows + i] != BITTTS_TRIT_TABLE[i][t];
  CHECK(wrong == 0, "%d trits of the 243 bytes decoded wrong", wrong);
  for (i = 0; i < kRows; ++i) packed[i] = (int8_t)(i % 2 ? 122 + i % 6 : -128 + i % 7);
  memset(y, 1, sizeof y);
  CHECK(bittts_conv_i8_trusted(&s, &q, x, 25, packed, kRows, NULL, 0, scratch, sizeof scratch, y,
                               sizeof y) == BITTTS_CONV_OK, "invalid bytes, trusted");
  for (i = 0, wrong = 0; i < 5 * kRows; ++i) wrong += y[i] != 0;
  CHECK(wrong == 0, "%d outputs of invalid bytes are not 0", wrong);
  CHECK(bittts_conv_i8(&s, &q, x, 25, packed, kRows, NULL, 0, scratch, sizeof scratch, y,
                       sizeof y, NULL) == BITTTS_CONV_ERR_INDEX, "invalid bytes, checked");
}

/* --- The rescale and the multiplier. */

static void test_rescale(void) {
  static const int32_t edges[] = {0, 1, -1, 2, -2, 3, -3, 1 << 15, -(1 << 15), INT32_MAX,
                                  INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30), 12345, -12345};
  static const int32_t multipliers[] = {0, 1 << 30, (1 << 30) + 1, INT32_MAX, 1518500250,
                                        INT32_MIN};
  size_t i, j;
  int shift, round;
  for (i = 0; i < sizeof edges / sizeof *edges; ++i)
    for (j = 0; j < sizeof multipliers / sizeof *multipliers; ++j)
      for (shift = -31; shift <= 30; ++shift) {
        int32_t got = bittts_conv_multiply_by_quantized_multiplier(edges[i], multipliers[j], shift);
        int32_t want = reference_rescale(edges[i], multipliers[j], shift);
        if (got != want) {
          CHECK(0, "rescale(%ld, %ld, %d) = %ld, reference %ld", (long)edges[i],
                (long)multipliers[j], shift, (long)got, (long)want);
          return;
        }
      }
  for (round = 0; round < 200000; ++round) {
    int32_t x = (int32_t)(rng() ^ (rng() << 16)), m = (int32_t)((rng() << 1) | (rng() & 1));
    int32_t got, want;
    shift = (int)(rng() % 62) - 31;
    if (round % 2) x >>= rng() % 24; /* accumulator-sized values too */
    got = bittts_conv_multiply_by_quantized_multiplier(x, m, shift);
    want = reference_rescale(x, m, shift);
    if (got != want) {
      CHECK(0, "rescale(%ld, %ld, %d) = %ld, reference %ld", (long)x, (long)m, shift, (long)got,
            (long)want);
      return;
    }
  }
  /* Ties: 3 * 2^30 / 2^31 = 1.5 -> 2 and -1.5 -> -1 (the high multiply),
   * 6 / 4 = 1.5 -> 2 and -1.5 -> -2 (the divide, away from zero). */
  CHECK(bittts_conv_multiply_by_quantized_multiplier(3, 1 << 30, 0) == 2, "tie up");
  CHECK(bittts_conv_multiply_by_quantized_multiplier(-3, 1 << 30, 0) == -1, "tie toward zero");
  CHECK(bittts_conv_multiply_by_quantized_multiplier(12, 1 << 30, -2) == 2, "divide tie");
  CHECK(bittts_conv_multiply_by_quantized_multiplier(-12, 1 << 30, -2) == -2,
        "divide tie away from zero");
  CHECK(bittts_conv_multiply_by_quantized_multiplier(5, 1 << 30, 31) == 0, "shift 31 refused");
}

static void test_quantize_multiplier(void) {
  static const double reals[] = {0.0, 0.5, 1.0, 0.25, 0.75, 1.0 - 1e-12, 0.5 - 1e-17,
                                 4.656612873077393e-10, 2.3283064365386963e-10, 1e-12, 1e-300,
                                 4.9e-324, 0.0123456789, 3.0, 1e9, 536870911.9};
  size_t i;
  int round;
  int32_t m, shift, want_m, want_shift;
  for (i = 0; i < sizeof reals / sizeof *reals; ++i) {
    ref_quantize_multiplier(reals[i], &want_m, &want_shift);
    CHECK(bittts_conv_quantize_multiplier(reals[i], &m, &shift) == BITTTS_CONV_OK &&
              m == want_m && shift == want_shift,
          "multiplier of %.17g: (%ld, %ld), reference (%ld, %ld)", reals[i], (long)m, (long)shift,
          (long)want_m, (long)want_shift);
  }
  for (round = 0; round < 100000; ++round) {
    /* Products of float32 scales, as a graph's are. */
    float a = (float)(1 + rng() % 100000) * 1e-6f, b = (float)(1 + rng() % 100000) * 1e-6f;
    float c = (float)(1 + rng() % 100000) * 1e-6f;
    double real = (double)a * (double)b / (double)c;
    ref_quantize_multiplier(real, &want_m, &want_shift);
    if (bittts_conv_quantize_multiplier(real, &m, &shift) != BITTTS_CONV_OK || m != want_m ||
        shift != want_shift) {
      CHECK(0, "multiplier of %.17g: (%ld, %ld), reference (%ld, %ld)", real, (long)m,
            (long)shift, (long)want_m, (long)want_shift);
      break;
    }
  }
  CHECK(bittts_conv_quantize_multiplier(0.5, &m, &shift) == BITTTS_CONV_OK && m == 1 << 30 &&
            shift == 0,
        "0.5 is 2^30 * 2^-31");
  CHECK(bittts_conv_quantize_multiplier(-1.0, &m, &shift) == BITTTS_CONV_ERR_PARAM, "negative");
  CHECK(bittts_conv_quantize_multiplier(NAN, &m, &shift) == BITTTS_CONV_ERR_PARAM, "NaN");
  CHECK(bittts_conv_quantize_multiplier(INFINITY, &m, &shift) == BITTTS_CONV_ERR_PARAM, "inf");
  CHECK(bittts_conv_quantize_multiplier(2147483648.0, &m, &shift) == BITTTS_CONV_ERR_PARAM,
        "shift 31");
  CHECK(bittts_conv_quantize_multiplier(1073741823.9, &m, &shift) == BITTTS_CONV_ERR_PARAM,
        "a carry into shift 31");
  CHECK(bittts_conv_quantize_multiplier(1.0, NULL, &shift) == BITTTS_CONV_ERR_NULL, "NULL");
}

static void test_activation_ranges(void) {
  float lo, hi;
  int32_t a, b;
  CHECK(bittts_conv_activation_range_f32(BITTTS_CONV_ACT_NONE, &lo, &hi) == BITTTS_CONV_OK &&
            lo == -FLT_MAX && hi == FLT_MAX, "f32 none");
  CHECK(bittts_conv_activation_range_f32(BITTTS_CONV_ACT_RELU, &lo, &hi) == BITTTS_CONV_OK &&
            lo == 0.0f && hi == FLT_MAX, "f32 relu");
  CHECK(bittts_conv_activation_range_f32(BITTTS_CONV_ACT_RELU6, &lo, &hi) == BITTTS_CONV_OK &&
            lo == 0.0f && hi == 6.0f, "f32 relu6");
  CHECK(bittts_conv_activation_range_f32(BITTTS_CONV_ACT_RELU_N1_TO_1, &lo, &hi) ==
            BITTTS_CONV_OK && lo == -1.0f && hi == 1.0f, "f32 relu_n1_to_1");
  CHECK(bittts_conv_activation_range_f32(4, &lo, &hi) == BITTTS_CONV_ERR_PARAM, "f32 tanh");
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_NONE, 0.1f, -5, &a, &b) ==
            BITTTS_CONV_OK && a == -128 && b == 127, "i8 none");
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU, 0.1f, -5, &a, &b) ==
            BITTTS_CONV_OK && a == -5 && b == 127, "i8 relu");
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU6, 0.1f, -5, &a, &b) ==
            BITTTS_CONV_OK && a == -5 && b == 55, "i8 relu6: %ld..%ld", (long)a, (long)b);
  /* 1 / 0.4 = 2.5 in float: ties away from zero, so -3..3 around the zero point. */
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU_N1_TO_1, 0.4f, 0, &a, &b) ==
            BITTTS_CONV_OK && a == -3 && b == 3, "i8 relu_n1_to_1 ties: %ld..%ld", (long)a,
        (long)b);
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU6, 1e-30f, 100, &a, &b) ==
            BITTTS_CONV_OK && a == 100 && b == 127, "i8 relu6 saturates");
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU, 0.0f, 0, &a, &b) ==
            BITTTS_CONV_ERR_PARAM, "zero scale");
  CHECK(bittts_conv_activation_range_i8(BITTTS_CONV_ACT_RELU, 1.0f, 128, &a, &b) ==
            BITTTS_CONV_ERR_PARAM, "zero point 128");
}

/* --- Refusals: nothing written. */

typedef struct {
  bittts_conv_shape s;
  bittts_conv_quant q;
  float xf[24], bf[3], yf[3 * 8], scratchf[24];
  int8_t x8[24], y8[3 * 8], packed[8], scratch[24];
  int32_t b32[3];
} Small;

/* 1 batch, T 8, Cin 3, Cout 3, K 3, VALID: 6 frames out, 27 weights in 6 bytes. */
static void small(Small *m) {
  int trits[27];
  size_t i;
  memset(m, 0, sizeof *m);
  m->s.batches = 1, m->s.input_length = 8, m->s.input_channels = 3, m->s.output_channels = 3;
  m->s.kernel_size = 3, m->s.stride = 1, m->s.dilation = 1;
  m->s.padding = BITTTS_CONV_PADDING_VALID;
  for (i = 0; i < 27; ++i) trits[i] = (int)(i % 3) - 1;
  encode(trits, 27, m->packed);
  for (i = 0; i < 24; ++i) m->xf[i] = (float)i, m->x8[i] = (int8_t)i;
  m->q.multiplier = 1 << 30, m->q.act_min = -128, m->q.act_max = 127;
  memset(m->yf, CANARY, sizeof m->yf);
  memset(m->y8, CANARY, sizeof m->y8);
  memset(m->scratch, CANARY, sizeof m->scratch);
  memset(m->scratchf, CANARY, sizeof m->scratchf);
}

static int untouched(const Small *m) {
  size_t i;
  for (i = 0; i < sizeof m->yf; ++i)
    if (((const unsigned char *)m->yf)[i] != CANARY) return 0;
  for (i = 0; i < sizeof m->y8; ++i)
    if ((unsigned char)m->y8[i] != CANARY) return 0;
  for (i = 0; i < sizeof m->scratch; ++i)
    if ((unsigned char)m->scratch[i] != CANARY) return 0;
  for (i = 0; i < sizeof m->scratchf; ++i)
    if (((const unsigned char *)m->scratchf)[i] != CANARY) return 0;
  return 1;
}

static bittts_conv_status run_f32(Small *m, size_t packed_len, size_t *bad) {
  return bittts_conv_f32(&m->s, m->xf, 24, m->packed, packed_len, 0.5f, m->bf, 3, -FLT_MAX,
                         FLT_MAX, m->scratchf, 24, m->yf, 18, bad);
}

static bittts_conv_status run_i8(Small *m, size_t packed_len, size_t *bad) {
  return bittts_conv_i8(&m->s, &m->q, m->x8, 24, m->packed, packed_len, m->b32, 3, m->scratch,
                        sizeof m->scratch, m->y8, 18, bad);
}

#define REFUSED(m, call, want, what)                                                   \
  do {                                                                                 \
    bittts_conv_status got_ = (call);                                                  \
    CHECK(got_ == (want), "%s: status %d, expected %d", what, (int)got_, (int)(want)); \
    CHECK(untouched(m), "%s: wrote on a refusal", what);                              \
  } while (0)

static void test_refusals(void) {
  Small m;
  size_t bad = 0;
  int value;
  small(&m);
  CHECK(run_f32(&m, 6, NULL) == BITTTS_CONV_OK && run_i8(&m, 6, NULL) == BITTTS_CONV_OK,
        "the small case runs");
  small(&m);
  REFUSED(&m, bittts_conv_f32(NULL, m.xf, 24, m.packed, 6, 1.0f, NULL, 0, 0, 1, m.scratchf, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_NULL, "no shape");
  REFUSED(&m, bittts_conv_f32(&m.s, NULL, 24, m.packed, 6, 1.0f, NULL, 0, 0, 1, m.scratchf, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_NULL, "no input");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, NULL, 6, 1.0f, NULL, 0, 0, 1, m.scratchf, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_NULL, "no packed");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, 1.0f, NULL, 3, 0, 1, m.scratchf, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_NULL, "no bias, a bias length");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, 1.0f, NULL, 0, 0, 1, NULL, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_NULL, "no scratch");
  REFUSED(&m, bittts_conv_i8(&m.s, NULL, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24, m.y8,
                             18, NULL), BITTTS_CONV_ERR_NULL, "no quantization");
  REFUSED(&m, bittts_conv_i8(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24, NULL,
                             18, NULL), BITTTS_CONV_ERR_NULL, "no output");
  /* Lengths. */
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 23, m.packed, 6, 1.0f, NULL, 0, 0, 1, m.scratchf, 24,
                              m.yf, 18, NULL), BITTTS_CONV_ERR_SIZE, "input one short");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, 1.0f, NULL, 0, 0, 1, m.scratchf, 24,
                              m.yf, 19, NULL), BITTTS_CONV_ERR_SIZE, "output one long");
  REFUSED(&m, run_f32(&m, 5, NULL), BITTTS_CONV_ERR_SIZE, "packed one short");
  REFUSED(&m, run_i8(&m, 7, NULL), BITTTS_CONV_ERR_SIZE, "packed one long");
  REFUSED(&m, bittts_conv_i8(&m.s, &m.q, m.x8, 24, m.packed, 6, m.b32, 2, m.scratch, 24, m.y8,
                             18, NULL), BITTTS_CONV_ERR_SIZE, "bias one short");
  REFUSED(&m, bittts_conv_i8(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch,
                             bittts_conv_scratch_size(&m.s) - 1, m.y8, 18, NULL),
          BITTTS_CONV_ERR_SIZE, "scratch one short");
  /* Shapes. */
  m.s.stride = 0;
  REFUSED(&m, run_f32(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "stride 0");
  m.s.stride = 1, m.s.dilation = 0;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "dilation 0");
  m.s.dilation = 1, m.s.padding = 7;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "padding 7");
  m.s.padding = BITTTS_CONV_PADDING_VALID, m.s.dilation = 4; /* span 9 > T 8 */
  REFUSED(&m, run_f32(&m, 6, NULL), BITTTS_CONV_ERR_SIZE, "VALID with no output frame");
  CHECK(bittts_conv_output_length(&m.s) == 0, "no frames, length 0");
  m.s.padding = BITTTS_CONV_PADDING_SAME; /* SAME: T_out 8, not 6 */
  REFUSED(&m, run_f32(&m, 6, NULL), BITTTS_CONV_ERR_SIZE, "SAME has 8 frames");
  small(&m);
  m.s.input_channels = 0;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_SIZE, "no channels");
  small(&m);
  m.s.input_channels = BITTTS_CONV_MAX_ROW / 3 + 1;
  CHECK(bittts_conv_check_shape(&m.s) == BITTTS_CONV_ERR_SIZE, "row above CONV_MAX_ROW");
  m.s.input_channels = 3, m.s.output_channels = (size_t)-1 / 4;
  CHECK(bittts_conv_check_shape(&m.s) == BITTTS_CONV_ERR_SIZE, "weight count overflows");
  m.s.output_channels = 3, m.s.input_length = (size_t)-1, m.s.padding = BITTTS_CONV_PADDING_SAME;
  CHECK(bittts_conv_check_shape(&m.s) == BITTTS_CONV_ERR_SIZE, "T + span overflows");
  m.s.input_length = 8, m.s.dilation = (size_t)-1 / 2;
  CHECK(bittts_conv_check_shape(&m.s) == BITTTS_CONV_ERR_SIZE, "span overflows");
  /* Parameters. */
  small(&m);
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, INFINITY, NULL, 0, 0, 1, m.scratchf,
                              24, m.yf, 18, NULL), BITTTS_CONV_ERR_PARAM, "beta infinite");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, NAN, NULL, 0, 0, 1, m.scratchf,
                              24, m.yf, 18, NULL), BITTTS_CONV_ERR_PARAM, "beta NaN");
  REFUSED(&m, bittts_conv_f32(&m.s, m.xf, 24, m.packed, 6, 1.0f, NULL, 0, 2, 1, m.scratchf,
                              24, m.yf, 18, NULL), BITTTS_CONV_ERR_PARAM, "act_min > act_max");
  m.q.input_offset = 129;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "input offset 129");
  m.q.input_offset = 0, m.q.output_offset = 128;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "output offset 128");
  m.q.output_offset = 0, m.q.shift = 31;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "shift 31");
  m.q.shift = 0, m.q.multiplier = -1;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "negative multiplier");
  m.q.multiplier = 1 << 30, m.q.act_min = 5, m.q.act_max = 4;
  REFUSED(&m, run_i8(&m, 6, NULL), BITTTS_CONV_ERR_PARAM, "act_min > act_max");
  /* Overlaps: the output on the input, the scratch on the packed bytes. */
  small(&m);
  REFUSED(&m, bittts_conv_i8(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24,
                             m.x8 + 6, 18, NULL), BITTTS_CONV_ERR_OVERLAP, "output on input");
  {
    int8_t block[64];
    memcpy(block, m.packed, 6);
    REFUSED(&m, bittts_conv_i8(&m.s, &m.q, m.x8, 24, block, 6, NULL, 0, block + 5, 24, m.y8,
                               18, NULL), BITTTS_CONV_ERR_OVERLAP, "scratch on packed");
  }
  /* Each invalid byte, anywhere: refused with its offset, nothing written. */
  for (value = -128; value <= 127; ++value) {
    size_t at = rng() % 6;
    if (value >= BITTTS_MIN_INDEX && value <= BITTTS_MAX_INDEX) continue;
    small(&m);
    m.packed[at] = (int8_t)value;
    bad = 99;
    REFUSED(&m, run_f32(&m, 6, &bad), BITTTS_CONV_ERR_INDEX, "invalid byte (f32)");
    CHECK(bad == at, "byte %d at %zu reported at %zu", value, at, bad);
    bad = 99;
    REFUSED(&m, run_i8(&m, 6, &bad), BITTTS_CONV_ERR_INDEX, "invalid byte (i8)");
    CHECK(bad == at, "byte %d at %zu reported at %zu", value, at, bad);
  }
  /* The trusted entry point refuses all the rest alike, writing nothing. */
  small(&m);
  REFUSED(&m, bittts_conv_i8_trusted(&m.s, &m.q, m.x8, 23, m.packed, 6, NULL, 0, m.scratch, 24,
                                     m.y8, 18), BITTTS_CONV_ERR_SIZE, "trusted: input one short");
  REFUSED(&m, bittts_conv_i8_trusted(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch,
                                     bittts_conv_scratch_size(&m.s) - 1, m.y8, 18),
          BITTTS_CONV_ERR_SIZE, "trusted: scratch one short");
  REFUSED(&m, bittts_conv_i8_trusted(&m.s, NULL, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24,
                                     m.y8, 18), BITTTS_CONV_ERR_NULL, "trusted: no quantization");
  REFUSED(&m, bittts_conv_i8_trusted(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24,
                                     m.x8 + 6, 18), BITTTS_CONV_ERR_OVERLAP,
          "trusted: output on input");
  m.q.shift = 31;
  REFUSED(&m, bittts_conv_i8_trusted(&m.s, &m.q, m.x8, 24, m.packed, 6, NULL, 0, m.scratch, 24,
                                     m.y8, 18), BITTTS_CONV_ERR_PARAM, "trusted: shift 31");
  CHECK(strcmp(bittts_conv_status_message(BITTTS_CONV_ERR_INDEX),
               "packed byte outside -121..121") == 0, "message");
}

/* --- Options. */

static void test_options(void) {
  /* What bittts_tf.quant.spec.conv_options(5, 2, 3, SAME, RELU) writes. */
  static const uint8_t expected[BITTTS_CONV_OPTIONS_BYTES] = {
      5, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20, 50, 1};
  bittts_conv_options in = {5, 2, 3, BITTTS_CONV_PADDING_SAME, BITTTS_CONV_ACT_RELU}, out;
  uint8_t bytes[BITTTS_CONV_OPTIONS_BYTES + 1];
  size_t i;
  int bit;
  CHECK(bittts_conv_write_options(&in, bytes, sizeof bytes) == BITTTS_CONV_OK &&
            memcmp(bytes, expected, sizeof expected) == 0, "written options");
  CHECK(bittts_conv_parse_options(expected, sizeof expected, &out) == BITTTS_CONV_OK &&
            out.kernel_size == 5 && out.stride == 2 && out.dilation == 3 &&
            out.padding == BITTTS_CONV_PADDING_SAME && out.activation == BITTTS_CONV_ACT_RELU,
        "parsed options");
  CHECK(bittts_conv_parse_options(expected, sizeof expected - 1, &out) == BITTTS_CONV_ERR_SIZE,
        "one byte short");
  CHECK(bittts_conv_parse_options(NULL, 0, &out) == BITTTS_CONV_ERR_NULL, "no options");
  CHECK(bittts_conv_write_options(&in, bytes, BITTTS_CONV_OPTIONS_BYTES - 1) ==
            BITTTS_CONV_ERR_SIZE, "short buffer");
  /* Every single-bit flip is refused, except those that give other valid values. */
  for (i = 0; i < sizeof expected; ++i)
    for (bit = 0; bit < 8; ++bit) {
      bittts_conv_status status;
      memcpy(bytes, expected, sizeof expected);
      bytes[i] ^= (uint8_t)(1u << bit);
      memset(&out, 0x77, sizeof out);
      status = bittts_conv_parse_options(bytes, sizeof expected, &out);
      if (status == BITTTS_CONV_OK) {
        uint8_t again[BITTTS_CONV_OPTIONS_BYTES];
        CHECK(i >= 4 && i < 24 && bittts_conv_write_options(&out, again, sizeof again) ==
                  BITTTS_CONV_OK && memcmp(again, bytes, sizeof again) == 0,
              "flip of bit %d of byte %zu accepted", bit, i);
      } else {
        CHECK(((const unsigned char *)&out)[0] == 0x77, "options written on a refusal");
      }
    }
  in.stride = 0;
  CHECK(bittts_conv_write_options(&in, bytes, sizeof bytes) == BITTTS_CONV_ERR_PARAM,
        "stride 0");
  in.stride = 1, in.activation = 4;
  CHECK(bittts_conv_write_options(&in, bytes, sizeof bytes) == BITTTS_CONV_ERR_PARAM, "tanh");
}

int main(int argc, char **argv) {
  int round;
  seed_rng("test_ternary_conv", argc > 1 ? argv[1] : getenv("BITTTS_TEST_SEED"));
  printf("test_ternary_conv: int8 SIMD %d\n", bittts_conv_simd());
  for (round = 0; round < 400; ++round) test_random_f32(round);
  for (round = 0; round < 400; ++round) test_random_i8(round);
  for (round = 0; round < 600; ++round) test_stream_i8(round);
  test_every_byte();
  test_rescale();
  test_quantize_multiplier();
  test_activation_ranges();
  test_refusals();
  test_options();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
