/* BitTTSTernaryDecode (format version 2) for the LiteRT / TFLite interpreter.
 * inputs:  0 packed indices, int8 [ceil(n / 5)], balanced ternary
 *          1 scale, float32 [1], finite
 * output:  0 weights, float32 (trit * scale) or int8 (trit), any shape of n.
 *
 * BitTTSTernaryConv (tflite/bittts_ternary_conv.h), the fused 1-D conv:
 * inputs:  0 activations, float32 or int8 [N, 1, T, Cin] (int8: per-tensor
 *            scale and zero point)
 *          1 packed indices, int8 [ceil(Cout * K * Cin / 5)]
 *          2 scale beta, float32 [1] (int8: the filter scale of every channel)
 *          3 bias, optional (absent or -1): float32 [Cout], or int32 [Cout]
 *            with scale input scale * beta
 * output:  0 float32 or int8 [N, 1, T_out, Cout] (int8: per-tensor quantized)
 * custom options: kernel size, stride, dilation, padding, fused activation
 *   (bittts_spec.h BITTTS_CONV_OPTIONS_*). Prepare checks everything, resizes
 *   the output when the input was resized, and allocates the scratch row
 *   (init / free own it); Eval re-checks the records and only computes.
 *
 * The runtime's records are read through our own declarations
 * (litert_abi.h), so Prepare first runs the layout guards declared in
 * bittts_litert_op.h on the context and the node, and both Prepare and Eval
 * check every tensor record they read. tests/c/fuzz_litert_kernel.c drives
 * Prepare and Eval with fake contexts; tests/test_litert_layout_guards.py
 * plants wrong layouts. */
#define _GNU_SOURCE
#include "bittts_litert_op.h"

#include <link.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"
#include "bittts_ternary_conv.h"

/* The declarations' sizes and offsets on LP64 (x86-64, aarch64 Linux), as the
 * pinned runtime lays the records out: an edit that moves a field fails here. */
#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
#define LAYOUT_ASSERT(name, cond) typedef char bittts_layout_##name[(cond) ? 1 : -1]
LAYOUT_ASSERT(tensor_size, sizeof(TfLiteTensor) == 112);
LAYOUT_ASSERT(tensor_bytes, offsetof(TfLiteTensor, bytes) == 40);
LAYOUT_ASSERT(tensor_name, offsetof(TfLiteTensor, name) == 56);
LAYOUT_ASSERT(tensor_quantization, offsetof(TfLiteTensor, quantization) == 80);
LAYOUT_ASSERT(node_custom_size, offsetof(TfLiteNode, custom_initial_data_size) == 56);
LAYOUT_ASSERT(context_report_error, offsetof(TfLiteContext, ReportError) == 40);
LAYOUT_ASSERT(registration_size, sizeof(TfLiteRegistration) == 88);
LAYOUT_ASSERT(registration_custom_name, offsetof(TfLiteRegistration, custom_name) == 48);
LAYOUT_ASSERT(registration_inplace, offsetof(TfLiteRegistration, inplace_operator) == 80);
#undef LAYOUT_ASSERT
#endif

/* TfLiteAllocationType runs from kTfLiteMemNone (0) to kTfLiteVariantObject
 * (7); TfLiteQuantizationType from kTfLiteNoQuantization (0) to
 * kTfLiteAffineQuantization (1); BuiltinOperator_CUSTOM is 32. */
enum { kMaxAllocationType = 7, kMaxQuantizationType = 1, kBuiltinCustom = 32 };

enum { kPackedInput = 0, kScaleInput = 1, kWeightsOutput = 0 };

#define LAYOUT_HINT \
  " (tflite/litert_abi.h declares the runtime of " BITTTS_PINNED_RUNTIMES_TEXT \
  ": install the versions in requirements.lock)"

static __thread char guard_message[480];
static char kernel_error[600];
static char refused_runtime[480];

/* The op whose Prepare or Eval is running on this thread, which messages
 * name (NULL: the decode op, also for the exported guards). */
static __thread const char *running_op;

static const char *op_name(void) { return running_op ? running_op : BITTTS_OP_NAME; }

static const char *layout_error(const char *format, ...) {
  char what[240];
  va_list args;
  va_start(args, format);
  vsnprintf(what, sizeof what, format, args);
  va_end(args);
  snprintf(guard_message, sizeof guard_message, "%s: runtime layout mismatch: %s" LAYOUT_HINT,
           op_name(), what);
  return guard_message;
}

const char *bittts_litert_kernel_error(void) { return kernel_error; }

void bittts_litert_refuse_runtime(const char *message) {
  snprintf(refused_runtime, sizeof refused_runtime, "%s", message ? message : "");
}

/* --- Where an address lies: code of a loaded object, its data, or neither. */

