{
  "targets": [
    {
      "target_name": "dtrain_native",
      "sources": ["<!@(node scripts/build/list-sources.js addon/src)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "addon/src"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "libraries": ["-ldl", "-lpthread", "-lrt"]
    },
    {
      "target_name": "dtrain-exec",
      "type": "executable",
      "sources": ["addon/src/process/exec-wrapper.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
