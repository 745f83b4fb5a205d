#include "parts.h"

namespace dtrain {
void InitCuda(Napi::Env env, Napi::Object exports) {}
}  // namespace dtrain