enum { kNotLoaded = 0, kLoadedCode = 1, kLoadedData = 2 };

typedef struct {
  uintptr_t address;
  int where;
} AddressSearch;

static int find_segment(struct dl_phdr_info *info, size_t size, void *arg) {
  AddressSearch *search = (AddressSearch *)arg;
  int i;
  (void)size;
  for (i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
    uintptr_t start = (uintptr_t)info->dlpi_addr + (uintptr_t)segment->p_vaddr;
    if (segment->p_type == PT_LOAD && search->address - start < segment->p_memsz) {
      search->where = (segment->p_flags & PF_X) ? kLoadedCode : kLoadedData;
      return 1;
    }
  }
  return 0;
}

static int address_kind(const void *address) {
  AddressSearch search;
  search.address = (uintptr_t)address;
  search.where = kNotLoaded;
  dl_iterate_phdr(find_segment, &search);
  return search.where;
}

static int is_code(const void *address) {
  return address != NULL && address_kind(address) == kLoadedCode;
}

/* A pointer to records of `alignment`: not NULL, aligned, not into code. */
static int plausible_data(const void *address, size_t alignment) {
  return address != NULL && (uintptr_t)address % alignment == 0 && !is_code(address);
}

/* --- The guards. */

/* The last ReportError, ResizeTensor and GetExecutionPlan found to be code,
 * per thread: Eval re-checks the context on every call, and a runtime keeps
 * the same three, so the segment walk runs once per thread. */
static __thread uintptr_t verified_code[3];

/* `thorough` (Prepare, and the exported check) also walks the segments for
 * the data pointers, which must not point into code. */
static const char *check_context_of(const TfLiteContext *context, int thorough) {
  uintptr_t code[3];
  if (context == NULL) return layout_error("the context pointer is NULL");
  if (context->tensors_size < 1 || context->tensors_size > BITTTS_LITERT_MAX_TENSORS)
    return layout_error("context tensor count %zu is outside 1..%d", context->tensors_size,
                        BITTTS_LITERT_MAX_TENSORS);
  if (context->tensors == NULL || (uintptr_t)context->tensors % _Alignof(TfLiteTensor) != 0 ||
      (thorough && is_code(context->tensors)))
    return layout_error("context tensors pointer %p is NULL, misaligned or into code",
                        (void *)context->tensors);
  if ((uintptr_t)context->tensors > UINTPTR_MAX - context->tensors_size * sizeof(TfLiteTensor))
    return layout_error("context tensors run past the end of memory");
  if (context->impl_ == NULL || (uintptr_t)context->impl_ % sizeof(void *) != 0 ||
      (thorough && is_code(context->impl_)))
    return layout_error("context impl_ pointer %p is NULL, misaligned or into code",
                        context->impl_);
  code[0] = (uintptr_t)context->ReportError;
  code[1] = (uintptr_t)context->ResizeTensor;
  code[2] = (uintptr_t)context->GetExecutionPlan;
  if (code[0] == verified_code[0] && code[1] == verified_code[1] &&
      code[2] == verified_code[2] && code[0] != 0)
    return NULL;
  if (!is_code((const void *)code[0]))
    return layout_error("context ReportError is not code of a loaded object");
  if (!is_code((const void *)code[1]))
    return layout_error("context ResizeTensor is not code of a loaded object");
  if (!is_code((const void *)code[2]))
    return layout_error("context GetExecutionPlan is not code of a loaded object");
  memcpy(verified_code, code, sizeof code);
  return NULL;
}

const char *bittts_litert_check_context(const TfLiteContext *context) {
  return check_context_of(context, 1);
}

/* An index list of the node: NULL only where allowed, aligned, a bounded
 * size, every index a tensor of the context (or -1 where allowed). */
static const char *check_index_list(const TfLiteContext *context, const TfLiteIntArray *list,
                                    const char *what, int optional) {
  int i;
  if (list == NULL) return optional ? NULL : layout_error("node %s array is NULL", what);
  if (!plausible_data(list, _Alignof(TfLiteIntArray)))
    return layout_error("node %s array pointer %p is misaligned or into code", what,
                        (const void *)list);
  if (list->size < 0 || list->size > BITTTS_LITERT_MAX_NODE_TENSORS)
    return layout_error("node %s count %d is outside 0..%d", what, list->size,
                        BITTTS_LITERT_MAX_NODE_TENSORS);
  for (i = 0; i < list->size; ++i) {
    int index = list->data[i];
    if (index < -1 || (index >= 0 && (size_t)index >= context->tensors_size))
      return layout_error("node %s[%d] is tensor %d of %zu", what, i, index,
                          context->tensors_size);
  }
  return NULL;
}

/* The record BitTTSTernaryConv's init returns (user_data): its scratch row
 * (int8 or float elements; malloc aligns it for floats), grown in Prepare;
 * the magic tells it from what a stale layout would read. */
