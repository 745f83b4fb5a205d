#!/bin/sh
# Launch cost: 4 workers of /bin/true with dtrain (in-process agent, and the child-agent variant) against
# `mpirun -np 4 /bin/true` on the same machine, in one hyperfine run; prints both and the ratio.
# Usage: scripts/bench/launch.sh [runs]   (needs a build: npx tsc -p . ; run as root: mpirun gets
# --allow-run-as-root; --oversubscribe because this machine may have fewer than 4 cores)
set -eu
runs=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dtrain-bench-launch-XXXXXX)
trap 'rm -rf "$work"' EXIT
mpi="mpirun --allow-run-as-root --oversubscribe -np 4 /bin/true"
dt="node $root/bin/dtrain launch --nproc-per-node 4 --set logs.dir=$work/logs -- /bin/true"
cd "$work"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/r.json" \
  -n mpirun "$mpi" -n dtrain "$dt" -n dtrain-child-agent "env DTRAIN_LOCAL_AGENT=child $dt" >&2 || true
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
const by = Object.fromEntries(r.map((x) => [x.command, x]));
const ms = (x) => (x.mean * 1000).toFixed(1) + " ms ± " + (x.stddev * 1000).toFixed(1) + " (median " + (x.median * 1000).toFixed(1) + ")";
console.log("mpirun -np 4 /bin/true        " + ms(by.mpirun));
console.log("dtrain launch (in-process)    " + ms(by.dtrain));
console.log("dtrain launch (child agent)   " + ms(by["dtrain-child-agent"]));
console.log("ratio dtrain / mpirun         " + (by.dtrain.mean / by.mpirun.mean).toFixed(2) + "x (mean), " + (by.dtrain.median / by.mpirun.median).toFixed(2) + "x (median); target <= 2.5x");
console.log("child agent costs             +" + ((by["dtrain-child-agent"].mean - by.dtrain.mean) * 1000).toFixed(1) + " ms per launch");
' "$work/r.json"
