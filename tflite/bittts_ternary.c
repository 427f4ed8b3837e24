#include "bittts_ternary.h"

#include <string.h>

#include "bittts_spec.h"

size_t bittts_packed_size(size_t num_weights) {
  return num_weights / BITTTS_TRITS_PER_BYTE +
         (num_weights % BITTTS_TRITS_PER_BYTE != 0);
}

bittts_status bittts_check_sizes(size_t packed_len, size_t num_weights) {
  return packed_len == bittts_packed_size(num_weights) ? BITTTS_OK
                                                       : BITTTS_ERR_SIZE;
}

/* Scanning first keeps the decode loops branch-light and guarantees that a
 * corrupt tensor never leaves half-decoded weights behind. */
static bittts_status find_invalid_index(const uint8_t *packed, size_t len,
                                        size_t *bad_offset) {
  size_t i;
  for (i = 0; i < len; ++i) {
    if (packed[i] > BITTTS_MAX_INDEX) {
      if (bad_offset) *bad_offset = i;
      return BITTTS_ERR_INDEX;
    }
  }
  return BITTTS_OK;
}

static bittts_status check_call(const uint8_t *packed, size_t packed_len,
                                const void *out, size_t num_weights) {
  if ((packed == NULL && packed_len) || (out == NULL && num_weights))
    return BITTTS_ERR_NULL;
  return bittts_check_sizes(packed_len, num_weights);
}

bittts_status bittts_decode_f32(const uint8_t *packed, size_t packed_len,
                                float scale, float *out, size_t num_weights,
                                size_t *bad_offset) {
  size_t g, k, full_groups, tail;
  float level[3];
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  status = find_invalid_index(packed, packed_len, bad_offset);
  if (status != BITTTS_OK) {
    memset(out, 0, num_weights * sizeof(float));
    return status;
  }
  level[0] = -scale;
  level[1] = 0.0f;
  level[2] = scale;
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g) {
    const int8_t *trits = BITTTS_TRIT_TABLE[packed[g]];
    float *dst = out + g * BITTTS_TRITS_PER_BYTE;
    dst[0] = level[trits[0] + 1];
    dst[1] = level[trits[1] + 1];
    dst[2] = level[trits[2] + 1];
    dst[3] = level[trits[3] + 1];
    dst[4] = level[trits[4] + 1];
  }
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  for (k = 0; k < tail; ++k) {
    out[full_groups * BITTTS_TRITS_PER_BYTE + k] =
        level[BITTTS_TRIT_TABLE[packed[full_groups]][k] + 1];
  }
  return BITTTS_OK;
}

bittts_status bittts_decode_i8(const uint8_t *packed, size_t packed_len,
                               int8_t *out, size_t num_weights,
                               size_t *bad_offset) {
  size_t g, full_groups, tail;
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  status = find_invalid_index(packed, packed_len, bad_offset);
  if (status != BITTTS_OK) {
    memset(out, 0, num_weights);
    return status;
  }
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g) {
    memcpy(out + g * BITTTS_TRITS_PER_BYTE, BITTTS_TRIT_TABLE[packed[g]],
           BITTTS_TRITS_PER_BYTE);
  }
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail) {
    memcpy(out + full_groups * BITTTS_TRITS_PER_BYTE,
           BITTTS_TRIT_TABLE[packed[full_groups]], tail);
  }
  return BITTTS_OK;
}

bittts_status bittts_decode_f32_naive(const uint8_t *packed, size_t packed_len,
                                      float scale, float *out,
                                      size_t num_weights, size_t *bad_offset) {
  size_t i;
  unsigned value = 0;
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  for (i = 0; i < num_weights; ++i) {
    if (i % BITTTS_TRITS_PER_BYTE == 0) {
      value = packed[i / BITTTS_TRITS_PER_BYTE];
      if (value > BITTTS_MAX_INDEX) {
        if (bad_offset) *bad_offset = i / BITTTS_TRITS_PER_BYTE;
        memset(out, 0, num_weights * sizeof(float));
        return BITTTS_ERR_INDEX;
      }
    }
    out[i] = (float)((int)(value % 3) - 1) * scale;
    value /= 3;
  }
  return BITTTS_OK;
}

const char *bittts_status_message(bittts_status status) {
  switch (status) {
    case BITTTS_OK: return "ok";
    case BITTTS_ERR_NULL: return "null buffer";
    case BITTTS_ERR_SIZE: return "packed size does not match the weight count";
    case BITTTS_ERR_INDEX: return "packed index above 242";
  }
  return "unknown status";
}

const char *bittts_op_name(void) { return BITTTS_OP_NAME; }
int bittts_trits_per_byte(void) { return BITTTS_TRITS_PER_BYTE; }
int bittts_max_index(void) { return BITTTS_MAX_INDEX; }