#define CONV_DATA_MAGIC 0x42545443u
typedef struct {
  uint32_t magic;
  size_t scratch_bytes;
  void *scratch;
} ConvData;

/* The node's part of bittts_litert_check_node, on a context already checked;
 * `conv`: the node's user_data must be the record ConvData's init made. */
static const char *check_node_of(const TfLiteContext *context, const TfLiteNode *node,
                                 int conv) {
  const char *error;
  if (node == NULL) return layout_error("the node pointer is NULL");
  if ((error = check_index_list(context, node->inputs, "inputs", 0)) ||
      (error = check_index_list(context, node->outputs, "outputs", 0)) ||
      (error = check_index_list(context, node->intermediates, "intermediates", 1)) ||
      (error = check_index_list(context, node->temporaries, "temporaries", 1)))
    return error;
  if (node->builtin_data != NULL)
    return layout_error("node builtin_data is set for a custom op");
  if (!conv && node->user_data != NULL)
    return layout_error("node user_data is set but the op has no init");
  if (conv && (!plausible_data(node->user_data, _Alignof(ConvData)) ||
               ((const ConvData *)node->user_data)->magic != CONV_DATA_MAGIC))
    return layout_error("node user_data %p is not the record the op's init returned",
                        node->user_data);
  if (node->custom_initial_data_size < 0 ||
      (node->custom_initial_data_size > 0 && node->custom_initial_data == NULL))
    return layout_error("node custom data size %d does not fit its pointer",
                        node->custom_initial_data_size);
  return NULL;
}

const char *bittts_litert_check_node(const TfLiteContext *context, const TfLiteNode *node) {
  const char *error = bittts_litert_check_context(context);
  return error ? error : check_node_of(context, node, 0);
}

const char *bittts_litert_check_stored_registration(const TfLiteRegistration *stored,
                                                    const TfLiteRegistration *ours,
                                                    int version) {
  if (stored == NULL) return layout_error("the resolver holds no record after AddCustom");
  if (stored->init != ours->init || stored->free != ours->free ||
      stored->prepare != ours->prepare || stored->invoke != ours->invoke ||
      stored->profiling_string != ours->profiling_string)
    return layout_error("the resolver's TfLiteRegistration has other functions at our offsets");
  if (stored->builtin_code != kBuiltinCustom || stored->version != version ||
      stored->custom_name == NULL || ours->custom_name == NULL ||
      strcmp(stored->custom_name, ours->custom_name) != 0)
    return layout_error("the resolver's TfLiteRegistration has builtin code %d, version %d "
                        "where CUSTOM (%d) and %d belong",
                        (int)stored->builtin_code, stored->version, kBuiltinCustom, version);
  if (stored->registration_external != ours->registration_external ||
      stored->async_kernel != ours->async_kernel ||
      stored->inplace_operator != ours->inplace_operator)
    return layout_error("the resolver's TfLiteRegistration tail (registration_external, "
                        "async_kernel, inplace_operator) differs from ours");
  return NULL;
}

/* --- Failing: our message in kernel_error, and through ReportError when the
 * context passed the guard (otherwise that pointer may not be a function). */

static TfLiteStatus fail_report(TfLiteContext *context, int can_report, const char *message) {
  snprintf(kernel_error, sizeof kernel_error, "%s", message);
  if (can_report) {
    /* The newline keeps our message on a line of its own: the interpreter
     * appends its own "Node number ..." text right after. */
    context->ReportError(context, "%s\n", kernel_error);
  } else {
#ifndef BITTTS_LITERT_NO_STDERR
    fprintf(stderr, "%s\n", kernel_error);
#endif
  }
  return kTfLiteError;
}

static TfLiteStatus fail(TfLiteContext *context, const char *what) {
  char message[480];
  snprintf(message, sizeof message, "%s: %s", op_name(), what);
  return fail_report(context, 1, message);
}

/* --- Tensors. */

/* int32 only where `int32_ok` (the conv op's bias): for the decode op an
 * int32 record stays an inconsistent one. */
static size_t element_size(int type, int int32_ok) {
  switch (type) {
    case kTfLiteFloat32: return 4;
    case kTfLiteInt32: return int32_ok ? 4 : 0;
    case kTfLiteUInt8:
    case kTfLiteInt8: return 1;
    default: return 0;
  }
}

/* The product of the dims, or 0 for a negative dim, or SIZE_MAX when the
 * product does not fit (no real tensor is that large). */
static size_t element_count(const TfLiteTensor *tensor) {
  size_t count = 1;
  int i;
  for (i = 0; i < tensor->dims->size; ++i) {
    int dim = tensor->dims->data[i];
    if (dim < 0) return 0;
    if (dim != 0 && count > SIZE_MAX / (size_t)dim) return SIZE_MAX;
    count *= (size_t)dim;
  }
  return count;
}

