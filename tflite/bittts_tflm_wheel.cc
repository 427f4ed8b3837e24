// BitTTSTernaryDecode and BitTTSTernaryConv (the fused 1-D conv) in the
// Python interpreter of the tflite-micro wheel, running the firmware's own
// kernels (firmware_stub/bittts_tflm_kernel.cc).
//
// Python: load build/libbittts_tflm_py.so with RTLD_GLOBAL, then
//   runtime.Interpreter.from_bytes(model, custom_op_registerers=["BitTTS_RegisterTFLMOps"])
// (bittts_tf/export/tflm.py does both). The wheel hands the registerer its
// tflite::PythonOpsResolver (a MicroMutableOpResolver<200>) but ships no
// headers and does not export AddCustom, whose whole job is to append a
// TFLMRegistration to the resolver's array. So the registerer does that
// itself, after checking that the object really is that resolver:
//
// 1. the resolver's vtable pointer is the wheel's PythonOpsResolver vtable,
//    whose first two slots are MicroMutableOpResolver<200>::FindOp (the
//    capacity is part of their mangled names);
// 2. the array, its length and the builtin-code list sit where this file
//    declares them: every registered builtin is found by the wheel's own
//    FindOp at the slot we compute, and the builtin list agrees;
// 3. after appending, the wheel's FindOp finds our op in our slot.
//
// The kernel talks to TFLM through declarations of our own
// (tflite/tflm_wheel_abi/): before Init and Prepare reach it, the context is
// checked to hold the wheel's own MicroContext* functions at the declared
// offsets and a MicroInterpreterContext behind impl_, and each of the node's
// tensors is compared between its TfLiteTensor and TfLiteEvalTensor records.
// Any mismatch is an error naming what differs (also kept for Python:
// bittts_tflm_wheel_error()), never a guess. Linux x86-64 only.
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bittts_spec.h"
#include "bittts_tflm_kernel.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_common.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

#define EXPORT extern "C" __attribute__((visibility("default")))
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

