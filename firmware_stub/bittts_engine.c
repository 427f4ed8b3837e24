/* The engine: opens a blob (bittts_engine.h) and runs its ops in order on a
 * caller's arena. See bittts_engine_kernels.h for the kernels' contract. */
#include "bittts_engine.h"

#include <string.h>

#include "bittts_stream.h" /* bittts_crc32 */

size_t bittts_engine_type_bytes(int32_t type) {
  switch (type) {
    case BITTTS_ENGINE_TYPE_FLOAT32: return 4;
    case BITTTS_ENGINE_TYPE_INT32: return 4;
    case BITTTS_ENGINE_TYPE_INT8: return 1;
    case BITTTS_ENGINE_TYPE_BOOL: return 1;
    default: return 0;
  }
}

typedef struct {
  int32_t opcode;
  uint32_t const_inputs;  /* bit k: input k is read by check, trusted by eval */
  bittts_engine_kernel_fn check;
  bittts_engine_kernel_fn eval;
} kernel_entry;

#define KERNEL(NAME, op)                                              \
  {BITTTS_ENGINE_OP_##NAME, BITTTS_ENGINE_CONST_INPUTS_##NAME,        \
   bittts_engine_check_##op, bittts_engine_eval_##op}
static const kernel_entry kKernels[] = {
  KERNEL(ADD, add), KERNEL(SUB, sub), KERNEL(MUL, mul),
  KERNEL(SQUARED_DIFFERENCE, squared_difference), KERNEL(RSQRT, rsqrt),
  KERNEL(LOGISTIC, logistic), KERNEL(MEAN, mean), KERNEL(CONV_2D, conv_2d),
  KERNEL(DEPTHWISE_CONV_2D, depthwise_conv_2d), KERNEL(TERNARY_CONV, ternary_conv),
  KERNEL(RESHAPE, reshape), KERNEL(STRIDED_SLICE, strided_slice),
  KERNEL(CONCATENATION, concatenation), KERNEL(GATHER, gather), KERNEL(QUANTIZE, quantize),
  KERNEL(DEQUANTIZE, dequantize), KERNEL(NEG, neg), KERNEL(CAST, cast), KERNEL(LESS, less),
};

static const kernel_entry *find_kernel(int32_t opcode) {
  size_t k;
  for (k = 0; k < sizeof(kKernels) / sizeof(kKernels[0]); ++k) {
    if (kKernels[k].opcode == opcode) return &kKernels[k];
  }
  return NULL;
}

/* A view is consistent: a known type (or an absent operand: type 0, no data),
 * rank in range, dims >= 1 whose product is count, and a buffer of at least
 * count elements. */
static bittts_engine_status check_view(const bittts_engine_tensor *t) {
  size_t count = 1, size;
  int32_t d;
  if (t->type == 0 && t->data == NULL) return BITTTS_ENGINE_OK;
  size = bittts_engine_type_bytes(t->type);
  if (size == 0) return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (t->rank < 0 || t->rank > BITTTS_ENGINE_MAX_RANK) return BITTTS_ENGINE_ERR_PARAM;
  for (d = 0; d < t->rank; ++d) {
    if (t->dims[d] < 1) return BITTTS_ENGINE_ERR_SIZE;
    if (count > SIZE_MAX / (size_t)t->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
    count *= (size_t)t->dims[d];
  }
  if (count != t->count || t->data == NULL) return t->data == NULL ? BITTTS_ENGINE_ERR_NULL : BITTTS_ENGINE_ERR_SIZE;
  if (count > SIZE_MAX / size || t->bytes < count * size) return BITTTS_ENGINE_ERR_SIZE;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_run_op(int32_t opcode, const bittts_engine_op_args *args) {
  const kernel_entry *kernel;
  bittts_engine_status status;
  size_t k;
  if (args == NULL) return BITTTS_ENGINE_ERR_NULL;
  kernel = find_kernel(opcode);
  if (kernel == NULL) return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (args->n_inputs > BITTTS_ENGINE_MAX_OP_INPUTS || args->n_outputs > BITTTS_ENGINE_MAX_OP_OUTPUTS)
    return BITTTS_ENGINE_ERR_PARAM;
  if ((args->n_inputs && args->inputs == NULL) || (args->n_outputs && args->outputs == NULL) ||
      (args->n_params && args->params == NULL))
    return BITTTS_ENGINE_ERR_NULL;
  for (k = 0; k < args->n_inputs; ++k) {
    if ((status = check_view(&args->inputs[k])) != BITTTS_ENGINE_OK) return status;
  }
  for (k = 0; k < args->n_outputs; ++k) {
    if (args->outputs[k].data == NULL) return BITTTS_ENGINE_ERR_NULL;
    if ((status = check_view(&args->outputs[k])) != BITTTS_ENGINE_OK) return status;
  }
  status = kernel->check(args);
  if (status != BITTTS_ENGINE_OK) return status;
  return kernel->eval(args);
}

const char *bittts_engine_status_message(int status) {
  static const char *const kMessages[] = {BITTTS_ENGINE_STATUS_MESSAGES};
  if (status < 0 || (size_t)status >= sizeof(kMessages) / sizeof(kMessages[0])) return "unknown status";
  return kMessages[status];
}

/* ---- the blob ----------------------------------------------------------- */

static uint32_t read_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t read_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* A section [offset, offset + count * record) inside the blob, aligned. */
static int section_ok(uint32_t offset, uint32_t count, size_t record, size_t total) {
  if (offset % BITTTS_ENGINE_ALIGN != 0 || offset > total) return 0;
  if (record != 0 && count > (total - offset) / record) return 0;
  return 1;
}

/* The header's checks that need nothing but the header: magic, version,
 * sizes against blob_len, sections in bounds. */
static bittts_engine_status check_header(const uint8_t *blob, size_t blob_len) {
  uint32_t h[BITTTS_ENGINE_HEADER_WORDS];
  size_t k;
  if (blob == NULL) return BITTTS_ENGINE_ERR_NULL;
  if (blob_len < sizeof h) return BITTTS_ENGINE_ERR_BLOB;
  if (memcmp(blob, BITTTS_ENGINE_MAGIC, 4) != 0) return BITTTS_ENGINE_ERR_BLOB;
  for (k = 0; k < BITTTS_ENGINE_HEADER_WORDS; ++k) h[k] = read_u32(blob + 4 * k);
  if (h[BITTTS_ENGINE_H_VERSION] != BITTTS_ENGINE_VERSION) return BITTTS_ENGINE_ERR_VERSION;
  if (h[BITTTS_ENGINE_H_TOTAL_BYTES] != blob_len) return BITTTS_ENGINE_ERR_BLOB;
  if (h[BITTTS_ENGINE_H_HEADER_BYTES] != sizeof h) return BITTTS_ENGINE_ERR_BLOB;
  if (!section_ok(h[BITTTS_ENGINE_H_TENSORS_OFFSET], h[BITTTS_ENGINE_H_N_TENSORS],
                  BITTTS_ENGINE_TENSOR_BYTES, blob_len) ||
      !section_ok(h[BITTTS_ENGINE_H_OPS_OFFSET], h[BITTTS_ENGINE_H_N_OPS], BITTTS_ENGINE_OP_BYTES,
                  blob_len) ||
      !section_ok(h[BITTTS_ENGINE_H_IO_OFFSET],
                  h[BITTTS_ENGINE_H_N_INPUTS] + h[BITTTS_ENGINE_H_N_OUTPUTS], BITTTS_ENGINE_IO_BYTES,
                  blob_len) ||
      h[BITTTS_ENGINE_H_N_INPUTS] > 0xFFFFu || h[BITTTS_ENGINE_H_N_OUTPUTS] > 0xFFFFu ||
      !section_ok(h[BITTTS_ENGINE_H_PARAMS_OFFSET], h[BITTTS_ENGINE_H_N_PARAMS], 4, blob_len) ||
      !section_ok(h[BITTTS_ENGINE_H_DATA_OFFSET], h[BITTTS_ENGINE_H_DATA_BYTES], 1, blob_len) ||
      h[BITTTS_ENGINE_H_N_TENSORS] >= BITTTS_ENGINE_ABSENT ||
      h[BITTTS_ENGINE_H_OUTPUTS_END] > h[BITTTS_ENGINE_H_ARENA_BYTES])
    return BITTTS_ENGINE_ERR_BLOB;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_arena_bytes(const uint8_t *blob, size_t blob_len,
                                               size_t *arena_bytes) {
  bittts_engine_status status;
  if (arena_bytes == NULL) return BITTTS_ENGINE_ERR_NULL;
  status = check_header(blob, blob_len);
  if (status != BITTTS_ENGINE_OK) return status;
  *arena_bytes = read_u32(blob + 4 * BITTTS_ENGINE_H_ARENA_BYTES);
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_outputs_end(const uint8_t *blob, size_t blob_len,
                                               size_t *outputs_end) {
  bittts_engine_status status;
  if (outputs_end == NULL) return BITTTS_ENGINE_ERR_NULL;
  status = check_header(blob, blob_len);
  if (status != BITTTS_ENGINE_OK) return status;
  *outputs_end = read_u32(blob + 4 * BITTTS_ENGINE_H_OUTPUTS_END);
  return BITTTS_ENGINE_OK;
}

/* A tensor record as a view into the arena or the data section; every field
 * checked against the bounds of the buffer it points into. */
static bittts_engine_status record_view(const bittts_engine *e, size_t id,
                                        bittts_engine_tensor *view) {
  const uint8_t *r;
  uint32_t offset, storage;
  size_t count = 1, size, d, bytes;
  if (id >= e->n_tensors) return BITTTS_ENGINE_ERR_INDEX;
  r = e->tensors + id * BITTTS_ENGINE_TENSOR_BYTES;
  memset(view, 0, sizeof *view);
  view->type = r[0];
  view->rank = r[1];
  storage = r[2];
  view->zero_point = (int8_t)r[3];
  size = bittts_engine_type_bytes(view->type);
  if (size == 0) return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (view->rank > BITTTS_ENGINE_MAX_RANK) return BITTTS_ENGINE_ERR_BLOB;
  for (d = 0; d < BITTTS_ENGINE_MAX_RANK; ++d) {
    uint16_t n = read_u16(r + 4 + 2 * d);
    if (n < 1 || (d >= (size_t)view->rank && n != 1)) return BITTTS_ENGINE_ERR_BLOB;
    view->dims[d] = (int32_t)d < view->rank ? n : 0;
    if (count > SIZE_MAX / n) return BITTTS_ENGINE_ERR_BLOB;
    count *= n;
  }
  offset = read_u32(r + 4 + 2 * BITTTS_ENGINE_MAX_RANK);
  memcpy(&view->scale, r + 8 + 2 * BITTTS_ENGINE_MAX_RANK, sizeof view->scale);
  if (count > SIZE_MAX / size) return BITTTS_ENGINE_ERR_BLOB;
  bytes = count * size;
  if (offset % BITTTS_ENGINE_ALIGN != 0) return BITTTS_ENGINE_ERR_BLOB;
  if (storage == BITTTS_ENGINE_STORAGE_CONST) {
    if (offset > e->data_len || bytes > e->data_len - offset) return BITTTS_ENGINE_ERR_BLOB;
    view->data = (void *)(uintptr_t)(e->data + offset);  /* never written: an input only */
  } else if (storage == BITTTS_ENGINE_STORAGE_ARENA) {
    if (offset > e->arena_len || bytes > e->arena_len - offset) return BITTTS_ENGINE_ERR_BLOB;
    view->data = e->arena + offset;
  } else {
    return BITTTS_ENGINE_ERR_BLOB;
  }
  view->count = count;
  view->bytes = bytes;
  return BITTTS_ENGINE_OK;
}

static int is_const(const bittts_engine *e, size_t id) {
  return e->tensors[id * BITTTS_ENGINE_TENSOR_BYTES + 2] == BITTTS_ENGINE_STORAGE_CONST;
}

/* Op k's views and parameter words, every reference checked. */
static bittts_engine_status op_args(const bittts_engine *e, size_t k,
                                    bittts_engine_tensor inputs[BITTTS_ENGINE_MAX_OP_INPUTS],
                                    bittts_engine_tensor outputs[BITTTS_ENGINE_MAX_OP_OUTPUTS],
                                    bittts_engine_op_args *args, int32_t *opcode) {
  const uint8_t *r = e->ops + k * BITTTS_ENGINE_OP_BYTES;
  uint32_t n_in = r[2], n_out = r[3], first = read_u32(r + 4), count = read_u32(r + 8);
  bittts_engine_status status;
  size_t j;
  *opcode = read_u16(r);
  if (n_in > BITTTS_ENGINE_MAX_OP_INPUTS || n_out > BITTTS_ENGINE_MAX_OP_OUTPUTS)
    return BITTTS_ENGINE_ERR_BLOB;
  if (first > e->n_params || count > e->n_params - first) return BITTTS_ENGINE_ERR_BLOB;
  for (j = 0; j < n_in; ++j) {
    uint16_t id = read_u16(r + 12 + 2 * j);
    if (id == BITTTS_ENGINE_ABSENT) {
      memset(&inputs[j], 0, sizeof inputs[j]);
      continue;
    }
    if ((status = record_view(e, id, &inputs[j])) != BITTTS_ENGINE_OK) return status;
  }
  for (j = 0; j < n_out; ++j) {
    uint16_t id = read_u16(r + 12 + 2 * (BITTTS_ENGINE_MAX_OP_INPUTS + j));
    if (id >= e->n_tensors || is_const(e, id)) return BITTTS_ENGINE_ERR_BLOB;
    if ((status = record_view(e, id, &outputs[j])) != BITTTS_ENGINE_OK) return status;
  }
  args->inputs = inputs;
  args->n_inputs = n_in;
  args->outputs = outputs;
  args->n_outputs = n_out;
  args->params = e->params + first;
  args->n_params = count;
  return BITTTS_ENGINE_OK;
}

/* Every input of op k that its kernel's check reads (multipliers, shifts,
 * packed bytes, a table) is a constant of the blob: an arena tensor could be
 * changed by the caller or an earlier op after the check passed (a depthwise
 * shift of -100 so written made eval shift by 100 bits). */
static bittts_engine_status check_constants(const bittts_engine *e, size_t k, uint32_t mask) {
  const uint8_t *r = e->ops + k * BITTTS_ENGINE_OP_BYTES;
  uint32_t j;
  uint16_t id;
  for (j = 0; j < BITTTS_ENGINE_MAX_OP_INPUTS; ++j) {
    if (!(mask >> j & 1u)) continue;
    id = j < r[2] ? read_u16(r + 12 + 2 * j) : BITTTS_ENGINE_ABSENT;
    if (id == BITTTS_ENGINE_ABSENT) continue;  /* the kernel's check judges its arity */
    if (id >= e->n_tensors || !is_const(e, id)) return BITTTS_ENGINE_ERR_BLOB;
  }
  return BITTTS_ENGINE_OK;
}

static int overlap(const bittts_engine_tensor *a, const bittts_engine_tensor *b) {
  const uint8_t *pa = (const uint8_t *)a->data, *pb = (const uint8_t *)b->data;
  if (pa == NULL || pb == NULL || a->bytes == 0 || b->bytes == 0) return 0;
  return pa < pb + b->bytes && pb < pa + a->bytes;
}

/* No output of an op shares a byte with another of its outputs or with any
 * of its inputs: the kernels write outputs while still reading inputs (a
 * planner never overlaps tensors live at the same op; a crafted blob could,
 * and libFuzzer made one within seconds). */
static bittts_engine_status check_disjoint(const bittts_engine_op_args *args) {
  size_t i, j;
  for (j = 0; j < args->n_outputs; ++j) {
    for (i = 0; i < args->n_inputs; ++i)
      if (overlap(&args->outputs[j], &args->inputs[i])) return BITTTS_ENGINE_ERR_BLOB;
    for (i = 0; i < j; ++i)
      if (overlap(&args->outputs[j], &args->outputs[i])) return BITTTS_ENGINE_ERR_BLOB;
  }
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_open(bittts_engine *engine, const uint8_t *blob,
                                        size_t blob_len, uint8_t *arena, size_t arena_len,
                                        int32_t *failed_op) {
  bittts_engine e;
  bittts_engine_status status;
  size_t k;
  if (failed_op != NULL) *failed_op = -1;
  if (engine == NULL || blob == NULL || arena == NULL) return BITTTS_ENGINE_ERR_NULL;
  if ((uintptr_t)blob % BITTTS_ENGINE_ALIGN != 0 || (uintptr_t)arena % BITTTS_ENGINE_ALIGN != 0)
    return BITTTS_ENGINE_ERR_PARAM;
  status = check_header(blob, blob_len);
  if (status != BITTTS_ENGINE_OK) return status;
  if (read_u32(blob + 4 * BITTTS_ENGINE_H_ARENA_BYTES) > arena_len) return BITTTS_ENGINE_ERR_SIZE;
  if (bittts_crc32(0, blob + BITTTS_ENGINE_HEADER_WORDS * 4, blob_len - BITTTS_ENGINE_HEADER_WORDS * 4) !=
      read_u32(blob + 4 * BITTTS_ENGINE_H_CRC32))
    return BITTTS_ENGINE_ERR_CRC;
  memset(&e, 0, sizeof e);
  e.blob = blob;
  e.blob_len = blob_len;
  e.arena = arena;
  e.arena_len = arena_len;
  e.n_tensors = read_u32(blob + 4 * BITTTS_ENGINE_H_N_TENSORS);
  e.n_ops = read_u32(blob + 4 * BITTTS_ENGINE_H_N_OPS);
  e.n_inputs = read_u32(blob + 4 * BITTTS_ENGINE_H_N_INPUTS);
  e.n_outputs = read_u32(blob + 4 * BITTTS_ENGINE_H_N_OUTPUTS);
  e.n_params = read_u32(blob + 4 * BITTTS_ENGINE_H_N_PARAMS);
  e.tensors = blob + read_u32(blob + 4 * BITTTS_ENGINE_H_TENSORS_OFFSET);
  e.ops = blob + read_u32(blob + 4 * BITTTS_ENGINE_H_OPS_OFFSET);
  e.io = blob + read_u32(blob + 4 * BITTTS_ENGINE_H_IO_OFFSET);
  e.params = (const int32_t *)(const void *)(blob + read_u32(blob + 4 * BITTTS_ENGINE_H_PARAMS_OFFSET));
  e.data = blob + read_u32(blob + 4 * BITTTS_ENGINE_H_DATA_OFFSET);
  e.data_len = read_u32(blob + 4 * BITTTS_ENGINE_H_DATA_BYTES);
  for (k = 0; k < e.n_tensors; ++k) {
    bittts_engine_tensor view;
    if ((status = record_view(&e, k, &view)) != BITTTS_ENGINE_OK) return status;
  }
  for (k = 0; k < (size_t)e.n_inputs + e.n_outputs; ++k) {
    const uint8_t *io = e.io + k * BITTTS_ENGINE_IO_BYTES;
    uint16_t id = read_u16(io);
    bittts_engine_tensor view;
    /* A name is NUL-terminated inside its field; an output lies below the
     * header's outputs_end (the arena above it may be reused once the graph
     * has run). */
    if (id >= e.n_tensors || is_const(&e, id) || io[4 + BITTTS_ENGINE_IO_NAME_BYTES - 1] != 0)
      return BITTTS_ENGINE_ERR_BLOB;
    if (k >= e.n_inputs) {
      (void)record_view(&e, id, &view);
      if ((size_t)((uint8_t *)view.data - arena) + view.bytes >
          read_u32(blob + 4 * BITTTS_ENGINE_H_OUTPUTS_END))
        return BITTTS_ENGINE_ERR_BLOB;
    }
  }
  for (k = 0; k < e.n_ops; ++k) {
    bittts_engine_tensor inputs[BITTTS_ENGINE_MAX_OP_INPUTS], outputs[BITTTS_ENGINE_MAX_OP_OUTPUTS];
    bittts_engine_op_args args;
    const kernel_entry *kernel;
    int32_t opcode;
    status = op_args(&e, k, inputs, outputs, &args, &opcode);
    if (status == BITTTS_ENGINE_OK) status = check_disjoint(&args);
    if (status == BITTTS_ENGINE_OK) {
      kernel = find_kernel(opcode);
      status = kernel == NULL ? BITTTS_ENGINE_ERR_UNSUPPORTED
                              : check_constants(&e, k, kernel->const_inputs);
      if (status == BITTTS_ENGINE_OK) status = kernel->check(&args);
    }
    if (status != BITTTS_ENGINE_OK) {
      if (failed_op != NULL) *failed_op = (int32_t)k;
      return status;
    }
  }
  *engine = e;
  return BITTTS_ENGINE_OK;
}

static bittts_engine_status io_view(const bittts_engine *e, size_t k, bittts_engine_tensor *view) {
  if (view == NULL) return BITTTS_ENGINE_ERR_NULL;
  return record_view(e, read_u16(e->io + k * BITTTS_ENGINE_IO_BYTES), view);
}

bittts_engine_status bittts_engine_find(const bittts_engine *engine, int output, const char *name,
                                        size_t *k) {
  size_t j, first, count;
  if (engine == NULL || name == NULL || k == NULL) return BITTTS_ENGINE_ERR_NULL;
  first = output ? engine->n_inputs : 0;
  count = output ? engine->n_outputs : engine->n_inputs;
  for (j = 0; j < count; ++j) {
    const char *field = (const char *)(engine->io + (first + j) * BITTTS_ENGINE_IO_BYTES + 4);
    if (strncmp(field, name, BITTTS_ENGINE_IO_NAME_BYTES) == 0) {
      *k = j;
      return BITTTS_ENGINE_OK;
    }
  }
  return BITTTS_ENGINE_ERR_INDEX;
}

bittts_engine_status bittts_engine_input(const bittts_engine *engine, size_t k,
                                         bittts_engine_tensor *view) {
  if (engine == NULL) return BITTTS_ENGINE_ERR_NULL;
  if (k >= engine->n_inputs) return BITTTS_ENGINE_ERR_INDEX;
  return io_view(engine, k, view);
}

bittts_engine_status bittts_engine_output(const bittts_engine *engine, size_t k,
                                          bittts_engine_tensor *view) {
  if (engine == NULL) return BITTTS_ENGINE_ERR_NULL;
  if (k >= engine->n_outputs) return BITTTS_ENGINE_ERR_INDEX;
  return io_view(engine, engine->n_inputs + k, view);
}

bittts_engine_status bittts_engine_tensor_view(const bittts_engine *engine, size_t id,
                                               bittts_engine_tensor *view) {
  if (engine == NULL || view == NULL) return BITTTS_ENGINE_ERR_NULL;
  return record_view(engine, id, view);
}

bittts_engine_status bittts_engine_invoke(const bittts_engine *engine, int32_t *failed_op) {
  size_t k;
  if (failed_op != NULL) *failed_op = -1;
  if (engine == NULL) return BITTTS_ENGINE_ERR_NULL;
  for (k = 0; k < engine->n_ops; ++k) {
    bittts_engine_tensor inputs[BITTTS_ENGINE_MAX_OP_INPUTS], outputs[BITTTS_ENGINE_MAX_OP_OUTPUTS];
    bittts_engine_op_args args;
    const kernel_entry *kernel;
    int32_t opcode;
    /* Re-reading the records costs a few hundred cycles an op and keeps the
     * engine free of per-op RAM; open() checked them all. */
    bittts_engine_status status = op_args(engine, k, inputs, outputs, &args, &opcode);
    if (status == BITTTS_ENGINE_OK) {
      kernel = find_kernel(opcode);
      status = kernel == NULL ? BITTTS_ENGINE_ERR_UNSUPPORTED : kernel->eval(&args);
    }
    if (status != BITTTS_ENGINE_OK) {
      if (failed_op != NULL) *failed_op = (int32_t)k;
      return status;
    }
    if (engine->on_op != NULL) engine->on_op(engine->on_op_user, (int32_t)k, opcode);
  }
  return BITTTS_ENGINE_OK;
}
