#include "parts.h"

namespace dtrain {
void InitOptim(Napi::Env env, Napi::Object exports) {}
}  // namespace dtrain
