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

}  // namespace

const TFLMRegistration* Register_BitTTSTernaryDecode() {
  static const TFLMRegistration registration = tflite::micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

}  // namespace bittts
