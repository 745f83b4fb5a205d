// The store protocol's framing (src/store/PROTOCOL.md): `len:u32be body`, bodies of
// `op|status:u8 id:u32 argc:u8 {arglen:u32 bytes}×argc`. Pure functions with no I/O, so the parser can
// be fuzzed on its own (addon/fuzz/store_frame_fuzz.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::store {

constexpr size_t kMaxBody = 64u << 20;

enum Op : uint8_t {
  kSet = 1,
  kGet = 2,
  kAdd = 3,
  kCas = 4,
  kWait = 5,
  kDelete = 6,
  kBarrier = 7,
  kCheck = 8,
  kPing = 9,
  kCancel = 10,
  kJobKey = 16,
  kWhoAmI = 17
};
enum Status : uint8_t {
  kOk = 0,
  kTimeout = 1,
  kNotFound = 2,
  kBadRequest = 3,
  kNotAuthorized = 4,
  kCancelled = 5,
  kOverLimit = 6
};

struct Message {
  uint8_t code = 0;  // op in a request, status in a response
  uint32_t id = 0;
  std::vector<std::string> args;
};

// The complete frame (length prefix included) of a request.
std::string encodeFrame(const Message& m);

// Parses one body (no length prefix). Returns false with `error` set when it is malformed: truncated,
// trailing bytes, or an argument running past the end.
bool parseBody(const uint8_t* data, size_t size, Message& out, std::string& error);

// Splits a byte stream into bodies. feed() appends; next() extracts one complete body when there is one.
class FrameReader {
 public:
  explicit FrameReader(size_t maxBody = kMaxBody) : maxBody_(maxBody) {}
  void feed(const uint8_t* data, size_t size) { buf_.insert(buf_.end(), data, data + size); }
  // 1: a body was extracted into `body`; 0: need more bytes; -1: the stream is corrupt (length too big).
  int next(std::vector<uint8_t>& body, std::string& error);

 private:
  size_t maxBody_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
};

const char* statusName(uint8_t status);

}  // namespace dtrain::store
