/* Data movement and conversions: RESHAPE, STRIDED_SLICE, CONCATENATION,
 * GATHER, QUANTIZE, DEQUANTIZE, NEG, CAST and LESS, with TFLite Micro's
 * reference semantics (bittts_tf/engine/lower_data.py resolves the words). */
#include "bittts_engine_kernels.h"

#include <string.h>

#include "bittts_ternary_conv.h"

#define RANK BITTTS_ENGINE_MAX_RANK

static int32_t from_bits(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static int32_t wrap_add(int32_t a, int32_t b) { return from_bits((uint32_t)a + (uint32_t)b); }

static float word_float(int32_t word) {
  float value;
  memcpy(&value, &word, sizeof value);
  return value;
}

static int is_finite(float x) { return x - x == 0.0f; }

static bittts_engine_status expect_arity(const bittts_engine_op_args *args, size_t inputs,
                                         size_t outputs, size_t params) {
  return args->n_inputs == inputs && args->n_outputs == outputs && args->n_params == params
             ? BITTTS_ENGINE_OK
             : BITTTS_ENGINE_ERR_PARAM;
}

/* An elementwise op: one input of in_type, one output of out_type with as
 * many values, `params` words. */
static bittts_engine_status expect_elementwise(const bittts_engine_op_args *args, size_t params,
                                               int32_t in_type, int32_t out_type) {
  bittts_engine_status status = expect_arity(args, 1, 1, params);
  if (status != BITTTS_ENGINE_OK) return status;
  if (args->inputs[0].type != in_type || args->outputs[0].type != out_type)
    return BITTTS_ENGINE_ERR_UNSUPPORTED;
  return args->inputs[0].count == args->outputs[0].count ? BITTTS_ENGINE_OK
                                                         : BITTTS_ENGINE_ERR_SIZE;
}

/* A view's dims right-aligned into RANK dims, leading ones 1. */
static void padded_dims(const bittts_engine_tensor *t, int32_t dims[RANK]) {
  int32_t d;
  const int32_t pad = RANK - t->rank;
  for (d = 0; d < RANK; ++d) dims[d] = d < pad ? 1 : t->dims[d - pad];
}

/* --- RESHAPE ----------------------------------------------------------------- */

bittts_engine_status bittts_engine_check_reshape(const bittts_engine_op_args *args) {
  bittts_engine_status status = expect_arity(args, 1, 1, BITTTS_ENGINE_P_RESHAPE_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  if (args->inputs[0].type != args->outputs[0].type) return BITTTS_ENGINE_ERR_PARAM;
  return args->inputs[0].count == args->outputs[0].count ? BITTTS_ENGINE_OK
                                                         : BITTTS_ENGINE_ERR_SIZE;
}

bittts_engine_status bittts_engine_eval_reshape(const bittts_engine_op_args *args) {
  /* memmove: the planner may give the input and the output the same bytes. */
  memmove(args->outputs[0].data, args->inputs[0].data,
          args->outputs[0].count * bittts_engine_type_bytes(args->outputs[0].type));
  return BITTTS_ENGINE_OK;
}

/* --- STRIDED_SLICE ----------------------------------------------------------- */

/* The steps from start toward stop (exclusive) by stride, 0 if none. */
static int64_t slice_steps(int32_t start, int32_t stop, int32_t stride) {
  if (stride > 0) return stop > start ? ((int64_t)stop - start + stride - 1) / stride : 0;
  return start > stop ? ((int64_t)start - stop - stride - 1) / -(int64_t)stride : 0;
}

bittts_engine_status bittts_engine_check_strided_slice(const bittts_engine_op_args *args) {
  const int32_t *p = args->params;
  const bittts_engine_tensor *in, *out;
  int32_t dims[RANK], axis;
  int64_t total = 1;
  bittts_engine_status status = expect_arity(args, 1, 1, BITTTS_ENGINE_P_STRIDED_SLICE_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  in = &args->inputs[0], out = &args->outputs[0];
  if (in->type != out->type) return BITTTS_ENGINE_ERR_PARAM;
  if (in->rank < 1) return BITTTS_ENGINE_ERR_SIZE;
  padded_dims(in, dims);
  for (axis = 0; axis < RANK; ++axis) {
    const int32_t start = p[BITTTS_ENGINE_P_STRIDED_SLICE_START_0 + axis];
    const int32_t stop = p[BITTTS_ENGINE_P_STRIDED_SLICE_STOP_0 + axis];
    const int32_t stride = p[BITTTS_ENGINE_P_STRIDED_SLICE_STRIDE_0 + axis];
    int64_t steps, last;
    if (stride == 0 || stride == INT32_MIN) return BITTTS_ENGINE_ERR_PARAM;
    steps = slice_steps(start, stop, stride);
    if (steps > 0) {
      /* every index the axis visits lies in 0 .. dim - 1 */
      last = start + (steps - 1) * (int64_t)stride;
      if (start < 0 || start >= dims[axis] || last < 0 || last >= dims[axis])
        return BITTTS_ENGINE_ERR_PARAM;
    }
    total *= steps;
  }
  return (size_t)total == out->count ? BITTTS_ENGINE_OK : BITTTS_ENGINE_ERR_SIZE;
}

bittts_engine_status bittts_engine_eval_strided_slice(const bittts_engine_op_args *args) {
  const int32_t *p = args->params;
  const bittts_engine_tensor *in = &args->inputs[0];
  const size_t element = bittts_engine_type_bytes(in->type);
  const unsigned char *src = (const unsigned char *)in->data;
  unsigned char *dst = (unsigned char *)args->outputs[0].data;
  int32_t dims[RANK], start[RANK], stride[RANK], steps[RANK], i0, i1, i2, i3;
  size_t pitch[RANK];
  int axis;
  padded_dims(in, dims);
  pitch[RANK - 1] = element;
  for (axis = RANK - 2; axis >= 0; --axis) pitch[axis] = pitch[axis + 1] * (size_t)dims[axis + 1];
  for (axis = 0; axis < RANK; ++axis) {
    start[axis] = p[BITTTS_ENGINE_P_STRIDED_SLICE_START_0 + axis];
    stride[axis] = p[BITTTS_ENGINE_P_STRIDED_SLICE_STRIDE_0 + axis];
    steps[axis] = (int32_t)slice_steps(start[axis], p[BITTTS_ENGINE_P_STRIDED_SLICE_STOP_0 + axis],
                                       stride[axis]);
  }
  /* check saw every visited index inside its axis: no offset below is
   * negative or past the input. */
  for (i0 = 0; i0 < steps[0]; ++i0) {
    const size_t o0 = (size_t)(start[0] + i0 * stride[0]) * pitch[0];
    for (i1 = 0; i1 < steps[1]; ++i1) {
      const size_t o1 = o0 + (size_t)(start[1] + i1 * stride[1]) * pitch[1];
      for (i2 = 0; i2 < steps[2]; ++i2) {
        const size_t o2 = o1 + (size_t)(start[2] + i2 * stride[2]) * pitch[2];
        if (stride[3] == 1) {
          const size_t run = (size_t)steps[3] * element;
          memcpy(dst, src + o2 + (size_t)start[3] * element, run);
          dst += run;
          continue;
        }
        for (i3 = 0; i3 < steps[3]; ++i3) {
          memcpy(dst, src + o2 + (size_t)(start[3] + i3 * stride[3]) * element, element);
          dst += element;
        }
      }
    }
  }
  return BITTTS_ENGINE_OK;
}

/* --- CONCATENATION ----------------------------------------------------------- */

bittts_engine_status bittts_engine_check_concatenation(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *out;
  int32_t axis, d;
  int64_t total = 0;
  size_t k;
  if (args->n_inputs < 1 || args->n_outputs != 1 ||
      args->n_params != BITTTS_ENGINE_P_CONCATENATION_COUNT)
    return BITTTS_ENGINE_ERR_PARAM;
  out = &args->outputs[0];
  axis = args->params[BITTTS_ENGINE_P_CONCATENATION_AXIS];
  if (out->rank < 1 || axis < 0 || axis >= out->rank) return BITTTS_ENGINE_ERR_PARAM;
  for (k = 0; k < args->n_inputs; ++k) {
    const bittts_engine_tensor *in = &args->inputs[k];
    if (in->type != out->type) return BITTTS_ENGINE_ERR_PARAM;
    if (in->rank != out->rank) return BITTTS_ENGINE_ERR_SIZE;
    for (d = 0; d < out->rank; ++d) {
      if (d != axis && in->dims[d] != out->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
    }
    total += in->dims[axis];
  }
  return total == out->dims[axis] ? BITTTS_ENGINE_OK : BITTTS_ENGINE_ERR_SIZE;
}

bittts_engine_status bittts_engine_eval_concatenation(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *out = &args->outputs[0];
  const int32_t axis = args->params[BITTTS_ENGINE_P_CONCATENATION_AXIS];
  unsigned char *dst = (unsigned char *)out->data;
  size_t outer = 1, inner = bittts_engine_type_bytes(out->type), n, k;
  int32_t d;
  for (d = 0; d < axis; ++d) outer *= (size_t)out->dims[d];
  for (d = axis + 1; d < out->rank; ++d) inner *= (size_t)out->dims[d];
  /* outer blocks, each the inputs' slabs one after the other */
  for (n = 0; n < outer; ++n) {
    for (k = 0; k < args->n_inputs; ++k) {
      const size_t slab = (size_t)args->inputs[k].dims[axis] * inner;
      memcpy(dst, (const unsigned char *)args->inputs[k].data + n * slab, slab);
      dst += slab;
    }
  }
  return BITTTS_ENGINE_OK;
}

/* --- GATHER ------------------------------------------------------------------ */

typedef struct {
  size_t batches, outer, axis_size, coords, inner_bytes;
} gather_geometry;

static void gather_sizes(const bittts_engine_op_args *args, gather_geometry *g) {
  const bittts_engine_tensor *in = &args->inputs[0], *pos = &args->inputs[1];
  const int32_t axis = args->params[BITTTS_ENGINE_P_GATHER_AXIS];
  const int32_t batch_dims = args->params[BITTTS_ENGINE_P_GATHER_BATCH_DIMS];
  int32_t d;
  g->batches = 1, g->outer = 1, g->coords = 1;
  g->inner_bytes = bittts_engine_type_bytes(in->type);
  for (d = 0; d < batch_dims; ++d) g->batches *= (size_t)in->dims[d];
  for (d = batch_dims; d < axis; ++d) g->outer *= (size_t)in->dims[d];
  g->axis_size = (size_t)in->dims[axis];
  for (d = axis + 1; d < in->rank; ++d) g->inner_bytes *= (size_t)in->dims[d];
  for (d = batch_dims; d < pos->rank; ++d) g->coords *= (size_t)pos->dims[d];
}

bittts_engine_status bittts_engine_check_gather(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in, *pos, *out;
  int32_t axis, batch_dims, d, k = 0;
  bittts_engine_status status = expect_arity(args, 2, 1, BITTTS_ENGINE_P_GATHER_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  in = &args->inputs[0], pos = &args->inputs[1], out = &args->outputs[0];
  if ((in->type != BITTTS_ENGINE_TYPE_INT8 && in->type != BITTTS_ENGINE_TYPE_FLOAT32) ||
      pos->type != BITTTS_ENGINE_TYPE_INT32 || out->type != in->type)
    return BITTTS_ENGINE_ERR_UNSUPPORTED;
  axis = args->params[BITTTS_ENGINE_P_GATHER_AXIS];
  batch_dims = args->params[BITTTS_ENGINE_P_GATHER_BATCH_DIMS];
  if (axis < 0 || axis >= in->rank || batch_dims < 0 || batch_dims > axis ||
      batch_dims > pos->rank)
    return BITTTS_ENGINE_ERR_PARAM;
  /* output dims: the input's before the axis, the positions' after the
   * batch dims, the input's after the axis */
  if (out->rank != in->rank + pos->rank - 1 - batch_dims) return BITTTS_ENGINE_ERR_SIZE;
  for (d = 0; d < batch_dims; ++d) {
    if (in->dims[d] != pos->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
  }
  for (d = 0; d < axis; ++d) {
    if (out->dims[k++] != in->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
  }
  for (d = batch_dims; d < pos->rank; ++d) {
    if (out->dims[k++] != pos->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
  }
  for (d = axis + 1; d < in->rank; ++d) {
    if (out->dims[k++] != in->dims[d]) return BITTTS_ENGINE_ERR_SIZE;
  }
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_gather(const bittts_engine_op_args *args) {
  const int32_t *positions = (const int32_t *)args->inputs[1].data;
  const unsigned char *src = (const unsigned char *)args->inputs[0].data;
  unsigned char *dst = (unsigned char *)args->outputs[0].data;
  gather_geometry g;
  size_t b, o, c, i;
  gather_sizes(args, &g);
  /* every position first: a bad one leaves the output unwritten */
  for (i = 0; i < args->inputs[1].count; ++i) {
    if (positions[i] < 0 || (size_t)positions[i] >= g.axis_size) return BITTTS_ENGINE_ERR_INDEX;
  }
  for (b = 0; b < g.batches; ++b) {
    for (o = 0; o < g.outer; ++o) {
      const unsigned char *block = src + (b * g.outer + o) * g.axis_size * g.inner_bytes;
      for (c = 0; c < g.coords; ++c) {
        memcpy(dst, block + (size_t)positions[b * g.coords + c] * g.inner_bytes, g.inner_bytes);
        dst += g.inner_bytes;
      }
    }
  }
  return BITTTS_ENGINE_OK;
}

/* --- QUANTIZE, DEQUANTIZE ---------------------------------------------------- */

static int is_int8_code(int32_t v) { return v >= -128 && v <= 127; }

bittts_engine_status bittts_engine_check_quantize(const bittts_engine_op_args *args) {
  const int32_t *p = args->params;
  const bittts_engine_tensor *in, *out;
  bittts_engine_status status = expect_arity(args, 1, 1, BITTTS_ENGINE_P_QUANTIZE_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  in = &args->inputs[0], out = &args->outputs[0];
  if (out->type != BITTTS_ENGINE_TYPE_INT8) return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (in->count != out->count) return BITTTS_ENGINE_ERR_SIZE;
  if (!is_int8_code(p[BITTTS_ENGINE_P_QUANTIZE_OUTPUT_ZERO_POINT])) return BITTTS_ENGINE_ERR_PARAM;
  if (in->type == BITTTS_ENGINE_TYPE_FLOAT32) {
    const float scale = word_float(p[BITTTS_ENGINE_P_QUANTIZE_OUTPUT_SCALE]);
    return is_finite(scale) && scale > 0.0f ? BITTTS_ENGINE_OK : BITTTS_ENGINE_ERR_PARAM;
  }
  if (in->type == BITTTS_ENGINE_TYPE_INT8) {
    const int32_t shift = p[BITTTS_ENGINE_P_QUANTIZE_SHIFT];
    return is_int8_code(p[BITTTS_ENGINE_P_QUANTIZE_INPUT_ZERO_POINT]) &&
                   p[BITTTS_ENGINE_P_QUANTIZE_MULTIPLIER] >= 0 && shift >= -31 && shift <= 30
               ? BITTTS_ENGINE_OK
               : BITTTS_ENGINE_ERR_PARAM;
  }
  return BITTTS_ENGINE_ERR_UNSUPPORTED;
}

/* TfLiteRound on a float: to nearest, halves away from zero, without libm.
 * Below 2^23 the integer part converts exactly and the fraction x - trunc(x)
 * is exact; from 2^23 on every float is an integer (NaN and infinities pass
 * through). */
static float round_half_away(float x) {
  const float magnitude = x < 0.0f ? -x : x;
  float whole;
  if (!(magnitude < 8388608.0f)) return x;
  whole = (float)(int32_t)magnitude;
  if (magnitude - whole >= 0.5f) whole += 1.0f;
  return x < 0.0f ? -whole : whole;
}

/* The float -> int32 conversion as the TFLM wheel's x86-64 build performs it:
 * NaN and values outside int32 become INT32_MIN (cvttss2si's "indefinite"
 * value), so a zero point added afterwards wraps exactly as it does there. */
static int32_t to_int32_like_host(float rounded) {
  if (!(rounded >= -2147483648.0f && rounded < 2147483648.0f)) return INT32_MIN;
  return (int32_t)rounded;
}

bittts_engine_status bittts_engine_eval_quantize(const bittts_engine_op_args *args) {
  const int32_t *p = args->params;
  const bittts_engine_tensor *in = &args->inputs[0];
  int8_t *y = (int8_t *)args->outputs[0].data;
  const int32_t output_zp = p[BITTTS_ENGINE_P_QUANTIZE_OUTPUT_ZERO_POINT];
  size_t i;
  if (in->type == BITTTS_ENGINE_TYPE_FLOAT32) {
    const float *x = (const float *)in->data;
    const float scale = word_float(p[BITTTS_ENGINE_P_QUANTIZE_OUTPUT_SCALE]);
    for (i = 0; i < in->count; ++i) {
      const int32_t v = wrap_add(to_int32_like_host(round_half_away(x[i] / scale)), output_zp);
      y[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
  } else {
    const int8_t *x = (const int8_t *)in->data;
    const int32_t input_zp = p[BITTTS_ENGINE_P_QUANTIZE_INPUT_ZERO_POINT];
    const int32_t multiplier = p[BITTTS_ENGINE_P_QUANTIZE_MULTIPLIER];
    const int32_t shift = p[BITTTS_ENGINE_P_QUANTIZE_SHIFT];
    for (i = 0; i < in->count; ++i) {
      const int32_t v = wrap_add(
          bittts_conv_multiply_by_quantized_multiplier(x[i] - input_zp, multiplier, shift),
          output_zp);
      y[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
  }
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_dequantize(const bittts_engine_op_args *args) {
  const int32_t *p = args->params;
  bittts_engine_status status = expect_elementwise(args, BITTTS_ENGINE_P_DEQUANTIZE_COUNT,
                                                   BITTTS_ENGINE_TYPE_INT8,
                                                   BITTTS_ENGINE_TYPE_FLOAT32);
  if (status != BITTTS_ENGINE_OK) return status;
  return is_finite(word_float(p[BITTTS_ENGINE_P_DEQUANTIZE_SCALE])) &&
                 is_int8_code(p[BITTTS_ENGINE_P_DEQUANTIZE_ZERO_POINT])
             ? BITTTS_ENGINE_OK
             : BITTTS_ENGINE_ERR_PARAM;
}

bittts_engine_status bittts_engine_eval_dequantize(const bittts_engine_op_args *args) {
  const int8_t *x = (const int8_t *)args->inputs[0].data;
  float *y = (float *)args->outputs[0].data;
  const float scale = word_float(args->params[BITTTS_ENGINE_P_DEQUANTIZE_SCALE]);
  const int32_t zero_point = args->params[BITTTS_ENGINE_P_DEQUANTIZE_ZERO_POINT];
  size_t i;
  /* TFLM multiplies in double; q - zero point has at most 9 bits, so that
   * product is exact and rounds to the same float as this float product. */
  for (i = 0; i < args->inputs[0].count; ++i) y[i] = scale * (float)(x[i] - zero_point);
  return BITTTS_ENGINE_OK;
}

/* --- NEG, CAST, LESS --------------------------------------------------------- */

bittts_engine_status bittts_engine_check_neg(const bittts_engine_op_args *args) {
  return expect_elementwise(args, BITTTS_ENGINE_P_NEG_COUNT, BITTTS_ENGINE_TYPE_FLOAT32,
                            BITTTS_ENGINE_TYPE_FLOAT32);
}

bittts_engine_status bittts_engine_eval_neg(const bittts_engine_op_args *args) {
  const float *x = (const float *)args->inputs[0].data;
  float *y = (float *)args->outputs[0].data;
  size_t i;
  for (i = 0; i < args->inputs[0].count; ++i) y[i] = -x[i];
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_cast(const bittts_engine_op_args *args) {
  return expect_elementwise(args, BITTTS_ENGINE_P_CAST_COUNT, BITTTS_ENGINE_TYPE_BOOL,
                            BITTTS_ENGINE_TYPE_FLOAT32);
}

bittts_engine_status bittts_engine_eval_cast(const bittts_engine_op_args *args) {
  const unsigned char *x = (const unsigned char *)args->inputs[0].data;
  float *y = (float *)args->outputs[0].data;
  size_t i;
  for (i = 0; i < args->inputs[0].count; ++i) y[i] = x[i] ? 1.0f : 0.0f;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_less(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *a, *b, *out;
  int32_t da[RANK], db[RANK], dout[RANK], d;
  bittts_engine_status status = expect_arity(args, 2, 1, BITTTS_ENGINE_P_LESS_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  a = &args->inputs[0], b = &args->inputs[1], out = &args->outputs[0];
  if (a->type != BITTTS_ENGINE_TYPE_INT32 || b->type != BITTTS_ENGINE_TYPE_INT32 ||
      out->type != BITTTS_ENGINE_TYPE_BOOL)
    return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (a->rank > out->rank || b->rank > out->rank) return BITTTS_ENGINE_ERR_SIZE;
  padded_dims(a, da), padded_dims(b, db), padded_dims(out, dout);
  for (d = 0; d < RANK; ++d) {
    if ((da[d] != dout[d] && da[d] != 1) || (db[d] != dout[d] && db[d] != 1) ||
        (da[d] != dout[d] && db[d] != dout[d]))
      return BITTTS_ENGINE_ERR_SIZE;
  }
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_less(const bittts_engine_op_args *args) {
  const int32_t *a = (const int32_t *)args->inputs[0].data;
  const int32_t *b = (const int32_t *)args->inputs[1].data;
  unsigned char *y = (unsigned char *)args->outputs[0].data;
  int32_t da[RANK], db[RANK], dout[RANK], i[RANK];
  size_t sa[RANK], sb[RANK], pa = 1, pb = 1;
  int d;
  padded_dims(&args->inputs[0], da), padded_dims(&args->inputs[1], db);
  padded_dims(&args->outputs[0], dout);
  /* strides of 0 along broadcast dims */
  for (d = RANK - 1; d >= 0; --d) {
    sa[d] = da[d] == 1 ? 0 : pa;
    sb[d] = db[d] == 1 ? 0 : pb;
    pa *= (size_t)da[d], pb *= (size_t)db[d];
  }
  for (i[0] = 0; i[0] < dout[0]; ++i[0]) {
    for (i[1] = 0; i[1] < dout[1]; ++i[1]) {
      for (i[2] = 0; i[2] < dout[2]; ++i[2]) {
        for (i[3] = 0; i[3] < dout[3]; ++i[3]) {
          size_t ia = 0, ib = 0;
          for (d = 0; d < RANK; ++d) ia += (size_t)i[d] * sa[d], ib += (size_t)i[d] * sb[d];
          *y++ = (unsigned char)(a[ia] < b[ib]);
        }
      }
    }
  }
  return BITTTS_ENGINE_OK;
}
