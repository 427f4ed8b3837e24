/* The convolutions: CONV_2D and DEPTHWISE_CONV_2D (int8 NHWC activations,
 * int8 filters with one requantization per output channel, optional int32
 * bias) and the fused ternary convolution (tflite/bittts_ternary_conv.h).
 *
 * The arithmetic is TFLite Micro's reference int8 kernels': per output
 * element an int32 sum of filter * (x + input_offset) over the taps inside
 * the input (padding contributes nothing), plus the bias, through the
 * channel's multiplier and shift, plus the output offset, clamped to the
 * activation range. The lowering (bittts_tf/engine/lower_conv.py) computed
 * the padding, offsets, range and the per-channel multipliers and shifts
 * (inputs 3 and 4) as TFLite Micro's Prepare does; check re-derives what it
 * can from the views and refuses any word that disagrees. */
#include "bittts_engine_fixed.h"
#include "bittts_engine_kernels.h"

#include "bittts_spec.h"
#include "bittts_ternary.h"
#include "bittts_ternary_conv.h"

enum { kInput = 0, kFilter = 1, kBias = 2, kMultipliers = 3, kShifts = 4, kConvInputs = 5 };

/* The accumulator takes at most this many products of |128 * 255| per
 * output before int32 could overflow. */
#define MAX_TAPS 65536L
/* Strides and dilations above this are refused, so every coordinate the
 * loops form stays far inside int32. */
#define MAX_STEP 65535

