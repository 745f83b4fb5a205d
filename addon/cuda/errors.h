// Error trail of the CUDA part: each failing call records what failed and where (NCCL-style), and the C ABI
// returns a code; the message is read back with dtrain_cuda_last_error().
#pragma once
#include <string>

namespace dtrain {
int SetError(int code, const std::string& message);
}  // namespace dtrain

#define DTRAIN_CUDA_CHECK(call)                                                                                  \
  do {                                                                                                           \
    cudaError_t err_ = (call);                                                                                   \
    if (err_ != cudaSuccess)                                                                                     \
      return ::dtrain::SetError(DTRAIN_CUDA_ECUDA, std::string(#call) + ": " + cudaGetErrorString(err_) + " (" + \
                                                       __FILE__ + ":" + std::to_string(__LINE__) + ")");         \
  } while (0)
