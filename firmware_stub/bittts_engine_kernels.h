/* The engine's kernels: one check and one eval per op, on plain tensor views.
 *
 * The blob gives every op its tensors and its parameter words (int32; the
 * names and order are generated into bittts_engine_spec.h from the Python
 * lowering that computes them, e.g. params[BITTTS_ENGINE_P_ADD_OUTPUT_OFFSET]).
 * Requantization multipliers and shifts are computed when the blob is
 * written, exactly as TFLite Micro's reference kernels compute them in
 * Prepare, so the device does no double arithmetic and holds no per-op state.
 *
 * check: called once per op when the engine opens a blob. It validates
 *   everything eval relies on: the number of tensors, their types, ranks and
 *   dims against each other and against the parameters, every parameter's
 *   range, and the data of constant inputs (which it may read: filters,
 *   packed kernels, shape tensors). No tensor is written. An input whose
 *   data it reads must be a constant of the blob (BITTTS_ENGINE_CONST_INPUTS_*
 *   in bittts_engine_spec.h; the engine refuses a blob that breaks this).
 * eval: runs the op. It may assume its check passed on these same tensor
 *   views and parameters (the engine never changes them after the check);
 *   it allocates nothing, holds no static mutable state, writes only its
 *   outputs (scratch tensors are outputs after the real ones), and never
 *   reads or writes outside a view's `bytes`. A data-dependent error (a
 *   gather index out of range) returns a status with nothing guaranteed
 *   about the outputs.
 *
 * Plain C99, no libm except where a kernel says so. */
#ifndef BITTTS_ENGINE_KERNELS_H_
#define BITTTS_ENGINE_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_engine_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t type;                          /* BITTTS_ENGINE_TYPE_* */
  int32_t rank;                          /* 0 .. BITTTS_ENGINE_MAX_RANK */
  int32_t dims[BITTTS_ENGINE_MAX_RANK];  /* dims[0 .. rank-1], each >= 1 */
  size_t count;                          /* product of the dims (1 for rank 0) */
  size_t bytes;                          /* the buffer's length in bytes */
  void *data;                            /* const for inputs: never written */
  float scale;                           /* int8 with one scale: its parameters */
  int32_t zero_point;                    /* (else 0, 0); kernels take theirs from params */
} bittts_engine_tensor;

typedef struct {
  const bittts_engine_tensor *inputs;    /* absent optional operand: type 0, data NULL */
  size_t n_inputs;
  const bittts_engine_tensor *outputs;   /* the op's outputs, then its scratch */
  size_t n_outputs;
  const int32_t *params;
  size_t n_params;
} bittts_engine_op_args;

typedef bittts_engine_status (*bittts_engine_kernel_fn)(const bittts_engine_op_args *args);

/* Element size of a type in bytes, 0 for an unknown type. */
size_t bittts_engine_type_bytes(int32_t type);

#define BITTTS_ENGINE_DECLARE_KERNEL(op) \
  bittts_engine_status bittts_engine_check_##op(const bittts_engine_op_args *args); \
  bittts_engine_status bittts_engine_eval_##op(const bittts_engine_op_args *args);

/* bittts_engine_arith.c */
BITTTS_ENGINE_DECLARE_KERNEL(add)
BITTTS_ENGINE_DECLARE_KERNEL(sub)
BITTTS_ENGINE_DECLARE_KERNEL(mul)
BITTTS_ENGINE_DECLARE_KERNEL(squared_difference)
BITTTS_ENGINE_DECLARE_KERNEL(rsqrt)
BITTTS_ENGINE_DECLARE_KERNEL(logistic)
BITTTS_ENGINE_DECLARE_KERNEL(mean)
/* bittts_engine_conv.c */
BITTTS_ENGINE_DECLARE_KERNEL(conv_2d)
BITTTS_ENGINE_DECLARE_KERNEL(depthwise_conv_2d)
BITTTS_ENGINE_DECLARE_KERNEL(ternary_conv)
/* bittts_engine_data.c */
BITTTS_ENGINE_DECLARE_KERNEL(reshape)
BITTTS_ENGINE_DECLARE_KERNEL(strided_slice)
BITTTS_ENGINE_DECLARE_KERNEL(concatenation)
BITTTS_ENGINE_DECLARE_KERNEL(gather)
BITTTS_ENGINE_DECLARE_KERNEL(quantize)
BITTTS_ENGINE_DECLARE_KERNEL(dequantize)
BITTTS_ENGINE_DECLARE_KERNEL(neg)
BITTTS_ENGINE_DECLARE_KERNEL(cast)
BITTTS_ENGINE_DECLARE_KERNEL(less)

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_ENGINE_KERNELS_H_ */
