// The CUDA part's entry points as the Node addon resolved them with dlopen (init.cc loads them; the NCCL
// bindings call them). One list drives both the struct and the symbol lookup, so they cannot drift.
#pragma once
#include "../../cuda/dtrain_cuda.h"

#define DTRAIN_CUDA_PART_FUNCTIONS(X) \
  X(dtrain_cuda_abi_version)          \
  X(dtrain_cuda_last_error)           \
  X(dtrain_cuda_built_archs)          \
  X(dtrain_cuda_runtime_version)      \
  X(dtrain_cuda_driver_version)       \
  X(dtrain_cuda_device_count)         \
  X(dtrain_cuda_device_name)          \
  X(dtrain_cuda_set_device)           \
  X(dtrain_cuda_malloc)               \
  X(dtrain_cuda_free)                 \
  X(dtrain_cuda_h2d)                  \
  X(dtrain_cuda_d2h)                  \
  X(dtrain_cuda_fill)                 \
  X(dtrain_cuda_synchronize)          \
  X(dtrain_cuda_ipc_export)           \
  X(dtrain_cuda_ipc_import)           \
  X(dtrain_cuda_ipc_close)            \
  X(dtrain_cuda_adamw_step)           \
  X(dtrain_cuda_bias_act)             \
  X(dtrain_cuda_bias_act_backward)    \
  X(dtrain_cuda_softmax_xent)         \
  X(dtrain_cublas_load)               \
  X(dtrain_cublas_loaded_path)        \
  X(dtrain_cuda_gemm)                 \
  X(dtrain_nccl_load)                 \
  X(dtrain_nccl_version)              \
  X(dtrain_nccl_loaded_path)          \
  X(dtrain_nccl_unique_id)            \
  X(dtrain_nccl_comm_init)            \
  X(dtrain_nccl_comm_split)           \
  X(dtrain_nccl_comm_destroy)         \
  X(dtrain_nccl_all_reduce)           \
  X(dtrain_nccl_reduce_scatter)       \
  X(dtrain_nccl_all_gather)           \
  X(dtrain_nccl_broadcast)            \
  X(dtrain_nccl_send)                 \
  X(dtrain_nccl_recv)

namespace dtrain::cuda {
struct CudaPart {
  void* lib = nullptr;
#define DTRAIN_CUDA_PART_FIELD(name) decltype(&::name) name = nullptr;
  DTRAIN_CUDA_PART_FUNCTIONS(DTRAIN_CUDA_PART_FIELD)
#undef DTRAIN_CUDA_PART_FIELD
};

// Filled once by cuda.load(); `lib` stays null until then.
extern CudaPart g_part;
}  // namespace dtrain::cuda
