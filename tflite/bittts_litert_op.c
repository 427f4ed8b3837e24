/* BitTTSTernaryDecode (format version 2) for the LiteRT / TFLite interpreter.
 * inputs:  0 packed indices, int8 [ceil(n / 5)], balanced ternary
 *          1 scale, float32 [1]
 * output:  0 weights, float32 (trit * scale) or int8 (trit), any shape of n. */
#include "bittts_litert_op.h"

#include <stdio.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"

enum { kPackedInput = 0, kScaleInput = 1, kWeightsOutput = 0 };

static size_t element_size(int type) {
  switch (type) {
    case kTfLiteFloat32: return 4;
    case kTfLiteUInt8:
    case kTfLiteInt8: return 1;
    default: return 0;
  }
}

static size_t element_count(const TfLiteTensor *tensor) {
  size_t count = 1;
  int i;
  for (i = 0; i < tensor->dims->size; ++i) {
    if (tensor->dims->data[i] < 0) return 0;
    count *= (size_t)tensor->dims->data[i];
  }
  return count;
}

static const TfLiteTensor *node_tensor(const TfLiteContext *context,
                                       const TfLiteIntArray *list, int at) {
  int index;
  if (list == NULL || at >= list->size) return NULL;
  index = list->data[at];
  if (index < 0 || (size_t)index >= context->tensors_size) return NULL;
  return &context->tensors[index];
}

/* Guards against reading the tensor record with a stale ABI declaration. */
static int tensor_is_consistent(const TfLiteTensor *tensor) {
  size_t size = element_size(tensor->type);
  return tensor->dims != NULL && size != 0 &&
         tensor->bytes == element_count(tensor) * size;
}

static TfLiteStatus fail(TfLiteContext *context, const char *what) {
  /* The newline keeps our message on a line of its own: the interpreter
   * appends its own "Node number ..." text right after. */
  context->ReportError(context, "%s: %s\n", BITTTS_OP_NAME, what);
  return kTfLiteError;
}

typedef struct {
  const TfLiteTensor *packed, *scale;
  TfLiteTensor *weights;
} DecodeTensors;

/* Shared by Prepare and Eval: the node's tensors, checked. */
static TfLiteStatus get_tensors(TfLiteContext *context, TfLiteNode *node,
                                DecodeTensors *t) {
  char message[160];
  if (node->inputs == NULL || node->inputs->size != 2 || node->outputs == NULL ||
      node->outputs->size != 1)
    return fail(context, "expects 2 inputs (packed indices, scale) and 1 output");
  t->packed = node_tensor(context, node->inputs, kPackedInput);
  t->scale = node_tensor(context, node->inputs, kScaleInput);
  t->weights = (TfLiteTensor *)node_tensor(context, node->outputs, kWeightsOutput);
  if (!t->packed || !t->scale || !t->weights)
    return fail(context, "tensor index out of range");
  if (!tensor_is_consistent(t->packed) || !tensor_is_consistent(t->scale) ||
      !tensor_is_consistent(t->weights))
    return fail(context,
                "tensor record inconsistent (unsupported type, or the runtime's "
                "TfLiteTensor layout differs from tflite/litert_abi.h)");
  if (t->packed->type != kTfLiteInt8) {
    snprintf(message, sizeof message,
             "packed indices must be int8 (format version %d); uint8 indices are "
             "format version 1: convert the model again",
             BITTTS_FORMAT_VERSION);
    return fail(context, message);
  }
  if (t->scale->type != kTfLiteFloat32 || element_count(t->scale) != 1)
    return fail(context, "scale must be a single float32");
  if (t->weights->type != kTfLiteFloat32 && t->weights->type != kTfLiteInt8)
    return fail(context, "output must be float32 or int8");
  if (bittts_check_sizes(t->packed->bytes, element_count(t->weights)) != BITTTS_OK) {
    snprintf(message, sizeof message,
             "%zu weights need %zu packed bytes, tensor has %zu",
             element_count(t->weights), bittts_packed_size(element_count(t->weights)),
             t->packed->bytes);
    return fail(context, message);
  }
  return kTfLiteOk;
}

static TfLiteStatus prepare(TfLiteContext *context, TfLiteNode *node) {
  DecodeTensors tensors;
  return get_tensors(context, node, &tensors);
}

static TfLiteStatus eval(TfLiteContext *context, TfLiteNode *node) {
  DecodeTensors t;
  size_t bad = 0, n;
  bittts_status status;
  char message[160];
  if (get_tensors(context, node, &t) != kTfLiteOk) return kTfLiteError;
  if (t.packed->data == NULL || t.scale->data == NULL || t.weights->data == NULL)
    return fail(context, "tensor data not allocated");
  n = element_count(t.weights);
  if (t.weights->type == kTfLiteFloat32) {
    status = bittts_decode_f32((const int8_t *)t.packed->data, t.packed->bytes,
                               *(const float *)t.scale->data,
                               (float *)t.weights->data, n, &bad);
  } else {
    status = bittts_decode_i8((const int8_t *)t.packed->data, t.packed->bytes,
                              (int8_t *)t.weights->data, n, &bad);
  }
  if (status == BITTTS_ERR_INDEX) {
    snprintf(message, sizeof message,
             "tensor '%s': packed byte %zu is %d, outside " BITTTS_INDEX_RANGE_TEXT
             " (corrupt model?)",
             t.packed->name ? t.packed->name : "?", bad,
             ((const int8_t *)t.packed->data)[bad]);
    return fail(context, message);
  }
  if (status != BITTTS_OK) return fail(context, bittts_status_message(status));
  return kTfLiteOk;
}

const TfLiteRegistration *bittts_litert_registration(void) {
  static TfLiteRegistration registration;
  registration.init = NULL;
  registration.free = NULL;
  registration.prepare = prepare;
  registration.invoke = eval;
  registration.custom_name = BITTTS_OP_NAME;
  registration.version = BITTTS_FORMAT_VERSION;
  return &registration;
}

/* Models of an older format carry an older op version; without a kernel for
 * it the interpreter would only say the op is unresolved. */
static TfLiteStatus refuse_old_format(TfLiteContext *context, TfLiteNode *node) {
  (void)node;
  context->ReportError(context,
                       "%s: the model uses packed format version 1 (uint8 indices); this "
                       "runtime reads version %d: convert the model again\n",
                       BITTTS_OP_NAME, BITTTS_FORMAT_VERSION);
  return kTfLiteError;
}

const TfLiteRegistration *bittts_litert_old_format_registration(void) {
  static TfLiteRegistration registration;
  registration.prepare = refuse_old_format;
  registration.invoke = refuse_old_format;
  registration.custom_name = BITTTS_OP_NAME;
  registration.version = 1;
  return &registration;
}
