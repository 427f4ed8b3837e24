// BitTTSTernaryDecode for TensorFlow Lite Micro: the custom op that expands a
// packed ternary kernel (format version 2, see tflite/bittts_spec.h) into
// the float32 or int8 weights the next op reads.
//
//   resolver.AddCustom(BITTTS_OP_NAME, bittts::Register_BitTTSTernaryDecode());
//
// (the generated bittts_op_resolver.h does this). The decode loop is the C99
// in tflite/bittts_ternary.c, the same code the LiteRT kernel runs.
//
// BitTTSTernaryConv, the fused 1-D conv that reads the packed kernel itself
// (no decoded kernel in the arena; tflite/bittts_ternary_conv.c):
//
//   resolver.AddCustom(BITTTS_CONV_OP_NAME, bittts::Register_BitTTSTernaryConv());
#ifndef BITTTS_TFLM_KERNEL_H_
#define BITTTS_TFLM_KERNEL_H_

#include "tensorflow/lite/micro/micro_common.h"

namespace bittts {

const TFLMRegistration* Register_BitTTSTernaryDecode();
const TFLMRegistration* Register_BitTTSTernaryConv();

}  // namespace bittts

#endif  // BITTTS_TFLM_KERNEL_H_