/* Guards against reading a tensor record with a stale declaration: the
 * enums in range, the dims a bounded array, and bytes == elements * size.
 * `thorough` (Prepare) also checks that dims does not point into code. */
static int tensor_is_consistent_as(const TfLiteTensor *tensor, int thorough, int int32_ok) {
  size_t size = element_size(tensor->type, int32_ok), count;
  if (tensor->allocation_type < 0 || tensor->allocation_type > kMaxAllocationType ||
      tensor->quantization.type < 0 || tensor->quantization.type > kMaxQuantizationType)
    return 0;
  if (tensor->dims == NULL || (uintptr_t)tensor->dims % _Alignof(TfLiteIntArray) != 0 ||
      (thorough && is_code(tensor->dims)))
    return 0;
  if (tensor->dims->size < 0 || tensor->dims->size > BITTTS_LITERT_MAX_RANK) return 0;
  count = element_count(tensor);
  return size != 0 && count != SIZE_MAX && count <= SIZE_MAX / size &&
         tensor->bytes == count * size;
}

static int tensor_is_consistent(const TfLiteTensor *tensor, int thorough) {
  return tensor_is_consistent_as(tensor, thorough, 0);
}

static const TfLiteTensor *node_tensor(const TfLiteContext *context,
                                       const TfLiteIntArray *list, int at) {
  int index;
  if (list == NULL || at >= list->size) return NULL;
  index = list->data[at];
  if (index < 0 || (size_t)index >= context->tensors_size) return NULL;
  return &context->tensors[index];
}

typedef struct {
  const TfLiteTensor *packed, *scale;
  TfLiteTensor *weights;
} DecodeTensors;

