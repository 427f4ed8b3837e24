/* Decoding of packed ternary weights (format version 2: 5 trits per int8 in
 * balanced ternary, see bittts_spec.h). Plain C99: no allocation, no I/O;
 * every function checks its bounds. */
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
  BITTTS_ERR_INDEX = 3       /* a packed byte is outside -121..121 */
} bittts_status;

/* Bytes of indices that hold num_weights ternary weights: ceil(n / 5). */
size_t bittts_packed_size(size_t num_weights);

/* BITTTS_OK when packed_len bytes hold exactly num_weights weights. */
bittts_status bittts_check_sizes(size_t packed_len, size_t num_weights);

/* Every decoder below has the same contract: it writes out[0..num_weights)
 * and nothing else, reads packed[0..packed_len) and nothing else. On
 * BITTTS_ERR_INDEX, *bad_offset (if not NULL) is the byte offset of the first
 * invalid byte and out is zero-filled, so a corrupt tensor never leaves
 * half-decoded weights behind. */

/* The decoder the LiteRT kernel uses: currently bittts_decode_f32_lut (see
 * tools/bench_decode.py for the float32 decoders' speeds). */
bittts_status bittts_decode_f32(const int8_t *packed, size_t packed_len,
                                float scale, float *out, size_t num_weights,
                                size_t *bad_offset);

/* Floats per decode table: one row of 5 scaled weights per valid byte. */
#define BITTTS_F32_TABLE_SIZE (243 * 5)

/* Fills table[(byte + 121) * 5 + k] = trit k of byte * scale. */
void bittts_fill_f32_table(float scale, float table[BITTTS_F32_TABLE_SIZE]);

/* Table decode: one 20-byte copy per packed byte from a table filled by
 * bittts_fill_f32_table; no division or modulo. */
bittts_status bittts_decode_f32_with_table(const int8_t *packed, size_t packed_len,
                                           const float *table, float *out,
                                           size_t num_weights, size_t *bad_offset);

/* Table decode with no float table: each weight is the static const trit
 * table's entry (read-only data, 1215 bytes) times the scale; nothing on the
 * stack but a few words. Same bits as the table decode. */
bittts_status bittts_decode_f32_lut(const int8_t *packed, size_t packed_len,
                                    float scale, float *out, size_t num_weights,
                                    size_t *bad_offset);

/* Arithmetic decode without any table (for targets where 4.8 KB of RAM per
 * live scale is too much): one multiply-add-shift per byte, then one
 * multiply-shift per weight. */
bittts_status bittts_decode_f32_mulshift(const int8_t *packed, size_t packed_len,
                                         float scale, float *out,
                                         size_t num_weights, size_t *bad_offset);

/* Writes the trits themselves (-1, 0, 1) for integer graphs. */
bittts_status bittts_decode_i8(const int8_t *packed, size_t packed_len,
                               int8_t *out, size_t num_weights,
                               size_t *bad_offset);

/* Straightforward decode with division and modulo: the benchmark's baseline
 * and a second implementation for the tests. */
bittts_status bittts_decode_f32_naive(const int8_t *packed, size_t packed_len,
                                      float scale, float *out,
                                      size_t num_weights, size_t *bad_offset);

const char *bittts_status_message(bittts_status status);
const char *bittts_op_name(void);
int bittts_format_version(void);
int bittts_trits_per_byte(void);
int bittts_min_index(void);
int bittts_max_index(void);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_TERNARY_H_ */
