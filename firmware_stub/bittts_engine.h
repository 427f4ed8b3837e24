/* The C99 engine for an exported voice's int8 graphs: no TFLite Micro, no
 * heap, no static mutable state; every buffer comes with its length.
 *
 * A graph is written by tools/firmware.py as a blob (bittts_tf/engine/blob.py:
 * a header with magic, format version, sizes and CRC-32, then the tensor
 * table, the op records with their parameter words, and the constant data).
 * The engine checks the whole blob and every op's tensors and parameters
 * when it opens it, then runs the ops in order on a caller's arena whose
 * layout the blob plans (tensors share bytes when their lives do not meet). */
#ifndef BITTTS_ENGINE_H_
#define BITTTS_ENGINE_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_engine_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An opened blob: pointers into the caller's blob and arena, nothing else
 * (the engine keeps no state of its own: a second engine on another arena
 * runs the same blob independently). Fields are private. */
typedef struct {
  const uint8_t *blob;
  size_t blob_len;
  uint8_t *arena;
  size_t arena_len;
  uint32_t n_tensors, n_ops, n_inputs, n_outputs, n_params;
  const uint8_t *tensors;  /* records */
  const uint8_t *ops;      /* records */
  const uint8_t *io;       /* records: inputs, then outputs */
  const int32_t *params;
  const uint8_t *data;
  size_t data_len;
  /* Optional, set by the caller after open (NULL by then): called after each
   * op of an invoke, e.g. to count time per op kind on a board. */
  void (*on_op)(void *user, int32_t op, int32_t opcode);
  void *on_op_user;
} bittts_engine;

/* The arena a blob needs, from its header (checked: magic, version, sizes);
 * the arena must also start on a BITTTS_ENGINE_ALIGN boundary. */
bittts_engine_status bittts_engine_arena_bytes(const uint8_t *blob, size_t blob_len,
                                               size_t *arena_bytes);

/* Every output of the blob's graph lies in the arena's first *outputs_end
 * bytes (the planner puts them there; bittts_engine_open checks it): the
 * rest of the arena is free for other use once an invoke has returned. */
bittts_engine_status bittts_engine_outputs_end(const uint8_t *blob, size_t blob_len,
                                               size_t *outputs_end);

/* Checks the whole blob (header, CRC-32, every record and reference, every
 * op through its kernel's check) and binds it to the arena. The blob must
 * start on a BITTTS_ENGINE_ALIGN boundary and stay unchanged while the engine
 * is used; *engine is written only on success. *failed_op (if not NULL) is
 * the op whose check failed, or -1. */
bittts_engine_status bittts_engine_open(bittts_engine *engine, const uint8_t *blob,
                                        size_t blob_len, uint8_t *arena, size_t arena_len,
                                        int32_t *failed_op);

/* Views of the k-th graph input / output (inputs in the order of their
 * signature names, sorted), and of any tensor by its blob id (an arena
 * tensor's bytes may be shared with others: its value is the one the last
 * writer left). */
bittts_engine_status bittts_engine_input(const bittts_engine *engine, size_t k,
                                         bittts_engine_tensor *view);
bittts_engine_status bittts_engine_output(const bittts_engine *engine, size_t k,
                                          bittts_engine_tensor *view);
bittts_engine_status bittts_engine_tensor_view(const bittts_engine *engine, size_t id,
                                               bittts_engine_tensor *view);

/* *k = the position of the input (output != 0: the output) called `name`;
 * BITTTS_ENGINE_ERR_INDEX when there is none. */
bittts_engine_status bittts_engine_find(const bittts_engine *engine, int output, const char *name,
                                        size_t *k);

/* Runs every op in order on the arena's inputs. *failed_op as above. */
bittts_engine_status bittts_engine_invoke(const bittts_engine *engine, int32_t *failed_op);

/* One op on caller-made views: its kernel's check, then its eval (for tests
 * and for callers that run single ops). */
bittts_engine_status bittts_engine_run_op(int32_t opcode, const bittts_engine_op_args *args);

const char *bittts_engine_status_message(int status);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_ENGINE_H_ */
