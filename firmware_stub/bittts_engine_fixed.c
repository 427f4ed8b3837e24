/* Fixed-point primitives of the engine's int8 kernels (see
 * bittts_engine_fixed.h). The constants are real numbers in Q-format, named
 * by value; gemmlowp uses the same roundings of them. */
#include "bittts_engine_fixed.h"

/* int32 from its two's complement bits; a plain cast of a value above
 * INT32_MAX is implementation-defined. */
static int32_t from_bits(uint32_t bits) {
  return bits <= (uint32_t)INT32_MAX ? (int32_t)bits : -(int32_t)(~bits) - 1;
}

int32_t bittts_fixed_wrapping_add(int32_t a, int32_t b) {
  return from_bits((uint32_t)a + (uint32_t)b);
}

int32_t bittts_fixed_wrapping_sub(int32_t a, int32_t b) {
  return from_bits((uint32_t)a - (uint32_t)b);
}

int32_t bittts_fixed_wrapping_mul(int32_t a, int32_t b) {
  return from_bits((uint32_t)a * (uint32_t)b);
}

static int32_t wrapping_neg(int32_t a) { return from_bits(0u - (uint32_t)a); }

int32_t bittts_fixed_doubling_high_mul(int32_t a, int32_t b) {
  int64_t product;
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  product = (int64_t)a * b;
  /* Nudge by half of 2^31 towards the product's sign; C99 division then
   * truncates toward zero, which together round ties away from zero. */
  product += product >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
  return (int32_t)(product / ((int64_t)1 << 31));
}

/* floor(x / 2^exponent) without right-shifting a negative value (whose
 * result C99 leaves to the implementation). */
static int32_t floor_shift_right(int32_t x, int exponent) {
  return x >= 0 ? x >> exponent : -(int32_t)((uint32_t)~x >> exponent) - 1;
}

int32_t bittts_fixed_rounding_shift_right(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
  /* Ties go away from zero: a negative x needs a remainder strictly above
   * one half to round up (toward zero) after the floor. */
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return floor_shift_right(x, exponent) + (remainder > threshold ? 1 : 0);
}

int32_t bittts_fixed_saturating_shift_left(int32_t x, int exponent) {
  int32_t limit;
  if (exponent == 0) return x;
  limit = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
  if (x > limit) return INT32_MAX;
  if (x < -limit) return INT32_MIN;
  return from_bits((uint32_t)x << exponent);
}

int32_t bittts_fixed_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* Q0 constants. */
#define Q0_ONE INT32_MAX             /* 1 - 2^-31: Q0's largest value stands for one */
#define Q0_EXP_MINUS_EIGHTH 1895147668  /* exp(-1/8) */
#define Q0_ONE_THIRD 715827883       /* 1/3 */
#define Q0_HALF_SQRT2 1518500250     /* sqrt(2) / 2 */
/* Q2 constants (29 fractional bits). */
#define Q2_ONE ((int32_t)1 << 29)
#define Q2_48_OVER_17 1515870810
#define Q2_MINUS_32_OVER_17 (-1010580540)

/* exp(a) for a Q0 value a in [-1/4, 0): a degree-4 Taylor polynomial about
 * -1/8, evaluated in Q0. */
static int32_t exp_on_quarter_interval(int32_t a) {
  const int32_t x = bittts_fixed_wrapping_add(a, (int32_t)1 << 28); /* a + 1/8 */
  const int32_t x2 = bittts_fixed_doubling_high_mul(x, x);
  const int32_t x3 = bittts_fixed_doubling_high_mul(x2, x);
  const int32_t x4 = bittts_fixed_doubling_high_mul(x2, x2);
  const int32_t x4_over_4 = bittts_fixed_rounding_shift_right(x4, 2);
  /* (x^4/4 + x^3) / 3 + x^2, halved: x^4/24 + x^3/6 + x^2/2. */
  const int32_t higher_terms = bittts_fixed_rounding_shift_right(
      bittts_fixed_wrapping_add(
          bittts_fixed_doubling_high_mul(bittts_fixed_wrapping_add(x4_over_4, x3), Q0_ONE_THIRD),
          x2),
      1);
  return bittts_fixed_wrapping_add(
      Q0_EXP_MINUS_EIGHTH,
      bittts_fixed_doubling_high_mul(Q0_EXP_MINUS_EIGHTH,
                                     bittts_fixed_wrapping_add(x, higher_terms)));
}

/* exp(a) for a Q4 value a <= 0, as Q0: exp of a's part modulo 1/4 (shifted
 * into [-1/4, 0)) times exp(-2^k) for every bit k of the rest. */
