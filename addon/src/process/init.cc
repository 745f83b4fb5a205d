#include "parts.h"

namespace dtrain {
void InitProcess(Napi::Env env, Napi::Object exports) {}
}  // namespace dtrain
