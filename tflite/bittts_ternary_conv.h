/* A 1-D convolution whose ternary kernel stays packed (format version 2, see
 * bittts_spec.h): the custom op BitTTSTernaryConv. It reads the packed bytes
 * and accumulates adds and subtracts of the activations, one output channel's
 * row of K * Cin trits decoded at a time into a small caller-provided scratch
 * (bittts_conv_scratch_size elements: int8 for the int8 path, float for the
 * float32 one), so no decoded kernel is ever held in RAM: the int8 codes of a
 * 128 x 5 x 128 kernel take 82 KB (float32: 328 KB), its row 640 elements.
 *
 * Layouts are the ones TFLite's CONV_2D uses for a Keras Conv1D: input NHWC
 * [N, 1, T, Cin], filter [Cout, 1, K, Cin] flattened in that order and packed,
 * output [N, 1, T_out, Cout]; stride and dilation along time, VALID or SAME
 * padding (TFLite's: SAME puts the odd pad element on the right).
 *
 * Plain C99: no allocation, no static mutable state, no I/O, no libm. Every
 * buffer comes with its length; every call checks its sizes, parameters and
 * every packed byte (outside -121..121 is refused; bittts_conv_i8_trusted
 * leaves the bytes to its caller) BEFORE it writes anything, so on any error
 * the output and the scratch are untouched. */
#ifndef BITTTS_TERNARY_CONV_H_
#define BITTTS_TERNARY_CONV_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1..3 have the meanings of bittts_status (bittts_ternary.h). */
typedef enum {
  BITTTS_CONV_OK = 0,
  BITTTS_CONV_ERR_NULL = 1,    /* a required pointer is NULL */
  BITTTS_CONV_ERR_SIZE = 2,    /* a dimension or a buffer length does not fit */
  BITTTS_CONV_ERR_INDEX = 3,   /* a packed byte is outside -121..121 */
  BITTTS_CONV_ERR_PARAM = 4,   /* stride, dilation, padding, activation, scale or
                                  quantization parameters out of range */
  BITTTS_CONV_ERR_OVERLAP = 5  /* the output or the scratch overlaps another buffer */
} bittts_conv_status;

/* Padding and fused activation take the values of the TFLite schema's
 * Padding and ActivationFunctionType enums (bittts_spec.h: BITTTS_CONV_PADDING_*,
 * BITTTS_CONV_ACT_*). */
typedef struct {
  size_t batches;          /* N */
  size_t input_length;     /* T */
  size_t input_channels;   /* Cin */
  size_t output_channels;  /* Cout */
  size_t kernel_size;      /* K */
  size_t stride;           /* >= 1 */
  size_t dilation;         /* >= 1 */
  int padding;             /* BITTTS_CONV_PADDING_VALID or _SAME */
} bittts_conv_shape;

/* Checks a shape: BITTTS_CONV_ERR_PARAM for stride / dilation 0 or an
 * unknown padding, BITTTS_CONV_ERR_SIZE for a zero dimension, no output
 * frame (VALID with T < (K - 1) * dilation + 1), K * Cin above
 * BITTTS_CONV_MAX_ROW or a count that overflows. */
bittts_conv_status bittts_conv_check_shape(const bittts_conv_shape *shape);

/* Element counts of a valid shape (0 for an invalid one). */
size_t bittts_conv_output_length(const bittts_conv_shape *shape);  /* T_out */
size_t bittts_conv_input_size(const bittts_conv_shape *shape);     /* N * T * Cin */
size_t bittts_conv_output_size(const bittts_conv_shape *shape);    /* N * T_out * Cout */
size_t bittts_conv_weight_count(const bittts_conv_shape *shape);   /* Cout * K * Cin */
/* The padding before frame 0 (TFLite's: total / 2, the odd one after). */
size_t bittts_conv_pad_before(const bittts_conv_shape *shape);
/* Scratch elements a call needs (int8 for bittts_conv_i8, float for
 * bittts_conv_f32): one row of K * Cin trits plus the up to 4 + 4 trits of the
 * packed bytes the row starts and ends inside. */
