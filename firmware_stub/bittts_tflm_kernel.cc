// TFLite Micro glue around the C99 decoder: tensor checks in Prepare, the
// scratch table requested there, and Eval only decodes (no allocation).
//
// inputs:  0 packed indices, int8 [ceil(n / 5)], constant
//          1 scale, float32 [1]
// output:  0 weights, float32 (trit * scale) or int8 (trit), n elements
//
// Define BITTTS_TFLM_MULSHIFT to decode float32 without the 4860-byte table
// (slower; for arenas that cannot spare it).
#include "bittts_tflm_kernel.h"

#include <stddef.h>
#include <stdint.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"
#include "bittts_ternary_conv.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace bittts {
namespace {

constexpr int kPackedInput = 0;
constexpr int kScaleInput = 1;
constexpr int kWeightsOutput = 0;

struct OpData {
  size_t packed_bytes;
  size_t num_weights;
  int table_index;  // scratch buffer of the float32 table, -1 if none
};

// 0 for a negative (unknown) dimension: such a tensor is refused.
size_t ElementCount(const TfLiteIntArray* dims) {
  if (dims == nullptr) return 0;
  size_t count = 1;
  for (int i = 0; i < dims->size; ++i) {
    if (dims->data[i] < 0) return 0;
    count *= static_cast<size_t>(dims->data[i]);
  }
  return count;
}

TfLiteStatus Fail(const char* what) {
  MicroPrintf("%s: %s", BITTTS_OP_NAME, what);
  return kTfLiteError;
}

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

TfLiteStatus CheckTensors(TfLiteContext* context, const TfLiteTensor* packed,
                          const TfLiteTensor* scale, const TfLiteTensor* weights,
                          OpData* data) {
  if (packed == nullptr || scale == nullptr || weights == nullptr)
    return Fail("missing tensor");
  if (packed->type != kTfLiteInt8) {
    MicroPrintf("%s: packed indices must be int8 (format version %d); convert the model again",
                BITTTS_OP_NAME, BITTTS_FORMAT_VERSION);
    return kTfLiteError;
  }
  if (scale->type != kTfLiteFloat32 || ElementCount(scale->dims) != 1)
    return Fail("scale must be a single float32");
  if (weights->type != kTfLiteFloat32 && weights->type != kTfLiteInt8)
    return Fail("output must be float32 or int8");
  data->packed_bytes = ElementCount(packed->dims);
  data->num_weights = ElementCount(weights->dims);
  if (data->num_weights == 0 ||
      bittts_check_sizes(data->packed_bytes, data->num_weights) != BITTTS_OK) {
    MicroPrintf("%s: %u weights need %u packed bytes, the tensor has %u", BITTTS_OP_NAME,
                static_cast<unsigned>(data->num_weights),
                static_cast<unsigned>(bittts_packed_size(data->num_weights)),
                static_cast<unsigned>(data->packed_bytes));
    return kTfLiteError;
  }
  data->table_index = -1;
#ifndef BITTTS_TFLM_MULSHIFT
  if (weights->type == kTfLiteFloat32) {
    return context->RequestScratchBufferInArena(
        context, BITTTS_F32_TABLE_SIZE * sizeof(float), &data->table_index);
  }
#else
  (void)context;
#endif
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  if (data == nullptr) return Fail("no persistent buffer (arena too small?)");
  if (node->inputs == nullptr || node->inputs->size != 2 || node->outputs == nullptr ||
      node->outputs->size != 1)
    return Fail("expects 2 inputs (packed indices, scale) and 1 output");
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* packed = micro_context->AllocateTempInputTensor(node, kPackedInput);
  TfLiteTensor* scale = micro_context->AllocateTempInputTensor(node, kScaleInput);
  TfLiteTensor* weights = micro_context->AllocateTempOutputTensor(node, kWeightsOutput);
  const TfLiteStatus status = CheckTensors(context, packed, scale, weights, data);
  if (packed != nullptr) micro_context->DeallocateTempTfLiteTensor(packed);
  if (scale != nullptr) micro_context->DeallocateTempTfLiteTensor(scale);
  if (weights != nullptr) micro_context->DeallocateTempTfLiteTensor(weights);
  return status;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const OpData* data = static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* packed = tflite::micro::GetEvalInput(context, node, kPackedInput);
  const TfLiteEvalTensor* scale = tflite::micro::GetEvalInput(context, node, kScaleInput);
  TfLiteEvalTensor* weights = tflite::micro::GetEvalOutput(context, node, kWeightsOutput);
  if (data == nullptr || packed == nullptr || scale == nullptr || weights == nullptr)
    return Fail("missing tensor");
  const int8_t* indices = tflite::micro::GetTensorData<int8_t>(packed);
  size_t bad = 0;
  bittts_status status;
  if (weights->type == kTfLiteFloat32) {
    const float s = *tflite::micro::GetTensorData<float>(scale);
    float* out = tflite::micro::GetTensorData<float>(weights);
#ifndef BITTTS_TFLM_MULSHIFT
    float* table = static_cast<float*>(context->GetScratchBuffer(context, data->table_index));
    if (table == nullptr) return Fail("no scratch buffer for the decode table");
    bittts_fill_f32_table(s, table);
    status = bittts_decode_f32_with_table(indices, data->packed_bytes, table, out,
                                          data->num_weights, &bad);
#else
    status = bittts_decode_f32_mulshift(indices, data->packed_bytes, s, out, data->num_weights,
                                        &bad);
#endif
  } else {
    status = bittts_decode_i8(indices, data->packed_bytes,
                              tflite::micro::GetTensorData<int8_t>(weights), data->num_weights,
                              &bad);
  }
  if (status == BITTTS_ERR_INDEX) {
    MicroPrintf("%s: packed byte %u is %d, outside " BITTTS_INDEX_RANGE_TEXT " (corrupt model?)",
                BITTTS_OP_NAME, static_cast<unsigned>(bad), static_cast<int>(indices[bad]));
    return kTfLiteError;
  }
  if (status != BITTTS_OK) return Fail(bittts_status_message(status));
  return kTfLiteOk;
}


// --- BitTTSTernaryConv -------------------------------------------------------
//
// inputs:  0 activations, float32 or int8 [N, 1, T, Cin] (int8: per-tensor
//            scale and zero point)
//          1 packed indices, int8 [ceil(Cout * K * Cin / 5)], constant
//          2 scale beta, float32 [1], constant (int8: every channel's filter scale)
//          3 bias, optional (absent or -1): float32 [Cout], or int32 [Cout]
//            with scale input scale * beta
// output:  0 float32 or int8 [N, 1, T_out, Cout]
// custom options: kernel size, stride, dilation, padding, fused activation.
//
// Prepare checks everything, computes the requantization and requests one
// scratch row of K * Cin (+ 8) trits in the arena, int8 or float like the
// activations; Eval only computes.

constexpr int kConvInput = 0;
constexpr int kConvPacked = 1;
constexpr int kConvScale = 2;
constexpr int kConvBias = 3;
constexpr int kConvOutput = 0;

struct ConvData {
  bittts_conv_shape shape;
  bittts_conv_quant quant;  // int8
  float beta;
  float act_min;  // float32
  float act_max;
  size_t input_size;
  size_t output_size;
  size_t packed_bytes;
  size_t scratch_elements;
  int scratch_index;
  bool has_bias;
};

TfLiteStatus ConvFail(const char* what) {
  MicroPrintf("%s: %s", BITTTS_CONV_OP_NAME, what);
  return kTfLiteError;
}

void* ConvInit(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(ConvData));
}

