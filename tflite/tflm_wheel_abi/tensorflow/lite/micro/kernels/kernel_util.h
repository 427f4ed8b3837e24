// The kernel helpers the BitTTS kernel calls; the out-of-line ones are
// defined in tflite/bittts_tflm_wheel.cc.
#ifndef BITTTS_TFLM_WHEEL_ABI_KERNEL_UTIL_H_
#define BITTTS_TFLM_WHEEL_ABI_KERNEL_UTIL_H_

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_common.h"

namespace tflite {
namespace micro {

TFLMRegistration RegisterOp(void* (*init)(TfLiteContext*, const char*, size_t),
                            TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*),
                            TfLiteStatus (*invoke)(TfLiteContext*, TfLiteNode*),
                            void (*free)(TfLiteContext*, void*) = nullptr,
                            void (*reset)(TfLiteContext*, void*) = nullptr);

// nullptr when the node has no such input or output.
const TfLiteEvalTensor* GetEvalInput(const TfLiteContext* context, const TfLiteNode* node,
                                     int index);
TfLiteEvalTensor* GetEvalOutput(const TfLiteContext* context, const TfLiteNode* node, int index);

template <typename T>
T* GetTensorData(TfLiteEvalTensor* tensor) {
  return reinterpret_cast<T*>(tensor->data.raw);
}

template <typename T>
const T* GetTensorData(const TfLiteEvalTensor* tensor) {
  return reinterpret_cast<const T*>(tensor->data.raw);
}

}  // namespace micro
}  // namespace tflite

#endif  // BITTTS_TFLM_WHEEL_ABI_KERNEL_UTIL_H_
