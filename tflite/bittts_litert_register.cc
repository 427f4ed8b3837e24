// Registers BitTTSTernaryDecode with a LiteRT interpreter's op resolver.
// Python: InterpreterWithCustomOps(custom_op_registerers=["BitTTS_RegisterOps"])
// after loading this library with RTLD_GLOBAL. The resolver's AddCustom is
// resolved from libtensorflow_cc (the only installed library exporting it).
#include "bittts_litert_op.h"
#include "bittts_spec.h"

namespace tflite {
// Only the member we call is declared; its mangled name is all that links.
class MutableOpResolver {
 public:
  void AddCustom(const char* name, const TfLiteRegistration* registration,
                 int version);
};
}  // namespace tflite

extern "C" __attribute__((visibility("default"))) void BITTTS_REGISTERER_SYMBOL(
    tflite::MutableOpResolver* resolver) {
  resolver->AddCustom(BITTTS_OP_NAME, bittts_litert_registration(), 1);
}
