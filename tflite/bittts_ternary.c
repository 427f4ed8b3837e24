#include "bittts_ternary.h"

#include <string.h>

#include "bittts_spec.h"

/* The header cannot include the spec; this keeps the two in step. */
typedef char bittts_table_size_matches_spec
    [BITTTS_F32_TABLE_SIZE == BITTTS_NUM_PATTERNS * BITTTS_TRITS_PER_BYTE ? 1 : -1];
/* mulshift_group spells out the five digits. */
typedef char bittts_five_trits_per_byte[BITTTS_TRITS_PER_BYTE == 5 ? 1 : -1];
/* The multiply-add-shift must stay inside int32 for every valid byte. */
typedef char bittts_prescale_fits_int32
    [(long long)BITTTS_MAX_INDEX * BITTTS_PRESCALE_MUL + BITTTS_PRESCALE_ADD < 2147483647LL &&
     (long long)BITTTS_MIN_INDEX * BITTTS_PRESCALE_MUL + BITTTS_PRESCALE_ADD >= 0 ? 1 : -1];

size_t bittts_packed_size(size_t num_weights) {
  return num_weights / BITTTS_TRITS_PER_BYTE +
         (num_weights % BITTTS_TRITS_PER_BYTE != 0);
}

bittts_status bittts_check_sizes(size_t packed_len, size_t num_weights) {
  return packed_len == bittts_packed_size(num_weights) ? BITTTS_OK
                                                       : BITTTS_ERR_SIZE;
}

/* Row of a byte in the 243-row tables, modulo 256: above BITTTS_NUM_PATTERNS - 1
 * exactly for the 13 invalid bytes. */
static uint8_t byte_row(int8_t byte) {
  return (uint8_t)(byte + BITTTS_INDEX_OFFSET);
}

enum { kScanLanes = 16 };

/* Scanning first keeps the decode loops branch-free and guarantees that a
 * corrupt tensor never leaves half-decoded weights behind. The scan is a
 * running maximum of rows in kScanLanes independent lanes: a fixed-width
 * inner loop that compilers turn into one SIMD add and max per 16 bytes at
 * -O2 (a plain loop with an early exit stays scalar and cost a quarter of the
 * table decode's speed). The offset is looked up only on failure. */
static bittts_status find_invalid_index(const int8_t *packed, size_t len,
                                        size_t *bad_offset) {
  uint8_t lanes[kScanLanes] = {0};
  uint8_t worst = 0;
  size_t i = 0;
  int j;
  for (; i + kScanLanes <= len; i += kScanLanes) {
    for (j = 0; j < kScanLanes; ++j) {
      uint8_t row = byte_row(packed[i + j]);
      lanes[j] = row > lanes[j] ? row : lanes[j];
    }
  }
  for (; i < len; ++i) {
    uint8_t row = byte_row(packed[i]);
    worst = row > worst ? row : worst;
  }
  for (j = 0; j < kScanLanes; ++j) worst = lanes[j] > worst ? lanes[j] : worst;
  if (worst <= BITTTS_NUM_PATTERNS - 1) return BITTTS_OK;
  for (i = 0; i < len; ++i) {
    if (byte_row(packed[i]) > BITTTS_NUM_PATTERNS - 1) {
      if (bad_offset) *bad_offset = i;
      break;
    }
  }
  return BITTTS_ERR_INDEX;
}

static bittts_status check_call(const int8_t *packed, size_t packed_len,
                                const void *out, size_t num_weights) {
  if ((packed == NULL && packed_len) || (out == NULL && num_weights))
    return BITTTS_ERR_NULL;
  /* No float buffer of more than SIZE_MAX bytes exists: out_bytes below. */
  if (num_weights > SIZE_MAX / sizeof(float)) return BITTTS_ERR_SIZE;
  return bittts_check_sizes(packed_len, num_weights);
}

/* check_call, then the index scan; on a bad index the output is cleared. */
static bittts_status check_all(const int8_t *packed, size_t packed_len, void *out,
                               size_t out_bytes, size_t num_weights,
                               size_t *bad_offset) {
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  status = find_invalid_index(packed, packed_len, bad_offset);
  if (status != BITTTS_OK && out_bytes) memset(out, 0, out_bytes);
  return status;
}

