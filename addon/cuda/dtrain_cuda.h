// The C ABI of dtrain's CUDA part (libdtrain_cuda.so). The Node addon loads it with dlopen only when a GPU
// is wanted, and the GPU test harness loads it with Python's ctypes, so it must stay plain C: no C++ types,
// no exceptions across it. Every function returns 0 on success or a negative DTRAIN_CUDA_E* code, and the
// message of the last error on this thread is available from dtrain_cuda_last_error().
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
// The library is built with hidden visibility; only this ABI is exported.
#pragma GCC visibility push(default)

#define DTRAIN_CUDA_ABI_VERSION 2

enum {
  DTRAIN_CUDA_OK = 0,
  DTRAIN_CUDA_ECUDA = -1,     // a CUDA runtime call failed (message names it)
  DTRAIN_CUDA_ENCCL = -2,     // an NCCL call failed, or NCCL is not loaded
  DTRAIN_CUDA_EARG = -3,      // bad argument (dtype, size, null pointer)
  DTRAIN_CUDA_ETIMEOUT = -4,  // the watchdog aborted a communicator after its timeout
  DTRAIN_CUDA_ECUBLAS = -5,   // a cuBLAS call failed, or cuBLAS is not loaded
};

// dtypes shared with the CPU side (src/runtime/types.ts DType)
enum { DTRAIN_F32 = 0, DTRAIN_F64 = 1, DTRAIN_I32 = 2, DTRAIN_I64 = 3, DTRAIN_BF16 = 4, DTRAIN_F16 = 5 };
// reduce ops, in the order of src/runtime/types.ts ReduceOp
enum { DTRAIN_SUM = 0, DTRAIN_AVG = 1, DTRAIN_MAX = 2, DTRAIN_MIN = 3, DTRAIN_PROD = 4 };

int dtrain_cuda_abi_version(void);
const char* dtrain_cuda_last_error(void);
// Comma-separated list of the architectures this library was compiled for, e.g. "sm_80,sm_90,compute_90".
const char* dtrain_cuda_built_archs(void);
int dtrain_cuda_runtime_version(int* version);  // the CUDA runtime this part was built with
int dtrain_cuda_driver_version(int* version);   // 0 when no driver is installed
int dtrain_cuda_device_count(int* count);
int dtrain_cuda_device_name(int device, char* out, size_t cap);
int dtrain_cuda_set_device(int device);

// Device buffers.
int dtrain_cuda_malloc(void** ptr, size_t bytes);
int dtrain_cuda_free(void* ptr);
int dtrain_cuda_h2d(void* dst, const void* src, size_t bytes);
int dtrain_cuda_d2h(void* dst, const void* src, size_t bytes);
int dtrain_cuda_d2d(void* dst, const void* src, size_t bytes);
int dtrain_cuda_fill(void* ptr, int dtype, size_t count, double value);
int dtrain_cuda_synchronize(void);
// Milliseconds of GPU time for `iters` device-to-device copies of `bytes` (the bandwidth reference).
int dtrain_cuda_time_copy(void* dst, const void* src, size_t bytes, int iters, float* ms);

// CUDA IPC: a 64-byte handle for a buffer from dtrain_cuda_malloc (the allocation's base address), opened
// by another process on the same node; the importer closes its mapping with dtrain_cuda_ipc_close. Ordering
// is the exporter's to give: dtrain's work runs on the legacy default stream, so dtrain_cuda_synchronize()
// before sending the handle (or before reading memory another process wrote) orders it.
#define DTRAIN_CUDA_IPC_HANDLE_BYTES 64
int dtrain_cuda_ipc_export(const void* ptr, uint8_t out[DTRAIN_CUDA_IPC_HANDLE_BYTES]);
int dtrain_cuda_ipc_import(const uint8_t handle[DTRAIN_CUDA_IPC_HANDLE_BYTES], void** ptr);
int dtrain_cuda_ipc_close(void* ptr);

// Fused AdamW (torch.optim.AdamW semantics; the per-element math is addon/src/optim/adamw_math.h, shared
// with the CPU kernel). params: fp32 (master == NULL) or bf16/fp16 (params_dtype) with an fp32 master copy.
typedef struct {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;      // 1-based step number, after increment
  float grad_scale;  // gradients are multiplied by this first (1 / clipping factor); 1 for none
} dtrain_adamw_hparams;
int dtrain_cuda_adamw_step(void* params, int params_dtype, float* master, const float* grads, float* m, float* v,
                           size_t n, const dtrain_adamw_hparams* hp);
