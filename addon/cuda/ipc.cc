// CUDA IPC for device buffers: another process on the same node maps a buffer dtrain allocated (or dtrain
// maps one another process exported) through a 64-byte handle, with no copy.
#include <cuda_runtime_api.h>

#include <cstring>

#include "dtrain_cuda.h"
#include "errors.h"

using dtrain::SetError;

static_assert(sizeof(cudaIpcMemHandle_t) == DTRAIN_CUDA_IPC_HANDLE_BYTES, "CUDA IPC handles are 64 bytes");

extern "C" {
int dtrain_cuda_ipc_export(const void* ptr, uint8_t out[DTRAIN_CUDA_IPC_HANDLE_BYTES]) {
  if (!ptr || !out) return SetError(DTRAIN_CUDA_EARG, "ipc_export: null argument");
  cudaIpcMemHandle_t h;
  DTRAIN_CUDA_CHECK(cudaIpcGetMemHandle(&h, const_cast<void*>(ptr)));
  std::memcpy(out, &h, sizeof h);
  return 0;
}

int dtrain_cuda_ipc_import(const uint8_t handle[DTRAIN_CUDA_IPC_HANDLE_BYTES], void** ptr) {
  if (!handle || !ptr) return SetError(DTRAIN_CUDA_EARG, "ipc_import: null argument");
  cudaIpcMemHandle_t h;
  std::memcpy(&h, handle, sizeof h);
  DTRAIN_CUDA_CHECK(cudaIpcOpenMemHandle(ptr, h, cudaIpcMemLazyEnablePeerAccess));
  return 0;
}

int dtrain_cuda_ipc_close(void* ptr) {
  if (!ptr) return SetError(DTRAIN_CUDA_EARG, "ipc_close: null pointer");
  DTRAIN_CUDA_CHECK(cudaIpcCloseMemHandle(ptr));
  return 0;
}
}  // extern "C"