void bittts_fill_f32_table(float scale, float table[BITTTS_F32_TABLE_SIZE]) {
  int row, k;
  for (row = 0; row < BITTTS_NUM_PATTERNS; ++row)
    for (k = 0; k < BITTTS_TRITS_PER_BYTE; ++k)
      table[row * BITTTS_TRITS_PER_BYTE + k] =
          (float)BITTTS_TRIT_TABLE[row][k] * scale;
}

bittts_status bittts_decode_f32_with_table(const int8_t *packed, size_t packed_len,
                                           const float *table, float *out,
                                           size_t num_weights, size_t *bad_offset) {
  enum { kRowBytes = BITTTS_TRITS_PER_BYTE * sizeof(float) };
  size_t g, full_groups, tail;
  const float *center;
  bittts_status status;
  if (table == NULL) return BITTTS_ERR_NULL;
  status = check_all(packed, packed_len, out, num_weights * sizeof(float),
                     num_weights, bad_offset);
  if (status != BITTTS_OK) return status;
  /* Row 0 is byte -121: indexing from the middle row takes the signed byte as
   * it is, with no offset arithmetic in the loop. */
  center = table + (size_t)BITTTS_INDEX_OFFSET * BITTTS_TRITS_PER_BYTE;
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g) {
    memcpy(out + g * BITTTS_TRITS_PER_BYTE,
           center + (ptrdiff_t)packed[g] * BITTTS_TRITS_PER_BYTE, kRowBytes);
  }
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail) {
    memcpy(out + full_groups * BITTTS_TRITS_PER_BYTE,
           center + (ptrdiff_t)packed[full_groups] * BITTTS_TRITS_PER_BYTE,
           tail * sizeof(float));
  }
  return BITTTS_OK;
}

/* No float table at all (nothing on the stack, nothing to allocate): the
 * static const trit table, read-only data of 1215 bytes, times the scale.
 * The products are the ones the table holds, so the bits are the same. */
static void scaled_group(int8_t byte, float scale, float *out, size_t count) {
  const int8_t *trits = BITTTS_TRIT_TABLE[byte_row(byte)];
  size_t k;
  for (k = 0; k < count; ++k) out[k] = (float)trits[k] * scale;
}

bittts_status bittts_decode_f32_lut(const int8_t *packed, size_t packed_len,
                                    float scale, float *out, size_t num_weights,
                                    size_t *bad_offset) {
  size_t g, full_groups, tail;
  bittts_status status = check_all(packed, packed_len, out, num_weights * sizeof(float),
                                   num_weights, bad_offset);
  if (status != BITTTS_OK) return status;
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g)
    scaled_group(packed[g], scale, out + g * BITTTS_TRITS_PER_BYTE, BITTTS_TRITS_PER_BYTE);
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail)
    scaled_group(packed[full_groups], scale, out + full_groups * BITTTS_TRITS_PER_BYTE, tail);
  return BITTTS_OK;
}

/* q / 256 approximates (byte + 121) / 243 from above closely enough that
 * multiplying the low byte by 3 carries the next base-3 digit out into bits
 * 8..9; the uint8 wrap of q * 3^k drops the k digits above. Digits come out
 * most significant first, i.e. weight 4 from q itself. The five products are
 * independent (no chain through the previous digit), so they overlap. */
static void mulshift_group(int8_t byte, const float levels[3],
                           float group[BITTTS_TRITS_PER_BYTE]) {
  const unsigned q = (unsigned)((int32_t)byte * BITTTS_PRESCALE_MUL + BITTTS_PRESCALE_ADD) >>
                     BITTTS_PRESCALE_SHIFT;
  group[4] = levels[((q & 0xFFu) * 3u) >> 8];
  group[3] = levels[(((q * 3u) & 0xFFu) * 3u) >> 8];
  group[2] = levels[(((q * 9u) & 0xFFu) * 3u) >> 8];
  group[1] = levels[(((q * 27u) & 0xFFu) * 3u) >> 8];
  group[0] = levels[(((q * 81u) & 0xFFu) * 3u) >> 8];
}

