// dlopen wrapper for NCCL (one small wrapper per library, as NCCL itself does for libcuda and ibverbs).
#include <dlfcn.h>
#include <stdlib.h>

#include <mutex>
#include <string>
#include <vector>

#include "library_search.h"
#include "nccl_api.h"

namespace dtrain {
namespace {
NcclApi g_api;
const NcclApi* g_loaded = nullptr;
std::string g_path;
std::string g_error;
std::once_flag g_once;

// Where pip puts nvidia-nccl-cu* (the layout PyTorch wheels depend on), after the loader's own search path.
std::vector<std::string> Candidates(const char* explicit_path) {
  return LibraryCandidates({explicit_path, "DTRAIN_NCCL_PATH", {"libnccl.so.2"}, {"nvidia/nccl/lib/libnccl.so.2"}});
}

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn* slot, bool required, std::string* missing) {
  *slot = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!*slot && required) {
    *missing = name;
    return false;
  }
  return true;
}

void DoLoad(const char* explicit_path) {
  std::string tried;
  void* lib = OpenFirstLibrary(Candidates(explicit_path), &g_path, &tried);
  if (!lib) {
    g_error = "libnccl.so.2 not found (set DTRAIN_NCCL_PATH or pip install nvidia-nccl-cu12): " + tried;
    return;
  }
  std::string missing;
  NcclApi a;
  bool ok = Resolve(lib, "ncclGetVersion", &a.getVersion, true, &missing) &&
            Resolve(lib, "ncclGetUniqueId", &a.getUniqueId, true, &missing) &&
            Resolve(lib, "ncclCommInitRank", &a.commInitRank, true, &missing) &&
            Resolve(lib, "ncclCommSplit", &a.commSplit, false, &missing) &&
            Resolve(lib, "ncclCommDestroy", &a.commDestroy, true, &missing) &&
            Resolve(lib, "ncclCommAbort", &a.commAbort, true, &missing) &&
            Resolve(lib, "ncclCommGetAsyncError", &a.commGetAsyncError, true, &missing) &&
            Resolve(lib, "ncclGetErrorString", &a.getErrorString, true, &missing) &&
            Resolve(lib, "ncclAllReduce", &a.allReduce, true, &missing) &&
            Resolve(lib, "ncclReduceScatter", &a.reduceScatter, true, &missing) &&
            Resolve(lib, "ncclAllGather", &a.allGather, true, &missing) &&
            Resolve(lib, "ncclBroadcast", &a.broadcast, true, &missing) &&
            Resolve(lib, "ncclSend", &a.send, true, &missing) && Resolve(lib, "ncclRecv", &a.recv, true, &missing) &&
            Resolve(lib, "ncclGroupStart", &a.groupStart, true, &missing) &&
            Resolve(lib, "ncclGroupEnd", &a.groupEnd, true, &missing);
  if (!ok) {
    g_error = g_path + " lacks " + missing + ": not a usable NCCL";
    dlclose(lib);
    return;
  }
  int version = 0;
  if (a.getVersion(&version) != ncclSuccess || version < kMinNcclVersion) {
    g_error = g_path + " is NCCL " + std::to_string(version) + ", dtrain needs " + std::to_string(kMinNcclVersion) +
              " or newer";
    dlclose(lib);
    return;
  }
  g_api = a;
  g_loaded = &g_api;
}
}  // namespace

const NcclApi* LoadNccl(const char* explicit_path, std::string* error) {
  std::call_once(g_once, [&] { DoLoad(explicit_path); });
  if (!g_loaded && error) *error = g_error;
  return g_loaded;
}
const NcclApi* Nccl() { return g_loaded; }
const char* NcclPath() { return g_loaded ? g_path.c_str() : ""; }
}  // namespace dtrain
