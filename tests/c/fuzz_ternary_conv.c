/* libFuzzer target: the fused ternary convolution (tflite/bittts_ternary_conv.c),
 * float32 and int8, against a naive reference written here (trits by
 * repeated division, every tap checked against the padding as TFLite's
 * reference CONV_2D loops, the rescale with int64 arithmetic), and its
 * options parser against its writer.
 *
 * Input layout (all of it optional: a short input means zeros):
 *   byte 0      bit 0 int8 (else float32), bit 1 folds every packed byte into
 *               -121..121, bit 2 then plants one invalid byte (bytes 19, 20),
 *               bit 3 passes a bias, bits 4..6 one fault: 0 none, 1 input one
 *               element long, 2 output one short, 3 packed one byte long, 4
 *               scratch one byte short, 5 NULL input, 6 output inside the
 *               input's block, 7 bias length Cout + 1; bit 7 raw quantization
 *               (a multiplier that may be negative, an input offset of 129)
 *   bytes 1..9  batches 1..2, T 0..63, Cin 0..15, Cout 0..15, K 0..7,
 *               stride 0..3, dilation 0..3 (0 is refused), padding 0..2 (2 is
 *               refused), activation 0..4 (4: an empty float range)
 *   bytes 10..13 beta's float32 bits (float32) or the multiplier (int8)
 *   bytes 14..18 input and output zero point, shift (-33..33), act_min, act_max
 *   bytes 19..20 where the planted invalid byte goes, and which one
 *   bytes 21..  packed bytes, then the activations (float32 bits or int8),
 *               then the bias (float32 bits or int32)
 * The options parser gets the first 27 bytes of the input as they are, and
 * the options of bytes 5..9 as the writer writes them with byte 19 (mod 27)
 * XORed with byte 20: unchanged, they must parse to those values; a flip
 * outside the five values must be refused; a flip that parses must write
 * back to the same bytes.
 *
 * Every buffer is a heap block of exactly the length the call is given (the
 * scratch exactly the size this file computes, 5 * ceil((K * Cin + 4) / 5)
 * elements, int8 or float),
 * so AddressSanitizer reports any access outside. What must hold, else
 * abort() (a crash with its input): a call the reference deems valid
 * succeeds with the reference's outputs (float32 bit for bit: the same sums in
 * the same order; NaN as NaN), any other call is refused with the output and
 * the scratch untouched, an invalid byte alone is refused as such at its
 * offset; parsed options write back to the same bytes. */
#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"
#include "bittts_ternary_conv.h"
#include "reference_rescale.h"

#define FAIL(...)                             \
  do {                                        \
    fprintf(stderr, "fuzz_ternary_conv: ");   \
    fprintf(stderr, __VA_ARGS__);             \
    fprintf(stderr, "\n");                    \
    abort();                                  \
  } while (0)

/* How the inputs ended, printed at exit for tools/fuzz_kernels.py. */
static unsigned long g_status[6], g_options_parsed;
__attribute__((destructor)) static void print_depth(void) {
  unsigned long total = 0;
  int i;
  for (i = 0; i < 6; ++i) total += g_status[i];
  if (total)
    fprintf(stderr, "fuzz_ternary_conv depth: computed %lu, NULL %lu, size %lu, "
            "invalid byte %lu, parameter %lu, overlap %lu, options parsed %lu\n", g_status[0],
            g_status[1], g_status[2], g_status[3], g_status[4], g_status[5], g_options_parsed);
}

typedef struct {
  const uint8_t *data;
  size_t size, at;
} Input;