bittts_status bittts_decode_f32_mulshift(const int8_t *packed, size_t packed_len,
                                         float scale, float *out,
                                         size_t num_weights, size_t *bad_offset) {
  size_t g, full_groups, tail;
  float group[BITTTS_TRITS_PER_BYTE];
  /* Same products as the table, so every decoder returns identical bits. */
  const float levels[3] = {-1.0f * scale, 0.0f * scale, 1.0f * scale};
  bittts_status status = check_all(packed, packed_len, out, num_weights * sizeof(float),
                                   num_weights, bad_offset);
  if (status != BITTTS_OK) return status;
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g)
    mulshift_group(packed[g], levels, out + g * BITTTS_TRITS_PER_BYTE);
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail) {
    mulshift_group(packed[full_groups], levels, group);
    memcpy(out + full_groups * BITTTS_TRITS_PER_BYTE, group, tail * sizeof(float));
  }
  return BITTTS_OK;
}

bittts_status bittts_decode_f32(const int8_t *packed, size_t packed_len,
                                float scale, float *out, size_t num_weights,
                                size_t *bad_offset) {
  return bittts_decode_f32_lut(packed, packed_len, scale, out, num_weights, bad_offset);
}

bittts_status bittts_decode_i8(const int8_t *packed, size_t packed_len,
                               int8_t *out, size_t num_weights,
                               size_t *bad_offset) {
  size_t g, full_groups, tail;
  bittts_status status = check_all(packed, packed_len, out, num_weights, num_weights,
                                   bad_offset);
  if (status != BITTTS_OK) return status;
  full_groups = num_weights / BITTTS_TRITS_PER_BYTE;
  for (g = 0; g < full_groups; ++g) {
    memcpy(out + g * BITTTS_TRITS_PER_BYTE, BITTTS_TRIT_TABLE[byte_row(packed[g])],
           BITTTS_TRITS_PER_BYTE);
  }
  tail = num_weights - full_groups * BITTTS_TRITS_PER_BYTE;
  if (tail) {
    memcpy(out + full_groups * BITTTS_TRITS_PER_BYTE,
           BITTTS_TRIT_TABLE[byte_row(packed[full_groups])], tail);
  }
  return BITTTS_OK;
}

/* Balanced base-3 digits straight from the definition: remainders in -1..1. */
bittts_status bittts_decode_f32_naive(const int8_t *packed, size_t packed_len,
                                      float scale, float *out,
                                      size_t num_weights, size_t *bad_offset) {
  size_t i;
  int value = 0;
  bittts_status status = check_call(packed, packed_len, out, num_weights);
  if (status != BITTTS_OK) return status;
  for (i = 0; i < num_weights; ++i) {
    int trit;
    if (i % BITTTS_TRITS_PER_BYTE == 0) {
      value = packed[i / BITTTS_TRITS_PER_BYTE];
      if (value < BITTTS_MIN_INDEX || value > BITTTS_MAX_INDEX) {
        if (bad_offset) *bad_offset = i / BITTTS_TRITS_PER_BYTE;
        memset(out, 0, num_weights * sizeof(float));
        return BITTTS_ERR_INDEX;
      }
    }
    trit = ((value % 3) + 4) % 3 - 1; /* C's % keeps the sign of value */
    out[i] = (float)trit * scale;
    value = (value - trit) / 3;
  }
  return BITTTS_OK;
}

const char *bittts_status_message(bittts_status status) {
  switch (status) {
    case BITTTS_OK: return "ok";
    case BITTTS_ERR_NULL: return "null buffer";
    case BITTTS_ERR_SIZE: return "packed size does not match the weight count";
    case BITTTS_ERR_INDEX: return "packed byte outside " BITTTS_INDEX_RANGE_TEXT;
  }
  return "unknown status";
}

const char *bittts_op_name(void) { return BITTTS_OP_NAME; }
int bittts_format_version(void) { return BITTTS_FORMAT_VERSION; }
int bittts_trits_per_byte(void) { return BITTTS_TRITS_PER_BYTE; }
int bittts_min_index(void) { return BITTTS_MIN_INDEX; }
int bittts_max_index(void) { return BITTTS_MAX_INDEX; }
