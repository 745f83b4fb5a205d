// Finding and opening an NVIDIA library with dlopen (NCCL, cuBLAS): an explicit path, then its DTRAIN_*_PATH
// variable, then the loader's own names, then pip's nvidia-* wheels in the usual Python site folders.
#pragma once
#include <string>
#include <vector>

namespace dtrain {

struct LibrarySearch {
  const char* explicit_path;             // from the caller; wins when set
  const char* env_var;                   // e.g. DTRAIN_NCCL_PATH; wins next
  std::vector<std::string> names;        // tried as given (the loader's search path, or absolute)
  std::vector<std::string> wheel_globs;  // below each site folder, e.g. "nvidia/nccl/lib/libnccl.so.2"
};

std::vector<std::string> LibraryCandidates(const LibrarySearch& search);

// Opens the first candidate that loads; sets *path, or *tried to every dlerror() joined by "; ".
void* OpenFirstLibrary(const std::vector<std::string>& candidates, std::string* path, std::string* tried);

}  // namespace dtrain
