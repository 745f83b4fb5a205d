#!/usr/bin/env bash
# Launch latency over SSH on 8 local sshd hosts (network namespaces): dtrain's SSH spawner starting an agent
# per host that runs a `node -e 0` worker, against `pdsh -R ssh -w <hosts> node -e 0` (Debian's pdsh, OpenSSH
# client with the same key, known_hosts and strict checking). Both are timed end to end by hyperfine in one
# run; the script prints both means and the ratio (dtrain / pdsh: below 1 means dtrain is faster).
#   scripts/bench/ssh-launch.sh [hosts=8] [runs=10]        (root; builds dist/ first with `npx tsc -p .`)
set -euo pipefail
cd "$(dirname "$0")/../.."
hosts=${1:-8}
runs=${2:-10}
prefix=dtbench
testbed=scripts/testbed/netns-hosts.sh
command -v pdsh >/dev/null || { echo "ssh-launch: pdsh not installed (apt-get install pdsh)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "ssh-launch: hyperfine not installed" >&2; exit 1; }
[ -f dist/launch/ssh/spawner.js ] || { echo "ssh-launch: build first (npx tsc -p .)" >&2; exit 1; }

out=$(mktemp -d /tmp/dtrain-bench-ssh.XXXXXX)
trap '"$testbed" down --prefix "$prefix"; rm -rf "$out"' EXIT
"$testbed" up "$hosts" --prefix "$prefix" --subnet 10.231.250 >/dev/null
bed=/tmp/dtrain-testbed-$prefix
names=$(seq -s, -f "$prefix-h%g" 1 "$hosts")
agent=$PWD/test/fixtures/ssh/agent-stub.mjs

# pdsh runs `ssh <PDSH_SSH_ARGS>`; -F points it at the testbed's config (key, known_hosts, strict checking).
export PDSH_SSH_ARGS="-F $bed/ssh_config -x -l%u %h"
pdsh_cmd="pdsh -R ssh -f 32 -w $names node -e 0"
dtrain_cmd="node scripts/bench/ssh-launch-driver.mjs $bed/testbed.json $agent"
# Both must work before they are timed.
$pdsh_cmd >/dev/null
$dtrain_cmd

hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/result.json" \
  -n "pdsh -R ssh ($hosts hosts, node -e 0)" "$pdsh_cmd" \
  -n "dtrain ssh spawner ($hosts hosts, agent + node -e 0 worker)" "$dtrain_cmd" >&2

node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
const [p, d] = r;
const ms = (x) => (x * 1000).toFixed(1);
console.log(`pdsh   ${ms(p.mean)} ms ± ${ms(p.stddev)} (median ${ms(p.median)})`);
console.log(`dtrain ${ms(d.mean)} ms ± ${ms(d.stddev)} (median ${ms(d.median)})`);
console.log(`ratio dtrain/pdsh (mean) ${(d.mean / p.mean).toFixed(2)}`);
' "$out/result.json"
