/* Fixed-point arithmetic of the engine's int8 kernels: gemmlowp's Q-format
 * primitives as TFLite's reference kernels use them, written from their
 * definitions (rounding rules, saturation points) so results match bit for
 * bit. A raw value of "Qn" has n integer bits and 31 - n fractional bits.
 *
 * Every int32 sum or product that the reference code forms with plain int
 * arithmetic and that could overflow is formed here with two's complement
 * wrapping (the x86 and Arm builds of TFLite wrap there), never with signed
 * overflow. Plain C99, no libm. */
#ifndef BITTTS_ENGINE_FIXED_H_
#define BITTTS_ENGINE_FIXED_H_

#include <stdint.h>

#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* a + b, a - b and a * b modulo 2^32. */
int32_t bittts_fixed_wrapping_add(int32_t a, int32_t b);
int32_t bittts_fixed_wrapping_sub(int32_t a, int32_t b);
int32_t bittts_fixed_wrapping_mul(int32_t a, int32_t b);

/* The high 32 bits of 2 * a * b, to nearest (ties away from zero); the one
 * product that does not fit, INT32_MIN * INT32_MIN, saturates to INT32_MAX. */
int32_t bittts_fixed_doubling_high_mul(int32_t a, int32_t b);

/* x / 2^exponent to nearest, ties away from zero; exponent 0..31. */
int32_t bittts_fixed_rounding_shift_right(int32_t x, int exponent);

/* x * 2^exponent saturated to the int32 range; exponent 0..31. */
int32_t bittts_fixed_saturating_shift_left(int32_t x, int exponent);

/* (a + b) / 2 to nearest, ties away from zero, without overflow. */
int32_t bittts_fixed_rounding_half_sum(int32_t a, int32_t b);

/* The logistic function of a Q4 value, as a Q0 value (gemmlowp's logistic:
 * exp of minus the magnitude, then one over one plus it by Newton-Raphson). */
int32_t bittts_fixed_logistic_q4(int32_t x);

/* TFLite's inverse square root multiplier of an integer x >= 0 (its
 * GetInvSqrtQuantizedMultiplierExp with reverse_shift -1): 1 / sqrt(x) as
 * *multiplier * 2^(*left_shift - 31) up to fixed-point error, with x <= 1
 * giving INT32_MAX and 0. */
void bittts_fixed_inv_sqrt(int32_t x, int32_t *multiplier, int32_t *left_shift);

/* --- Requantization for inner loops.
 *
 * TFLite's MultiplyByQuantizedMultiplier (bittts_conv_multiply_by_quantized_
 * multiplier, the reference) with a multiplier >= 0 and its shift split once
 * per op, inlined: the elementwise kernels spent most of their time in the
 * out-of-line call (its range checks, the shift split and a 64-bit division
 * per element: MUL cost about 70 Cortex-M7 instructions an element, ADD about
 * 170). Same results for every x, multiplier >= 0 and shift -31..30. */
typedef struct {
  int32_t multiplier; /* >= 0, so the one saturating product cannot occur */
  int left;           /* max(shift, 0): x is shifted left first (wrapping) */
  int right;          /* max(-shift, 0): the product is divided by 2^right */
  int32_t mask;       /* 2^right - 1 */
  int32_t half_mask;  /* mask >> 1: the remainder above which it rounds up */
} bittts_fixed_requant;

static inline void bittts_fixed_requant_init(bittts_fixed_requant *q, int32_t multiplier,
                                             int32_t shift) {
  q->multiplier = multiplier;
  q->left = shift > 0 ? (int)shift : 0;
  q->right = shift > 0 ? 0 : (int)-shift;
  q->mask = (int32_t)(((uint32_t)1 << q->right) - 1u); /* right <= 31 */
  q->half_mask = q->mask >> 1;
}