namespace {

constexpr unsigned kResolverCapacity = 200;
constexpr int32_t kBuiltinCustom = 32;  // BuiltinOperator_CUSTOM in the schema

// tflite::MicroMutableOpResolver<200> after its vtable pointer.
struct ResolverLayout {
  const void* const* vptr;
  TFLMRegistration registrations[kResolverCapacity];
  unsigned registrations_len;
  int32_t builtin_codes[kResolverCapacity];
  void* builtin_parsers[kResolverCapacity];
  unsigned num_builtin_ops;
};

using FindBuiltinFn = const TFLMRegistration* (*)(const void* resolver, int32_t op);
using FindCustomFn = const TFLMRegistration* (*)(const void* resolver, const char* name);
using TempTensorFn = TfLiteTensor* (*)(void* micro_context, const TfLiteNode* node, int index);
using FreeTempTensorFn = void (*)(void* micro_context, TfLiteTensor* tensor);
using VPrintfFn = void (*)(const char* format, va_list args);

// The wheel's functions and vtables, resolved by name in the object that
// defines the resolver's class.
struct Wheel {
  const char* path = nullptr;
  void* resolver_vtable = nullptr;
  void* context_vtable = nullptr;
  void* find_builtin = nullptr;
  void* find_custom = nullptr;
  void* get_eval_tensor = nullptr;
  void* get_tensor = nullptr;
  void* allocate_persistent_buffer = nullptr;
  void* request_scratch_buffer = nullptr;
  void* get_scratch_buffer = nullptr;
  void* report_error = nullptr;
  void* allocate_temp_input = nullptr;
  void* allocate_temp_output = nullptr;
  void* deallocate_temp = nullptr;
  void* vprintf = nullptr;
};

struct WheelSymbol {
  const char* name;
  void** slot;
};

Wheel g_wheel;
bool g_wheel_ready = false;
// The firmware's kernels the registerer appends, in this order.
enum { kDecodeOp = 0, kConvOp = 1, kNumOps = 2 };
const char* const kOpNames[kNumOps] = {BITTTS_OP_NAME, BITTTS_CONV_OP_NAME};
const TFLMRegistration* g_kernels[kNumOps] = {nullptr, nullptr};
char g_error[512];

bool Refuse(const char* format, ...) __attribute__((format(printf, 1, 2)));
bool Refuse(const char* format, ...) {
  int n = snprintf(g_error, sizeof g_error, "%s: cannot register %s: ",
                   STRINGIFY(BITTTS_TFLM_REGISTERER_SYMBOL), BITTTS_OP_NAME);
  if (n < 0 || static_cast<size_t>(n) >= sizeof g_error) n = 0;
  va_list args;
  va_start(args, format);
  vsnprintf(g_error + n, sizeof g_error - static_cast<size_t>(n), format, args);
  va_end(args);
  fprintf(stderr, "%s\n", g_error);
  return false;
}

bool ResolveWheel(const void* vptr) {
  Dl_info info;
  if (!dladdr(vptr, &info) || info.dli_fname == nullptr)
    return Refuse("the resolver's vtable is in no loaded object (not a TFLM resolver?)");
  // RTLD_NOLOAD: only a handle on the object already loaded, never a new one.
  void* handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return Refuse("cannot reopen %s: %s", info.dli_fname, dlerror());
  Wheel wheel;
  wheel.path = info.dli_fname;
  const WheelSymbol symbols[] = {
      {"_ZTVN6tflite17PythonOpsResolverE", &wheel.resolver_vtable},
      {"_ZTVN6tflite23MicroInterpreterContextE", &wheel.context_vtable},
      {"_ZNK6tflite22MicroMutableOpResolverILj200EE6FindOpENS_15BuiltinOperatorE",
       (&wheel.find_builtin)},
      {"_ZNK6tflite22MicroMutableOpResolverILj200EE6FindOpEPKc",
       (&wheel.find_custom)},
      {"_ZN6tflite25MicroContextGetEvalTensorEPK13TfLiteContexti",
       (&wheel.get_eval_tensor)},
      {"_ZN6tflite21MicroContextGetTensorEPK13TfLiteContexti",
       (&wheel.get_tensor)},
      {"_ZN6tflite36MicroContextAllocatePersistentBufferEP13TfLiteContextm",
       (&wheel.allocate_persistent_buffer)},
      {"_ZN6tflite39MicroContextRequestScratchBufferInArenaEP13TfLiteContextmPi",
       (&wheel.request_scratch_buffer)},
      {"_ZN6tflite28MicroContextGetScratchBufferEP13TfLiteContexti",
       (&wheel.get_scratch_buffer)},
      {"_ZN6tflite25MicroContextReportOpErrorEP13TfLiteContextPKcz",
       (&wheel.report_error)},
      {"_ZN6tflite12MicroContext23AllocateTempInputTensorEPK10TfLiteNodei",
       (&wheel.allocate_temp_input)},
      {"_ZN6tflite12MicroContext24AllocateTempOutputTensorEPK10TfLiteNodei",
       (&wheel.allocate_temp_output)},
      {"_ZN6tflite23MicroInterpreterContext26DeallocateTempTfLiteTensorEP12TfLiteTensor",
       (&wheel.deallocate_temp)},
      {"_Z12VMicroPrintfPKcP13__va_list_tag", (&wheel.vprintf)},
  };
  for (const WheelSymbol& symbol : symbols) {
    void* address = dlsym(handle, symbol.name);
    Dl_info where;
    // A symbol found in another object (dlsym also searches dependencies)
    // would belong to another build.
    if (address == nullptr || !dladdr(address, &where) || where.dli_fbase != info.dli_fbase)
      return Refuse("%s does not define %s (not the pinned tflite-micro wheel?)", info.dli_fname,
                    symbol.name);
    *symbol.slot = address;
  }
  g_wheel = wheel;
  return true;
}

// Itanium C++ ABI: a vtable pointer points two words into the vtable symbol
// (offset-to-top, typeinfo), at the first virtual function.
const void* FirstSlot(const void* vtable) {
  return static_cast<const char*>(vtable) + 2 * sizeof(void*);
}

bool CheckResolver(const ResolverLayout* resolver) {
  if (resolver->vptr != FirstSlot(g_wheel.resolver_vtable))
    return Refuse("the resolver is not %s's tflite::PythonOpsResolver", g_wheel.path);
  if (resolver->vptr[0] != g_wheel.find_builtin || resolver->vptr[1] != g_wheel.find_custom)
    return Refuse("PythonOpsResolver's vtable does not start with "
                  "MicroMutableOpResolver<%u>::FindOp", kResolverCapacity);
  const unsigned length = resolver->registrations_len;
  const unsigned builtins = resolver->num_builtin_ops;
  if (length > kResolverCapacity || builtins > length || builtins == 0)
    return Refuse("resolver layout differs: %u registrations, %u builtins, capacity %u", length,
                  builtins, kResolverCapacity);
  const FindBuiltinFn find_builtin = reinterpret_cast<FindBuiltinFn>(g_wheel.find_builtin);
  const FindCustomFn find_custom = reinterpret_cast<FindCustomFn>(g_wheel.find_custom);
  unsigned builtin = 0;
  for (unsigned i = 0; i < length; ++i) {
    const TFLMRegistration* slot = &resolver->registrations[i];
    if (slot->builtin_code != kBuiltinCustom) {
      if (builtin >= builtins || resolver->builtin_codes[builtin] != slot->builtin_code ||
          find_builtin(resolver, slot->builtin_code) != slot)
        return Refuse("resolver layout differs: registration %u (builtin %d) is not where "
                      "the wheel's FindOp finds it", i, static_cast<int>(slot->builtin_code));
      ++builtin;
    } else {
      Dl_info where;
      // A name in no loaded object is not a name: do not let FindOp read it.
      if (slot->custom_name == nullptr || !dladdr(slot->custom_name, &where) ||
          find_custom(resolver, slot->custom_name) != slot)
        return Refuse("resolver layout differs: custom registration %u is not where the "
                      "wheel's FindOp finds it", i);
    }
  }
  if (builtin != builtins)
    return Refuse("resolver layout differs: %u builtin registrations, list says %u", builtin,
                  builtins);
  for (const char* name : kOpNames)
    if (find_custom(resolver, name) != nullptr)
      return Refuse("already registered with this resolver");
  if (length + kNumOps > kResolverCapacity)
    return Refuse("the resolver is full (%u ops)", kResolverCapacity);
  return true;
}

// --- checks between the wheel's interpreter and our declarations ----------

char g_message[512];

bool ContextIsWheels(const TfLiteContext* context, const char** what) {
  *what = nullptr;
  if (!g_wheel_ready) *what = "the registerer did not run";
  else if (context == nullptr) *what = "no context";
  else if (reinterpret_cast<void*>(context->GetEvalTensor) != g_wheel.get_eval_tensor ||
           reinterpret_cast<void*>(context->GetTensor) != g_wheel.get_tensor)
    *what = "TfLiteContext layout differs (GetEvalTensor / GetTensor)";
  else if (reinterpret_cast<void*>(context->AllocatePersistentBuffer) !=
               g_wheel.allocate_persistent_buffer ||
           reinterpret_cast<void*>(context->RequestScratchBufferInArena) !=
               g_wheel.request_scratch_buffer ||
           reinterpret_cast<void*>(context->GetScratchBuffer) != g_wheel.get_scratch_buffer ||
           reinterpret_cast<void*>(context->ReportError) != g_wheel.report_error)
    *what = "TfLiteContext layout differs (buffer functions / ReportError)";
  else if (context->impl_ == nullptr ||
           *static_cast<const void* const*>(context->impl_) != FirstSlot(g_wheel.context_vtable))
    *what = "TfLiteContext::impl_ is not the wheel's MicroInterpreterContext";
  return *what == nullptr;
}

size_t ElementSize(TfLiteType type) {
  switch (type) {
    case kTfLiteFloat32:
    case kTfLiteInt32: return 4;
    case kTfLiteInt8:
    case kTfLiteUInt8: return 1;
    default: return 0;
  }
}

// The same tensor seen through both records: a TfLiteTensor or
// TfLiteEvalTensor declared with other offsets would disagree here.
bool SameTensor(const TfLiteTensor* tensor, const TfLiteEvalTensor* eval) {
  if (tensor == nullptr || eval == nullptr || tensor->dims == nullptr || eval->dims == nullptr)
    return false;
  if (tensor->type != eval->type || tensor->data.data != eval->data.data ||
      tensor->dims->size != eval->dims->size || tensor->dims->size < 0 ||
      tensor->dims->size > 8)
    return false;
  size_t count = 1;
  for (int i = 0; i < tensor->dims->size; ++i) {
    if (tensor->dims->data[i] != eval->dims->data[i] || tensor->dims->data[i] < 0) return false;
    count *= static_cast<size_t>(tensor->dims->data[i]);
  }
  const size_t size = ElementSize(tensor->type);
  return size == 0 || tensor->bytes == count * size;
}

bool NodeTensorsAgree(TfLiteContext* context, TfLiteNode* node, const char** what) {
  *what = nullptr;
  if (node->inputs == nullptr || node->outputs == nullptr || node->inputs->size < 0 ||
      node->inputs->size > 16 || node->outputs->size < 0 || node->outputs->size > 16) {
    *what = "TfLiteNode layout differs (input / output lists)";
    return false;
  }
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  for (int output = 0; output < 2 && *what == nullptr; ++output) {
    const int count = output ? node->outputs->size : node->inputs->size;
    for (int i = 0; i < count && *what == nullptr; ++i) {
      // An optional input left out (-1, the conv op's bias) has no records.
      if (!output && node->inputs->data[i] == -1) continue;
      TfLiteTensor* tensor = output ? micro_context->AllocateTempOutputTensor(node, i)
                                    : micro_context->AllocateTempInputTensor(node, i);
      const TfLiteEvalTensor* eval = output ? tflite::micro::GetEvalOutput(context, node, i)
                                            : tflite::micro::GetEvalInput(context, node, i);
      if (!SameTensor(tensor, eval))
        *what = "TfLiteTensor / TfLiteEvalTensor layout differs (records of one tensor disagree)";
      if (tensor != nullptr) micro_context->DeallocateTempTfLiteTensor(tensor);
    }
  }
  return *what == nullptr;
}

template <int kOp>
void* CheckedInit(TfLiteContext* context, const char* buffer, size_t length) {
  const char* what;
  if (!ContextIsWheels(context, &what)) {
    MicroPrintf("%s: %s", kOpNames[kOp], what);
    return nullptr;
  }
  return g_kernels[kOp]->init(context, buffer, length);
}

template <int kOp>
TfLiteStatus CheckedPrepare(TfLiteContext* context, TfLiteNode* node) {
  const char* what;
  if (!ContextIsWheels(context, &what) || node == nullptr ||
      !NodeTensorsAgree(context, node, &what)) {
    MicroPrintf("%s: %s", kOpNames[kOp], what != nullptr ? what : "no node");
    return kTfLiteError;
  }
  return g_kernels[kOp]->prepare(context, node);
}

// One slot of the resolver's array: the kernel with the checked Init and
// Prepare in front of it (Eval is the kernel's own).
template <int kOp>
void FillSlot(TFLMRegistration* slot) {
  *slot = *g_kernels[kOp];
  slot->init = CheckedInit<kOp>;
  slot->prepare = CheckedPrepare<kOp>;
  slot->builtin_code = kBuiltinCustom;
  slot->custom_name = kOpNames[kOp];  // a static string: the resolver keeps the pointer
}

}  // namespace