size_t bittts_conv_scratch_size(const bittts_conv_shape *shape);
/* The int8 scratch (bytes) with which bittts_conv_i8 and _trusted take their
 * fastest path where the build has the Arm DSP extension (see
 * bittts_conv_simd): when Cin is a multiple of 4, 2 * K * Cin + 32 (the
 * int16 lanes of two rows decoded together, alignment and margins) plus the
 * activations of up to 16 output frames' input window widened to int16
 * (else the plain size). Any scratch of
 * at least bittts_conv_scratch_size works, with the same bits; this one is
 * what the C engine's lowering allocates. 0 for an invalid shape. */
size_t bittts_conv_i8_fast_scratch_size(const bittts_conv_shape *shape);

/* Float32 activations:
 *   out[n, t, o] = clamp(beta * sum_{k, c} trit[o, k, c] * x[n, t * stride +
 *                  k * dilation - pad, c] + bias[o], act_min, act_max)
 * (frames outside 0..T-1 contribute nothing). bias may be NULL with
 * bias_len 0; beta must be finite; act_min <= act_max (NaN outputs pass
 * through the clamp, as in TFLite). On BITTTS_CONV_ERR_INDEX, *bad_offset
 * (if not NULL) is the offset of the first invalid packed byte. */
bittts_conv_status bittts_conv_f32(const bittts_conv_shape *shape,
                                   const float *input, size_t input_len,
                                   const int8_t *packed, size_t packed_len, float beta,
                                   const float *bias, size_t bias_len,
                                   float act_min, float act_max,
                                   float *scratch, size_t scratch_len,
                                   float *output, size_t output_len, size_t *bad_offset);

/* The int8 path's requantization, TFLite's per-channel CONV_2D arithmetic with
 * the same scale beta on every channel. */
typedef struct {
  int32_t input_offset;   /* minus the input zero point: -127..128 */
  int32_t output_offset;  /* the output zero point: -128..127 */
  int32_t multiplier;     /* bittts_conv_quantize_multiplier of        */
  int32_t shift;          /* input_scale * beta / output_scale: -31..30 */
  int32_t act_min;        /* -128 <= act_min <= act_max <= 127 */
  int32_t act_max;
} bittts_conv_quant;

/* int8 activations, bit-exact with TFLite's (and TFLite Micro's) reference
 * int8 CONV_2D on the decoded codes {-1, 0, 1} with per-channel filter scale
 * beta:
 *   acc = sum_{k, c} trit * (x + input_offset)   (int32; padding frames add 0)
 *   acc += bias[o]                                (int32, scale input_scale * beta)
 *   out = clamp(bittts_conv_multiply_by_quantized_multiplier(acc, multiplier,
 *               shift) + output_offset, act_min, act_max)
 * bias may be NULL with bias_len 0. Errors as bittts_conv_f32. */
bittts_conv_status bittts_conv_i8(const bittts_conv_shape *shape, const bittts_conv_quant *quant,
                                  const int8_t *input, size_t input_len,
                                  const int8_t *packed, size_t packed_len,
                                  const int32_t *bias, size_t bias_len,
                                  int8_t *scratch, size_t scratch_len,
                                  int8_t *output, size_t output_len, size_t *bad_offset);

/* bittts_conv_i8 without the scan of the packed bytes, for a caller that
 * checked them once against -121..121 and keeps them constant (the C engine
 * validates its constant kernels when it opens a graph, see
 * bittts_engine_check_ternary_conv): the scan of every byte on every call
 * cost 8 instructions a byte on Cortex-M7, a fifth of a 4-frame call once
 * the rest was fast (702 K against 571 K instructions for K 5, 128 -> 128;
 * tests/c/cortex_m/bench_conv.c). Every other check
 * stays and still comes before any write. Should a byte be out of range all
 * the same, its trits read as 0 (a wrong result, never an access outside
 * the table or the buffers). */
