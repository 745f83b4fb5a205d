// NCCL communicators behind the C ABI: each has its own stream, and every op waits under a watchdog that
// polls ncclCommGetAsyncError and aborts the communicator when the op outlives its timeout, so a dead or
// diverged peer becomes an error on this rank instead of a hang (NCCL itself would wait forever).
#include <cuda_runtime.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "dtrain_cuda.h"
#include "errors.h"
#include "nccl_api.h"

using dtrain::Nccl;
using dtrain::SetError;

struct dtrain_nccl_comm {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;  // marks the default stream's work an op must see (made on first use)
  int device = 0;
  int timeout_ms = 0;
  bool aborted = false;
};

namespace {
int NcclError(const char* what, ncclResult_t r) {
  const char* msg = Nccl() ? Nccl()->getErrorString(r) : "NCCL not loaded";
  return SetError(DTRAIN_CUDA_ENCCL, std::string(what) + ": " + msg);
}

#define NCCL_CALL(what, call)                          \
  do {                                                 \
    ncclResult_t r_ = (call);                          \
    if (r_ != ncclSuccess) return NcclError(what, r_); \
  } while (0)

int RequireNccl() {
  if (!Nccl()) return SetError(DTRAIN_CUDA_ENCCL, "NCCL is not loaded (call dtrain_nccl_load first)");
  return 0;
}

bool ToNcclType(int dtype, ncclDataType_t* out) {
  switch (dtype) {
    case DTRAIN_F32:
      *out = ncclFloat32;
      return true;
    case DTRAIN_F64:
      *out = ncclFloat64;
      return true;
    case DTRAIN_I32:
      *out = ncclInt32;
      return true;
    case DTRAIN_I64:
      *out = ncclInt64;
      return true;
    case DTRAIN_BF16:
      *out = ncclBfloat16;
      return true;
    case DTRAIN_F16:
      *out = ncclFloat16;
      return true;
  }
  return false;
}

bool ToNcclOp(int op, ncclRedOp_t* out) {
  switch (op) {
    case DTRAIN_SUM:
      *out = ncclSum;
      return true;
    case DTRAIN_AVG:
      *out = ncclAvg;
      return true;
    case DTRAIN_MAX:
      *out = ncclMax;
      return true;
    case DTRAIN_MIN:
      *out = ncclMin;
      return true;
    case DTRAIN_PROD:
      *out = ncclProd;
      return true;
  }
  return false;
}

// Waits for the communicator's stream; polls async errors; aborts on timeout. Sleeps between polls so a
// long collective does not burn a core that the host's other ranks need.
int Watch(dtrain_nccl_comm* c, const char* op) {
  auto start = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    cudaError_t q = cudaStreamQuery(c->stream);
    if (q == cudaSuccess) return 0;
    if (q != cudaErrorNotReady) return SetError(DTRAIN_CUDA_ECUDA, std::string(op) + ": " + cudaGetErrorString(q));
    ncclResult_t async = ncclSuccess;
    if (Nccl()->commGetAsyncError(c->comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
      Nccl()->commAbort(c->comm);
      c->aborted = true;
      return NcclError(op, async);
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (c->timeout_ms > 0 && elapsed.count() > c->timeout_ms) {
      Nccl()->commAbort(c->comm);
      c->aborted = true;
      return SetError(DTRAIN_CUDA_ETIMEOUT, std::string(op) + " timed out after " + std::to_string(c->timeout_ms) +
                                                " ms (a peer is dead or did not join); communicator aborted");
    }
    if (polls > 64) std::this_thread::sleep_for(std::chrono::microseconds(polls > 1024 ? 500 : 20));
  }
}

int Usable(dtrain_nccl_comm* c) {
  if (int e = RequireNccl()) return e;
  if (!c) return SetError(DTRAIN_CUDA_EARG, "null communicator");
  if (c->aborted) return SetError(DTRAIN_CUDA_ENCCL, "communicator was aborted after an earlier failure");
  if (cudaSetDevice(c->device) != cudaSuccess) return SetError(DTRAIN_CUDA_ECUDA, "cannot select the comm's device");
  return 0;
}
// The communicator's stream does not block on the legacy default stream, where the layer kernels, cuBLAS and
// copies run and return before they finish; an event recorded there and waited for on the comm stream makes
// the collective read what they wrote, without the host waiting.
int OrderAfterDefaultStream(dtrain_nccl_comm* c) {
  if (!c->ready) DTRAIN_CUDA_CHECK(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
  DTRAIN_CUDA_CHECK(cudaEventRecord(c->ready, cudaStreamLegacy));
  DTRAIN_CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ready, 0));
  return 0;
}
}  // namespace