bool IsOneDim(const TfLiteIntArray* dims) {
  return dims != nullptr && dims->size == 4 && dims->data[0] > 0 && dims->data[1] == 1 &&
         dims->data[2] > 0 && dims->data[3] > 0;
}

TfLiteStatus ConvCheck(TfLiteContext* context, TfLiteNode* node, const TfLiteTensor* input,
                       const TfLiteTensor* packed, const TfLiteTensor* scale,
                       const TfLiteTensor* bias, const TfLiteTensor* output, ConvData* data) {
  bittts_conv_options options;
  if (input == nullptr || packed == nullptr || scale == nullptr || output == nullptr)
    return ConvFail("missing tensor");
  if (bittts_conv_parse_options(static_cast<const uint8_t*>(node->custom_initial_data),
                                node->custom_initial_data != nullptr &&
                                        node->custom_initial_data_size > 0
                                    ? static_cast<size_t>(node->custom_initial_data_size)
                                    : 0,
                                &options) != BITTTS_CONV_OK)
    return ConvFail("custom options are not the op's options vector: convert the model again");
  if (input->type != kTfLiteFloat32 && input->type != kTfLiteInt8)
    return ConvFail("activations must be float32 or int8");
  if (output->type != input->type) return ConvFail("the output's type must be the activations'");
  if (packed->type != kTfLiteInt8) return ConvFail("packed indices must be int8");
  if (scale->type != kTfLiteFloat32 || ElementCount(scale->dims) != 1 ||
      scale->data.data == nullptr)
    return ConvFail("scale must be a single constant float32");
  if (!IsOneDim(input->dims) || !IsOneDim(output->dims))
    return ConvFail("activations must be [N, 1, T, Cin] and the output [N, 1, T_out, Cout]");
  data->shape.batches = static_cast<size_t>(input->dims->data[0]);
  data->shape.input_length = static_cast<size_t>(input->dims->data[2]);
  data->shape.input_channels = static_cast<size_t>(input->dims->data[3]);
  data->shape.output_channels = static_cast<size_t>(output->dims->data[3]);
  data->shape.kernel_size = options.kernel_size;
  data->shape.stride = options.stride;
  data->shape.dilation = options.dilation;
  data->shape.padding = options.padding;
  const bittts_conv_status status = bittts_conv_check_shape(&data->shape);
  if (status != BITTTS_CONV_OK) return ConvFail(bittts_conv_status_message(status));
  if (output->dims->data[0] != input->dims->data[0] ||
      static_cast<size_t>(output->dims->data[2]) != bittts_conv_output_length(&data->shape))
    return ConvFail("the output's frames do not follow from the input's, kernel size, "
                    "stride, dilation and padding");
  data->input_size = bittts_conv_input_size(&data->shape);
  data->output_size = bittts_conv_output_size(&data->shape);
  data->packed_bytes = ElementCount(packed->dims);
  if (bittts_check_sizes(data->packed_bytes, bittts_conv_weight_count(&data->shape)) !=
      BITTTS_OK) {
    MicroPrintf("%s: %u weights need %u packed bytes, the tensor has %u", BITTTS_CONV_OP_NAME,
                static_cast<unsigned>(bittts_conv_weight_count(&data->shape)),
                static_cast<unsigned>(bittts_packed_size(bittts_conv_weight_count(&data->shape))),
                static_cast<unsigned>(data->packed_bytes));
    return kTfLiteError;
  }
  data->has_bias = bias != nullptr;
  if (bias != nullptr &&
      (bias->type != (input->type == kTfLiteFloat32 ? kTfLiteFloat32 : kTfLiteInt32) ||
       ElementCount(bias->dims) != data->shape.output_channels))
    return ConvFail("bias must be float32 [Cout] (float32 activations) or int32 [Cout] (int8)");
  data->beta = *static_cast<const float*>(scale->data.data);
  if (!(data->beta - data->beta == 0.0f) ||
      (input->type == kTfLiteInt8 && !(data->beta >= 0.0f)))
    return ConvFail("scale is not finite (or negative for int8; corrupt model?)");
  if (input->type == kTfLiteFloat32) {
    if (bittts_conv_activation_range_f32(options.activation, &data->act_min, &data->act_max) !=
        BITTTS_CONV_OK)
      return ConvFail("unknown fused activation");
  } else {
    const TfLiteQuantizationParams in = input->params;
    const TfLiteQuantizationParams out = output->params;
    if (!(in.scale > 0.0f) || !(out.scale > 0.0f) || in.zero_point < -128 ||
        in.zero_point > 127)
      return ConvFail("int8 activations need per-tensor scales and zero points");
    // TFLite's per-channel multiplier: double(input) * double(filter) / double(output).
    const double real = static_cast<double>(in.scale) * static_cast<double>(data->beta) /
                        static_cast<double>(out.scale);
    if (bittts_conv_quantize_multiplier(real, &data->quant.multiplier, &data->quant.shift) !=
        BITTTS_CONV_OK)
      return ConvFail("input scale x beta / output scale is out of TFLite's multiplier range");
    data->quant.input_offset = -in.zero_point;
    data->quant.output_offset = out.zero_point;
    if (bittts_conv_activation_range_i8(options.activation, out.scale, out.zero_point,
                                        &data->quant.act_min,
                                        &data->quant.act_max) != BITTTS_CONV_OK)
      return ConvFail("unknown fused activation or output quantization out of range");
  }
  data->scratch_elements = bittts_conv_scratch_size(&data->shape);
  return context->RequestScratchBufferInArena(
      context, data->scratch_elements * (input->type == kTfLiteFloat32 ? sizeof(float) : 1),
      &data->scratch_index);
}