/* The two's-complement int32 of u (no implementation-defined conversion). */
static int32_t from_bits(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* int32 addition wrapping as the reference kernels' adds do in practice
 * (an adversarial bias near INT32_MAX must not be undefined behaviour). */
static int32_t wrap_add(int32_t a, int32_t b) { return from_bits((uint32_t)a + (uint32_t)b); }

static int is_absent(const bittts_engine_tensor *t) { return t->type == 0 && t->data == NULL; }

static int ranges_overlap(const bittts_engine_tensor *a, const bittts_engine_tensor *b) {
  const uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
  return a->data != NULL && b->data != NULL && a->bytes && b->bytes && a0 < b0 + b->bytes &&
         b0 < a0 + a->bytes;
}

/* TFLite's windowed output size and padding for one spatial dimension;
 * 0 when the words are out of range or no output fits. */
static int32_t window_out(int32_t padding, int32_t in, int32_t filter, int32_t stride,
                          int32_t dilation, int32_t *pad) {
  const int64_t span = (int64_t)(filter - 1) * dilation + 1;
  int64_t out, total;
  if (stride < 1 || stride > MAX_STEP || dilation < 1 || dilation > MAX_STEP) return 0;
  /* every coordinate the loops form lies within -span .. in + stride + span */
  if (span + in + stride > INT32_MAX) return 0;
  if (padding == BITTTS_CONV_PADDING_SAME)
    out = ((int64_t)in + stride - 1) / stride;
  else if (padding == BITTTS_CONV_PADDING_VALID)
    out = ((int64_t)in + stride - span) / stride;
  else
    return 0;
  if (out < 1 || out > INT32_MAX) return 0;
  total = (out - 1) * stride + span - in;
  *pad = (int32_t)(total > 0 ? total / 2 : 0);
  return (int32_t)out;
}

/* check_spatial and read_words read DEPTHWISE_CONV_2D's words by CONV_2D's
 * names: the two lists must agree up to pad_w and keep input_offset ..
 * act_max together (a negative array size stops the build otherwise). */
typedef char conv_words_share_layout[
    (BITTTS_ENGINE_P_CONV_2D_STRIDE_H == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_STRIDE_H &&
     BITTTS_ENGINE_P_CONV_2D_STRIDE_W == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_STRIDE_W &&
     BITTTS_ENGINE_P_CONV_2D_DILATION_H == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_DILATION_H &&
     BITTTS_ENGINE_P_CONV_2D_DILATION_W == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_DILATION_W &&
     BITTTS_ENGINE_P_CONV_2D_PADDING == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_PADDING &&
     BITTTS_ENGINE_P_CONV_2D_PAD_H == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_PAD_H &&
     BITTTS_ENGINE_P_CONV_2D_PAD_W == BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_PAD_W &&
     BITTTS_ENGINE_P_CONV_2D_ACT_MAX == BITTTS_ENGINE_P_CONV_2D_INPUT_OFFSET + 3 &&
     BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_ACT_MAX ==
         BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_INPUT_OFFSET + 3) ? 1 : -1];

typedef struct {
  int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
  int32_t input_offset, output_offset, act_min, act_max;
} conv_words;

/* Output height and width must be the window's, the padding words
 * TFLite's for this input, filter, stride and dilation. */
static bittts_engine_status check_spatial(const int32_t *p, const bittts_engine_tensor *in,
                                          int32_t filter_h, int32_t filter_w,
                                          const bittts_engine_tensor *out) {
  int32_t pad_h = 0, pad_w = 0;
  const int32_t out_h = window_out(p[BITTTS_ENGINE_P_CONV_2D_PADDING], in->dims[1], filter_h,
                                   p[BITTTS_ENGINE_P_CONV_2D_STRIDE_H],
                                   p[BITTTS_ENGINE_P_CONV_2D_DILATION_H], &pad_h);
  const int32_t out_w = window_out(p[BITTTS_ENGINE_P_CONV_2D_PADDING], in->dims[2], filter_w,
                                   p[BITTTS_ENGINE_P_CONV_2D_STRIDE_W],
                                   p[BITTTS_ENGINE_P_CONV_2D_DILATION_W], &pad_w);
  if (out_h == 0 || out_w == 0) return BITTTS_ENGINE_ERR_PARAM;
  if (p[BITTTS_ENGINE_P_CONV_2D_PAD_H] != pad_h || p[BITTTS_ENGINE_P_CONV_2D_PAD_W] != pad_w)
    return BITTTS_ENGINE_ERR_PARAM;
  if (out->dims[0] != in->dims[0] || out->dims[1] != out_h || out->dims[2] != out_w)
    return BITTTS_ENGINE_ERR_SIZE;
  return BITTTS_ENGINE_OK;
}

static int quant_words_valid(int32_t input_offset, int32_t output_offset, int32_t act_min,
                             int32_t act_max) {
  return input_offset >= -127 && input_offset <= 128 && output_offset >= -128 &&
         output_offset <= 127 && act_min >= -128 && act_min <= act_max && act_max <= 127;
}

/* The operands common to both convolutions: int8 rank-4 input, filter and
 * output, an absent or int32 [C] bias, int32 [C] multipliers >= 0 and shifts
 * in -31..30, C the output's channels. */
static bittts_engine_status check_operands(const bittts_engine_op_args *args, size_t n_params) {
  const bittts_engine_tensor *in, *filter, *bias, *mult, *shift, *out;
  size_t c, channels;
  if (args->n_inputs != kConvInputs || args->n_outputs != 1 || args->n_params != n_params)
    return BITTTS_ENGINE_ERR_PARAM;
  in = &args->inputs[kInput], filter = &args->inputs[kFilter], bias = &args->inputs[kBias];
  mult = &args->inputs[kMultipliers], shift = &args->inputs[kShifts], out = &args->outputs[0];
  if (in->type != BITTTS_ENGINE_TYPE_INT8 || filter->type != BITTTS_ENGINE_TYPE_INT8 ||
      out->type != BITTTS_ENGINE_TYPE_INT8 || mult->type != BITTTS_ENGINE_TYPE_INT32 ||
      shift->type != BITTTS_ENGINE_TYPE_INT32 ||
      !(is_absent(bias) || bias->type == BITTTS_ENGINE_TYPE_INT32))
    return BITTTS_ENGINE_ERR_UNSUPPORTED;
  if (in->rank != 4 || filter->rank != 4 || out->rank != 4) return BITTTS_ENGINE_ERR_SIZE;
  channels = (size_t)out->dims[3];
  if (mult->count != channels || shift->count != channels ||
      (!is_absent(bias) && bias->count != channels))
    return BITTTS_ENGINE_ERR_SIZE;
  for (c = 0; c < channels; ++c) {
    const int32_t m = ((const int32_t *)mult->data)[c], s = ((const int32_t *)shift->data)[c];
    if (m < 0 || s < -31 || s > 30) return BITTTS_ENGINE_ERR_PARAM;
  }
  if (ranges_overlap(out, in)) return BITTTS_ENGINE_ERR_SIZE;
  return BITTTS_ENGINE_OK;
}

static void read_words(const int32_t *p, int depthwise, conv_words *w) {
  /* Both lists start stride_h .. pad_w; DEPTHWISE then has depth_multiplier. */
  const size_t tail = depthwise ? BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_INPUT_OFFSET
                                : BITTTS_ENGINE_P_CONV_2D_INPUT_OFFSET;
  w->stride_h = p[BITTTS_ENGINE_P_CONV_2D_STRIDE_H];
  w->stride_w = p[BITTTS_ENGINE_P_CONV_2D_STRIDE_W];
  w->dilation_h = p[BITTTS_ENGINE_P_CONV_2D_DILATION_H];
  w->dilation_w = p[BITTTS_ENGINE_P_CONV_2D_DILATION_W];
  w->pad_h = p[BITTTS_ENGINE_P_CONV_2D_PAD_H];
  w->pad_w = p[BITTTS_ENGINE_P_CONV_2D_PAD_W];
  w->input_offset = p[tail];
  w->output_offset = p[tail + 1];
  w->act_min = p[tail + 2];
  w->act_max = p[tail + 3];
}

static int8_t requantize(int32_t acc, int32_t multiplier, int32_t shift, const conv_words *w) {
  int32_t v = bittts_conv_multiply_by_quantized_multiplier(acc, multiplier, shift);
  v = wrap_add(v, w->output_offset);
  v = v < w->act_min ? w->act_min : (v > w->act_max ? w->act_max : v);
  return (int8_t)v;
}

/* --- CONV_2D ----------------------------------------------------------------- */

bittts_engine_status bittts_engine_check_conv_2d(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in, *filter, *out;
  conv_words w;
  int32_t groups;
  bittts_engine_status status = check_operands(args, BITTTS_ENGINE_P_CONV_2D_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  in = &args->inputs[kInput], filter = &args->inputs[kFilter], out = &args->outputs[0];
  /* filter [Cout, KH, KW, Cin / groups]; grouped when Cin is a multiple. */
  if (filter->dims[0] != out->dims[3] || in->dims[3] % filter->dims[3] != 0)
    return BITTTS_ENGINE_ERR_SIZE;
  groups = in->dims[3] / filter->dims[3];
  if (out->dims[3] % groups != 0) return BITTTS_ENGINE_ERR_SIZE;
  if ((int64_t)filter->dims[1] * filter->dims[2] * filter->dims[3] > MAX_TAPS)
    return BITTTS_ENGINE_ERR_SIZE;
  status = check_spatial(args->params, in, filter->dims[1], filter->dims[2], out);
  if (status != BITTTS_ENGINE_OK) return status;
  read_words(args->params, 0, &w);
  return quant_words_valid(w.input_offset, w.output_offset, w.act_min, w.act_max)
             ? BITTTS_ENGINE_OK
             : BITTTS_ENGINE_ERR_PARAM;
}

bittts_engine_status bittts_engine_eval_conv_2d(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in = &args->inputs[kInput], *filter = &args->inputs[kFilter];
  const bittts_engine_tensor *out = &args->outputs[0];
  const int8_t *x = (const int8_t *)in->data, *f = (const int8_t *)filter->data;
  const int32_t *bias = (const int32_t *)args->inputs[kBias].data;
  const int32_t *mult = (const int32_t *)args->inputs[kMultipliers].data;
  const int32_t *shift = (const int32_t *)args->inputs[kShifts].data;
  int8_t *y = (int8_t *)out->data;
  const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2];
  const int32_t in_c = in->dims[3], out_h = out->dims[1], out_w = out->dims[2];
  const int32_t out_c = out->dims[3], k_h = filter->dims[1], k_w = filter->dims[2];
  const int32_t depth = filter->dims[3], per_group = out_c / (in_c / depth);
  conv_words w;
  int32_t n, oy, ox, oc, ky, kx, c;
  read_words(args->params, 0, &w);
  for (n = 0; n < batches; ++n) {
    for (oy = 0; oy < out_h; ++oy) {
      const int32_t y0 = oy * w.stride_h - w.pad_h;
      for (ox = 0; ox < out_w; ++ox) {
        const int32_t x0 = ox * w.stride_w - w.pad_w;
        for (oc = 0; oc < out_c; ++oc) {
          const int32_t first_channel = (oc / per_group) * depth;
          int32_t acc = 0;
          for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = y0 + ky * w.dilation_h;
            if (iy < 0 || iy >= in_h) continue;
            for (kx = 0; kx < k_w; ++kx) {
              const int32_t ix = x0 + kx * w.dilation_w;
              const int8_t *xp, *fp;
              if (ix < 0 || ix >= in_w) continue;
              xp = x + (((size_t)n * in_h + iy) * in_w + ix) * in_c + first_channel;
              fp = f + (((size_t)oc * k_h + ky) * k_w + kx) * depth;
              for (c = 0; c < depth; ++c) acc += fp[c] * (xp[c] + w.input_offset);
            }
          }
          if (bias != NULL) acc = wrap_add(acc, bias[oc]);
          y[(((size_t)n * out_h + oy) * out_w + ox) * out_c + oc] =
              requantize(acc, mult[oc], shift[oc], &w);
        }
      }
    }
  }
  return BITTTS_ENGINE_OK;
}

