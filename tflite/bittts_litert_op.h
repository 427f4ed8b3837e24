#ifndef BITTTS_LITERT_OP_H_
#define BITTTS_LITERT_OP_H_

#include "litert_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The kernel of BitTTSTernaryDecode for the LiteRT interpreter, registered
 * under op version BITTTS_FORMAT_VERSION. */
const TfLiteRegistration *bittts_litert_registration(void);

/* Registered under op version 1: fails Prepare with a message saying the
 * model predates the current packed format. */
const TfLiteRegistration *bittts_litert_old_format_registration(void);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_LITERT_OP_H_ */