/* Shared by Prepare and Eval: the node's tensors, checked. */
static TfLiteStatus get_tensors(TfLiteContext *context, TfLiteNode *node, int thorough,
                                DecodeTensors *t) {
  char message[200];
  if (node->inputs == NULL || node->inputs->size != 2 || node->outputs == NULL ||
      node->outputs->size != 1)
    return fail(context, "expects 2 inputs (packed indices, scale) and 1 output");
  t->packed = node_tensor(context, node->inputs, kPackedInput);
  t->scale = node_tensor(context, node->inputs, kScaleInput);
  t->weights = (TfLiteTensor *)node_tensor(context, node->outputs, kWeightsOutput);
  if (!t->packed || !t->scale || !t->weights)
    return fail(context, "tensor index out of range");
  if (t->weights == t->packed || t->weights == t->scale)
    return fail(context, "the output tensor is also an input");
  if (!tensor_is_consistent(t->packed, thorough) || !tensor_is_consistent(t->scale, thorough) ||
      !tensor_is_consistent(t->weights, thorough))
    return fail(context,
                "tensor record inconsistent (unsupported type, or the runtime's "
                "TfLiteTensor layout differs from tflite/litert_abi.h, declared for "
                BITTTS_PINNED_RUNTIMES_TEXT ")");
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

/* Prepare's layout guards: the context (whose ReportError is not called when
 * it fails), a registration the registerer refused, the node. */
static TfLiteStatus guard_op(TfLiteContext *context, TfLiteNode *node, int conv) {
  const char *error = bittts_litert_check_context(context);
  if (error) return fail_report(context, 0, error);
  if (refused_runtime[0]) return fail_report(context, 1, refused_runtime);
  if ((error = check_node_of(context, node, conv)) != NULL)
    return fail_report(context, 1, error);
  return kTfLiteOk;
}

static TfLiteStatus guard(TfLiteContext *context, TfLiteNode *node) {
  return guard_op(context, node, 0);
}

static TfLiteStatus prepare(TfLiteContext *context, TfLiteNode *node) {
  DecodeTensors tensors;
  if (guard(context, node) != kTfLiteOk) return kTfLiteError;
  return get_tensors(context, node, 1, &tensors);
}

static int overlaps(const TfLiteTensor *a, const TfLiteTensor *b) {
  uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
  return a->bytes && b->bytes && a0 < b0 + b->bytes && b0 < a0 + a->bytes;
}

/* The runtime always prepares first; Eval re-checks the context (the code
 * pointers once per thread), the node's lists and every tensor record. */
static TfLiteStatus eval(TfLiteContext *context, TfLiteNode *node) {
  DecodeTensors t;
  size_t bad = 0, n;
  float scale;
  bittts_status status;
  char message[200];
  const char *error = check_context_of(context, 0);
  if (error) return fail_report(context, 0, error);
  if (refused_runtime[0]) return fail_report(context, 1, refused_runtime);
  if (node == NULL) return fail_report(context, 1, layout_error("the node pointer is NULL"));
  if (get_tensors(context, node, 0, &t) != kTfLiteOk) return kTfLiteError;
  if (t.packed->data == NULL || t.scale->data == NULL || t.weights->data == NULL)
    return fail(context, "tensor data not allocated");
  if (overlaps(t.weights, t.packed) || overlaps(t.weights, t.scale))
    return fail(context, "the output's buffer overlaps an input's");
  memcpy(&scale, t.scale->data, sizeof scale);
  if (!isfinite(scale)) {
    snprintf(message, sizeof message, "tensor '%s': scale %g is not finite (corrupt model?)",
             t.scale->name ? t.scale->name : "?", (double)scale);
    return fail(context, message);
  }
  n = element_count(t.weights);
  if (t.weights->type == kTfLiteFloat32) {
    if ((uintptr_t)t.weights->data % _Alignof(float) != 0)
      return fail(context, "float32 output buffer is misaligned");
    status = bittts_decode_f32((const int8_t *)t.packed->data, t.packed->bytes, scale,
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

/* The runtime copies a registration by value with its own idea of the
 * record's size; the zeroed slack after ours keeps a larger copy inside our
 * object (and the copy is then checked by the registerer). */
typedef struct {
  TfLiteRegistration record;
  unsigned char slack[128];
} PaddedRegistration;

const TfLiteRegistration *bittts_litert_registration(void) {
  static PaddedRegistration registration;
  registration.record.init = NULL;
  registration.record.free = NULL;
  registration.record.prepare = prepare;
  registration.record.invoke = eval;
  registration.record.custom_name = BITTTS_OP_NAME;
  registration.record.version = BITTTS_FORMAT_VERSION;
  return &registration.record;
}

/* Models of an older format carry an older op version; without a kernel for
 * it the interpreter would only say the op is unresolved. */
static TfLiteStatus refuse_old_format(TfLiteContext *context, TfLiteNode *node) {
  char message[200];
  if (guard(context, node) != kTfLiteOk) return kTfLiteError;
  snprintf(message, sizeof message,
           "the model uses packed format version 1 (uint8 indices); this runtime reads "
           "version %d: convert the model again",
           BITTTS_FORMAT_VERSION);
  return fail(context, message);
}

const TfLiteRegistration *bittts_litert_old_format_registration(void) {
  static PaddedRegistration registration;
  registration.record.prepare = refuse_old_format;
  registration.record.invoke = refuse_old_format;
  registration.record.custom_name = BITTTS_OP_NAME;
  registration.record.version = 1;
  return &registration.record;
}

/* --- BitTTSTernaryConv. */

enum { kConvInput = 0, kConvPacked = 1, kConvScale = 2, kConvBias = 3, kConvOutput = 0 };

typedef TfLiteStatus (*resize_tensor_fn)(TfLiteContext *context, TfLiteTensor *tensor,
                                         TfLiteIntArray *new_size);

typedef struct {
  const TfLiteTensor *input, *packed, *scale, *bias; /* bias NULL when absent */
  TfLiteTensor *output;
  bittts_conv_options options;
  bittts_conv_shape shape;
  size_t out_length;
} ConvTensors;

static void *conv_init(TfLiteContext *context, const char *buffer, size_t length) {
  ConvData *data = calloc(1, sizeof *data);
  (void)context, (void)buffer, (void)length;
  if (data != NULL) data->magic = CONV_DATA_MAGIC;
  return data;
}

static void conv_free(TfLiteContext *context, void *buffer) {
  ConvData *data = (ConvData *)buffer;
  (void)context;
  if (data == NULL || data->magic != CONV_DATA_MAGIC) return;
  free(data->scratch);
  data->magic = 0;
  free(data);
}

static int dims_are(const TfLiteTensor *tensor, size_t n, size_t h, size_t t, size_t c) {
  const TfLiteIntArray *d = tensor->dims;
  return d->size == 4 && (size_t)d->data[0] == n && (size_t)d->data[1] == h &&
         (size_t)d->data[2] == t && (size_t)d->data[3] == c;
}

static TfLiteStatus conv_failf(TfLiteContext *context, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static TfLiteStatus conv_failf(TfLiteContext *context, const char *format, ...) {
  char what[400];
  va_list args;
  va_start(args, format);
  vsnprintf(what, sizeof what, format, args);
  va_end(args);
  return fail(context, what);
}

/* Shared by Prepare and Eval: the node's tensors, records and options
 * checked; the shape from the input, the options and the output's channels.
 * The output's dims are left to the caller (Prepare resizes, Eval compares). */
static TfLiteStatus get_conv_tensors(TfLiteContext *context, TfLiteNode *node, int thorough,
                                     ConvTensors *t) {
  const TfLiteIntArray *in_dims, *out_dims;
  bittts_conv_status status;
  int i;
  if (node->inputs == NULL || (node->inputs->size != 3 && node->inputs->size != 4) ||
      node->outputs == NULL || node->outputs->size != 1)
    return fail(context, "expects 3 or 4 inputs (activations, packed indices, scale, "
                         "optional bias) and 1 output");
  t->input = node_tensor(context, node->inputs, kConvInput);
  t->packed = node_tensor(context, node->inputs, kConvPacked);
  t->scale = node_tensor(context, node->inputs, kConvScale);
  t->bias = NULL;
  if (node->inputs->size == 4 && node->inputs->data[kConvBias] != -1) {
    t->bias = node_tensor(context, node->inputs, kConvBias);
    if (t->bias == NULL) return fail(context, "tensor index out of range");
  }
  t->output = (TfLiteTensor *)node_tensor(context, node->outputs, kConvOutput);
  if (!t->input || !t->packed || !t->scale || !t->output)
    return fail(context, "tensor index out of range");
  for (i = 0; i < node->inputs->size; ++i)
    if (node->inputs->data[i] == node->outputs->data[0])
      return fail(context, "the output tensor is also an input");
  if (!tensor_is_consistent(t->input, thorough) || !tensor_is_consistent(t->packed, thorough) ||
      !tensor_is_consistent(t->scale, thorough) || !tensor_is_consistent(t->output, thorough) ||
      (t->bias && !tensor_is_consistent_as(t->bias, thorough, 1)))
    return fail(context,
                "tensor record inconsistent (unsupported type, or the runtime's "
                "TfLiteTensor layout differs from tflite/litert_abi.h, declared for "
                BITTTS_PINNED_RUNTIMES_TEXT ")");
  status = bittts_conv_parse_options((const uint8_t *)node->custom_initial_data,
                                     node->custom_initial_data ?
                                         (size_t)node->custom_initial_data_size : 0,
                                     &t->options);
  if (status != BITTTS_CONV_OK)
    return conv_failf(context, "custom options (%d bytes) are not a %d-byte options vector "
                      "with kernel size, stride and dilation in 1..%d, a known padding and "
                      "activation: convert the model again",
                      node->custom_initial_data_size, BITTTS_CONV_OPTIONS_BYTES,
                      BITTTS_CONV_MAX_OPTION);
  if (t->input->type != kTfLiteFloat32 && t->input->type != kTfLiteInt8)
    return fail(context, "activations must be float32 or int8");
  if (t->output->type != t->input->type)
    return fail(context, "the output's type must be the activations'");
  if (t->packed->type != kTfLiteInt8)
    return conv_failf(context, "packed indices must be int8 (format version %d)",
                      BITTTS_FORMAT_VERSION);
  if (t->scale->type != kTfLiteFloat32 || element_count(t->scale) != 1)
    return fail(context, "scale must be a single float32");
  in_dims = t->input->dims;
  out_dims = t->output->dims;
  if (in_dims->size != 4 || in_dims->data[1] != 1 || out_dims->size != 4 ||
      out_dims->data[3] < 1)
    return fail(context, "activations must be [N, 1, T, Cin] and the output [N, 1, T_out, "
                         "Cout] (a 1-D convolution as CONV_2D lays it out)");
  t->shape.batches = (size_t)in_dims->data[0];
  t->shape.input_length = (size_t)in_dims->data[2];
  t->shape.input_channels = (size_t)in_dims->data[3];
  t->shape.output_channels = (size_t)out_dims->data[3];
  t->shape.kernel_size = t->options.kernel_size;
  t->shape.stride = t->options.stride;
  t->shape.dilation = t->options.dilation;
  t->shape.padding = t->options.padding;
  status = bittts_conv_check_shape(&t->shape);
  if (status != BITTTS_CONV_OK)
    return conv_failf(context, "activations [%d, 1, %d, %d] with kernel size %zu, stride %zu, "
                      "dilation %zu, %s padding: %s", in_dims->data[0], in_dims->data[2],
                      in_dims->data[3], t->options.kernel_size, t->options.stride,
                      t->options.dilation,
                      t->options.padding == BITTTS_CONV_PADDING_SAME ? "SAME" : "VALID",
                      bittts_conv_status_message(status));
  t->out_length = bittts_conv_output_length(&t->shape);
  if (bittts_check_sizes(t->packed->bytes, bittts_conv_weight_count(&t->shape)) != BITTTS_OK)
    return conv_failf(context, "%zu weights (%zu x %zu x %zu) need %zu packed bytes, tensor "
                      "has %zu", bittts_conv_weight_count(&t->shape),
                      t->shape.output_channels, t->shape.kernel_size, t->shape.input_channels,
                      bittts_packed_size(bittts_conv_weight_count(&t->shape)), t->packed->bytes);
  if (t->bias != NULL &&
      (t->bias->type != (t->input->type == kTfLiteFloat32 ? kTfLiteFloat32 : kTfLiteInt32) ||
       element_count(t->bias) != t->shape.output_channels))
    return conv_failf(context, "bias must be %s [%zu]",
                      t->input->type == kTfLiteFloat32 ? "float32" : "int32",
                      t->shape.output_channels);
  return kTfLiteOk;
}

/* The int8 requantization from the tensors: TFLite's per-channel
 * multiplier of double(input scale) * double(beta) / double(output scale). */
static TfLiteStatus conv_quant(TfLiteContext *context, const ConvTensors *t, float beta,
                               bittts_conv_quant *q) {
  const TfLiteQuantizationParams in = t->input->params, out = t->output->params;
  if (!(in.scale > 0.0f) || !isfinite(in.scale) || in.zero_point < -128 ||
      in.zero_point > 127 || !(out.scale > 0.0f) || !isfinite(out.scale) ||
      out.zero_point < -128 || out.zero_point > 127)
    return conv_failf(context, "int8 activations need a positive scale and a zero point in "
                      "-128..127 (input %g, %d; output %g, %d)", (double)in.scale,
                      (int)in.zero_point, (double)out.scale, (int)out.zero_point);
  if (bittts_conv_quantize_multiplier((double)in.scale * (double)beta / (double)out.scale,
                                      &q->multiplier, &q->shift) != BITTTS_CONV_OK)
    return conv_failf(context, "input scale %g x beta %g / output scale %g is not a "
                      "multiplier TFLite can represent", (double)in.scale, (double)beta,
                      (double)out.scale);
  q->input_offset = -in.zero_point;
  q->output_offset = out.zero_point;
  if (bittts_conv_activation_range_i8(t->options.activation, out.scale, out.zero_point,
                                      &q->act_min, &q->act_max) != BITTTS_CONV_OK)
    return fail(context, "unknown fused activation");
  return kTfLiteOk;
}

/* The scale beta, finite (and for int8 not negative: it is a filter scale);
 * in Prepare only when its data is there already (a constant). */
static TfLiteStatus conv_beta(TfLiteContext *context, const ConvTensors *t, float *beta) {
  memcpy(beta, t->scale->data, sizeof *beta);
  if (!isfinite(*beta) || (t->input->type == kTfLiteInt8 && *beta < 0.0f))
    return conv_failf(context, "tensor '%s': scale %g is not %s (corrupt model?)",
                      t->scale->name ? t->scale->name : "?", (double)*beta,
                      t->input->type == kTfLiteInt8 ? "finite and >= 0" : "finite");
  return kTfLiteOk;
}

static TfLiteStatus conv_prepare_op(TfLiteContext *context, TfLiteNode *node) {
  ConvTensors t;
  ConvData *data;
  size_t scratch;
  float beta;
  bittts_conv_quant quant;
  if (guard_op(context, node, 1) != kTfLiteOk) return kTfLiteError;
  if (get_conv_tensors(context, node, 1, &t) != kTfLiteOk) return kTfLiteError;
  if (!dims_are(t.output, t.shape.batches, 1, t.out_length, t.shape.output_channels)) {
    /* The runtime takes the array and frees it with TfLiteIntArrayFree (free). */
    TfLiteIntArray *dims = malloc(sizeof(TfLiteIntArray) + 4 * sizeof(int));
    if (dims == NULL) return fail(context, "out of memory for the output's dims");
    if (t.out_length > INT32_MAX) {
      free(dims);
      return fail(context, "output length does not fit an int");
    }
    dims->size = 4;
    dims->data[0] = (int)t.shape.batches, dims->data[1] = 1;
    dims->data[2] = (int)t.out_length, dims->data[3] = (int)t.shape.output_channels;
    if (((resize_tensor_fn)context->ResizeTensor)(context, t.output, dims) != kTfLiteOk)
      return fail(context, "the runtime could not resize the output");
  }
  if (t.scale->data != NULL) {
    if (conv_beta(context, &t, &beta) != kTfLiteOk) return kTfLiteError;
    if (t.input->type == kTfLiteInt8 && conv_quant(context, &t, beta, &quant) != kTfLiteOk)
      return kTfLiteError;
  }
  data = (ConvData *)node->user_data;
  scratch = bittts_conv_scratch_size(&t.shape) * element_size(t.input->type, 0);
  if (data->scratch_bytes < scratch) {
    void *grown = realloc(data->scratch, scratch);
    if (grown == NULL) return fail(context, "out of memory for the scratch row");
    data->scratch = grown;
    data->scratch_bytes = scratch;
  }
  return kTfLiteOk;
}

static TfLiteStatus conv_eval_op(TfLiteContext *context, TfLiteNode *node) {
  ConvTensors t;
  const ConvData *data;
  size_t bad = 0;
  float beta;
  bittts_conv_status status;
  const char *error = check_context_of(context, 0);
  if (error) return fail_report(context, 0, error);
  if (refused_runtime[0]) return fail_report(context, 1, refused_runtime);
  if (node == NULL) return fail_report(context, 1, layout_error("the node pointer is NULL"));
  /* Prepare ran the whole node guard; the record it vouched for, again. */
  if (node->user_data == NULL || (uintptr_t)node->user_data % _Alignof(ConvData) != 0 ||
      ((const ConvData *)node->user_data)->magic != CONV_DATA_MAGIC)
    return fail_report(context, 1, layout_error("node user_data %p is not the record the op's "
                                                "init returned", node->user_data));
  if (get_conv_tensors(context, node, 0, &t) != kTfLiteOk) return kTfLiteError;
  data = (const ConvData *)node->user_data;
  if (!dims_are(t.output, t.shape.batches, 1, t.out_length, t.shape.output_channels))
    return fail(context, "the output's dims changed after Prepare");
  if (data->scratch == NULL || data->scratch_bytes < bittts_conv_scratch_size(&t.shape) *
                                                        element_size(t.input->type, 0))
    return fail(context, "the scratch row is smaller than the shape needs (Prepare not run?)");
  if (t.input->data == NULL || t.packed->data == NULL || t.scale->data == NULL ||
      t.output->data == NULL || (t.bias && t.bias->data == NULL))
    return fail(context, "tensor data not allocated");
  if ((t.input->type == kTfLiteFloat32 && ((uintptr_t)t.input->data % 4 != 0 ||
                                           (uintptr_t)t.output->data % 4 != 0)) ||
      (t.bias && (uintptr_t)t.bias->data % 4 != 0))
    return fail(context, "float32 or int32 tensor data is misaligned");
  if (conv_beta(context, &t, &beta) != kTfLiteOk) return kTfLiteError;
  if (t.input->type == kTfLiteFloat32) {
    float lo, hi;
    if (bittts_conv_activation_range_f32(t.options.activation, &lo, &hi) != BITTTS_CONV_OK)
      return fail(context, "unknown fused activation");
    status = bittts_conv_f32(&t.shape, (const float *)t.input->data, t.input->bytes / 4,
                             (const int8_t *)t.packed->data, t.packed->bytes, beta,
                             t.bias ? (const float *)t.bias->data : NULL,
                             t.bias ? t.bias->bytes / 4 : 0, lo, hi, (float *)data->scratch,
                             data->scratch_bytes / 4, (float *)t.output->data,
                             t.output->bytes / 4, &bad);
  } else {
    bittts_conv_quant quant;
    if (conv_quant(context, &t, beta, &quant) != kTfLiteOk) return kTfLiteError;
    status = bittts_conv_i8(&t.shape, &quant, (const int8_t *)t.input->data, t.input->bytes,
                            (const int8_t *)t.packed->data, t.packed->bytes,
                            t.bias ? (const int32_t *)t.bias->data : NULL,
                            t.bias ? t.bias->bytes / 4 : 0, (int8_t *)data->scratch,
                            data->scratch_bytes, (int8_t *)t.output->data, t.output->bytes,
                            &bad);
  }
  if (status == BITTTS_CONV_ERR_INDEX)
    return conv_failf(context, "tensor '%s': packed byte %zu is %d, outside "
                      BITTTS_INDEX_RANGE_TEXT " (corrupt model?)",
                      t.packed->name ? t.packed->name : "?", bad,
                      ((const int8_t *)t.packed->data)[bad]);
  if (status != BITTTS_CONV_OK) return fail(context, bittts_conv_status_message(status));
  return kTfLiteOk;
}

/* Messages (and layout refusals) name the conv op while it runs. */
static TfLiteStatus conv_prepare(TfLiteContext *context, TfLiteNode *node) {
  TfLiteStatus status;
  running_op = BITTTS_CONV_OP_NAME;
  status = conv_prepare_op(context, node);
  running_op = NULL;
  return status;
}

static TfLiteStatus conv_eval(TfLiteContext *context, TfLiteNode *node) {
  TfLiteStatus status;
  running_op = BITTTS_CONV_OP_NAME;
  status = conv_eval_op(context, node);
  running_op = NULL;
  return status;
}

const TfLiteRegistration *bittts_litert_conv_registration(void) {
  static PaddedRegistration registration;
  registration.record.init = conv_init;
  registration.record.free = conv_free;
  registration.record.prepare = conv_prepare;
  registration.record.invoke = conv_eval;
  registration.record.custom_name = BITTTS_CONV_OP_NAME;
  registration.record.version = BITTTS_CONV_OP_VERSION;
  return &registration.record;
}
