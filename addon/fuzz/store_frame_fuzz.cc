// libFuzzer target for the store client's frame parser (addon/src/store_client/frame.cc): arbitrary bytes
// are fed to the stream splitter in fuzzer-chosen pieces, and every body it yields is parsed. Built with
// -fsanitize=fuzzer,address by test/unit/collectives/fuzz.test.ts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "store_client/frame.h"

// Every status PROTOCOL.md documents (0 ok .. 6 over limit) has a name of its own, checked once at start.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace dtrain::store;
  const char* want[] = {"ok",
                        "timeout",
                        "not found",
                        "bad request",
                        "not authorized",
                        "cancelled",
                        "over this process's limit of requests in flight"};
  for (uint8_t s = 0; s < 7; ++s)
    if (std::string(statusName(s)) != want[s]) __builtin_trap();
  if (std::string(statusName(7)) != "unknown status") __builtin_trap();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dtrain::store;
  if (size < 1) return 0;
  // the first byte picks the feed granularity, so partial frames across reads are exercised too
  size_t step = size_t(data[0] % 16) + 1;
  FrameReader reader(1 << 16);
  std::vector<uint8_t> body;
  std::string error;
  for (size_t off = 1; off < size; off += step) {
    size_t n = size - off < step ? size - off : step;
    reader.feed(data + off, n);
    for (;;) {
      int got = reader.next(body, error);
      if (got < 0) return 0;  // a corrupt stream closes the connection: nothing more to parse
      if (got == 0) break;
      Message m;
      if (parseBody(body.data(), body.size(), m, error)) {
        // every status byte has a name (known ones their own, the rest "unknown status")
        const char* name = statusName(m.code);
        if (!name || !*name) __builtin_trap();
        // a parsed message must encode back to a frame that parses to the same message
        std::string again = encodeFrame(m);
        Message m2;
        if (m.args.size() < 256 &&
            (!parseBody(reinterpret_cast<const uint8_t*>(again.data()) + 4, again.size() - 4, m2, error) ||
             m2.code != m.code || m2.id != m.id || m2.args != m.args))
          __builtin_trap();
      }
    }
  }
  // direct parse of the whole input as one body as well
  Message m;
  parseBody(data, size, m, error);
  return 0;
}