TfLiteStatus ConvPrepare(TfLiteContext* context, TfLiteNode* node) {
  ConvData* data = static_cast<ConvData*>(node->user_data);
  if (data == nullptr) return ConvFail("no persistent buffer (arena too small?)");
  if (node->inputs == nullptr || (node->inputs->size != 3 && node->inputs->size != 4) ||
      node->outputs == nullptr || node->outputs->size != 1)
    return ConvFail("expects 3 or 4 inputs (activations, packed indices, scale, optional "
                    "bias) and 1 output");
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kConvInput);
  TfLiteTensor* packed = micro_context->AllocateTempInputTensor(node, kConvPacked);
  TfLiteTensor* scale = micro_context->AllocateTempInputTensor(node, kConvScale);
  TfLiteTensor* bias = node->inputs->size == 4 && node->inputs->data[kConvBias] >= 0
                           ? micro_context->AllocateTempInputTensor(node, kConvBias)
                           : nullptr;
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kConvOutput);
  TfLiteStatus status = kTfLiteOk;
  if (node->inputs->size == 4 && node->inputs->data[kConvBias] >= 0 && bias == nullptr)
    status = ConvFail("missing bias tensor");
  else
    status = ConvCheck(context, node, input, packed, scale, bias, output, data);
  TfLiteTensor* temporaries[] = {input, packed, scale, bias, output};
  for (TfLiteTensor* tensor : temporaries)
    if (tensor != nullptr) micro_context->DeallocateTempTfLiteTensor(tensor);
  return status;
}

