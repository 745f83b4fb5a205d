#!/usr/bin/env bash
# `dtrain doctor` and `dtrain launch` on a GPU machine, each launch checked for its exit code and for the backend
# its workers ended up on (backend auto): the step after the runtime checks in scripts/gpu/run.sh.
#   bash scripts/gpu/launch_checks.sh      (needs node, dist/, the addon and the CUDA part in build-cuda/)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dtrain="$root/bin/dtrain"
work=$(mktemp -d /tmp/dtrain-gpu-launch.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)

echo "== doctor"
"$dtrain" doctor; rc=$?
if [ $rc -eq 0 ]; then echo "ok    doctor exits 0"; else echo "FAIL  doctor exited $rc"; failed=$((failed + 1)); fi

# check NAME NPROC BACKEND WANT_RC WANT_WORKER_BACKEND
check() {
  local name=$1 nproc=$2 backend=$3 want_rc=$4 want=$5
  printf 'name: %s\nworkdir: %s\nnproc_per_node: %s\nbackend: %s\nentrypoint: [node, %s]\nlogs: {dir: %s/logs}\n' \
    "$name" "$work" "$nproc" "$backend" "$root/scripts/gpu/launch_worker.mjs" "$work" >"$work/$name.yaml"
  echo "== launch $name: nproc_per_node $nproc, backend $backend ($gpus GPU(s) here)"
  local t0=$SECONDS out rc
  out=$("$dtrain" launch "$work/$name.yaml" 2>&1); rc=$?
  echo "$out" | sed 's/^/   /'
  local seen
  seen=$(echo "$out" | grep -o '"backend":"[a-z]*"' | sort -u | sed 's/.*:"\(.*\)"/\1/' | tr '\n' ' ' | sed 's/ $//')
  if [ "$rc" -ne "$want_rc" ]; then
    echo "FAIL  $name: exit $rc, expected $want_rc"; failed=$((failed + 1))
  elif [ -n "$want" ] && [ "$seen" != "$want" ]; then
    echo "FAIL  $name: workers on backend '$seen', expected '$want'"; failed=$((failed + 1))
  else
    echo "ok    $name: exit $rc${want:+, every worker on $want} ($((SECONDS - t0)) s)"
  fi
}

check auto-1 1 auto 0 nccl
check nccl-1 1 nccl 0 nccl
check cpu-1 1 cpu 0 cpu
if [ "$gpus" -ge 2 ]; then
  check auto-2 2 auto 0 nccl
  check nccl-2 2 nccl 0 nccl
else
  # One GPU, two workers: auto falls back to cpu (NCCL refuses two ranks on one device); nccl is refused (3).
  check auto-2 2 auto 0 cpu
  check nccl-2 2 nccl 3 ""
fi
# An unchanged PyTorch NCCL program under dtrain launch (one rank per GPU), where PyTorch has CUDA.
py=${PYTHON:-python3}
if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  printf 'name: torch-nccl\nworkdir: %s\nnproc_per_node: %s\nbackend: auto\nentrypoint: [%s, %s]\nlogs: {dir: %s/logs}\n' \
    "$work" "$gpus" "$py" "$root/scripts/gpu/torch_nccl_worker.py" "$work" >"$work/torch.yaml"
  echo "== launch torch-nccl: $gpus rank(s), PyTorch init_process_group(nccl)"
  out=$("$dtrain" launch "$work/torch.yaml" 2>&1); rc=$?
  echo "$out" | sed 's/^/   /'
  want=$((gpus * (gpus + 1) / 2))
  if [ $rc -eq 0 ] && [ "$(echo "$out" | grep -c "\"sum\": $want.0")" -eq "$gpus" ]; then echo "ok    torch-nccl: exit 0, every rank's all_reduce gave $want"
  else echo "FAIL  torch-nccl: exit $rc"; failed=$((failed + 1)); fi
else
  echo "not run: torch-nccl (no PyTorch with CUDA for $py)"
fi
echo "$failed failed"
exit $((failed > 0))
