/* libFuzzer target: the LiteRT kernel of BitTTSTernaryDecode (Prepare, then
 * Eval when Prepare accepts) on a fake TfLiteContext and TfLiteNode built
 * here from the input, as the runtime would hand them over: any tensor count,
 * types, dims, byte counts, index lists, data buffers (each its own heap block
 * of exactly its byte count, or all in one arena at chosen offsets, so they
 * may overlap or be misaligned), and planted layout faults (a tensor count
 * that is really a pointer, ReportError pointing at data, user data on a node
 * whose op has no init, ...).
 *
 * An input of zeros makes a node that decodes (3 tensors: int8 [1], float32
 * [1], float32 [1]); mutations move away from it.
 *
 * What must hold, else abort() (a crash with its input):
 *  - no read or write outside any buffer (AddressSanitizer), no undefined
 *    behaviour (UBSan), whatever the input;
 *  - a planted layout fault is refused by Prepare with a "runtime layout
 *    mismatch" message naming the pinned runtimes, and ReportError is not
 *    called when it is the fault;
 *  - every message is one line starting with the op's name;
 *  - when Eval succeeds, the output is the reference decode written here
 *    (balanced base-3 digits of each byte by repeated division) and nothing
 *    outside the output's bytes changed. */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bittts_litert_op.h"
#include "bittts_spec.h"

#define FAIL(...)                           \
  do {                                      \
    fprintf(stderr, "fuzz_litert_kernel: "); \
    fprintf(stderr, __VA_ARGS__);           \
    fprintf(stderr, "\n");                  \
    abort();                                \
  } while (0)

enum { kMaxTensors = 6, kMaxRank = 20, kMaxBytes = 1 << 14 };

/* --- Reading the input: zeros past its end. */
typedef struct {
  const uint8_t *data;
  size_t size, at;
} Input;

