// The part of TFLM's MicroContext the BitTTS kernel calls. Here it is an
// opaque handle: the members are defined in tflite/bittts_tflm_wheel.cc,
// which forwards them to the wheel's exported functions after checking that
// the context really is the wheel's MicroInterpreterContext.
#ifndef BITTTS_TFLM_WHEEL_ABI_MICRO_CONTEXT_H_
#define BITTTS_TFLM_WHEEL_ABI_MICRO_CONTEXT_H_

#include "tensorflow/lite/c/common.h"

namespace tflite {

class MicroContext {
 public:
  MicroContext() = delete;
  TfLiteTensor* AllocateTempInputTensor(const TfLiteNode* node, int index);
  TfLiteTensor* AllocateTempOutputTensor(const TfLiteNode* node, int index);
  void DeallocateTempTfLiteTensor(TfLiteTensor* tensor);
};

inline MicroContext* GetMicroContext(const TfLiteContext* context) {
  return static_cast<MicroContext*>(context->impl_);
}

}  // namespace tflite

#endif  // BITTTS_TFLM_WHEEL_ABI_MICRO_CONTEXT_H_