// Milliseconds of GPU time for `iters` AdamW steps over the same buffers (benchmark).
int dtrain_cuda_time_adamw(void* params, int params_dtype, float* master, const float* grads, float* m, float* v,
                           size_t n, const dtrain_adamw_hparams* hp, int iters, float* ms);

// Layer kernels, on the device's default stream (ordered before later copies; not synchronised). fp32,
// row-major rows × cols; the per-element math is addon/src/layers/act_math.h, shared with the CPU kernels.
enum { DTRAIN_ACT_NONE = 0, DTRAIN_ACT_RELU = 1, DTRAIN_ACT_GELU = 2 };
// z += bias (per column; bias may be NULL), then y = act(z); y may be z.
int dtrain_cuda_bias_act(float* z, const float* bias, float* y, size_t rows, size_t cols, int act);
// dz = dy ⊙ act'(z) (dz may be dy); dbias (may be NULL) = its column sums, or += them with accumulate.
int dtrain_cuda_bias_act_backward(const float* dy, const float* z, float* dz, float* dbias, size_t rows, size_t cols,
                                  int act, int accumulate);
// The mean over rows of -log softmax(logits)[label] into *loss (host); grad (may be NULL) = (softmax - onehot)
// × scale. Synchronises (the loss is read back); a label outside [0, classes) fails with DTRAIN_CUDA_EARG.
int dtrain_cuda_softmax_xent(const float* logits, const int32_t* labels, size_t rows, size_t classes, double scale,
                             float* grad, double* loss);

// GEMM through cuBLAS, loaded with dlopen on first use (`path` NULL searches DTRAIN_CUBLAS_PATH,
// libcublas.so.13 / .12, then pip's nvidia-cublas). Row-major like the CPU GEMM (addon/src/layers/gemm.h):
// C (m×n, fp32) = op(A)·op(B), or += with DTRAIN_GEMM_ACCUMULATE; op(A) is m×k (A stored k×m when
// DTRAIN_GEMM_TRANS_A), op(B) is k×n (B stored n×k when DTRAIN_GEMM_TRANS_B). A and B are both fp32 or
// both bf16 (`in_dtype`); accumulation is fp32 either way (no TF32). Enqueued on the default stream.
enum { DTRAIN_GEMM_TRANS_A = 1, DTRAIN_GEMM_TRANS_B = 2, DTRAIN_GEMM_ACCUMULATE = 4 };
int dtrain_cublas_load(const char* path);
const char* dtrain_cublas_loaded_path(void);
int dtrain_cuda_gemm(const void* a, const void* b, float* c, size_t m, size_t n, size_t k, int flags, int in_dtype);

// NCCL, loaded with dlopen: `path` NULL searches DTRAIN_NCCL_PATH, libnccl.so.2, then pip's nvidia-nccl.
int dtrain_nccl_load(const char* path);
int dtrain_nccl_version(int* version);  // e.g. 22304 for 2.23.4
const char* dtrain_nccl_loaded_path(void);
int dtrain_nccl_unique_id(uint8_t out[128]);
// Communicators are opaque handles; each has its own stream and a watchdog (timeout_ms > 0) that polls
// ncclCommGetAsyncError and aborts the communicator when an op outlives the timeout, so a dead peer
// surfaces as DTRAIN_CUDA_ETIMEOUT instead of a hang.
typedef struct dtrain_nccl_comm dtrain_nccl_comm;
int dtrain_nccl_comm_init(dtrain_nccl_comm** comm, const uint8_t id[128], int nranks, int rank, int device,
                          int timeout_ms);
int dtrain_nccl_comm_split(dtrain_nccl_comm* parent, int color, int key, dtrain_nccl_comm** out);
int dtrain_nccl_comm_destroy(dtrain_nccl_comm* comm);
int dtrain_nccl_comm_abort(dtrain_nccl_comm* comm);
// Collectives enqueue on the communicator's stream and wait for completion (under the watchdog).
int dtrain_nccl_all_reduce(dtrain_nccl_comm* c, const void* send, void* recv, size_t count, int dtype, int op);
int dtrain_nccl_reduce_scatter(dtrain_nccl_comm* c, const void* send, void* recv, size_t recv_count, int dtype, int op);
int dtrain_nccl_all_gather(dtrain_nccl_comm* c, const void* send, void* recv, size_t send_count, int dtype);
int dtrain_nccl_broadcast(dtrain_nccl_comm* c, const void* send, void* recv, size_t count, int dtype, int root);
int dtrain_nccl_send(dtrain_nccl_comm* c, const void* buf, size_t count, int dtype, int peer);
int dtrain_nccl_recv(dtrain_nccl_comm* c, void* buf, size_t count, int dtype, int peer);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
