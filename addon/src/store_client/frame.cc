#include "store_client/frame.h"

namespace dtrain::store {
namespace {

void putU32(std::string& s, uint32_t v) {
  s.push_back(char(v >> 24));
  s.push_back(char(v >> 16));
  s.push_back(char(v >> 8));
  s.push_back(char(v));
}

uint32_t getU32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

std::string encodeFrame(const Message& m) {
  std::string body;
  body.push_back(char(m.code));
  putU32(body, m.id);
  body.push_back(char(uint8_t(m.args.size())));
  for (const auto& a : m.args) {
    putU32(body, uint32_t(a.size()));
    body += a;
  }
  std::string frame;
  putU32(frame, uint32_t(body.size()));
  return frame + body;
}

bool parseBody(const uint8_t* data, size_t size, Message& out, std::string& error) {
  if (size < 6) {
    error = "body shorter than its 6-byte header";
    return false;
  }
  out.code = data[0];
  out.id = getU32(data + 1);
  size_t argc = data[5], pos = 6;
  out.args.clear();
  out.args.reserve(argc);
  for (size_t i = 0; i < argc; ++i) {
    if (size - pos < 4) {
      error = "argument " + std::to_string(i) + " has a truncated length";
      return false;
    }
    size_t len = getU32(data + pos);
    pos += 4;
    if (len > size - pos) {
      error = "argument " + std::to_string(i) + " runs past the end of the body";
      return false;
    }
    out.args.emplace_back(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
  }
  if (pos != size) {
    error = std::to_string(size - pos) + " trailing bytes after the arguments";
    return false;
  }
  return true;
}

int FrameReader::next(std::vector<uint8_t>& body, std::string& error) {
  size_t avail = buf_.size() - pos_;
  if (avail < 4) return 0;
  size_t len = getU32(buf_.data() + pos_);
  if (len > maxBody_) {
    error = "frame of " + std::to_string(len) + " bytes exceeds the " + std::to_string(maxBody_) + "-byte limit";
    return -1;
  }
  if (avail - 4 < len) return 0;
  body.assign(buf_.begin() + long(pos_ + 4), buf_.begin() + long(pos_ + 4 + len));
  pos_ += 4 + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 65536 && pos_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + long(pos_));
    pos_ = 0;
  }
  return 1;
}

const char* statusName(uint8_t status) {
  switch (status) {
    case kOk:
      return "ok";
    case kTimeout:
      return "timeout";
    case kNotFound:
      return "not found";
    case kBadRequest:
      return "bad request";
    case kNotAuthorized:
      return "not authorized";
    case kCancelled:
      return "cancelled";
    case kOverLimit:
      return "over this process's limit of requests in flight";
  }
  return "unknown status";
}

}  // namespace dtrain::store
