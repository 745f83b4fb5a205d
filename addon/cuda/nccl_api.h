// The part of NCCL's C API that dtrain uses, declared here so the project builds without NCCL's headers
// (NCCL is loaded at run time with dlopen). Values follow NCCL's public ABI, stable since 2.x; the loader
// checks the library's version before any of these is called.
#pragma once
#include <stddef.h>

#include <string>

#include <cuda_runtime_api.h>

extern "C" {
typedef struct ncclComm* ncclComm_t;
#define DTRAIN_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[DTRAIN_NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef enum {
  ncclInt8 = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclFloat32 = 7,
  ncclFloat64 = 8,
  ncclBfloat16 = 9,
} ncclDataType_t;

// Opaque to dtrain: passed as NULL (default configuration) to ncclCommSplit.
typedef struct ncclConfig_v21700 ncclConfig_t;

typedef ncclResult_t (*ncclGetVersion_fn)(int* version);
typedef ncclResult_t (*ncclGetUniqueId_fn)(ncclUniqueId* id);
typedef ncclResult_t (*ncclCommInitRank_fn)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
typedef ncclResult_t (*ncclCommSplit_fn)(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                                         ncclConfig_t* config);
typedef ncclResult_t (*ncclCommDestroy_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclCommAbort_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclCommGetAsyncError_fn)(ncclComm_t comm, ncclResult_t* asyncError);
typedef const char* (*ncclGetErrorString_fn)(ncclResult_t result);
typedef ncclResult_t (*ncclAllReduce_fn)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                         ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclReduceScatter_fn)(const void* sendbuff, void* recvbuff, size_t recvcount,
                                             ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                             cudaStream_t stream);
typedef ncclResult_t (*ncclAllGather_fn)(const void* sendbuff, void* recvbuff, size_t sendcount,
                                         ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclBroadcast_fn)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                         int root, ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclSend_fn)(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                                    ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclRecv_fn)(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                                    cudaStream_t stream);
typedef ncclResult_t (*ncclGroupStart_fn)(void);
typedef ncclResult_t (*ncclGroupEnd_fn)(void);
}

namespace dtrain {
// The resolved entry points; `split` may be null on NCCL < 2.18 (groups then init their own communicator).
struct NcclApi {
  ncclGetVersion_fn getVersion = nullptr;
  ncclGetUniqueId_fn getUniqueId = nullptr;
  ncclCommInitRank_fn commInitRank = nullptr;
  ncclCommSplit_fn commSplit = nullptr;
  ncclCommDestroy_fn commDestroy = nullptr;
  ncclCommAbort_fn commAbort = nullptr;
  ncclCommGetAsyncError_fn commGetAsyncError = nullptr;
  ncclGetErrorString_fn getErrorString = nullptr;
  ncclAllReduce_fn allReduce = nullptr;
  ncclReduceScatter_fn reduceScatter = nullptr;
  ncclAllGather_fn allGather = nullptr;
  ncclBroadcast_fn broadcast = nullptr;
  ncclSend_fn send = nullptr;
  ncclRecv_fn recv = nullptr;
  ncclGroupStart_fn groupStart = nullptr;
  ncclGroupEnd_fn groupEnd = nullptr;
};

// The minimum NCCL dtrain accepts: 2.12 brought ncclCommGetAsyncError-based abort semantics the watchdog needs
// and bf16 has been there since 2.10.
constexpr int kMinNcclVersion = 21200;

// Loads NCCL once per process; returns null with `error` filled when it cannot.
const NcclApi* LoadNccl(const char* explicit_path, std::string* error);
const NcclApi* Nccl();
const char* NcclPath();
}  // namespace dtrain
