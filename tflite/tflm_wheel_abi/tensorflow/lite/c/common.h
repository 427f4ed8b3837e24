/* The TFLite types the BitTTS TFLM kernel touches, as the pinned
 * tflite-micro wheel lays them out (TF_LITE_STATIC_MEMORY, x86-64 Linux).
 * C++ only: enums get a fixed underlying type, so a type code this header
 * does not list is still a valid value to compare and refuse.
 * Fields the kernel never reads are placeholders that keep the offsets;
 * tflite/bittts_tflm_wheel.cc checks those offsets against the running
 * interpreter before the kernel uses them. See ../../../README.md. */
#ifndef BITTTS_TFLM_WHEEL_ABI_COMMON_H_
#define BITTTS_TFLM_WHEEL_ABI_COMMON_H_

#include <stddef.h>
#include <stdint.h>

extern "C" {

enum TfLiteStatus : int { kTfLiteOk = 0, kTfLiteError = 1 };

/* Only the element types this kernel reads or writes. */
enum TfLiteType : int {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt8 = 9
};

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef union TfLitePtrUnion {
  float *f;
  int8_t *int8;
  char *raw;
  void *data;
} TfLitePtrUnion;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteQuantization {
  int type;
  void *params;
} TfLiteQuantization;

/* The reduced record TFLM hands kernels in Prepare (TF_LITE_STATIC_MEMORY). */
typedef struct TfLiteTensor {
  TfLiteQuantization quantization;
  TfLiteQuantizationParams params;
  TfLitePtrUnion data;
  TfLiteIntArray *dims;
  size_t bytes;
  TfLiteType type;
  int allocation_type;
  bool is_variable;
} TfLiteTensor;

typedef struct TfLiteEvalTensor {
  TfLitePtrUnion data;
  TfLiteIntArray *dims;
  TfLiteType type;
} TfLiteEvalTensor;

/* TF_LITE_STATIC_MEMORY node: no delegate, temporaries. */
typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  void *user_data;
  void *builtin_data;
  const void *custom_initial_data;
  int custom_initial_data_size;
} TfLiteNode;

/* Up to the last member the kernel or its checks use; the interpreter owns
 * the record, so the tail may be left out. */
typedef struct TfLiteContext {
  size_t tensors_size;
  void *GetExecutionPlan;
  void *tensors;
  void *impl_;
  void *ResizeTensor;
  void (*ReportError)(struct TfLiteContext *context, const char *format, ...);
  void *AddTensors;
  void *GetNodeAndRegistration;
  void *ReplaceNodeSubsetsWithDelegateKernels;
  int recommended_num_threads;
  void *GetExternalContext;
  void *SetExternalContext;
  bool allow_fp32_relax_to_fp16;
  void *profiler;
  void *(*AllocatePersistentBuffer)(struct TfLiteContext *context, size_t bytes);
  void *AllocateBufferForEval;
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext *context, size_t bytes,
                                              int *buffer_index);
  void *(*GetScratchBuffer)(struct TfLiteContext *context, int buffer_index);
  void *ResizeTensorExplicit;
  void *PreviewDelegatePartitioning;
  TfLiteTensor *(*GetTensor)(const struct TfLiteContext *context, int tensor_index);
  TfLiteEvalTensor *(*GetEvalTensor)(const struct TfLiteContext *context, int tensor_index);
} TfLiteContext;

}  /* extern "C" */

/* The wheel's offsets (x86-64); the run-time checks compare the values found
 * at them with the wheel's own functions. */
static_assert(sizeof(void *) == 8, "declared for the x86-64 wheel only");
static_assert(offsetof(TfLiteTensor, data) == 24 && offsetof(TfLiteTensor, type) == 48 &&
                  sizeof(TfLiteTensor) == 64,
              "TfLiteTensor layout");
static_assert(offsetof(TfLiteEvalTensor, type) == 16 && sizeof(TfLiteEvalTensor) == 24,
              "TfLiteEvalTensor layout");
static_assert(offsetof(TfLiteNode, user_data) == 24, "TfLiteNode layout");
static_assert(offsetof(TfLiteContext, impl_) == 24 && offsetof(TfLiteContext, ReportError) == 40 &&
                  offsetof(TfLiteContext, AllocatePersistentBuffer) == 112 &&
                  offsetof(TfLiteContext, RequestScratchBufferInArena) == 128 &&
                  offsetof(TfLiteContext, GetScratchBuffer) == 136 &&
                  offsetof(TfLiteContext, GetTensor) == 160 &&
                  offsetof(TfLiteContext, GetEvalTensor) == 168,
              "TfLiteContext layout");

#endif /* BITTTS_TFLM_WHEEL_ABI_COMMON_H_ */
