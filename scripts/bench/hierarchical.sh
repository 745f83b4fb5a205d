#!/usr/bin/env bash
# Hierarchical against flat collectives across hosts: network-namespace hosts (scripts/testbed), by default 2
# with 2 ranks each, launched over SSH by `dtrain bench <config>`, every host's egress limited to RATE with a tbf qdisc so the
# network, not this machine's 2 cores, is the bottleneck, as between real hosts. Each op and size runs flat
# (DTRAIN_HIERARCHICAL=0: one TCP ring over all ranks, same-host pairs on loopback) and hierarchical, in one run;
# the script prints both times and the speed-up.
#   scripts/bench/hierarchical.sh [rate=1gbit] [iters=8] [slots=2,2] [ops]    (root; needs a built dist/ and addon)
# slots: ranks per host, one number per host (3,1: hosts of unequal size); ops: a comma list (default: all four).
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-1gbit}
iters=${2:-8}
slots=${3:-2,2}
ops=${4:-all_reduce,all_gather,reduce_scatter,broadcast}
[[ "$slots" =~ ^[1-9](,[1-9])+$ ]] || { echo "hierarchical: slots is a comma list of ranks per host, e.g. 2,2 or 3,1" >&2; exit 2; }
IFS=, read -r -a per_host <<<"$slots"
prefix=dthier
testbed=scripts/testbed/netns-hosts.sh
[ -f dist/cli/main.js ] || { echo "hierarchical: build first (npm run build)" >&2; exit 1; }
out=$(mktemp -d /tmp/dtrain-bench-hier.XXXXXX)
trap '"$testbed" down --prefix "$prefix"; rm -rf "$out"' EXIT
"$testbed" up "${#per_host[@]}" --prefix "$prefix" --subnet 10.231.253 >/dev/null
bed=/tmp/dtrain-testbed-$prefix
for i in $(seq 1 "${#per_host[@]}"); do ip netns exec "$prefix-h$i" tc qdisc add dev eth0 root tbf rate "$rate" burst 512kb latency 100ms; done
{
  echo "name: hier-bench"
  echo "workdir: $out"
  echo "entrypoint: [node, -e, '0']"
  echo "logs: {dir: $out/logs}"
  echo "ssh: {user: root, identity_file: $bed/id_ed25519, known_hosts: $bed/known_hosts, remote_dtrain: $PWD/bin/dtrain}"
  echo "nodes:"
  node -e 'const slots = process.argv[2].split(","); JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).hosts.forEach((h, i) => console.log(`  - {host: "${h.address}", slots: ${slots[i]}}`))' "$bed/testbed.json" "$slots"
} >"$out/job.yaml"

echo "# ${#per_host[@]} hosts with $slots ranks over SSH, each host's egress limited to $rate; ms per op, mean of $iters"
printf '%-15s %10s %12s %14s %9s\n' op bytes flat hierarchical speed-up
for op in ${ops//,/ }; do
  for mode in flat hier; do
    set=()
    [ "$mode" = flat ] && set=(--set env.DTRAIN_HIERARCHICAL=0)
    bin/dtrain bench "$out/job.yaml" "${set[@]}" --op "$op" --sizes 1048576,16777216 --iters "$iters" --json 2>"$out/err" >"$out/$op-$mode.json" ||
      { cat "$out/err" >&2; exit 1; }
  done
  node -e '
    const [flat, hier] = process.argv.slice(1, 3).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")).rows);
    for (let i = 0; i < flat.length; i++) {
      if (flat[i].transport !== "tcp" || hier[i].transport !== "hierarchical") throw new Error(`unexpected transports ${flat[i].transport} / ${hier[i].transport}`);
      const ms = (r) => (r.time_us / 1000).toFixed(2);
      console.log(`${process.argv[3].padEnd(15)} ${String(flat[i].bytes).padStart(10)} ${ms(flat[i]).padStart(12)} ${ms(hier[i]).padStart(14)} ${(flat[i].time_us / hier[i].time_us).toFixed(2).padStart(8)}x`);
    }' "$out/$op-flat.json" "$out/$op-hier.json" "$op"
done