static int32_t exp_on_negative_q4(int32_t a) {
  /* exp(-2^k) in Q0 for k = -2 .. 3: Q4 holds no magnitude of 16 or more. */
  static const int32_t kExpMinusPowerOfTwo[6] = {
      1672461947, /* exp(-1/4) */
      1302514674, /* exp(-1/2) */
      790015084,  /* exp(-1) */
      290630308,  /* exp(-2) */
      39332535,   /* exp(-4) */
      720401,     /* exp(-8) */
  };
  const int fraction_bits = 27;
  const int32_t quarter = (int32_t)1 << (fraction_bits - 2);
  const int32_t a_mod_quarter_minus_quarter =
      bittts_fixed_wrapping_sub((int32_t)((uint32_t)a & (uint32_t)(quarter - 1)), quarter);
  const int32_t rest = bittts_fixed_wrapping_sub(a_mod_quarter_minus_quarter, a);
  int32_t result = exp_on_quarter_interval(
      bittts_fixed_saturating_shift_left(a_mod_quarter_minus_quarter, 4));
  int k;
  for (k = 0; k < 6; ++k) {
    if ((uint32_t)rest & ((uint32_t)1 << (fraction_bits - 2 + k)))
      result = bittts_fixed_doubling_high_mul(result, kExpMinusPowerOfTwo[k]);
  }
  return a == 0 ? Q0_ONE : result;
}

/* 1 / (1 + a) for a Q0 value a in [0, 1): three Newton-Raphson steps on the
 * half denominator (1 + a) / 2 from the linear estimate 48/17 - 32/17 * d,
 * in Q2; the result is halved back into Q0. */
static int32_t one_over_one_plus(int32_t a) {
  const int32_t half_denominator = bittts_fixed_rounding_half_sum(a, Q0_ONE);
  int32_t x = bittts_fixed_wrapping_add(
      Q2_48_OVER_17, bittts_fixed_doubling_high_mul(half_denominator, Q2_MINUS_32_OVER_17));
  int step;
  for (step = 0; step < 3; ++step) {
    const int32_t error =
        bittts_fixed_wrapping_sub(Q2_ONE, bittts_fixed_doubling_high_mul(half_denominator, x));
    x = bittts_fixed_wrapping_add(
        x, bittts_fixed_saturating_shift_left(bittts_fixed_doubling_high_mul(x, error), 2));
  }
  return bittts_fixed_saturating_shift_left(x, 1);
}

int32_t bittts_fixed_logistic_q4(int32_t x) {
  const int32_t magnitude = x > 0 ? x : wrapping_neg(x);
  const int32_t of_magnitude = one_over_one_plus(exp_on_negative_q4(wrapping_neg(magnitude)));
  if (x == 0) return (int32_t)1 << 30; /* one half */
  return x > 0 ? of_magnitude : bittts_fixed_wrapping_sub(Q0_ONE, of_magnitude);
}

static int count_leading_zeros(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) x <<= 1, ++n;
  return n;
}

void bittts_fixed_inv_sqrt(int32_t x, int32_t *multiplier, int32_t *left_shift) {
  const int32_t q3_one = (int32_t)1 << 28;
  const int32_t q3_three_halves = ((int32_t)1 << 28) + ((int32_t)1 << 27);
  int32_t right_shift = 11, half_x, estimate, result;
  int pairs, step;
  if (x <= 1) {
    *multiplier = INT32_MAX, *left_shift = 0;
    return;
  }
  while (x >= ((int32_t)1 << 29)) x /= 4, ++right_shift;
  /* Normalize x into [2^27, 2^29) by an even shift, so its square root
   * scales by a whole power of two. */
  pairs = (count_leading_zeros((uint32_t)x) - 1) / 2 - 1;
  right_shift -= pairs;
  x = (int32_t)((uint32_t)x << (2 * pairs));
  /* x as Q3 (x / 2), halved with rounding; Newton-Raphson on
   * y <- 3/2 y - (x/2) y^3 from y = 1, five steps. */
  half_x = bittts_fixed_rounding_shift_right(x >> 1, 1);
  estimate = q3_one;
  for (step = 0; step < 5; ++step) {
    const int32_t cube = bittts_fixed_saturating_shift_left(
        bittts_fixed_doubling_high_mul(bittts_fixed_doubling_high_mul(estimate, estimate),
                                       estimate),
        6);
    estimate = bittts_fixed_saturating_shift_left(
        bittts_fixed_wrapping_sub(bittts_fixed_doubling_high_mul(q3_three_halves, estimate),
                                  bittts_fixed_doubling_high_mul(half_x, cube)),
        3);
  }
  result = bittts_fixed_doubling_high_mul(estimate, Q0_HALF_SQRT2);
  if (right_shift < 0) {
    result = from_bits((uint32_t)result << -right_shift);
    right_shift = 0;
  }
  *multiplier = result;
  *left_shift = -right_shift;
}