static uint8_t u8(Input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static uint32_t u32(Input *in) {
  uint32_t v = u8(in);
  v |= (uint32_t)u8(in) << 8;
  v |= (uint32_t)u8(in) << 16;
  return v | (uint32_t)u8(in) << 24;
}

#define CANARY 0xA5

/* --- The reference. */

static int trit_of(int8_t byte, size_t k) {
  int value = (int)byte + 121;
  while (k--) value /= 3;
  return value % 3 - 1;
}

typedef struct {
  size_t n, t, cin, cout, k, stride, dilation, out, pad, row;
  int padding;
} Shape;

/* TFLite's sizes and padding; 0 when the shape has no output. */
static int reference_shape(Shape *s) {
  long span = (long)((s->k - 1) * s->dilation + 1), out, total;
  if (s->stride == 0 || s->dilation == 0 || s->padding > 1 || s->n == 0 || s->t == 0 ||
      s->cin == 0 || s->cout == 0 || s->k == 0)
    return 0;
  out = s->padding == BITTTS_CONV_PADDING_SAME
            ? ((long)s->t + (long)s->stride - 1) / (long)s->stride
            : ((long)s->t + (long)s->stride - span) / (long)s->stride;
  if (out <= 0) return 0;
  total = (out - 1) * (long)s->stride + span - (long)s->t;
  s->out = (size_t)out;
  s->pad = total > 0 ? (size_t)(total / 2) : 0;
  s->row = s->k * s->cin;
  return 1;
}

static long frame_of(const Shape *s, size_t t, size_t k) {
  long frame = (long)(t * s->stride + k * s->dilation) - (long)s->pad;
  return frame >= 0 && frame < (long)s->t ? frame : -1;
}

static int trit_at(const Shape *s, const int8_t *packed, size_t o, size_t k, size_t c) {
  size_t w = (o * s->k + k) * s->cin + c;
  return trit_of(packed[w / 5], w % 5);
}

static void reference_f32(const Shape *s, const float *x, const int8_t *packed, float beta,
                          const float *bias, float lo, float hi, float *y) {
  size_t n, t, o, k, c;
  for (n = 0; n < s->n; ++n)
    for (t = 0; t < s->out; ++t)
      for (o = 0; o < s->cout; ++o) {
        float acc = 0.0f, v;
        for (k = 0; k < s->k; ++k) {
          long frame = frame_of(s, t, k);
          if (frame < 0) continue;
          for (c = 0; c < s->cin; ++c)
            acc += (float)trit_at(s, packed, o, k, c) *
                   x[(n * s->t + (size_t)frame) * s->cin + c];
        }
        v = beta * acc + (bias ? bias[o] : 0.0f);
        y[(n * s->out + t) * s->cout + o] = v < lo ? lo : (v > hi ? hi : v);
      }
}

static void reference_i8(const Shape *s, const bittts_conv_quant *q, const int8_t *x,
                         const int8_t *packed, const int32_t *bias, int8_t *y) {
  size_t n, t, o, k, c;
  for (n = 0; n < s->n; ++n)
    for (t = 0; t < s->out; ++t)
      for (o = 0; o < s->cout; ++o) {
        long long acc = 0, v;
        for (k = 0; k < s->k; ++k) {
          long frame = frame_of(s, t, k);
          if (frame < 0) continue;
          for (c = 0; c < s->cin; ++c)
            acc += (long long)trit_at(s, packed, o, k, c) *
                   (x[(n * s->t + (size_t)frame) * s->cin + c] + q->input_offset);
        }
        acc = reference_wrap(acc + (bias ? bias[o] : 0));
        v = reference_wrap((long long)reference_rescale((int32_t)acc, q->multiplier, q->shift)
                           + q->output_offset);
        y[(n * s->out + t) * s->cout + o] =
            (int8_t)(v < q->act_min ? q->act_min : (v > q->act_max ? q->act_max : v));
      }
}

/* --- Buffers: exact heap blocks. */

static void *block(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (p == NULL) FAIL("out of memory");
  return p;
}

static int all_canary(const void *p, size_t bytes) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i;
  for (i = 0; i < bytes; ++i)
    if (b[i] != CANARY) return 0;
  return 1;
}

/* Parses `len` bytes (a heap block of exactly that size); what parses must
 * write back to the same bytes. Returns whether it parsed. */
static int options_round_trip(const uint8_t *data, size_t len, bittts_conv_options *options) {
  uint8_t again[BITTTS_CONV_OPTIONS_BYTES];
  uint8_t *copy = block(len);
  int parsed;
  memcpy(copy, data, len);
  parsed = bittts_conv_parse_options(copy, len, options) == BITTTS_CONV_OK;
  if (parsed) {
    ++g_options_parsed;
    if (bittts_conv_write_options(options, again, sizeof again) != BITTTS_CONV_OK ||
        memcmp(again, copy, sizeof again) != 0)
      FAIL("parsed options do not write back to the same bytes");
  }
  free(copy);
  return parsed;
}