bittts_conv_status bittts_conv_i8_trusted(const bittts_conv_shape *shape,
                                          const bittts_conv_quant *quant,
                                          const int8_t *input, size_t input_len,
                                          const int8_t *packed, size_t packed_len,
                                          const int32_t *bias, size_t bias_len,
                                          int8_t *scratch, size_t scratch_len,
                                          int8_t *output, size_t output_len);

/* 1 when this build's int8 path uses the Arm DSP extension's SIMD (SXTB16 /
 * SMLAD: Cortex-M4, M7, M33 with DSP; not with -DBITTTS_CONV_NO_ACLE), else
 * 0; the results are the same bits either way. */
int bittts_conv_simd(void);

/* TFLite's QuantizeMultiplier: real = multiplier * 2^(shift - 31) with
 * multiplier in [2^30, 2^31) (the significand rounded half away from zero,
 * a carry to 2^31 halved into the shift), or 0 and 0 for a real of 0 or
 * below 2^-32 (flushed). BITTTS_CONV_ERR_PARAM for a negative or non-finite
 * real, or one whose shift exceeds 30 (above about 2^30). */
bittts_conv_status bittts_conv_quantize_multiplier(double real, int32_t *multiplier,
                                                   int32_t *shift);

/* TFLite's MultiplyByQuantizedMultiplier (the default, double-rounding one):
 * x shifted left by max(shift, 0) (wrapping as int32), the rounding doubling
 * high multiply by multiplier (saturating only for INT32_MIN * INT32_MIN),
 * then a rounding divide by 2^max(-shift, 0), ties away from zero. shift must
 * be in -31..30 (else 0 is returned). */
int32_t bittts_conv_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                     int32_t shift);

/* TFLite's activation ranges: float (NONE: -FLT_MAX..FLT_MAX, RELU: 0..FLT_MAX,
 * RELU_N1_TO_1: -1..1, RELU6: 0..6) and int8 (-128..127 narrowed to zero point
 * + round(bound / scale), ties away from zero, saturated).
 * BITTTS_CONV_ERR_PARAM for an unknown activation, or a scale that is not
 * positive and finite, or a zero point outside -128..127. */
bittts_conv_status bittts_conv_activation_range_f32(int activation, float *act_min,
                                                    float *act_max);
bittts_conv_status bittts_conv_activation_range_i8(int activation, float output_scale,
                                                   int32_t output_zero_point, int32_t *act_min,
                                                   int32_t *act_max);

/* The op's custom options (bittts_spec.h BITTTS_CONV_OPTIONS_*): a FlexBuffer
 * typed vector of BITTTS_CONV_OPTION_COUNT uint32 (kernel_size, stride,
 * dilation, padding, activation) with 32-bit elements and a 1-byte root,
 * exactly BITTTS_CONV_OPTIONS_BYTES bytes; bittts_tf.quant.spec writes it. */
typedef struct {
  size_t kernel_size;
  size_t stride;
  size_t dilation;
  int padding;
  int activation;
} bittts_conv_options;

/* BITTTS_CONV_ERR_SIZE when the bytes are not that layout (length, type
 * byte, root offset, vector length), BITTTS_CONV_ERR_PARAM when a value is out
 * of range (kernel size, stride or dilation 0 or above 65535, unknown padding
 * or activation); *options is written only on success. */
bittts_conv_status bittts_conv_parse_options(const uint8_t *data, size_t len,
                                             bittts_conv_options *options);
/* Writes the BITTTS_CONV_OPTIONS_BYTES bytes of `options` (for C callers and
 * tests); BITTTS_CONV_ERR_SIZE when len is smaller, ERR_PARAM as the parser. */
bittts_conv_status bittts_conv_write_options(const bittts_conv_options *options, uint8_t *data,
                                             size_t len);

const char *bittts_conv_status_message(bittts_conv_status status);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_TERNARY_CONV_H_ */
