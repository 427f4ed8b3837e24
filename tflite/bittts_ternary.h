/* Decoding of packed ternary weights (5 trits per byte, see bittts_spec.h).
 * Plain C99: no allocation, no I/O; every function checks its bounds. */
#ifndef BITTTS_TERNARY_H_
#define BITTTS_TERNARY_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BITTTS_OK = 0,
  BITTTS_ERR_NULL = 1,       /* a required pointer is NULL */
  BITTTS_ERR_SIZE = 2,       /* packed length does not match the weight count */
  BITTTS_ERR_INDEX = 3       /* a packed byte is above BITTTS_MAX_INDEX */
} bittts_status;

/* Bytes of indices that hold num_weights ternary weights: ceil(n / 5). */
size_t bittts_packed_size(size_t num_weights);

/* BITTTS_OK when packed_len bytes hold exactly num_weights weights. */
bittts_status bittts_check_sizes(size_t packed_len, size_t num_weights);

/* Floats per decode table: one row of 5 scaled weights per index. */
#define BITTTS_F32_TABLE_SIZE (243 * 5)

/* Fills table[index * 5 + k] = trit k of index * scale. */
void bittts_fill_f32_table(float scale, float table[BITTTS_F32_TABLE_SIZE]);

/* Fast path: one 20-byte copy per packed byte from a table filled by
 * bittts_fill_f32_table; no division or modulo. Writes out[0..n). On
 * BITTTS_ERR_INDEX, *bad_offset (if not NULL) is the byte offset of the first
 * invalid index and out is zero-filled; nothing is read or written outside
 * packed[0..packed_len) and out[0..num_weights). */
bittts_status bittts_decode_f32_with_table(const uint8_t *packed, size_t packed_len,
                                           const float *table, float *out,
                                           size_t num_weights, size_t *bad_offset);

/* The same with the table on the stack (4860 bytes); targets with small
 * stacks keep a table in a persistent buffer and call the function above. */
bittts_status bittts_decode_f32(const uint8_t *packed, size_t packed_len,
                                float scale, float *out, size_t num_weights,
                                size_t *bad_offset);

/* Same, writing the trits themselves (-1, 0, 1) for integer graphs. */
bittts_status bittts_decode_i8(const uint8_t *packed, size_t packed_len,
                               int8_t *out, size_t num_weights,
                               size_t *bad_offset);

/* Straightforward decode with division and modulo: the benchmark's baseline
 * and a second implementation for the tests. Same contract as above. */
bittts_status bittts_decode_f32_naive(const uint8_t *packed, size_t packed_len,
                                      float scale, float *out,
                                      size_t num_weights, size_t *bad_offset);

const char *bittts_status_message(bittts_status status);
const char *bittts_op_name(void);
int bittts_trits_per_byte(void);
int bittts_max_index(void);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_TERNARY_H_ */
