#include "bittts_ternary.h"

#include <string.h>

#include "bittts_spec.h"

/* The header cannot include the spec; this keeps the two in step. */
typedef char bittts_table_size_matches_spec
    [BITTTS_F32_TABLE_SIZE == BITTTS_NUM_PATTERNS * BITTTS_TRITS_PER_BYTE ? 1 : -1];

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

void bittts_fill_f32_table(float scale, float table[BITTTS_F32_TABLE_SIZE]) {
  int index, k;
  for (index = 0; index < BITTTS_NUM_PATTERNS; ++index)
    for (k = 0; k < BITTTS_TRITS_PER_BYTE; ++k)
      table[index * BITTTS_TRITS_PER_BYTE + k] =
          (float)BITTTS_TRIT_TABLE[index][k] * scale;
}

bittts_status bittts_decode_f32_with_table(const uint8_t *packed, size_t packed_len,
                                           const float *table, float *out,
                                           size_t num_weights, size_t *bad_offset) {
  enum { kRowBytes = BITTTS_TRITS_PER_BYTE * sizeof(float) };
  size_t g, full_groups, tail;
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  if (table == NULL) return BITTTS_ERR_NULL;
  status = find_invalid_index(packed, packed_len, bad_offset);
  if (status != BITTTS_OK) {
    memset(out, 0, num_weights * sizeof(float));
    return status;
  }
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g) {
    memcpy(out + g * BITTTS_TRITS_PER_BYTE,
           table + (size_t)packed[g] * BITTTS_TRITS_PER_BYTE, kRowBytes);
  }
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail) {
    memcpy(out + full_groups * BITTTS_TRITS_PER_BYTE,
           table + (size_t)packed[full_groups] * BITTTS_TRITS_PER_BYTE,
           tail * sizeof(float));
  }
  return BITTTS_OK;
}

bittts_status bittts_decode_f32(const uint8_t *packed, size_t packed_len,
                                float scale, float *out, size_t num_weights,
                                size_t *bad_offset) {
  float table[BITTTS_F32_TABLE_SIZE];
  bittts_fill_f32_table(scale, table);
  return bittts_decode_f32_with_table(packed, packed_len, table, out,
                                      num_weights, bad_offset);
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