/* --- DEPTHWISE_CONV_2D ------------------------------------------------------- */

bittts_engine_status bittts_engine_check_depthwise_conv_2d(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in, *filter, *out;
  conv_words w;
  int32_t multiplier;
  bittts_engine_status status = check_operands(args, BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  in = &args->inputs[kInput], filter = &args->inputs[kFilter], out = &args->outputs[0];
  multiplier = args->params[BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_DEPTH_MULTIPLIER];
  if (multiplier < 1) return BITTTS_ENGINE_ERR_PARAM;
  /* filter [1, KH, KW, Cin * depth multiplier] */
  if (filter->dims[0] != 1 || filter->dims[3] != out->dims[3] ||
      (int64_t)in->dims[3] * multiplier != out->dims[3])
    return BITTTS_ENGINE_ERR_SIZE;
  if ((int64_t)filter->dims[1] * filter->dims[2] > MAX_TAPS) return BITTTS_ENGINE_ERR_SIZE;
  status = check_spatial(args->params, in, filter->dims[1], filter->dims[2], out);
  if (status != BITTTS_ENGINE_OK) return status;
  read_words(args->params, 1, &w);
  return quant_words_valid(w.input_offset, w.output_offset, w.act_min, w.act_max)
             ? BITTTS_ENGINE_OK
             : BITTTS_ENGINE_ERR_PARAM;
}

/* The taps k of 0 .. taps - 1 whose coordinate origin + k * dilation lies
 * in 0 .. size - 1: a contiguous range (dilation >= 1), [*first, *last). */
static void valid_taps(int32_t origin, int32_t dilation, int32_t taps, int32_t size,
                       int32_t *first, int32_t *last) {
  int32_t k = 0;
  while (k < taps && origin + k * dilation < 0) ++k;
  *first = k;
  while (k < taps && origin + k * dilation < size) ++k;
  *last = k;
}

/* Per output position the valid taps are found once, then each output
 * channel sums them with its accumulator in a register and is requantized
 * inline (bittts_engine_fixed.h). The first form (a bounds test and a full
 * index computation per tap per channel, an out-of-line requantization)
 * cost about 33 Cortex-M7 instructions a multiply-add on the shipped
 * [1,1,10,128] * [1,1,7,128] calls: 23.7 M per second of audio. */
bittts_engine_status bittts_engine_eval_depthwise_conv_2d(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in = &args->inputs[kInput], *filter = &args->inputs[kFilter];
  const bittts_engine_tensor *out = &args->outputs[0];
  const int8_t *x = (const int8_t *)in->data, *f = (const int8_t *)filter->data;
  const int32_t *bias = (const int32_t *)args->inputs[kBias].data;
  const int32_t *mult = (const int32_t *)args->inputs[kMultipliers].data;
  const int32_t *shift = (const int32_t *)args->inputs[kShifts].data;
  int8_t *y = (int8_t *)out->data;
  const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2];
  const int32_t in_c = in->dims[3], out_h = out->dims[1], out_w = out->dims[2];
  const int32_t out_c = out->dims[3], k_h = filter->dims[1], k_w = filter->dims[2];
  const int32_t depth_multiplier = args->params[BITTTS_ENGINE_P_DEPTHWISE_CONV_2D_DEPTH_MULTIPLIER];
  conv_words w;
  int32_t n, oy, ox, oc;
  read_words(args->params, 1, &w);
  for (n = 0; n < batches; ++n) {
    for (oy = 0; oy < out_h; ++oy) {
      const int32_t y0 = oy * w.stride_h - w.pad_h;
      int32_t ky_first, ky_last;
      valid_taps(y0, w.dilation_h, k_h, in_h, &ky_first, &ky_last);
      for (ox = 0; ox < out_w; ++ox) {
        const int32_t x0 = ox * w.stride_w - w.pad_w;
        const int32_t input_offset = w.input_offset, output_offset = w.output_offset;
        const int32_t act_min = w.act_min, act_max = w.act_max;
        /* Element steps between a channel's taps: along x in the input and
         * the filter, and from row to row. */
        const size_t x_step = (size_t)w.dilation_w * (size_t)in_c;
        const size_t x_row = (size_t)w.dilation_h * (size_t)in_w * (size_t)in_c;
        const size_t f_row = (size_t)k_w * (size_t)out_c;
        int32_t kx_first, kx_last, n_kx, n_ky;
        const int8_t *x_first;
        const int8_t *f_first;
        int8_t *y_out = y + (((size_t)n * out_h + oy) * out_w + ox) * out_c;
        valid_taps(x0, w.dilation_w, k_w, in_w, &kx_first, &kx_last);
        n_kx = kx_last - kx_first, n_ky = ky_last - ky_first;
        /* Channel 0's first valid tap in the input and in the filter (only
         * formed when a tap is valid: pointers stay inside the views). */
        if (n_kx <= 0 || n_ky <= 0) n_kx = 0, n_ky = 0;
        x_first = n_kx > 0 ? x + (((size_t)n * in_h + (size_t)(y0 + ky_first * w.dilation_h)) *
                                      in_w + (size_t)(x0 + kx_first * w.dilation_w)) * in_c
                           : x;
        f_first = n_kx > 0 ? f + ((size_t)ky_first * k_w + (size_t)kx_first) * out_c : f;
        for (oc = 0; oc < out_c; ++oc) {
          const int32_t ic = oc / depth_multiplier;
          bittts_fixed_requant q;
          int32_t acc = 0, v, ky, kx;
          if (n_kx > 0) {
            /* Offsets, not stepped pointers: a pointer stepped past the last
             * valid tap would leave the view, which C leaves undefined even
             * when nothing is read through it. */
            const int8_t *xc = x_first + ic, *fc = f_first + oc;
            for (ky = 0; ky < n_ky; ++ky) {
              const size_t x_at = (size_t)ky * x_row, f_at = (size_t)ky * f_row;
              for (kx = 0; kx < n_kx; ++kx)
                acc += fc[f_at + (size_t)kx * (size_t)out_c] *
                       (xc[x_at + (size_t)kx * x_step] + input_offset);
            }
          }
          if (bias != NULL) acc = wrap_add(acc, bias[oc]);
          bittts_fixed_requant_init(&q, mult[oc], shift[oc]);
          v = bittts_fixed_requant_apply(acc, q.multiplier, q.left, q.right, q.mask, q.half_mask);
          v = wrap_add(v, output_offset);
          y_out[oc] = (int8_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
        }
      }
    }
  }
  return BITTTS_ENGINE_OK;
}

/* --- TERNARY_CONV ------------------------------------------------------------ */

enum { kTernaryInput = 0, kTernaryPacked = 1, kTernaryBias = 2, kTernaryInputs = 3 };
enum { kTernaryOutput = 0, kTernaryScratch = 1, kTernaryOutputs = 2 };

static bittts_engine_status from_conv_status(bittts_conv_status status) {
  switch (status) {
    case BITTTS_CONV_OK: return BITTTS_ENGINE_OK;
    case BITTTS_CONV_ERR_NULL: return BITTTS_ENGINE_ERR_NULL;
    case BITTTS_CONV_ERR_INDEX: return BITTTS_ENGINE_ERR_INDEX;
    case BITTTS_CONV_ERR_PARAM: return BITTTS_ENGINE_ERR_PARAM;
    /* an overlap is a bad arena layout: a buffer that does not fit */
    case BITTTS_CONV_ERR_SIZE:
    case BITTTS_CONV_ERR_OVERLAP:
    default: return BITTTS_ENGINE_ERR_SIZE;
  }
}

/* The shape and requantization from the views and words; 0 when a word
 * cannot be one (negative sizes are refused before the size_t casts). */
static int ternary_setup(const bittts_engine_op_args *args, bittts_conv_shape *shape,
                         bittts_conv_quant *quant) {
  const int32_t *p = args->params;
  const bittts_engine_tensor *in = &args->inputs[kTernaryInput];
  const bittts_engine_tensor *out = &args->outputs[kTernaryOutput];
  if (p[BITTTS_ENGINE_P_TERNARY_CONV_KERNEL_SIZE] < 1 ||
      p[BITTTS_ENGINE_P_TERNARY_CONV_STRIDE] < 1 || p[BITTTS_ENGINE_P_TERNARY_CONV_DILATION] < 1)
    return 0;
  shape->batches = (size_t)in->dims[0];
  shape->input_length = (size_t)in->dims[2];
  shape->input_channels = (size_t)in->dims[3];
  shape->output_channels = (size_t)out->dims[3];
  shape->kernel_size = (size_t)p[BITTTS_ENGINE_P_TERNARY_CONV_KERNEL_SIZE];
  shape->stride = (size_t)p[BITTTS_ENGINE_P_TERNARY_CONV_STRIDE];
  shape->dilation = (size_t)p[BITTTS_ENGINE_P_TERNARY_CONV_DILATION];
  shape->padding = (int)p[BITTTS_ENGINE_P_TERNARY_CONV_PADDING];
  quant->input_offset = p[BITTTS_ENGINE_P_TERNARY_CONV_INPUT_OFFSET];
  quant->output_offset = p[BITTTS_ENGINE_P_TERNARY_CONV_OUTPUT_OFFSET];
  quant->multiplier = p[BITTTS_ENGINE_P_TERNARY_CONV_MULTIPLIER];
  quant->shift = p[BITTTS_ENGINE_P_TERNARY_CONV_SHIFT];
  quant->act_min = p[BITTTS_ENGINE_P_TERNARY_CONV_ACT_MIN];
  quant->act_max = p[BITTTS_ENGINE_P_TERNARY_CONV_ACT_MAX];
  return 1;
}

bittts_engine_status bittts_engine_check_ternary_conv(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in, *packed, *bias, *out, *scratch;
  bittts_conv_shape shape;
  bittts_conv_quant quant;
  bittts_conv_status status;
  const int8_t *bytes;
  size_t i;
  int bad = 0;
  if (args->n_inputs != kTernaryInputs || args->n_outputs != kTernaryOutputs ||
      args->n_params != BITTTS_ENGINE_P_TERNARY_CONV_COUNT)
    return BITTTS_ENGINE_ERR_PARAM;
  in = &args->inputs[kTernaryInput], packed = &args->inputs[kTernaryPacked];
  bias = &args->inputs[kTernaryBias];
  out = &args->outputs[kTernaryOutput], scratch = &args->outputs[kTernaryScratch];
  if (in->type != BITTTS_ENGINE_TYPE_INT8 || packed->type != BITTTS_ENGINE_TYPE_INT8 ||
      out->type != BITTTS_ENGINE_TYPE_INT8 || scratch->type != BITTTS_ENGINE_TYPE_INT8 ||
      !(is_absent(bias) || bias->type == BITTTS_ENGINE_TYPE_INT32))
    return BITTTS_ENGINE_ERR_UNSUPPORTED;
  /* [N, 1, T, Cin] -> [N, 1, T_out, Cout] */
  if (in->rank != 4 || in->dims[1] != 1 || out->rank != 4 || out->dims[1] != 1)
    return BITTTS_ENGINE_ERR_SIZE;
  if (!ternary_setup(args, &shape, &quant)) return BITTTS_ENGINE_ERR_PARAM;
  /* The scratch must be what the lowering allocates
   * (bittts_conv_i8_fast_scratch_size: room for the widened window when Cin
   * is a multiple of 4), so the board always takes the SIMD path. */
  status = bittts_conv_check_shape(&shape);
  if (status != BITTTS_CONV_OK) return from_conv_status(status);
  if (out->dims[0] != in->dims[0] || (size_t)out->dims[2] != bittts_conv_output_length(&shape) ||
      bittts_check_sizes(packed->count, bittts_conv_weight_count(&shape)) != BITTTS_OK ||
      scratch->count < bittts_conv_i8_fast_scratch_size(&shape) ||
      (!is_absent(bias) && bias->count != shape.output_channels))
    return BITTTS_ENGINE_ERR_SIZE;
  if (quant.multiplier < 0 || quant.shift < -31 || quant.shift > 30 ||
      !quant_words_valid(quant.input_offset, quant.output_offset, quant.act_min, quant.act_max))
    return BITTTS_ENGINE_ERR_PARAM;
  if (ranges_overlap(out, in) || ranges_overlap(out, scratch) || ranges_overlap(scratch, in) ||
      ranges_overlap(out, packed) || ranges_overlap(scratch, packed) ||
      (!is_absent(bias) && (ranges_overlap(out, bias) || ranges_overlap(scratch, bias))))
    return BITTTS_ENGINE_ERR_SIZE;
  bytes = (const int8_t *)packed->data;
  for (i = 0; i < packed->count; ++i)
    bad |= (bytes[i] < BITTTS_MIN_INDEX) | (bytes[i] > BITTTS_MAX_INDEX);
  return bad ? BITTTS_ENGINE_ERR_INDEX : BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_ternary_conv(const bittts_engine_op_args *args) {
  const bittts_engine_tensor *in = &args->inputs[kTernaryInput];
  const bittts_engine_tensor *packed = &args->inputs[kTernaryPacked];
  const bittts_engine_tensor *bias = &args->inputs[kTernaryBias];
  const bittts_engine_tensor *out = &args->outputs[kTernaryOutput];
  const bittts_engine_tensor *scratch = &args->outputs[kTernaryScratch];
  bittts_conv_shape shape;
  bittts_conv_quant quant;
  if (!ternary_setup(args, &shape, &quant)) return BITTTS_ENGINE_ERR_PARAM;
  /* The packed bytes are constant and bittts_engine_check_ternary_conv
   * checked every one when the graph was opened: no scan per call (it cost
   * 8 instructions per byte on Cortex-M7, a fifth of the whole call at 4
   * output frames; tests/c/cortex_m/bench_conv.c). */
  return from_conv_status(bittts_conv_i8_trusted(
      &shape, &quant, (const int8_t *)in->data, in->count, (const int8_t *)packed->data,
      packed->count, (const int32_t *)bias->data, is_absent(bias) ? 0 : bias->count,
      (int8_t *)scratch->data, scratch->count, (int8_t *)out->data, out->count));
}