// --- what the kernel calls, declared in tflite/tflm_wheel_abi/ -------------
// Reached only after ContextIsWheels passed for the context in hand.

void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  vsnprintf(g_message, sizeof g_message, format, copy);
  va_end(copy);
  if (g_wheel.vprintf != nullptr) {
    reinterpret_cast<VPrintfFn>(g_wheel.vprintf)(format, args);
  } else {
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
  }
  va_end(args);
}

namespace tflite {

TfLiteTensor* MicroContext::AllocateTempInputTensor(const TfLiteNode* node, int index) {
  return reinterpret_cast<TempTensorFn>(g_wheel.allocate_temp_input)(this, node, index);
}

TfLiteTensor* MicroContext::AllocateTempOutputTensor(const TfLiteNode* node, int index) {
  return reinterpret_cast<TempTensorFn>(g_wheel.allocate_temp_output)(this, node, index);
}

// Virtual in TFLM; ContextIsWheels has checked that this is a
// MicroInterpreterContext, so its override is the one to call.
void MicroContext::DeallocateTempTfLiteTensor(TfLiteTensor* tensor) {
  reinterpret_cast<FreeTempTensorFn>(g_wheel.deallocate_temp)(this, tensor);
}

namespace micro {

TFLMRegistration RegisterOp(void* (*init)(TfLiteContext*, const char*, size_t),
                            TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*),
                            TfLiteStatus (*invoke)(TfLiteContext*, TfLiteNode*),
                            void (*free)(TfLiteContext*, void*),
                            void (*reset)(TfLiteContext*, void*)) {
  return {init, free, prepare, invoke, reset, 0, nullptr};
}

const TfLiteEvalTensor* GetEvalInput(const TfLiteContext* context, const TfLiteNode* node,
                                     int index) {
  if (context == nullptr || node == nullptr || node->inputs == nullptr || index < 0 ||
      index >= node->inputs->size || node->inputs->data[index] < 0)
    return nullptr;
  return context->GetEvalTensor(context, node->inputs->data[index]);
}

TfLiteEvalTensor* GetEvalOutput(const TfLiteContext* context, const TfLiteNode* node, int index) {
  if (context == nullptr || node == nullptr || node->outputs == nullptr || index < 0 ||
      index >= node->outputs->size || node->outputs->data[index] < 0)
    return nullptr;
  return context->GetEvalTensor(context, node->outputs->data[index]);
}

}  // namespace micro
}  // namespace tflite