static void fuzz_options(const uint8_t *data, size_t size, const Shape *s, int activation,
                         uint8_t flip_at, uint8_t flip) {
  bittts_conv_options options, parsed;
  uint8_t bytes[BITTTS_CONV_OPTIONS_BYTES];
  const size_t at = flip_at % BITTTS_CONV_OPTIONS_BYTES;
  options_round_trip(data, size < sizeof bytes ? size : sizeof bytes, &parsed);
  options.kernel_size = s->k, options.stride = s->stride, options.dilation = s->dilation;
  options.padding = s->padding, options.activation = activation;
  if (bittts_conv_write_options(&options, bytes, sizeof bytes) != BITTTS_CONV_OK) {
    if (s->k && s->stride && s->dilation && s->padding < 2 && activation < 4)
      FAIL("valid options refused by the writer");
    return;
  }
  bytes[at] ^= flip;
  if (options_round_trip(bytes, sizeof bytes, &parsed)) {
    if (flip == 0 && (parsed.kernel_size != s->k || parsed.stride != s->stride ||
                      parsed.dilation != s->dilation || parsed.padding != s->padding ||
                      parsed.activation != activation))
      FAIL("options parse to other values");
    if (flip != 0 && (at < 4 || at >= 4 + 4 * BITTTS_CONV_OPTION_COUNT))
      FAIL("a flip of byte %zu outside the values was accepted", at);
  } else if (flip == 0) {
    FAIL("written options refused by the parser");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Input in = {data, size, 0};
  const uint8_t flags = u8(&in);
  const int int8 = flags & 1, fold = flags & 2, plant = flags & 4, with_bias = flags & 8;
  const int raw_quant = flags & 128;
  /* A bias length fault needs a bias. */
  const int fault = ((flags >> 4) & 7) == 7 && !with_bias ? 0 : (flags >> 4) & 7;
  Shape s;
  bittts_conv_shape shape;
  bittts_conv_quant quant;
  int activation, valid_shape, valid_params = 1, expect_ok;
  uint32_t beta_bits, raw_multiplier;
  float beta = 0.0f, lo = 0.0f, hi = 0.0f;
  size_t n_in, n_out, n_packed, n_weights, n_bias, scratch_len, element, i, bad = (size_t)-1;
  size_t first_invalid = (size_t)-1, plant_at;
  uint8_t plant_which;
  unsigned char *input_block, *output, *expected, *scratch;
  int8_t *packed;
  void *bias = NULL;
  const void *input;
  bittts_conv_status status;

  s.n = 1 + u8(&in) % 2;
  s.t = u8(&in) % 64;
  s.cin = u8(&in) % 16;
  s.cout = u8(&in) % 16;
  s.k = u8(&in) % 8;
  s.stride = u8(&in) % 4;
  s.dilation = u8(&in) % 4;
  s.padding = u8(&in) % 3;
  activation = u8(&in) % 5;
  beta_bits = u32(&in);
  raw_multiplier = beta_bits;
  memcpy(&beta, &beta_bits, sizeof beta);
  quant.input_offset = -(int32_t)(int8_t)u8(&in);
  quant.output_offset = (int8_t)u8(&in);
  quant.shift = (int8_t)u8(&in) % 34;
  quant.act_min = (int8_t)u8(&in);
  quant.act_max = (int8_t)u8(&in);
  plant_at = u8(&in);
  plant_which = u8(&in);
  fuzz_options(data, size, &s, activation, (uint8_t)plant_at, plant_which);
  quant.multiplier = raw_quant ? (int32_t)raw_multiplier
                               : (int32_t)((1u << 30) | (raw_multiplier & 0x3FFFFFFFu));
  if (raw_quant && (raw_multiplier & 1)) quant.input_offset = 129;

  valid_shape = reference_shape(&s);
  shape.batches = s.n, shape.input_length = s.t, shape.input_channels = s.cin;
  shape.output_channels = s.cout, shape.kernel_size = s.k, shape.stride = s.stride;
  shape.dilation = s.dilation, shape.padding = s.padding;
  if ((bittts_conv_check_shape(&shape) == BITTTS_CONV_OK) != valid_shape)
    FAIL("check_shape says %d, the reference %d (T %zu K %zu stride %zu dilation %zu "
         "padding %d)", bittts_conv_check_shape(&shape), valid_shape, s.t, s.k, s.stride,
         s.dilation, s.padding);
  if (!valid_shape) s.out = 1, s.pad = 0, s.row = s.k * s.cin;
  if (valid_shape && (bittts_conv_output_length(&shape) != s.out ||
                      bittts_conv_pad_before(&shape) != s.pad))
    FAIL("output length %zu / pad %zu, the reference %zu / %zu",
         bittts_conv_output_length(&shape), bittts_conv_pad_before(&shape), s.out, s.pad);

  /* Parameters. */
  if (int8) {
    valid_params = quant.input_offset >= -127 && quant.input_offset <= 128 &&
                   quant.multiplier >= 0 && quant.shift >= -31 && quant.shift <= 30 &&
                   quant.act_min <= quant.act_max;
  } else if (bittts_conv_activation_range_f32(activation, &lo, &hi) != BITTTS_CONV_OK) {
    lo = 1.0f, hi = -1.0f, valid_params = 0;
  } else {
    valid_params = beta - beta == 0.0f;
  }

  /* Buffers, with the fault asked for. */
  element = int8 ? 1 : 4;
  n_weights = s.cout * s.k * s.cin;
  n_packed = (n_weights + 4) / 5 + (fault == 3);
  n_in = s.n * s.t * s.cin + (fault == 1);
  n_out = s.n * s.out * s.cout - (fault == 2 && s.n * s.out * s.cout > 0);
  n_bias = with_bias ? s.cout + (fault == 7) : 0;
  scratch_len = (s.row + 8) / 5 * 5 - (fault == 4);
  packed = block(n_packed);
  for (i = 0; i < n_packed; ++i) {
    int8_t b = (int8_t)u8(&in);
    if (fold) b = (int8_t)((int)b % 122);
    packed[i] = b;
  }
  if (plant && n_packed)
    packed[plant_at % n_packed] = (int8_t)(plant_which & 64 ? -(122 + plant_which % 7)
                                                            : 122 + plant_which % 6);
  for (i = 0; i < n_packed; ++i)
    if (packed[i] < -121 || packed[i] > 121) {
      first_invalid = i;
      break;
    }
  /* Fault 6: the output lies inside the input's block. */
  input_block = block(n_in * element + (fault == 6 ? n_out * element : 0));
  for (i = 0; i < n_in * element; ++i) input_block[i] = u8(&in);
  if (with_bias) {
    bias = block(n_bias * 4);
    for (i = 0; i < n_bias; ++i) {
      uint32_t v = u32(&in);
      memcpy((unsigned char *)bias + 4 * i, &v, 4);
    }
  }
  output = fault == 6 ? input_block + 4 * (n_in ? 1 : 0) : block(n_out * element);
  if (fault == 6 && n_in * element < 4 + n_out * element) output = input_block;
  memset(output, CANARY, n_out * element);
  scratch = block(scratch_len * element);
  memset(scratch, CANARY, scratch_len * element);
  input = fault == 5 ? NULL : input_block;

  expect_ok = valid_shape && fault == 0 && valid_params && first_invalid == (size_t)-1;
  if (int8) {
    status = bittts_conv_i8(&shape, &quant, (const int8_t *)input, n_in, packed, n_packed,
                            (const int32_t *)bias, n_bias, (int8_t *)scratch, scratch_len,
                            (int8_t *)output, n_out, &bad);
  } else {
    status = bittts_conv_f32(&shape, (const float *)input, n_in, packed, n_packed, beta,
                             (const float *)bias, n_bias, lo, hi, (float *)scratch,
                             scratch_len, (float *)output, n_out, &bad);
  }
  if ((unsigned)status < 6) ++g_status[status];

  if (expect_ok) {
    if (status != BITTTS_CONV_OK)
      FAIL("a valid call was refused with status %d (%s)", (int)status,
           bittts_conv_status_message(status));
    expected = block(n_out * element);
    if (int8) {
      reference_i8(&s, &quant, (const int8_t *)input, packed, (const int32_t *)bias,
                   (int8_t *)expected);
      if (memcmp(expected, output, n_out) != 0) FAIL("int8 outputs differ from the reference");
    } else {
      reference_f32(&s, (const float *)input, packed, beta, (const float *)bias, lo, hi,
                    (float *)expected);
      for (i = 0; i < n_out; ++i) {
        float a, b;
        memcpy(&a, expected + 4 * i, 4);
        memcpy(&b, output + 4 * i, 4);
        if (memcmp(&a, &b, 4) != 0 && !(a != a && b != b))
          FAIL("float32 output %zu is %a, the reference %a", i, (double)b, (double)a);
      }
    }
    free(expected);
  } else {
    if (status == BITTTS_CONV_OK)
      FAIL("accepted a call with shape %d, fault %d, parameters %d, invalid byte at %zu",
           valid_shape, fault, valid_params, first_invalid);
    if (!all_canary(output, n_out * element))
      FAIL("wrote the output on a refusal (status %d)", (int)status);
    if (!all_canary(scratch, scratch_len * element))
      FAIL("wrote the scratch on a refusal (status %d)", (int)status);
    if (valid_shape && fault == 0 && valid_params && first_invalid != (size_t)-1 &&
        (status != BITTTS_CONV_ERR_INDEX || bad != first_invalid))
      FAIL("invalid byte at %zu: status %d, offset %zu", first_invalid, (int)status, bad);
  }

  free(packed);
  free(input_block);
  free(bias);
  if (fault != 6) free(output);
  free(scratch);
  return 0;
}
