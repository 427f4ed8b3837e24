/* The few TFLite C types the LiteRT custom-op adapter touches, declared here
 * because no installed wheel ships TFLite's C headers. They mirror the ABI of
 * the pinned runtime (ai-edge-litert 2.3.0, x86-64 and aarch64 Linux;
 * bittts_tf/quant/spec.py LITERT_VERSION, requirements.lock).
 *
 * Nothing checks them against TFLite's headers, so the kernel checks what it
 * reads at run time (bittts_litert_op.h): the context, node and every tensor
 * record in Prepare, the record the resolver stored at registration (via
 * MutableOpResolver::FindOp), and a refusal names the pinned versions.
 * bittts_litert_op.c also asserts the LP64 sizes and offsets below at compile
 * time. tests/test_litert_layout_guards.py plants wrong layouts;
 * tests/test_export_litert.py runs the op in the pinned runtime (and pins its
 * version, which is not a layout check). */
#ifndef BITTTS_LITERT_ABI_H_
#define BITTTS_LITERT_ABI_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

/* Values of TfLiteType used here. */
enum { kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3, kTfLiteInt8 = 9 };

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct {
  int type;
  void *params;
} TfLiteQuantization;

/* The full tensor record: its size sets the stride of context->tensors. */
typedef struct TfLiteTensor {
  int type;
  void *data;
  TfLiteIntArray *dims;
  TfLiteQuantizationParams params;
  int allocation_type;
  size_t bytes;
  const void *allocation;
  const char *name;
  void *delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void *sparsity;
  const TfLiteIntArray *dims_signature;
} TfLiteTensor;

/* Leading fields only: the runtime owns and allocates nodes. */
typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  TfLiteIntArray *temporaries;
  void *user_data;
  void *builtin_data;
  const void *custom_initial_data;
  int custom_initial_data_size;
} TfLiteNode;

/* Leading fields only: the runtime owns and allocates the context. */
typedef struct TfLiteContext {
  size_t tensors_size;
  void *GetExecutionPlan;
  TfLiteTensor *tensors;
  void *impl_;
  void *ResizeTensor;
  void (*ReportError)(struct TfLiteContext *, const char *msg, ...);
} TfLiteContext;

/* Copied by value into the resolver, so it must be the full record. */
typedef struct TfLiteRegistration {
  void *(*init)(TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(TfLiteContext *context, TfLiteNode *node);
  const char *(*profiling_string)(const TfLiteContext *context,
                                  const TfLiteNode *node);
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *async_kernel;
  uint64_t inplace_operator;
} TfLiteRegistration;

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_LITERT_ABI_H_ */
