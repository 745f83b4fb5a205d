// dlopen wrapper for NCCL (one small wrapper per library, as NCCL itself does for libcuda and ibverbs).
#include <dlfcn.h>
#include <glob.h>
#include <stdlib.h>

#include <mutex>
#include <string>
#include <vector>

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
  std::vector<std::string> out;
  if (explicit_path && *explicit_path) {
    out.push_back(explicit_path);
    return out;
  }
  if (const char* env = getenv("DTRAIN_NCCL_PATH"); env && *env) {
    out.push_back(env);
    return out;
  }
  out.push_back("libnccl.so.2");
  const char* patterns[] = {
      "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2",
      "/usr/local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
      "/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2",
      "/opt/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
  };
  std::vector<std::string> pats(std::begin(patterns), std::end(patterns));
  if (const char* venv = getenv("VIRTUAL_ENV"); venv && *venv)
    pats.insert(pats.begin(), std::string(venv) + "/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2");
  if (const char* home = getenv("HOME"); home && *home)
    pats.push_back(std::string(home) + "/.local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2");
  for (const auto& p : pats) {
    glob_t g{};
    if (glob(p.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
    globfree(&g);
  }
  return out;
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
  void* lib = nullptr;
  for (const auto& c : Candidates(explicit_path)) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      g_path = c;
      break;
    }
    tried += (tried.empty() ? "" : "; ") + std::string(dlerror());
  }
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