// Why the last registration failed ("" after a success).
EXPORT const char* bittts_tflm_wheel_error(void) { return g_error; }

// The kernel's (or its checks') last message, as it went to the wheel's log.
EXPORT const char* bittts_tflm_wheel_message(void) { return g_message; }

EXPORT bool BITTTS_TFLM_REGISTERER_SYMBOL(void* resolver_pointer) {
  g_error[0] = '\0';
  if (resolver_pointer == nullptr) return Refuse("the resolver pointer is NULL");
  const ResolverLayout* resolver = static_cast<const ResolverLayout*>(resolver_pointer);
  if (!ResolveWheel(resolver->vptr) || !CheckResolver(resolver)) return false;
  g_wheel_ready = true;
  g_kernels[kDecodeOp] = bittts::Register_BitTTSTernaryDecode();
  g_kernels[kConvOp] = bittts::Register_BitTTSTernaryConv();
  ResolverLayout* writable = static_cast<ResolverLayout*>(resolver_pointer);
  TFLMRegistration* slots = &writable->registrations[writable->registrations_len];
  FillSlot<kDecodeOp>(&slots[kDecodeOp]);
  FillSlot<kConvOp>(&slots[kConvOp]);
  writable->registrations_len += kNumOps;
  const FindCustomFn find_custom = reinterpret_cast<FindCustomFn>(g_wheel.find_custom);
  for (int op = 0; op < kNumOps; ++op) {
    if (find_custom(resolver, kOpNames[op]) != &slots[op]) {
      writable->registrations_len -= kNumOps;
      return Refuse("the wheel's FindOp does not find the appended registration");
    }
  }
  return true;
}