/* int32 from its two's complement bits (compiles to nothing). */
static inline int32_t bittts_fixed_from_bits(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* floor(x / 2^e), e 0..31. Right-shifting a negative value is
 * implementation-defined in C99; every compiler the engine targets (GCC,
 * Clang, Arm's, IAR) documents it as arithmetic, which the constant test
 * confirms at compile time, so this is one ASR. The spelled-out fallback
 * (which arm-none-eabi-gcc 13 compiles to a branch and three instructions,
 * not one ASR) serves any other compiler. */
static inline int32_t bittts_fixed_floor_shift(int32_t x, int e) {
  if (((int32_t)-1 >> 1) == -1 && ((int32_t)-5 >> 1) == -3) return x >> e;
  return x >= 0 ? x >> e : -(int32_t)((uint32_t)~x >> e) - 1;
}

/* bittts_fixed_doubling_high_mul for b >= 0: the nudged product
 * a * b + 2^30 divided by 2^31 rounding down equals the reference's
 * (a * b + (a * b >= 0 ? 2^30 : 1 - 2^30)) / 2^31 truncated toward zero
 * (for a negative product, truncating n - 2^30 + 1 up is flooring n + 2^30).
 * The quotient fits int32, so it is bits 31..62 of the sum: no 64-bit
 * shift of a negative value, no division; one SMULL, ADDS/ADC, LSR/ORR. */
static inline int32_t bittts_fixed_high_mul_nonneg(int32_t a, int32_t b) {
  const int64_t nudged = (int64_t)a * b + ((int64_t)1 << 30);
  return bittts_fixed_from_bits((uint32_t)((uint64_t)nudged >> 31));
}

/* x / 2^right to nearest, ties away from zero (RoundingDivideByPOT) with
 * the mask and half mask precomputed. */
static inline int32_t bittts_fixed_rounding_divide(int32_t x, int right, int32_t mask,
                                                   int32_t half_mask) {
  const int32_t remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
  const int32_t threshold = half_mask + (x < 0 ? 1 : 0);
  return bittts_fixed_floor_shift(x, right) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier(x, q's multiplier, q's shift). Kernels copy
 * q's fields into locals before a loop (int8 stores may alias a struct), then
 * call this with them. */
static inline int32_t bittts_fixed_requant_apply(int32_t x, int32_t multiplier, int left,
                                                 int right, int32_t mask, int32_t half_mask) {
  const int32_t shifted = bittts_fixed_from_bits((uint32_t)x << left);
  return bittts_fixed_rounding_divide(bittts_fixed_high_mul_nonneg(shifted, multiplier), right,
                                      mask, half_mask);
}

/* MultiplyByQuantizedMultiplier for a right shift and a small x, plus an
 * offset, as one rounding: every requantization of the shipped ADD, SUB and
 * MUL ops (|x| < 2^30, shift -31..-1).
 *
 * With e = -shift, the reference computes h = floor((x * m + 2^30) / 2^31)
 * (bittts_fixed_high_mul_nonneg), then rounds h / 2^e to nearest, ties away
 * from zero: floor((h + 2^(e-1) - [h < 0]) / 2^e). Doubling x (it fits),
 * h = floor((H' + 2^31) / 2^32) / 2 rounded down, where H' = 2x * m, so by
 * floor(floor(q) / n) = floor(q / n) the result is
 *   floor((floor((2x * m + 2^31) / 2^32) + 2^(e-1) - [h < 0]) / 2^e),
 * and [h < 0] may be read as [x < 0]: with m >= 0 they differ only where
 * h is 0, and there both give 0. An offset o joins the bias as o * 2^e.
 * The inner floor is the high word of 2x * m + (bias << 32) + 2^31 (SMLAL
 * onto two moved constants), so an element costs MOV, MOV, SMLAL, SUB (the
 * sign, x >> 31), ASR: 5 Cortex-M instructions and three live words, where
 * the two-step form takes 12 and five (then the offset's ADD). Verified
 * against bittts_conv_multiply_by_quantized_multiplier on every shift, with
 * all x in -140000..140000 (several scalings), random x below 2^30 and the
 * bound itself, for multipliers 0, 1, 2^30 +- 1, INT32_MAX and others. */
typedef struct {
  int32_t multiplier; /* >= 0 */
  int shift;          /* e */
  int64_t nudge;      /* (2^(e-1) + offset * 2^e) * 2^32 + 2^31 */
} bittts_fixed_downscale;

/* 1 and *d set when shift is -31..-1 and the bias fits (|high word| <=
 * 2^30 for |x| < 2^30, so |bias| <= 2^30 - 2 keeps the sum in int32; for
 * |offset| <= 128 that is any shift down to -22), else 0 and *d zeroed
 * (use bittts_fixed_requant then). */
static inline int bittts_fixed_downscale_init(bittts_fixed_downscale *d, int32_t multiplier,
                                              int32_t shift, int32_t offset) {
  int64_t bias;
  d->multiplier = 0, d->shift = 0, d->nudge = 0;
  if (shift > -1 || shift < -31 || multiplier < 0) return 0;
  bias = ((int64_t)1 << (-shift - 1)) + (int64_t)offset * ((int64_t)1 << -shift);
  if (bias > ((int32_t)1 << 30) - 2 || bias < -((int32_t)1 << 30) + 2) return 0;
  d->multiplier = multiplier, d->shift = (int)-shift;
  /* One constant: SMLAL onto it, no separate carry of 2^31. */
  d->nudge = bias * ((int64_t)1 << 32) + ((int64_t)1 << 31);
  return 1;
}

/* MultiplyByQuantizedMultiplier(x, multiplier, -shift) + offset, given
 * twice_x = 2 * x with |x| < 2^30. */
static inline int32_t bittts_fixed_downscale_apply(int32_t twice_x, int32_t multiplier,
                                                   int64_t nudge, int shift) {
  const int64_t sum = (int64_t)twice_x * multiplier + nudge;
  const int32_t high = bittts_fixed_from_bits((uint32_t)((uint64_t)sum >> 32));
  return bittts_fixed_floor_shift(high - (int32_t)((uint32_t)twice_x >> 31), shift);
}

/* v clamped to -128..127: SSAT where the target has it (arm-none-eabi-gcc
 * compiles the plain clamp to two compares and two conditional moves). */
static inline int32_t bittts_fixed_saturate_int8(int32_t v) {
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
  return __ssat(v, 8);
#else
  return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_ENGINE_FIXED_H_ */
