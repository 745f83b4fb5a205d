#!/usr/bin/env bash
# The GPU suite, for a machine with CUDA, nvcc, PyTorch and pip's NCCL but no Node and no network:
#   bash scripts/gpu/run.sh [out-dir]
# 1. builds the CUDA part (libdtrain_cuda.so) and a native test binary with nvcc, for this GPU's arch too;
# 2. runs the native tests (AdamW and the layer kernels against the CPU formulas in addon/src/optim/adamw_math.h
#    and addon/src/layers/act_math.h, cuBLAS GEMM against a double product);
# 3. runs the Python harness: buffers, NCCL (world size 1) on every collective against host results, and the
#    AdamW kernel benchmarked beside PyTorch's fused AdamW and a device-to-device copy in the same run; the
#    layer kernels against torch linear/relu/gelu/cross_entropy and autograd, GEMM timed beside torch.matmul;
# 4. when node and a built package (dist/, the addon) are there: the Node runtime on NCCL (node_runtime.mjs),
#    the layer kernels on DeviceBuffers against the CPU kernels (node_layers.mjs),
#    two ranks on one GPU for split groups, p2p, the watchdog and a dead peer (node_two_ranks.mjs), and
#    `dtrain doctor` plus `dtrain launch` with backend auto/nccl/cpu (launch_checks.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

# Build for this machine's GPU as well as the defaults, so the suite measures native code, not JIT'd PTX.
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
archs="80,90"; [ -n "$cap" ] && [[ ",$archs," != *",$cap,"* ]] && archs="$archs,$cap"
src="$root/addon/cuda"
echo "== building libdtrain_cuda.so for sm_{$archs} with $nvcc"
gencode=(); for a in ${archs//,/ }; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
"$nvcc" -O3 -std=c++17 -shared -Xcompiler -fPIC,-fvisibility=hidden --cudart static "${gencode[@]}" \
  -DDTRAIN_CUDA_ARCHS="\"$(sed 's/\([0-9]*\)/sm_\1/g' <<<"$archs")\"" -I "$src" -I "$root/addon/src" \
  -o "$out/libdtrain_cuda.so" "$src"/*.cu "$src"/*.cc -ldl -lpthread
"$nvcc" -O2 -std=c++17 -I "$src" -I "$root/addon/src" -o "$out/test_native" "$root/scripts/gpu/test_native.cc" \
  -L "$out" -ldtrain_cuda -Xlinker -rpath -Xlinker "$out"

echo "== native tests"
"$out/test_native"

echo "== python harness (PyTorch $($py -c 'import torch; print(torch.__version__, torch.version.cuda)'))"
DTRAIN_CUDA_LIB="$out/libdtrain_cuda.so" PYTHONUNBUFFERED=1 "$py" "$root/scripts/gpu/harness.py"

# 4. where Node and a built package are present too: the runtime's NCCL backend end to end (node_runtime.mjs).
#    It loads the CUDA part from build-cuda/, so the part just built is put there.
if command -v node >/dev/null && [ -f "$root/dist/runtime/index.js" ] && [ -f "$root/build/Release/dtrain_native.node" ]; then
  echo "== Node runtime on NCCL (node $(node --version))"
  mkdir -p "$root/build-cuda"
  cp "$out/libdtrain_cuda.so" "$root/build-cuda/libdtrain_cuda.so"
  printf '{"built":true,"archs":["%s"],"cuda_version":"%s","nvcc":"%s"}\n' \
    "$(sed 's/\([0-9]*\)/sm_\1/g; s/,/","/g' <<<"$archs")" "$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')" "$nvcc" \
    >"$root/build-cuda/cuda-build.json"
  node "$root/scripts/gpu/node_runtime.mjs"
  echo "== layer kernels through Node: DeviceBuffers against the CPU kernels"
  node "$root/scripts/gpu/node_layers.mjs"
  echo "== Node runtime on NCCL, two ranks on one GPU (socket transport)"
  node "$root/scripts/gpu/node_two_ranks.mjs"
  echo "== dtrain doctor and dtrain launch on this machine (backend auto, nccl, cpu)"
  bash "$root/scripts/gpu/launch_checks.sh"
else
  echo "== Node runtime on NCCL: skipped (needs node, dist/ and build/Release/dtrain_native.node)"
fi
