#ifndef BITTTS_LITERT_OP_H_
#define BITTTS_LITERT_OP_H_

#include "litert_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* build/libbittts_litert.so is built with -fvisibility=hidden: it exports
 * these and the registerer (bittts_litert_register.c), nothing else. */
#define BITTTS_LITERT_EXPORT __attribute__((visibility("default")))

/* The kernel of BitTTSTernaryDecode for the LiteRT interpreter, registered
 * under op version BITTTS_FORMAT_VERSION. */
BITTTS_LITERT_EXPORT const TfLiteRegistration *bittts_litert_registration(void);

/* Registered under op version 1: fails Prepare with a message saying the
 * model predates the current packed format. */
BITTTS_LITERT_EXPORT const TfLiteRegistration *bittts_litert_old_format_registration(void);

/* The kernel of BitTTSTernaryConv (the fused 1-D conv, bittts_ternary_conv.h),
 * registered under op version BITTTS_CONV_OP_VERSION. Not exported: the
 * registerer adds it, tests/c/fuzz_litert_kernel.c links the sources. */
const TfLiteRegistration *bittts_litert_conv_registration(void);

/* Runtime layout guards: tflite/litert_abi.h declares the runtime's structs
 * from the pinned ai-edge-litert, with no TFLite header to check them
 * against, so the kernel checks what it reads. Each returns NULL when the
 * record is plausible, else a one-line message that names the pinned
 * versions. None of them calls through a pointer it has not checked, and
 * each reads only the declared leading fields of what it checks.
 *
 * The context: tensor count in 1..BITTTS_LITERT_MAX_TENSORS, tensors and
 * impl_ non-NULL data pointers, ReportError / ResizeTensor / GetExecutionPlan
 * addresses inside an executable segment of a loaded object. */
BITTTS_LITERT_EXPORT const char *bittts_litert_check_context(const TfLiteContext *context);
/* The node: inputs and outputs (and intermediates and temporaries, when set)
 * aligned arrays of at most BITTTS_LITERT_MAX_NODE_TENSORS indices, each in
 * range of the context (or -1 for an optional tensor); no builtin data and
 * no user data (the op has neither); custom data size not negative. Checks
 * the context first. */
BITTTS_LITERT_EXPORT const char *bittts_litert_check_node(const TfLiteContext *context,
                                                          const TfLiteNode *node);
/* The record the runtime's resolver stored for `ours` (registered under
 * `version`): the same functions and trailing fields at our offsets, the
 * custom name and version the resolver sets, builtin code CUSTOM. */
BITTTS_LITERT_EXPORT const char *bittts_litert_check_stored_registration(
    const TfLiteRegistration *stored, const TfLiteRegistration *ours, int version);
/* Makes every later Prepare and Eval fail with `message` (the registerer
 * calls it when the stored record does not match), or clears that with NULL. */
BITTTS_LITERT_EXPORT void bittts_litert_refuse_runtime(const char *message);

/* The kernel's last refusal ("" if none): reported through the context's
 * ReportError too, unless that pointer failed the guard. Not thread-safe: a
 * diagnostic for tests and for callers whose runtime could not show it. */
BITTTS_LITERT_EXPORT const char *bittts_litert_kernel_error(void);

#define BITTTS_LITERT_MAX_TENSORS (1 << 24)
#define BITTTS_LITERT_MAX_NODE_TENSORS (1 << 16)
#define BITTTS_LITERT_MAX_RANK 16

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_LITERT_OP_H_ */
