// libFuzzer target for the native agent's JSON (addon/agent/json.cc), which reads the controller's hello,
// spec and commands and writes every event and output record. Arbitrary bytes are parsed; a value that
// parses must print as text that parses back to the same print, and any bytes quoted as a string (worker
// output is arbitrary bytes) must parse back, as valid UTF-8 that quotes to itself again.
// Built with -fsanitize=fuzzer,address by test/unit/collectives/fuzz.test.ts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "../agent/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dtrain::agent::Json;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string error;
  Json value = Json::parse(text, error);
  if (error.empty()) {
    const std::string once = value.dump();
    Json again = Json::parse(once, error);
    if (!error.empty() || again.dump() != once) __builtin_trap();
  }
  const std::string quoted = dtrain::agent::quote(text);
  Json str = Json::parse(quoted, error);
  if (!error.empty() || !str.isString()) __builtin_trap();
  if (dtrain::agent::quote(str.str()) != quoted) __builtin_trap();
  return 0;
}
