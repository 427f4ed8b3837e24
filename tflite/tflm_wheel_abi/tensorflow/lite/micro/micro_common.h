// The registration record TFLM copies by value into its op resolver, so it
// must be the whole record of the pinned wheel. See ../../../README.md.
#ifndef BITTTS_TFLM_WHEEL_ABI_MICRO_COMMON_H_
#define BITTTS_TFLM_WHEEL_ABI_MICRO_COMMON_H_

#include "tensorflow/lite/c/common.h"

struct TFLMRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  void (*reset)(TfLiteContext* context, void* buffer);
  int32_t builtin_code;
  const char* custom_name;
};

static_assert(sizeof(TFLMRegistration) == 56, "TFLMRegistration layout");

#endif  // BITTTS_TFLM_WHEEL_ABI_MICRO_COMMON_H_
