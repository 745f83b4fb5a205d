#include "library_search.h"

#include <dlfcn.h>
#include <glob.h>
#include <stdlib.h>

namespace dtrain {

std::vector<std::string> LibraryCandidates(const LibrarySearch& search) {
  if (search.explicit_path && *search.explicit_path) return {search.explicit_path};
  if (const char* env = getenv(search.env_var); env && *env) return {env};
  std::vector<std::string> out = search.names;
  std::vector<std::string> sites = {"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                                    "/usr/lib/python3/dist-packages", "/opt/conda/lib/python3*/site-packages"};
  if (const char* venv = getenv("VIRTUAL_ENV"); venv && *venv)
    sites.insert(sites.begin(), std::string(venv) + "/lib/python3*/site-packages");
  if (const char* home = getenv("HOME"); home && *home)
    sites.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  for (const auto& site : sites)
    for (const auto& wheel : search.wheel_globs) {
      glob_t g{};
      if (glob((site + "/" + wheel).c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
      globfree(&g);
    }
  return out;
}

void* OpenFirstLibrary(const std::vector<std::string>& candidates, std::string* path, std::string* tried) {
  for (const auto& c : candidates) {
    if (void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      *path = c;
      return lib;
    }
    *tried += (tried->empty() ? "" : "; ") + std::string(dlerror());
  }
  return nullptr;
}

}  // namespace dtrain