extern "C" {
int dtrain_nccl_load(const char* path) {
  std::string error;
  if (!dtrain::LoadNccl(path, &error)) return SetError(DTRAIN_CUDA_ENCCL, error);
  return 0;
}

int dtrain_nccl_version(int* version) {
  if (int e = RequireNccl()) return e;
  NCCL_CALL("ncclGetVersion", Nccl()->getVersion(version));
  return 0;
}

const char* dtrain_nccl_loaded_path(void) { return dtrain::NcclPath(); }

int dtrain_nccl_unique_id(uint8_t out[128]) {
  if (int e = RequireNccl()) return e;
  ncclUniqueId id;
  NCCL_CALL("ncclGetUniqueId", Nccl()->getUniqueId(&id));
  memcpy(out, id.internal, sizeof id.internal);
  return 0;
}

int dtrain_nccl_comm_init(dtrain_nccl_comm** out, const uint8_t id_bytes[128], int nranks, int rank, int device,
                          int timeout_ms) {
  if (int e = RequireNccl()) return e;
  if (!out || nranks < 1 || rank < 0 || rank >= nranks) return SetError(DTRAIN_CUDA_EARG, "bad comm arguments");
  DTRAIN_CUDA_CHECK(cudaSetDevice(device));
  auto* c = new dtrain_nccl_comm();
  c->device = device;
  c->timeout_ms = timeout_ms;
  ncclUniqueId id;
  memcpy(id.internal, id_bytes, sizeof id.internal);
  ncclResult_t r = Nccl()->commInitRank(&c->comm, nranks, id, rank);
  if (r != ncclSuccess) {
    delete c;
    return NcclError("ncclCommInitRank", r);
  }
  if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) {
    Nccl()->commDestroy(c->comm);
    delete c;
    return SetError(DTRAIN_CUDA_ECUDA, "cudaStreamCreate failed");
  }
  *out = c;
  return 0;
}

int dtrain_nccl_comm_split(dtrain_nccl_comm* parent, int color, int key, dtrain_nccl_comm** out) {
  if (int e = Usable(parent)) return e;
  if (!Nccl()->commSplit) return SetError(DTRAIN_CUDA_ENCCL, "ncclCommSplit needs NCCL 2.18 or newer");
  auto* c = new dtrain_nccl_comm();
  c->device = parent->device;
  c->timeout_ms = parent->timeout_ms;
  ncclResult_t r = Nccl()->commSplit(parent->comm, color, key, &c->comm, nullptr);
  if (r != ncclSuccess || !c->comm) {
    delete c;
    return r != ncclSuccess ? NcclError("ncclCommSplit", r) : SetError(DTRAIN_CUDA_EARG, "rank not in the split");
  }
  if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) {
    Nccl()->commDestroy(c->comm);
    delete c;
    return SetError(DTRAIN_CUDA_ECUDA, "cudaStreamCreate failed");
  }
  *out = c;
  return 0;
}

int dtrain_nccl_comm_destroy(dtrain_nccl_comm* c) {
  if (!c) return 0;
  // An aborted communicator was already released by ncclCommAbort.
  if (Nccl() && c->comm && !c->aborted) Nccl()->commDestroy(c->comm);
  if (c->ready) cudaEventDestroy(c->ready);
  if (c->stream) cudaStreamDestroy(c->stream);
  delete c;
  return 0;
}

int dtrain_nccl_comm_abort(dtrain_nccl_comm* c) {
  if (int e = RequireNccl()) return e;
  if (c && !c->aborted) {
    Nccl()->commAbort(c->comm);
    c->aborted = true;
  }
  return 0;
}

#define PREPARE(dtype_var)                                                                \
  if (int e = Usable(c)) return e;                                                        \
  ncclDataType_t t;                                                                       \
  if (!ToNcclType(dtype_var, &t)) return SetError(DTRAIN_CUDA_EARG, "unsupported dtype"); \
  if (int e = OrderAfterDefaultStream(c)) return e

int dtrain_nccl_all_reduce(dtrain_nccl_comm* c, const void* send, void* recv, size_t count, int dtype, int op) {
  PREPARE(dtype);
  ncclRedOp_t o;
  if (!ToNcclOp(op, &o)) return SetError(DTRAIN_CUDA_EARG, "unsupported reduce op");
  NCCL_CALL("ncclAllReduce", Nccl()->allReduce(send, recv, count, t, o, c->comm, c->stream));
  return Watch(c, "all_reduce");
}

int dtrain_nccl_reduce_scatter(dtrain_nccl_comm* c, const void* send, void* recv, size_t recv_count, int dtype,
                               int op) {
  PREPARE(dtype);
  ncclRedOp_t o;
  if (!ToNcclOp(op, &o)) return SetError(DTRAIN_CUDA_EARG, "unsupported reduce op");
  NCCL_CALL("ncclReduceScatter", Nccl()->reduceScatter(send, recv, recv_count, t, o, c->comm, c->stream));
  return Watch(c, "reduce_scatter");
}

int dtrain_nccl_all_gather(dtrain_nccl_comm* c, const void* send, void* recv, size_t send_count, int dtype) {
  PREPARE(dtype);
  NCCL_CALL("ncclAllGather", Nccl()->allGather(send, recv, send_count, t, c->comm, c->stream));
  return Watch(c, "all_gather");
}

int dtrain_nccl_broadcast(dtrain_nccl_comm* c, const void* send, void* recv, size_t count, int dtype, int root) {
  PREPARE(dtype);
  NCCL_CALL("ncclBroadcast", Nccl()->broadcast(send, recv, count, t, root, c->comm, c->stream));
  return Watch(c, "broadcast");
}

int dtrain_nccl_send(dtrain_nccl_comm* c, const void* buf, size_t count, int dtype, int peer) {
  PREPARE(dtype);
  NCCL_CALL("ncclSend", Nccl()->send(buf, count, t, peer, c->comm, c->stream));
  return Watch(c, "send");
}

int dtrain_nccl_recv(dtrain_nccl_comm* c, void* buf, size_t count, int dtype, int peer) {
  PREPARE(dtype);
  NCCL_CALL("ncclRecv", Nccl()->recv(buf, count, t, peer, c->comm, c->stream));
  return Watch(c, "recv");
}
}  // extern "C"
