// SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104) for the peer handshake; small and self-contained so the
// addon links against nothing but libc.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dtrain {

using Digest = std::array<uint8_t, 32>;
Digest sha256(const uint8_t* data, size_t len);
Digest hmacSha256(const std::string& key, const std::string& message);
bool digestsEqual(const uint8_t* a, const uint8_t* b);  // constant time

}  // namespace dtrain
