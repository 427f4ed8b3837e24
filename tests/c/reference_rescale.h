/* The independent reference of TFLite's int8 requantization that the C
 * tests and fuzzers check the kernels' fast rescale against, written from
 * the definitions: x * m * 2^(shift - 31), rounded twice. First the doubling
 * high multiply (ties up for a positive product, toward zero for a negative
 * one; the one product above INT32_MAX, INT32_MIN squared, saturates), then
 * a divide by a power of two with ties away from zero. A left shift wraps in
 * int32 as TFLite's does. Static inline: each program includes it once. */
#ifndef BITTTS_REFERENCE_RESCALE_H_
#define BITTTS_REFERENCE_RESCALE_H_

#include <stdint.h>

static inline int32_t reference_wrap(long long v) {
  return (int32_t)(uint32_t)(unsigned long long)v;
}

static inline int32_t reference_rescale(int32_t x, int32_t m, int shift) {
  long long p, high, half, magnitude;
  const int right = shift > 0 ? 0 : -shift;
  if (shift > 0) x = reference_wrap((long long)((unsigned long long)(uint32_t)x << shift));
  p = (long long)x * m;
  high = p >= 0 ? (p + (1LL << 30)) >> 31 : -((-p + (1LL << 30) - 1) >> 31);
  if (high > INT32_MAX) high = INT32_MAX;
  if (right == 0) return (int32_t)high;
  half = 1LL << (right - 1);
  magnitude = ((high < 0 ? -high : high) + half) >> right;
  return (int32_t)(high < 0 ? -magnitude : magnitude);
}

#endif /* BITTTS_REFERENCE_RESCALE_H_ */
