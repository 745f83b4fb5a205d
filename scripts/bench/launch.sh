#!/bin/sh
# Launch cost: 4 workers of /bin/true with dtrain (in-process agent, and the child-agent variant) against
# `mpirun -np 4 /bin/true` on the same machine, in one hyperfine run; prints both and the ratio.
# Usage: scripts/bench/launch.sh [runs]   (needs a build: npx tsc -p . ; run as root: mpirun gets
# --allow-run-as-root; --oversubscribe because this machine may have fewer than 4 cores)
# DTRAIN_BASELINE=/path/to/another/built/checkout adds its launch to the same run (before/after on a
# shared machine: only figures from one run compare).
set -eu
runs=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dtrain-bench-launch-XXXXXX)
trap 'rm -rf "$work"' EXIT
mpi="mpirun --allow-run-as-root --oversubscribe -np 4 /bin/true"
args="launch --nproc-per-node 4 --set logs.dir=$work/logs -- /bin/true"
# As users run it (npx, PATH): the executable, whose shell line runs before Node.
dt="$root/bin/dtrain $args"
set -- -n mpirun "$mpi" -n dtrain "$dt" -n dtrain-child-agent "env DTRAIN_LOCAL_AGENT=child $dt"
if [ -n "${DTRAIN_BASELINE:-}" ]; then set -- "$@" -n baseline "$DTRAIN_BASELINE/bin/dtrain $args"; fi
cd "$work"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/r.json" "$@" >&2 || true
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
const by = Object.fromEntries(r.map((x) => [x.command, x]));
const ms = (x) => (x.mean * 1000).toFixed(1) + " ms ± " + (x.stddev * 1000).toFixed(1) + " (median " + (x.median * 1000).toFixed(1) + ")" +
  (x.user !== undefined ? ", cpu " + ((x.user + x.system) * 1000).toFixed(0) + " ms" : "");
const ratio = (x) => (x.mean / by.mpirun.mean).toFixed(2) + "x (mean), " + (x.median / by.mpirun.median).toFixed(2) + "x (median)";
console.log("mpirun -np 4 /bin/true        " + ms(by.mpirun));
console.log("dtrain launch (in-process)    " + ms(by.dtrain));
console.log("dtrain launch (child agent)   " + ms(by["dtrain-child-agent"]));
if (by.baseline) console.log("baseline launch (in-process)  " + ms(by.baseline) + "; ratio " + ratio(by.baseline));
console.log("ratio dtrain / mpirun         " + ratio(by.dtrain) + "; target <= 2.5x");
console.log("child agent costs             +" + ((by["dtrain-child-agent"].mean - by.dtrain.mean) * 1000).toFixed(1) + " ms per launch");
' "$work/r.json"
