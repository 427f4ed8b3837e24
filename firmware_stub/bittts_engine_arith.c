/* The int8 arithmetic kernels: ADD, SUB, MUL, SQUARED_DIFFERENCE, RSQRT,
 * LOGISTIC and MEAN, bit-exact with TFLite Micro's reference kernels. Their
 * parameter words are computed by bittts_tf/engine/lower_arith.py as TFLM's
 * Prepare computes its op data; eval gives TFLM's per-element integer
 * results (requantization by the inline forms of bittts_engine_fixed.h,
 * verified equal to bittts_conv_multiply_by_quantized_multiplier; LOGISTIC
 * by a table its check proves equal to the arithmetic).
 *
 * The binary ops broadcast as TFLM does: shapes right-aligned and padded to
 * four dims with ones, a dim of one repeated along the other input's. */
#include "bittts_engine_fixed.h"
#include "bittts_engine_kernels.h"
#include "bittts_ternary_conv.h"

#define ENGINE_RANK BITTTS_ENGINE_MAX_RANK

/* ADD, SUB and SQUARED_DIFFERENCE share one parameter layout (lower_arith.py
 * _RESCALED_PAIR_WORDS); the kernels read all three through ADD's indices. */
#define SAME_INDEX(name)                                                                   \
  (BITTTS_ENGINE_P_ADD_##name == BITTTS_ENGINE_P_SUB_##name &&                             \
   BITTTS_ENGINE_P_ADD_##name == BITTTS_ENGINE_P_SQUARED_DIFFERENCE_##name)
typedef char rescaled_pair_layouts_agree
    [(SAME_INDEX(INPUT1_OFFSET) && SAME_INDEX(INPUT2_OFFSET) && SAME_INDEX(OUTPUT_OFFSET) &&
      SAME_INDEX(LEFT_SHIFT) && SAME_INDEX(INPUT1_MULTIPLIER) && SAME_INDEX(INPUT1_SHIFT) &&
      SAME_INDEX(INPUT2_MULTIPLIER) && SAME_INDEX(INPUT2_SHIFT) &&
      SAME_INDEX(OUTPUT_MULTIPLIER) && SAME_INDEX(OUTPUT_SHIFT) && SAME_INDEX(ACT_MIN) &&
      SAME_INDEX(ACT_MAX) && BITTTS_ENGINE_P_ADD_COUNT == BITTTS_ENGINE_P_SUB_COUNT &&
      BITTTS_ENGINE_P_ADD_COUNT == BITTTS_ENGINE_P_SQUARED_DIFFERENCE_COUNT)
         ? 1
         : -1];

/* int8 ADD and SUB shift inputs left by 20 before rescaling, and
 * SQUARED_DIFFERENCE by 7 (TFLM's constants). Up to these, (x - zero point)
 * << shift, at most 255 * 2^20, and the sum or difference of two rescaled
 * values stay far inside int32; the square of a difference of two values
 * each at most 255 * 2^7 * multiplier / 2^31 stays inside it for TFLM's
 * multipliers (each at most one half). */
#define ADD_MAX_LEFT_SHIFT 20
#define SQUARED_DIFFERENCE_MAX_LEFT_SHIFT 7
/* RSQRT scales 1 / sqrt(x) by 2^20 between its two requantizations. */
#define RSQRT_INTERMEDIATE_SHIFT 20
/* LOGISTIC's int8 path: Q4 input, output 1/256 per step from -128. */
#define LOGISTIC_INPUT_INTEGER_BITS 4
#define LOGISTIC_OUTPUT_SHIFT 23
/* MEAN sums in int32: 2^23 int8 codes minus their zero point fit. */
#define MEAN_MAX_REDUCED (1L << 23)

/* --- shared checks */

static int in_range(int32_t v, int32_t lo, int32_t hi) { return v >= lo && v <= hi; }

/* An int8 view whose dims, count and bytes agree. */
static int is_int8_view(const bittts_engine_tensor *t) {
  size_t count = 1;
  int32_t d;
  if (t->type != BITTTS_ENGINE_TYPE_INT8 || t->data == NULL || !in_range(t->rank, 0, ENGINE_RANK))
    return 0;
  for (d = 0; d < t->rank; ++d) {
    if (t->dims[d] < 1 || count > (size_t)-1 / (size_t)t->dims[d]) return 0;
    count *= (size_t)t->dims[d];
  }
  return count == t->count && t->bytes >= count;
}

static bittts_engine_status check_arity(const bittts_engine_op_args *args, size_t n_inputs,
                                        size_t n_params) {
  size_t k;
  if (args->n_inputs != n_inputs || args->n_outputs != 1) return BITTTS_ENGINE_ERR_PARAM;
  if (args->n_params != n_params) return BITTTS_ENGINE_ERR_PARAM;
  for (k = 0; k < n_inputs; ++k) {
    if (!is_int8_view(&args->inputs[k])) return BITTTS_ENGINE_ERR_UNSUPPORTED;
  }
  return is_int8_view(&args->outputs[0]) ? BITTTS_ENGINE_OK : BITTTS_ENGINE_ERR_UNSUPPORTED;
}

static int same_dims(const bittts_engine_tensor *a, const bittts_engine_tensor *b) {
  int32_t d;
  if (a->rank != b->rank) return 0;
  for (d = 0; d < a->rank; ++d) {
    if (a->dims[d] != b->dims[d]) return 0;
  }
  return 1;
}

/* The activation clamp lies in int8 and is not empty. */
static int is_clamp(int32_t act_min, int32_t act_max) {
  return act_min >= -128 && act_min <= act_max && act_max <= 127;
}

/* Offsets: minus an int8 zero point for inputs, the zero point for outputs. */
static int is_input_offset(int32_t offset) { return in_range(offset, -127, 128); }
static int is_zero_point(int32_t zero_point) { return in_range(zero_point, -128, 127); }

static int8_t clamp_int8(int32_t v, int32_t lo, int32_t hi) {
  return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* --- broadcasting */

typedef struct {
  int32_t dims[ENGINE_RANK];     /* the output's, padded on the left with ones */
  size_t strides1[ENGINE_RANK];  /* element strides of the inputs; 0 along a */
  size_t strides2[ENGINE_RANK];  /* dim they repeat */
} broadcast_plan;

static int32_t padded_dim(const bittts_engine_tensor *t, int d) {
  const int pad = ENGINE_RANK - t->rank;
  return d < pad ? 1 : t->dims[d - pad];
}

/* The output is exactly the broadcast of the two inputs' shapes. */
static int plan_broadcast(const bittts_engine_tensor *a, const bittts_engine_tensor *b,
                          const bittts_engine_tensor *out, broadcast_plan *plan) {
  size_t stride1 = 1, stride2 = 1;
  int d;
  if (out->rank != (a->rank > b->rank ? a->rank : b->rank)) return 0;
  for (d = ENGINE_RANK - 1; d >= 0; --d) {
    const int32_t da = padded_dim(a, d), db = padded_dim(b, d), dout = padded_dim(out, d);
    if (da != db && da != 1 && db != 1) return 0;
    if (dout != (da == 1 ? db : da)) return 0;
    plan->dims[d] = dout;
    plan->strides1[d] = da == 1 ? 0 : stride1;
    plan->strides2[d] = db == 1 ? 0 : stride2;
    stride1 *= (size_t)da;
    stride2 *= (size_t)db;
  }
  return 1;
}

/* --- two-input ops */

typedef struct {
  int32_t input1_offset, input2_offset, output_offset, left_shift;
  int32_t input1_multiplier, input1_shift, input2_multiplier, input2_shift;
  int32_t output_multiplier, output_shift, act_min, act_max;
} pair_params;

static void read_rescaled_pair(const int32_t *w, pair_params *p) {
  p->input1_offset = w[BITTTS_ENGINE_P_ADD_INPUT1_OFFSET];
  p->input2_offset = w[BITTTS_ENGINE_P_ADD_INPUT2_OFFSET];
  p->output_offset = w[BITTTS_ENGINE_P_ADD_OUTPUT_OFFSET];
  p->left_shift = w[BITTTS_ENGINE_P_ADD_LEFT_SHIFT];
  p->input1_multiplier = w[BITTTS_ENGINE_P_ADD_INPUT1_MULTIPLIER];
  p->input1_shift = w[BITTTS_ENGINE_P_ADD_INPUT1_SHIFT];
  p->input2_multiplier = w[BITTTS_ENGINE_P_ADD_INPUT2_MULTIPLIER];
  p->input2_shift = w[BITTTS_ENGINE_P_ADD_INPUT2_SHIFT];
  p->output_multiplier = w[BITTTS_ENGINE_P_ADD_OUTPUT_MULTIPLIER];
  p->output_shift = w[BITTTS_ENGINE_P_ADD_OUTPUT_SHIFT];
  p->act_min = w[BITTTS_ENGINE_P_ADD_ACT_MIN];
  p->act_max = w[BITTTS_ENGINE_P_ADD_ACT_MAX];
}

static void read_mul(const int32_t *w, pair_params *p) {
  p->left_shift = 0, p->input1_multiplier = 0, p->input1_shift = 0;
  p->input2_multiplier = 0, p->input2_shift = 0; /* MUL has no input rescaling */
  p->input1_offset = w[BITTTS_ENGINE_P_MUL_INPUT1_OFFSET];
  p->input2_offset = w[BITTTS_ENGINE_P_MUL_INPUT2_OFFSET];
  p->output_offset = w[BITTTS_ENGINE_P_MUL_OUTPUT_OFFSET];
  p->output_multiplier = w[BITTTS_ENGINE_P_MUL_OUTPUT_MULTIPLIER];
  p->output_shift = w[BITTTS_ENGINE_P_MUL_OUTPUT_SHIFT];
  p->act_min = w[BITTTS_ENGINE_P_MUL_ACT_MIN];
  p->act_max = w[BITTTS_ENGINE_P_MUL_ACT_MAX];
}

/* max_left_shift: the op's bound on left_shift; output_may_grow: whether the
 * output multiplier may exceed one (a positive output shift). */
static bittts_engine_status check_rescaled_pair(const bittts_engine_op_args *args,
                                                int32_t max_left_shift, int output_may_grow) {
  broadcast_plan plan;
  pair_params p;
  bittts_engine_status status = check_arity(args, 2, BITTTS_ENGINE_P_ADD_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  if (!plan_broadcast(&args->inputs[0], &args->inputs[1], &args->outputs[0], &plan))
    return BITTTS_ENGINE_ERR_SIZE;
  read_rescaled_pair(args->params, &p);
  if (!is_input_offset(p.input1_offset) || !is_input_offset(p.input2_offset) ||
      !is_zero_point(p.output_offset) || !in_range(p.left_shift, 0, max_left_shift) ||
      p.input1_multiplier < 0 || !in_range(p.input1_shift, -31, 0) ||
      p.input2_multiplier < 0 || !in_range(p.input2_shift, -31, 0) ||
      p.output_multiplier < 0 || !in_range(p.output_shift, -31, output_may_grow ? 30 : 0) ||
      !is_clamp(p.act_min, p.act_max))
    return BITTTS_ENGINE_ERR_PARAM;
  return BITTTS_ENGINE_OK;
}

/* --- the broadcast walked as rows
 *
 * The plan's dims with the ones dropped and neighbours merged wherever each
 * input either runs through both contiguously or repeats along both; the
 * innermost merged dim is the row, along which each input steps by 1 or
 * repeats (step 0). Every shape pair of the shipped graphs becomes one row
 * (equal shapes, a scalar) or rows with one input repeating along them (a
 * per-frame scalar [4,128] x [4,1], per channel [4,128] x [128]), so the
 * row kernels below compute a repeating input's rescaled value once per row.
 * They replaced a 4-D index walk calling a function pointer per element:
 * with the row kernels and DOWNSCALE below, the shipped voice's MUL went
 * from 117 to 36 M Cortex-M7 instructions per second of audio (about 70 to
 * under 20 an element; the figure also carries the time between frames-graph
 * invocations, which the board's op clock charges to its first op, a MUL),
 * ADD from 70 to 15, SUB from 23 to 2.7. */
typedef struct {
  size_t dims[ENGINE_RANK];     /* outer dims first, padded with ones; the */
  size_t strides1[ENGINE_RANK]; /* last is the row (its strides 0 or 1) */
  size_t strides2[ENGINE_RANK];
} row_walk;

static void plan_rows(const broadcast_plan *plan, row_walk *w) {
  size_t dims[ENGINE_RANK], s1[ENGINE_RANK], s2[ENGINE_RANK];
  int d, n = 0;
  for (d = 0; d < ENGINE_RANK; ++d) {
    const size_t dim = (size_t)plan->dims[d];
    if (dim == 1) continue;
    if (n > 0 && s1[n - 1] == plan->strides1[d] * dim && s2[n - 1] == plan->strides2[d] * dim) {
      dims[n - 1] *= dim, s1[n - 1] = plan->strides1[d], s2[n - 1] = plan->strides2[d];
      continue;
    }
    dims[n] = dim, s1[n] = plan->strides1[d], s2[n] = plan->strides2[d], ++n;
  }
  for (d = 0; d < ENGINE_RANK; ++d) {
    const int k = d - (ENGINE_RANK - n); /* right-aligned: the last kept dim is the row */
    w->dims[d] = k >= 0 ? dims[k] : 1;
    w->strides1[d] = k >= 0 ? s1[k] : 0;
    w->strides2[d] = k >= 0 ? s2[k] : 0;
  }
}

/* One row: z[i] from x[i * sx] and y[i * sy], i < n; sx and sy are 0 or 1,
 * not both 0 unless n is 1. */
typedef void (*row_fn)(const void *ctx, const int8_t *x, size_t sx, const int8_t *y, size_t sy,
                       int8_t *z, size_t n);

static void walk_rows(const bittts_engine_op_args *args, row_fn row, const void *ctx) {
  const bittts_engine_tensor *a = &args->inputs[0], *b = &args->inputs[1];
  const int8_t *x = (const int8_t *)a->data, *y = (const int8_t *)b->data;
  int8_t *z = (int8_t *)args->outputs[0].data;
  broadcast_plan plan;
  row_walk w;
  size_t i, j, k;
  (void)plan_broadcast(a, b, &args->outputs[0], &plan); /* check accepted these shapes */
  plan_rows(&plan, &w);
  for (i = 0; i < w.dims[0]; ++i) {
    for (j = 0; j < w.dims[1]; ++j) {
      for (k = 0; k < w.dims[2]; ++k) {
        row(ctx, x + i * w.strides1[0] + j * w.strides1[1] + k * w.strides1[2], w.strides1[3],
            y + i * w.strides2[0] + j * w.strides2[1] + k * w.strides2[2], w.strides2[3], z,
            w.dims[3]);
        z += w.dims[3];
      }
    }
  }
}

/* Requantization words copied out of a context into locals before a loop:
 * the int8 stores could alias the context, which would otherwise reload every
 * word per element. REQUANT is the general MultiplyByQuantizedMultiplier;
 * DOWNSCALE its one-rounding form with the output offset folded in
 * (bittts_engine_fixed.h), for a right shift and |x| < 2^30, taking 2x. */
#define REQUANT_LOCALS(prefix, q)                                                          \
  const int32_t prefix##_m = (q).multiplier, prefix##_mask = (q).mask,                   \
                prefix##_half = (q).half_mask;                                           \
  const int prefix##_left = (q).left, prefix##_right = (q).right
#define REQUANT(prefix, v)                                                                 \
  bittts_fixed_requant_apply((v), prefix##_m, prefix##_left, prefix##_right, prefix##_mask, \
                             prefix##_half)
#define DOWNSCALE_LOCALS(prefix, d)                                                        \
  const int32_t prefix##_m = (d).multiplier;                                               \
  const int64_t prefix##_nudge = (d).nudge;                                                \
  const int prefix##_shift = (d).shift
#define DOWNSCALE(prefix, twice_v) \
  bittts_fixed_downscale_apply((twice_v), prefix##_m, prefix##_nudge, prefix##_shift)

static int8_t offset_and_clamp(int32_t v, int32_t offset, int32_t lo, int32_t hi) {
  /* Wraps as TFLM's int32 addition would (a large positive shift can put v
   * near the int32 limits). */
  return clamp_int8(bittts_fixed_from_bits((uint32_t)v + (uint32_t)offset), lo, hi);
}

/* ADD, SUB and SQUARED_DIFFERENCE: both inputs moved to a common scale
 * ((code - zero point) * 2^left_shift, requantized by a multiplier below one),
 * combined, requantized to the output.
 *
 * The fast path (every shipped ADD and SUB; `fast`) needs right shifts for
 * input 2 and the output (whose offset DOWNSCALE folds in), the whole int8
 * range as the clamp (SSAT), and for input 1 a right shift or the exact
 * halving: the larger-scale input's multiplier is one half with shift 0 (its
 * scale over twice itself), and then floor((v * 2^30 + 2^30) / 2^31) for v
 * even is v / 2, so twice its rescaled value is (code - zero point) *
 * 2^left_shift itself. Rescaled inputs are below 2^28 in magnitude and their
 * sum or difference below 2^29 (check's bounds), inside DOWNSCALE's 2^30.
 * SQUARED_DIFFERENCE's square is not, and it takes the general path. */
typedef struct {
  int32_t offset1, offset2, output_offset, act_min, act_max;
  int32_t scale;  /* 2^left_shift */
  int halving1;   /* input 1's rescale is exactly a halving */
  int fast;
  bittts_fixed_requant in1, in2, out;
  bittts_fixed_downscale down1, down2, down_out;
} rescaled_ctx;

static int full_clamp(int32_t act_min, int32_t act_max) {
  return act_min == -128 && act_max == 127;
}

static void read_rescaled_ctx(const int32_t *w, rescaled_ctx *c, int allow_fast) {
  pair_params p;
  int down1, down2, down_out;
  read_rescaled_pair(w, &p);
  c->offset1 = p.input1_offset, c->offset2 = p.input2_offset;
  c->output_offset = p.output_offset, c->act_min = p.act_min, c->act_max = p.act_max;
  c->scale = (int32_t)1 << p.left_shift;
  bittts_fixed_requant_init(&c->in1, p.input1_multiplier, p.input1_shift);
  bittts_fixed_requant_init(&c->in2, p.input2_multiplier, p.input2_shift);
  bittts_fixed_requant_init(&c->out, p.output_multiplier, p.output_shift);
  c->halving1 = p.input1_multiplier == ((int32_t)1 << 30) && p.input1_shift == 0 &&
                p.left_shift >= 1; /* v even */
  down1 = bittts_fixed_downscale_init(&c->down1, p.input1_multiplier, p.input1_shift, 0);
  down2 = bittts_fixed_downscale_init(&c->down2, p.input2_multiplier, p.input2_shift, 0);
  down_out = bittts_fixed_downscale_init(&c->down_out, p.output_multiplier, p.output_shift,
                                         p.output_offset);
  c->fast = allow_fast && down2 && down_out && (down1 || c->halving1) &&
            full_clamp(p.act_min, p.act_max);
}

/* The general row of a rescaled pair op: any parameters check accepts. */
#define RESCALED_GENERAL_LOOP(COMBINE)                                                     \
  do {                                                                                     \
    const int32_t offset1 = c->offset1, offset2 = c->offset2, scale = c->scale;            \
    const int32_t output_offset = c->output_offset, lo = c->act_min, hi = c->act_max;      \
    REQUANT_LOCALS(r1, c->in1);                                                            \
    REQUANT_LOCALS(r2, c->in2);                                                            \
    REQUANT_LOCALS(ro, c->out);                                                            \
    size_t i;                                                                              \
    for (i = 0; i < n; ++i) {                                                              \
      const int32_t a = REQUANT(r1, (x[i * sx] + offset1) * scale);                        \
      const int32_t b = REQUANT(r2, (y[i * sy] + offset2) * scale);                        \
      z[i] = offset_and_clamp(REQUANT(ro, COMBINE(a, b)), output_offset, lo, hi);          \
    }                                                                                      \
  } while (0)

/* Twice input 1's rescaled value (a2) for a code: the halving's exact
 * product, or DOWNSCALE's (of twice the shifted code), doubled. */
#define TWICE_RESCALED1(code)                                                              \
  (halving1 ? ((code) + offset1) * scale                                                   \
            : 2 * DOWNSCALE(d1, ((code) + offset1) * twice_scale))

/* The fast row of ADD (SIGN +) or SUB (SIGN -): twice the raw value is
 * a2 SIGN 2 * b, a2 from TWICE_RESCALED1, b input 2's rescaled value; a
 * repeating input's is computed once per row. */
#define DEFINE_RESCALED_ROW(name, SIGN)                                                     \
  static void name(const void *ctx, const int8_t *x, size_t sx, const int8_t *y, size_t sy, \
                   int8_t *z, size_t n) {                                                   \
    const rescaled_ctx *c = (const rescaled_ctx *)ctx;                                      \
    if (!c->fast) {                                                                         \
      RESCALED_GENERAL_LOOP(COMBINE_##name);                                                \
    } else {                                                                                \
      const int32_t offset1 = c->offset1, offset2 = c->offset2, scale = c->scale;           \
      const int32_t twice_scale = 2 * scale;                                                \
      const int halving1 = c->halving1;                                                     \
      DOWNSCALE_LOCALS(d1, c->down1);                                                       \
      DOWNSCALE_LOCALS(d2, c->down2);                                                       \
      DOWNSCALE_LOCALS(dout, c->down_out);                                                  \
      size_t i;                                                                             \
      if (sy == 0) { /* y repeats along the row (x steps, or n is 1) */                     \
        const int32_t twice_b = 2 * DOWNSCALE(d2, (y[0] + offset2) * twice_scale);          \
        if (halving1) {                                                                     \
          for (i = 0; i < n; ++i)                                                           \
            z[i] = (int8_t)bittts_fixed_saturate_int8(                                      \
                DOWNSCALE(dout, (x[i] + offset1) * scale SIGN twice_b));                    \
        } else {                                                                            \
          for (i = 0; i < n; ++i)                                                           \
            z[i] = (int8_t)bittts_fixed_saturate_int8(DOWNSCALE(                            \
                dout, 2 * DOWNSCALE(d1, (x[i] + offset1) * twice_scale) SIGN twice_b));     \
        }                                                                                   \
      } else if (sx == 0) { /* x repeats along the row */                                   \
        const int32_t twice_a = TWICE_RESCALED1(x[0]);                                      \
        for (i = 0; i < n; ++i)                                                             \
          z[i] = (int8_t)bittts_fixed_saturate_int8(DOWNSCALE(                              \
              dout, twice_a SIGN 2 * DOWNSCALE(d2, (y[i] + offset2) * twice_scale)));       \
      } else if (halving1) {                                                                \
        for (i = 0; i < n; ++i)                                                             \
          z[i] = (int8_t)bittts_fixed_saturate_int8(                                        \
              DOWNSCALE(dout, (x[i] + offset1) * scale SIGN                                 \
                                  2 * DOWNSCALE(d2, (y[i] + offset2) * twice_scale)));      \
      } else {                                                                              \
        for (i = 0; i < n; ++i)                                                             \
          z[i] = (int8_t)bittts_fixed_saturate_int8(                                        \
              DOWNSCALE(dout, 2 * DOWNSCALE(d1, (x[i] + offset1) * twice_scale) SIGN        \
                                  2 * DOWNSCALE(d2, (y[i] + offset2) * twice_scale)));      \
      }                                                                                     \
    }                                                                                       \
  }

#define COMBINE_add_row(a, b) ((a) + (b))
#define COMBINE_sub_row(a, b) ((a) - (b))
DEFINE_RESCALED_ROW(add_row, +)
DEFINE_RESCALED_ROW(sub_row, -)

/* The square fits for TFLM's multipliers; it wraps as TFLM's build would
 * otherwise. */
#define COMBINE_SQUARED_DIFFERENCE(a, b) \
  bittts_fixed_from_bits((uint32_t)((a) - (b)) * (uint32_t)((a) - (b)))

static void squared_difference_row(const void *ctx, const int8_t *x, size_t sx, const int8_t *y,
                                   size_t sy, int8_t *z, size_t n) {
  const rescaled_ctx *c = (const rescaled_ctx *)ctx;
  RESCALED_GENERAL_LOOP(COMBINE_SQUARED_DIFFERENCE);
}

/* MUL: (x - zero point) * (y - zero point), at most 255 * 255, requantized.
 * The fast path (every shipped MUL) needs a right shift and the whole int8
 * range as the clamp. */
typedef struct {
  int32_t offset1, offset2, output_offset, act_min, act_max;
  int fast;
  bittts_fixed_requant out;
  bittts_fixed_downscale down_out;
} mul_ctx;

static void mul_row(const void *ctx, const int8_t *x, size_t sx, const int8_t *y, size_t sy,
                    int8_t *z, size_t n) {
  const mul_ctx *c = (const mul_ctx *)ctx;
  const int32_t offset1 = c->offset1, offset2 = c->offset2;
  size_t i;
  if (!c->fast) { /* the general path: any parameters check accepts */
    const int32_t output_offset = c->output_offset, lo = c->act_min, hi = c->act_max;
    REQUANT_LOCALS(ro, c->out);
    for (i = 0; i < n; ++i)
      z[i] = offset_and_clamp(REQUANT(ro, (x[i * sx] + offset1) * (y[i * sy] + offset2)),
                              output_offset, lo, hi);
  } else if (sy == 0 || sx == 0) { /* one input repeats along the row: the product commutes */
    DOWNSCALE_LOCALS(dout, c->down_out);
    const int8_t *steps = sy == 0 ? x : y;
    const int32_t step_offset = sy == 0 ? offset1 : offset2;
    const int32_t twice_factor = 2 * (sy == 0 ? y[0] + offset2 : x[0] + offset1);
    for (i = 0; i < n; ++i)
      z[i] = (int8_t)bittts_fixed_saturate_int8(
          DOWNSCALE(dout, (steps[i] + step_offset) * twice_factor));
  } else {
    DOWNSCALE_LOCALS(dout, c->down_out);
    for (i = 0; i < n; ++i)
      z[i] = (int8_t)bittts_fixed_saturate_int8(
          DOWNSCALE(dout, (x[i] + offset1) * (2 * (y[i] + offset2))));
  }
}

bittts_engine_status bittts_engine_check_add(const bittts_engine_op_args *args) {
  return check_rescaled_pair(args, ADD_MAX_LEFT_SHIFT, 0);
}

bittts_engine_status bittts_engine_eval_add(const bittts_engine_op_args *args) {
  rescaled_ctx c;
  read_rescaled_ctx(args->params, &c, 1);
  walk_rows(args, add_row, &c);
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_sub(const bittts_engine_op_args *args) {
  return check_rescaled_pair(args, ADD_MAX_LEFT_SHIFT, 0);
}

bittts_engine_status bittts_engine_eval_sub(const bittts_engine_op_args *args) {
  rescaled_ctx c;
  read_rescaled_ctx(args->params, &c, 1);
  walk_rows(args, sub_row, &c);
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_squared_difference(const bittts_engine_op_args *args) {
  return check_rescaled_pair(args, SQUARED_DIFFERENCE_MAX_LEFT_SHIFT, 1);
}

bittts_engine_status bittts_engine_eval_squared_difference(const bittts_engine_op_args *args) {
  rescaled_ctx c;
  read_rescaled_ctx(args->params, &c, 0);
  walk_rows(args, squared_difference_row, &c);
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_check_mul(const bittts_engine_op_args *args) {
  broadcast_plan plan;
  pair_params p;
  bittts_engine_status status = check_arity(args, 2, BITTTS_ENGINE_P_MUL_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  if (!plan_broadcast(&args->inputs[0], &args->inputs[1], &args->outputs[0], &plan))
    return BITTTS_ENGINE_ERR_SIZE;
  read_mul(args->params, &p);
  if (!is_input_offset(p.input1_offset) || !is_input_offset(p.input2_offset) ||
      !is_zero_point(p.output_offset) || p.output_multiplier < 0 ||
      !in_range(p.output_shift, -31, 30) || !is_clamp(p.act_min, p.act_max))
    return BITTTS_ENGINE_ERR_PARAM;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_mul(const bittts_engine_op_args *args) {
  pair_params p;
  mul_ctx c;
  read_mul(args->params, &p);
  c.offset1 = p.input1_offset, c.offset2 = p.input2_offset, c.output_offset = p.output_offset;
  c.act_min = p.act_min, c.act_max = p.act_max;
  bittts_fixed_requant_init(&c.out, p.output_multiplier, p.output_shift);
  c.fast = bittts_fixed_downscale_init(&c.down_out, p.output_multiplier, p.output_shift,
                                       p.output_offset) &&
           full_clamp(p.act_min, p.act_max);
  walk_rows(args, mul_row, &c);
  return BITTTS_ENGINE_OK;
}

/* --- RSQRT */

bittts_engine_status bittts_engine_check_rsqrt(const bittts_engine_op_args *args) {
  const int32_t *w = args->params;
  bittts_engine_status status = check_arity(args, 1, BITTTS_ENGINE_P_RSQRT_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  if (!same_dims(&args->inputs[0], &args->outputs[0])) return BITTTS_ENGINE_ERR_SIZE;
  /* The second requantization shifts by output_shift - 20, which must lie
   * in -31..30. */
  if (!is_zero_point(w[BITTTS_ENGINE_P_RSQRT_INPUT_ZERO_POINT]) ||
      !is_zero_point(w[BITTTS_ENGINE_P_RSQRT_OUTPUT_OFFSET]) ||
      w[BITTTS_ENGINE_P_RSQRT_OUTPUT_MULTIPLIER] < 0 ||
      !in_range(w[BITTTS_ENGINE_P_RSQRT_OUTPUT_SHIFT], -31 + RSQRT_INTERMEDIATE_SHIFT,
                30 + RSQRT_INTERMEDIATE_SHIFT))
    return BITTTS_ENGINE_ERR_PARAM;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_rsqrt(const bittts_engine_op_args *args) {
  const int32_t *w = args->params;
  const int32_t zero_point = w[BITTTS_ENGINE_P_RSQRT_INPUT_ZERO_POINT];
  const int32_t offset = w[BITTTS_ENGINE_P_RSQRT_OUTPUT_OFFSET];
  const int32_t multiplier = w[BITTTS_ENGINE_P_RSQRT_OUTPUT_MULTIPLIER];
  const int32_t shift = w[BITTTS_ENGINE_P_RSQRT_OUTPUT_SHIFT] - RSQRT_INTERMEDIATE_SHIFT;
  const int8_t *x = (const int8_t *)args->inputs[0].data;
  int8_t *y = (int8_t *)args->outputs[0].data;
  size_t i;
  for (i = 0; i < args->inputs[0].count; ++i) {
    const int32_t value = x[i] - zero_point;
    int32_t inv_multiplier, inv_shift, scaled;
    /* TFLM fails the invoke on a code below the zero point (a negative
     * input); the engine refuses it too rather than invent a value. */
    if (value < 0) return BITTTS_ENGINE_ERR_PARAM;
    if (value == 0) {
      y[i] = 127; /* TFLM's stand-in for the infinite 1/sqrt(0) */
      continue;
    }
    /* value <= 255 keeps inv_shift in -1..0, so the shift below is 19..20. */
    bittts_fixed_inv_sqrt(value, &inv_multiplier, &inv_shift);
    scaled = bittts_conv_multiply_by_quantized_multiplier(1, inv_multiplier,
                                                          inv_shift + RSQRT_INTERMEDIATE_SHIFT);
    scaled = bittts_conv_multiply_by_quantized_multiplier(scaled, multiplier, shift);
    y[i] = clamp_int8(bittts_fixed_wrapping_add(scaled, offset), -128, 127);
  }
  return BITTTS_ENGINE_OK;
}

/* --- LOGISTIC
 *
 * An int8 -> int8 function of the code: the lowering stores its 256 values
 * (code -128 first) as a constant second input, computed by this file's
 * arithmetic (logistic_code, run through the one-input form), and check
 * recomputes and compares every entry, so the table can only ever equal the
 * arithmetic. Eval is then a lookup: on the Cortex-M7 the arithmetic took
 * about 350 instructions an element (108 M per second of audio for the
 * shipped 200 calls of 1,536 codes), the lookup 2.0 M; the check costs about
 * 256 * 350 instructions per op per open (0.7 M for the frames graph's eight,
 * per utterance). The one-input form (no table) stays for the lowering and
 * the tests. */
#define LOGISTIC_TABLE_SIZE 256

typedef struct {
  int32_t zero_point, radius, multiplier, shift;
} logistic_params;

static void read_logistic(const int32_t *w, logistic_params *p) {
  p->zero_point = w[BITTTS_ENGINE_P_LOGISTIC_INPUT_ZERO_POINT];
  p->radius = w[BITTTS_ENGINE_P_LOGISTIC_INPUT_RANGE_RADIUS];
  p->multiplier = w[BITTTS_ENGINE_P_LOGISTIC_INPUT_MULTIPLIER];
  p->shift = w[BITTTS_ENGINE_P_LOGISTIC_INPUT_LEFT_SHIFT];
}

/* TFLM's int8 logistic of one code. */
static int8_t logistic_code(const logistic_params *p, int32_t code) {
  const int32_t value = code - p->zero_point;
  int32_t q4, q0;
  if (value <= -p->radius) return -128;
  if (value >= p->radius) return 127;
  q4 = bittts_conv_multiply_by_quantized_multiplier(value, p->multiplier, p->shift);
  q0 = bittts_fixed_logistic_q4(q4);
  return clamp_int8(bittts_fixed_rounding_shift_right(q0, LOGISTIC_OUTPUT_SHIFT) - 128, -128, 127);
}

static int is_logistic_table(const bittts_engine_tensor *t) {
  return t->rank == 1 && t->count == LOGISTIC_TABLE_SIZE; /* an int8 view (check_arity) */
}

bittts_engine_status bittts_engine_check_logistic(const bittts_engine_op_args *args) {
  const int32_t *w = args->params;
  logistic_params p;
  int32_t code;
  const size_t n_inputs = args->n_inputs == 2 ? 2 : 1;
  bittts_engine_status status = check_arity(args, n_inputs, BITTTS_ENGINE_P_LOGISTIC_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  if (!same_dims(&args->inputs[0], &args->outputs[0])) return BITTTS_ENGINE_ERR_SIZE;
  read_logistic(w, &p);
  if (!is_zero_point(p.zero_point) || p.multiplier < 0 || !in_range(p.shift, 0, 30))
    return BITTTS_ENGINE_ERR_PARAM;
  /* No larger than TFLM's radius for this shift (the largest Q4 magnitude,
   * 15 * 2^27, shifted back), so every input inside it scales into Q4
   * without wrapping. */
  if (!in_range(p.radius, 0, (int32_t)((15L << 27) >> p.shift))) return BITTTS_ENGINE_ERR_PARAM;
  if (n_inputs == 2) {
    const int8_t *table = (const int8_t *)args->inputs[1].data;
    if (!is_logistic_table(&args->inputs[1])) return BITTTS_ENGINE_ERR_SIZE;
    for (code = -128; code <= 127; ++code) {
      if (table[code + 128] != logistic_code(&p, code)) return BITTTS_ENGINE_ERR_PARAM;
    }
  }
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_logistic(const bittts_engine_op_args *args) {
  const int8_t *x = (const int8_t *)args->inputs[0].data;
  int8_t *y = (int8_t *)args->outputs[0].data;
  const size_t count = args->inputs[0].count;
  size_t i;
  if (args->n_inputs == 2) {
    /* Indexed from its middle: code c is entry c + 128. */
    const int8_t *middle = (const int8_t *)args->inputs[1].data + 128;
    for (i = 0; i < count; ++i) y[i] = middle[x[i]];
  } else {
    logistic_params p;
    read_logistic(args->params, &p);
    for (i = 0; i < count; ++i) y[i] = logistic_code(&p, x[i]);
  }
  return BITTTS_ENGINE_OK;
}

/* --- MEAN over one axis */

/* Elements before and after the axis (outer, inner). */
static void split_at_axis(const bittts_engine_tensor *t, int32_t axis, size_t *outer,
                          size_t *inner) {
  int32_t d;
  *outer = 1, *inner = 1;
  for (d = 0; d < axis; ++d) *outer *= (size_t)t->dims[d];
  for (d = axis + 1; d < t->rank; ++d) *inner *= (size_t)t->dims[d];
}

bittts_engine_status bittts_engine_check_mean(const bittts_engine_op_args *args) {
  const int32_t *w = args->params;
  const bittts_engine_tensor *in = &args->inputs[0], *out = &args->outputs[0];
  int32_t axis, d;
  bittts_engine_status status = check_arity(args, 1, BITTTS_ENGINE_P_MEAN_COUNT);
  if (status != BITTTS_ENGINE_OK) return status;
  axis = w[BITTTS_ENGINE_P_MEAN_AXIS];
  if (!in_range(axis, 0, in->rank - 1)) return BITTTS_ENGINE_ERR_PARAM;
  if (w[BITTTS_ENGINE_P_MEAN_REDUCED_COUNT] != in->dims[axis] ||
      in->dims[axis] > MEAN_MAX_REDUCED)
    return BITTTS_ENGINE_ERR_PARAM;
  /* The output keeps the axis as a dim of one, or drops it. */
  if (out->rank == in->rank) {
    for (d = 0; d < in->rank; ++d) {
      if (out->dims[d] != (d == axis ? 1 : in->dims[d])) return BITTTS_ENGINE_ERR_SIZE;
    }
  } else if (out->rank == in->rank - 1) {
    for (d = 0; d < out->rank; ++d) {
      if (out->dims[d] != in->dims[d < axis ? d : d + 1]) return BITTTS_ENGINE_ERR_SIZE;
    }
  } else {
    return BITTTS_ENGINE_ERR_SIZE;
  }
  if (!is_zero_point(w[BITTTS_ENGINE_P_MEAN_INPUT_ZERO_POINT]) ||
      !is_zero_point(w[BITTTS_ENGINE_P_MEAN_OUTPUT_OFFSET]) ||
      w[BITTTS_ENGINE_P_MEAN_OUTPUT_MULTIPLIER] < 0 ||
      !in_range(w[BITTTS_ENGINE_P_MEAN_OUTPUT_SHIFT], -31, 30))
    return BITTTS_ENGINE_ERR_PARAM;
  return BITTTS_ENGINE_OK;
}

bittts_engine_status bittts_engine_eval_mean(const bittts_engine_op_args *args) {
  const int32_t *w = args->params;
  const bittts_engine_tensor *in = &args->inputs[0];
  const int32_t axis = w[BITTTS_ENGINE_P_MEAN_AXIS];
  const int32_t zero_point = w[BITTTS_ENGINE_P_MEAN_INPUT_ZERO_POINT];
  const int32_t offset = w[BITTTS_ENGINE_P_MEAN_OUTPUT_OFFSET];
  const int32_t multiplier = w[BITTTS_ENGINE_P_MEAN_OUTPUT_MULTIPLIER];
  const int32_t shift = w[BITTTS_ENGINE_P_MEAN_OUTPUT_SHIFT];
  const size_t reduced = (size_t)in->dims[axis];
  const int8_t *x = (const int8_t *)in->data;
  int8_t *y = (int8_t *)args->outputs[0].data;
  size_t outer, inner, o, i, k;
  split_at_axis(in, axis, &outer, &inner);
  for (o = 0; o < outer; ++o) {
    const int8_t *block = x + o * reduced * inner;
    for (i = 0; i < inner; ++i) {
      int32_t sum = 0, v;
      for (k = 0; k < reduced; ++k) sum += block[k * inner + i];
      /* TFLM takes the zero point off the sum, not off each code. */
      sum -= zero_point * (int32_t)reduced;
      v = bittts_conv_multiply_by_quantized_multiplier(sum, multiplier, shift);
      *y++ = clamp_int8(bittts_fixed_wrapping_add(v, offset), -128, 127);
    }
  }
  return BITTTS_ENGINE_OK;
}