static uint8_t u8(Input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static uint16_t u16(Input *in) { return (uint16_t)(u8(in) | u8(in) << 8); }

/* How deep the inputs went, printed at exit for tools/fuzz_kernels.py. */
static unsigned long g_inputs, g_prepared, g_decoded;
__attribute__((destructor)) static void print_depth(void) {
  if (g_inputs)
    fprintf(stderr,
            "fuzz_litert_kernel depth: %lu inputs, Prepare accepted %lu, Eval decoded %lu\n",
            g_inputs, g_prepared, g_decoded);
}

/* --- The fake runtime's functions. */
static char g_report[2048];
static int g_reports;
static int g_impl[4];

static void report_error(TfLiteContext *context, const char *format, ...) {
  va_list args;
  (void)context;
  va_start(args, format);
  vsnprintf(g_report, sizeof g_report, format, args);
  va_end(args);
  ++g_reports;
}

static void never_called(void) { FAIL("a context function other than ReportError was called"); }

static void check_message(const char *message, const char *where) {
  size_t len = strlen(message);
  const char *newline = strchr(message, '\n');
  if (strncmp(message, BITTTS_OP_NAME ": ", strlen(BITTTS_OP_NAME) + 2) != 0)
    FAIL("%s: message does not start with the op name: %s", where, message);
  if (newline != NULL && newline != message + len - 1)
    FAIL("%s: message spans lines: %s", where, message);
}

static int is_layout_refusal(const char *message) {
  return strstr(message, "runtime layout mismatch") != NULL &&
         strstr(message, BITTTS_PINNED_RUNTIMES_TEXT) != NULL;
}

/* Reference: weight k of a valid byte is digit k of byte + 121 in base 3,
 * minus one. */
static int reference_trit(int8_t byte, size_t k) {
  int value = (int)byte + 121;
  while (k--) value /= 3;
  return value % 3 - 1;
}

static const int kTypes[] = {kTfLiteFloat32, kTfLiteInt8, kTfLiteUInt8, 2 /* int32 */, 0, 99, -1};

/* Context faults (0: none) and node faults; each must be refused. */
enum {
  kContextOk,
  kCountIsPointer, kCountZero, kTensorsMisaligned, kTensorsNull, kImplNull,
  kReportErrorIsData, kReportErrorNull, kResizeTensorNull, kPlanIsData,
  kNumContextFaults
};
enum {
  kNodeOk,
  kBuiltinData, kUserData, kCustomSizeNegative, kCustomDataMissing, kInputsNull,
  kOutputsMisaligned, kOutputsIsCode, kIntermediateOutOfRange, kTemporariesCountHuge,
  kNumNodeFaults
};

/* Entry i is tensor first + i for a zero byte; other bytes give other
 * tensors, sometimes -1 or past the end. */
static TfLiteIntArray *index_list(Input *in, int size, int first, int num_tensors) {
  TfLiteIntArray *list = malloc(sizeof(int) * (size_t)(1 + size));
  int i;
  list->size = size;
  for (i = 0; i < size; ++i) {
    uint8_t b = u8(in);
    list->data[i] = b < 200 ? (b + first + i) % num_tensors
                            : (int)(b % 8) - 2 + (b & 8 ? num_tensors : 0);
  }
  return list;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Input in = {data, size, 0};
  uint8_t flags = u8(&in);
  int arena_mode = flags & 1, old_format = (flags >> 1 & 7) == 7;
  int context_fault = u8(&in) % (kNumContextFaults * 3);
  int node_fault = u8(&in) % (kNumNodeFaults * 3);
  int num_tensors = 1 + (u8(&in) + 2) % kMaxTensors, i, t;
  TfLiteTensor *tensors = calloc((size_t)num_tensors, sizeof *tensors);
  TfLiteIntArray *dims[kMaxTensors] = {0};
  unsigned char *blocks[kMaxTensors] = {0};
  unsigned char *arena = NULL, *snapshot = NULL;
  size_t arena_size = 0;
  TfLiteContext context;
  TfLiteNode node;
  TfLiteIntArray *inputs, *outputs, *intermediates, *temporaries;
  TfLiteIntArray *outputs_block = NULL;
  const TfLiteRegistration *registration =
      old_format ? bittts_litert_old_format_registration() : bittts_litert_registration();
  TfLiteStatus status;
  int packed_index = -1, weights_index = -1;

  ++g_inputs;
  if (context_fault >= kNumContextFaults) context_fault = kContextOk;
  if (node_fault >= kNumNodeFaults) node_fault = kNodeOk;

  /* Tensors: type, dims, byte count, allocation and quantization enums. */
  for (t = 0; t < num_tensors; ++t) {
    TfLiteTensor *tensor = &tensors[t];
    int rank = (u8(&in) + 1) % (kMaxRank + 1), stored = rank <= BITTTS_LITERT_MAX_RANK ? rank : 0;
    size_t count = 1, element = 0;
    uint8_t bytes_mode = u8(&in), enums = u8(&in);
    /* a zero byte: int8 packed indices first, then float32 */
    tensor->type = kTypes[(u8(&in) + (t == 0)) % (sizeof kTypes / sizeof *kTypes)];
    dims[t] = malloc(sizeof(int) * (size_t)(1 + stored));
    dims[t]->size = rank;
    for (i = 0; i < stored; ++i) {
      uint8_t b = u8(&in);
      static const int kSpecial[] = {-1, 0, INT_MAX, 65536, 1 << 20, -7};
      dims[t]->data[i] = b < 240 ? (b + 1) % 24 : kSpecial[b % 6];
      count = dims[t]->data[i] < 0 || count > (size_t)1 << 40 ? (size_t)1 << 41
                                                              : count * (size_t)dims[t]->data[i];
    }
    tensor->dims = dims[t];
    element = tensor->type == kTfLiteFloat32 ? 4 : tensor->type == 9 || tensor->type == 3 ? 1 : 4;
    switch (bytes_mode % 4) {
      case 0:
      case 1: tensor->bytes = count * element; break;
      case 2: tensor->bytes = u8(&in); break;
      default: tensor->bytes = count * element + (bytes_mode & 4 ? 1 : (size_t)-1); break;
    }
    tensor->allocation_type = enums < 240 ? 1 + enums % 4 : enums;     /* some out of range */
    tensor->quantization.type = enums % 16 == 15 ? 5 : enums % 2;      /* some out of range */
    tensor->name = (enums & 8) ? "t" : NULL;
    if (tensor->bytes <= kMaxBytes && !(bytes_mode & 8)) arena_size += tensor->bytes + 8;
  }

  /* Data: own blocks of exactly `bytes`, or places in one arena. */
  if (arena_mode) arena = malloc(arena_size ? arena_size : 1);
  for (t = 0; t < num_tensors; ++t) {
    TfLiteTensor *tensor = &tensors[t];
    uint16_t offset = u16(&in);
    if (tensor->bytes > kMaxBytes || (u8(&in) & 15) == 15) continue; /* data stays NULL */
    if (arena_mode) {
      if (tensor->bytes > arena_size) continue;
      tensor->data = arena + offset % (arena_size - tensor->bytes + 1);
    } else {
      blocks[t] = malloc(tensor->bytes ? tensor->bytes : 1);
      tensor->data = blocks[t];
    }
  }
  /* Contents: the rest of the input, packed-looking bytes folded into the
   * valid range unless flags bit 4 says raw. */
  for (t = 0; t < num_tensors; ++t) {
    unsigned char *bytes = tensors[t].data;
    size_t k;
    if (bytes == NULL) continue;
    for (k = 0; k < tensors[t].bytes; ++k) {
      uint8_t b = u8(&in);
      bytes[k] = (flags & 16) ? b : (unsigned char)(int8_t)(b % 243 - 121);
    }
  }

  /* The node. */
  inputs = index_list(&in, u8(&in) % 8 < 6 ? 2 : u8(&in) % 4, 0, num_tensors);
  outputs = index_list(&in, u8(&in) % 8 < 6 ? 1 : u8(&in) % 3, 2, num_tensors);
  intermediates = (flags & 32) ? NULL : index_list(&in, u8(&in) % 2, 0, num_tensors);
  temporaries = (flags & 64) ? NULL : index_list(&in, 0, 0, num_tensors);
  memset(&node, 0, sizeof node);
  node.inputs = inputs;
  node.outputs = outputs;
  node.intermediates = intermediates;
  node.temporaries = temporaries;
  switch (node_fault) {
    case kBuiltinData: node.builtin_data = g_impl; break;
    case kUserData: node.user_data = g_impl; break;
    case kCustomSizeNegative: node.custom_initial_data_size = -1; break;
    case kCustomDataMissing: node.custom_initial_data_size = 12; break;
    case kInputsNull: node.inputs = NULL; break;
    case kOutputsMisaligned:
      outputs_block = malloc(sizeof(int) * 4);
      memset(outputs_block, 0, sizeof(int) * 4);
      node.outputs = (TfLiteIntArray *)((char *)outputs_block + 2);
      break;
    case kOutputsIsCode: node.outputs = (TfLiteIntArray *)(uintptr_t)never_called; break;
    case kIntermediateOutOfRange:
      if (intermediates == NULL || intermediates->size == 0) {
        free(intermediates);
        intermediates = malloc(sizeof(int) * 2);
        intermediates->size = 1;
        node.intermediates = intermediates;
      }
      intermediates->data[0] = num_tensors + 3;
      break;
    case kTemporariesCountHuge:
      if (temporaries == NULL) {
        temporaries = malloc(sizeof(int));
        node.temporaries = temporaries;
      }
      temporaries->size = BITTTS_LITERT_MAX_NODE_TENSORS + 1;
      break;
  }
  if (node.inputs != NULL && node.inputs->size == 2) packed_index = node.inputs->data[0];
  if (node_fault == kNodeOk && outputs->size == 1) weights_index = outputs->data[0];

  /* The context. */
  memset(&context, 0, sizeof context);
  context.tensors_size = (size_t)num_tensors;
  context.tensors = tensors;
  context.impl_ = g_impl;
  context.ReportError = report_error;
  context.ResizeTensor = (void *)(uintptr_t)never_called;
  context.GetExecutionPlan = (void *)(uintptr_t)never_called;
  switch (context_fault) {
    case kCountIsPointer: context.tensors_size = (size_t)(uintptr_t)tensors; break;
    case kCountZero: context.tensors_size = 0; break;
    case kTensorsMisaligned: context.tensors = (TfLiteTensor *)((char *)tensors + 4); break;
    case kTensorsNull: context.tensors = NULL; break;
    case kImplNull: context.impl_ = NULL; break;
    case kReportErrorIsData:
      context.ReportError = (void (*)(TfLiteContext *, const char *, ...))(uintptr_t)g_impl;
      break;
    case kReportErrorNull: context.ReportError = NULL; break;
    case kResizeTensorNull: context.ResizeTensor = NULL; break;
    case kPlanIsData: context.GetExecutionPlan = g_impl; break;
  }

  /* Prepare. */
  g_reports = 0;
  g_report[0] = '\0';
  status = registration->prepare(&context, &node);
  if (g_reports > 1) FAIL("Prepare reported %d errors", g_reports);
  if (g_reports) check_message(g_report, "Prepare");
  if (status != kTfLiteOk) check_message(bittts_litert_kernel_error(), "Prepare (kernel error)");
  if (context_fault != kContextOk || node_fault != kNodeOk) {
    if (status == kTfLiteOk) FAIL("Prepare accepted context fault %d, node fault %d",
                                  context_fault, node_fault);
    if (!is_layout_refusal(bittts_litert_kernel_error()))
      FAIL("fault %d/%d refused without naming the layout: %s", context_fault, node_fault,
           bittts_litert_kernel_error());
    if (context_fault != kContextOk && g_reports)
      FAIL("ReportError called on a context that failed the guard");
  }
  if (status == kTfLiteOk && old_format) FAIL("the old-format kernel accepted a node");

  /* Eval, after Prepare accepted; flags bit 7 first corrupts a packed byte
   * or the scale (as a corrupt constant would be at run time). */
  if (status == kTfLiteOk) {
    const TfLiteTensor *packed = &tensors[packed_index];
    ++g_prepared;
    TfLiteTensor *weights = &tensors[weights_index];
    if ((flags & 128) && packed->data && packed->bytes) {
      uint8_t b = u8(&in);
      ((int8_t *)packed->data)[b % packed->bytes] = (int8_t)(122 + b % 6);
    }
    if (arena_mode) {
      snapshot = malloc(arena_size ? arena_size : 1);
      memcpy(snapshot, arena, arena_size);
    }
    g_reports = 0;
    status = registration->invoke(&context, &node);
    if (g_reports > 1) FAIL("Eval reported %d errors", g_reports);
    if (g_reports) check_message(g_report, "Eval");
    if ((status == kTfLiteOk) == (g_reports > 0))
      FAIL("Eval status %d with %d reports", status, g_reports);
    if (status == kTfLiteOk) {
      size_t n = weights->type == kTfLiteFloat32 ? weights->bytes / 4 : weights->bytes, k;
      float scale;
      memcpy(&scale, tensors[node.inputs->data[1]].data, sizeof scale);
      for (k = 0; k < n; ++k) {
        int trit = reference_trit(((const int8_t *)packed->data)[k / 5], k % 5);
        if (weights->type == kTfLiteFloat32) {
          float expected = (float)trit * scale, got;
          memcpy(&got, (const char *)weights->data + 4 * k, sizeof got);
          if (memcmp(&got, &expected, sizeof got) != 0)
            FAIL("weight %zu: %a, expected %a", k, (double)got, (double)expected);
        } else if (((const int8_t *)weights->data)[k] != trit) {
          FAIL("int8 weight %zu: %d, expected %d", k, ((const int8_t *)weights->data)[k], trit);
        }
      }
      ++g_decoded;
      if (arena_mode) {
        size_t from = (size_t)((unsigned char *)weights->data - arena);
        if (memcmp(arena, snapshot, from) != 0 ||
            memcmp(arena + from + weights->bytes, snapshot + from + weights->bytes,
                   arena_size - from - weights->bytes) != 0)
          FAIL("Eval wrote outside the output's bytes");
      }
    }
  }

  for (t = 0; t < num_tensors; ++t) {
    free(dims[t]);
    free(blocks[t]);
  }
  free(tensors);
  free(arena);
  free(snapshot);
  free(inputs);
  free(outputs);
  free(outputs_block);
  free(intermediates);
  free(temporaries);
  return 0;
}