TfLiteStatus ConvEval(TfLiteContext* context, TfLiteNode* node) {
  const ConvData* data = static_cast<const ConvData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, kConvInput);
  const TfLiteEvalTensor* packed = tflite::micro::GetEvalInput(context, node, kConvPacked);
  const TfLiteEvalTensor* bias = data != nullptr && data->has_bias
                                     ? tflite::micro::GetEvalInput(context, node, kConvBias)
                                     : nullptr;
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, kConvOutput);
  if (data == nullptr || input == nullptr || packed == nullptr || output == nullptr ||
      (data->has_bias && bias == nullptr))
    return ConvFail("missing tensor");
  void* scratch = context->GetScratchBuffer(context, data->scratch_index);
  if (scratch == nullptr) return ConvFail("no scratch buffer for the kernel row");
  const int8_t* indices = tflite::micro::GetTensorData<int8_t>(packed);
  size_t bad = 0;
  bittts_conv_status status;
  if (input->type == kTfLiteFloat32) {
    status = bittts_conv_f32(&data->shape, tflite::micro::GetTensorData<float>(input),
                             data->input_size, indices, data->packed_bytes, data->beta,
                             bias ? tflite::micro::GetTensorData<float>(bias) : nullptr,
                             bias ? data->shape.output_channels : 0, data->act_min,
                             data->act_max, static_cast<float*>(scratch),
                             data->scratch_elements,
                             tflite::micro::GetTensorData<float>(output), data->output_size,
                             &bad);
  } else {
    status = bittts_conv_i8(&data->shape, &data->quant,
                            tflite::micro::GetTensorData<int8_t>(input), data->input_size,
                            indices, data->packed_bytes,
                            bias ? tflite::micro::GetTensorData<int32_t>(bias) : nullptr,
                            bias ? data->shape.output_channels : 0, static_cast<int8_t*>(scratch),
                            data->scratch_elements, tflite::micro::GetTensorData<int8_t>(output),
                            data->output_size, &bad);
  }
  if (status == BITTTS_CONV_ERR_INDEX) {
    MicroPrintf("%s: packed byte %u is %d, outside " BITTTS_INDEX_RANGE_TEXT " (corrupt model?)",
                BITTTS_CONV_OP_NAME, static_cast<unsigned>(bad), static_cast<int>(indices[bad]));
    return kTfLiteError;
  }
  if (status != BITTTS_CONV_OK) return ConvFail(bittts_conv_status_message(status));
  return kTfLiteOk;
}

}  // namespace

const TFLMRegistration* Register_BitTTSTernaryDecode() {
  static const TFLMRegistration registration = tflite::micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

const TFLMRegistration* Register_BitTTSTernaryConv() {
  static const TFLMRegistration registration =
      tflite::micro::RegisterOp(ConvInit, ConvPrepare, ConvEval);
  return &registration;
}

}  // namespace bittts
