#ifndef BITTTS_LITERT_OP_H_
#define BITTTS_LITERT_OP_H_

#include "litert_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The kernel of BitTTSTernaryDecode for the LiteRT interpreter. */
const TfLiteRegistration *bittts_litert_registration(void);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_LITERT_OP_H_ */
