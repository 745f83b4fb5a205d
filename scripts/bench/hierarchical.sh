#!/usr/bin/env bash
# Hierarchical against flat collectives across hosts: network-namespace hosts (scripts/testbed), by default 2
# with 2 ranks each, launched over SSH by `dtrain bench <config>`, every host's egress limited to RATE with a tbf qdisc so the
# network, not this machine's 2 cores, is the bottleneck, as between real hosts. Each op and size runs flat
# (DTRAIN_HIERARCHICAL=0: one TCP ring over all ranks, same-host pairs on loopback) and hierarchical, in one run;
# the script prints both times and the speed-up.
#   scripts/bench/hierarchical.sh [rate=1gbit] [iters=8] [slots=2,2] [ops]    (root; needs a built dist/ and addon)
# slots: ranks per host, one number per host (3,1: hosts of unequal size); ops: a comma list (default: all four).
# Before the ops it prints the rate one TCP stream from host 1 to host 2 achieves through the limit. With
# DTRAIN_BENCH_OPENMPI=1, all_reduce also runs as OpenMPI over TCP on the same hosts and ranks (mpirun starting
# its daemons over the testbed's SSH, allreduce-mpi.c, shared memory within a host as OpenMPI does by default).
# DTRAIN_BENCH_JSON=FILE also writes every figure to FILE as one JSON document (what is printed stays the same,
# plus the OpenMPI column when asked for).
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

# The rate actually achieved: one TCP stream of 64 MiB from host 1 to host 2, timed by the receiver.
read -r -a addrs < <(node -e '
  const bed = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(bed.hosts.map((h) => h.address).join(" "));' "$bed/testbed.json")
ip netns exec "$prefix-h2" node -e '
  const srv = require("net").createServer((c) => {
    let n = 0, t0;
    c.on("data", (d) => { t0 ??= process.hrtime.bigint(); n += d.length; });
    c.on("end", () => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(((n * 8) / s / 1e9).toFixed(3));
      srv.close();
    });
  });
  srv.listen(5999, () => console.log("ready"));' >"$out/rate" &
rate_pid=$!
for _ in $(seq 50); do grep -q ready "$out/rate" 2>/dev/null && break; sleep 0.1; done
ip netns exec "$prefix-h1" node -e '
  const c = require("net").connect(5999, process.argv[1], () => { const b = Buffer.alloc(1 << 20); let i = 0;
    const go = () => { while (i < 64) { i++; if (!c.write(b)) return c.once("drain", go); } c.end(); };
    go(); });' "${addrs[1]}"
wait "$rate_pid"
achieved=$(tail -1 "$out/rate")
echo "# rate achieved through the $rate limit: $achieved Gbit/s (one TCP stream, host 1 to host 2, 64 MiB)"

# OpenMPI over TCP on the same hosts (all_reduce only): its samples summarised like collectives.mjs does.
mpi_ms() { # <sizes> → "ms,ms" or nothing (the reason on stderr)
  local bin=$out/allreduce-mpi hosts="" i
  [ -x "$bin" ] || mpicc -O2 -o "$bin" scripts/bench/allreduce-mpi.c
  for i in $(seq 1 "${#per_host[@]}"); do hosts+="${hosts:+,}$prefix-h$i:${per_host[$((i - 1))]}"; done
  mkdir -p "$out/mpi"
  local total=0 n warmup
  warmup=$(node -p "require('./dist/runtime/bench-stats.js').warmupFor($iters)") # as dtrain's bench worker
  for n in "${per_host[@]}"; do total=$((total + n)); done
  timeout 300 mpirun --allow-run-as-root -np "$total" -H "$hosts" --mca plm_rsh_agent ssh \
    --mca plm_rsh_args "-F $bed/ssh_config" --mca btl self,vader,tcp \
    --mca btl_tcp_if_include "${addrs[0]%.*}.0/24" --mca oob_tcp_if_include "${addrs[0]%.*}.0/24" \
    "$bin" "$1" "$(echo "$1" | sed "s/[0-9][0-9]*/$iters/g")" "$(echo "$1" | sed "s/[0-9][0-9]*/$warmup/g")" \
    "$out/mpi" >"$out/mpi.out" 2>"$out/mpi.err" ||
    {
      cp "$out/mpi.err" "$out/mpi.failed"
      echo "hierarchical: OpenMPI over TCP failed: $(tail -3 "$out/mpi.err" | tr '\n' ' ')" >&2
      return 0
    }
  node -e '
    const stats = require(process.argv[1]);
    const ms = (b) => stats.summarize(stats.readSamples(`${process.argv[2]}/${b}.f64`)).mean_us / 1000;
    console.log(process.argv[3].split(",").map((b) => ms(b).toFixed(2)).join(","));
  ' "$PWD/dist/runtime/bench-stats.js" "$out/mpi" "$1"
}
want_mpi=${DTRAIN_BENCH_OPENMPI:-0}

echo "# ${#per_host[@]} hosts with $slots ranks over SSH, each host's egress limited to $rate; ms per op, mean of $iters"
printf '%-15s %10s %12s %14s %9s' op bytes flat hierarchical speed-up
[ "$want_mpi" = 1 ] && printf ' %14s' openmpi-tcp
printf '\n'
: >"$out/rows.jsonl"
for op in ${ops//,/ }; do
  for mode in flat hier; do
    set=()
    [ "$mode" = flat ] && set=(--set env.DTRAIN_HIERARCHICAL=0)
    bin/dtrain bench "$out/job.yaml" "${set[@]}" --op "$op" --sizes 1048576,16777216 --iters "$iters" --json 2>"$out/err" >"$out/$op-$mode.json" ||
      { cat "$out/err" >&2; exit 1; }
  done
  mpi=""
  [ "$want_mpi" = 1 ] && [ "$op" = all_reduce ] && mpi=$(mpi_ms 1048576,16777216)
  node -e '
    const [flat, hier] = process.argv.slice(1, 3).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")).rows);
    const mpi = process.argv[4] ? process.argv[4].split(",").map(Number) : [];
    for (let i = 0; i < flat.length; i++) {
      if (flat[i].transport !== "tcp" || hier[i].transport !== "hierarchical") throw new Error(`unexpected transports ${flat[i].transport} / ${hier[i].transport}`);
      const ms = (r) => (r.time_us / 1000).toFixed(2);
      const ref = process.argv[5] === "1" ? " " + (mpi.length ? mpi[i].toFixed(2) : "-").padStart(14) : "";
      console.log(`${process.argv[3].padEnd(15)} ${String(flat[i].bytes).padStart(10)} ${ms(flat[i]).padStart(12)} ` +
        `${ms(hier[i]).padStart(14)} ${(flat[i].time_us / hier[i].time_us).toFixed(2).padStart(8)}x${ref}`);
      require("fs").appendFileSync(process.argv[6], JSON.stringify({ op: process.argv[3], bytes: flat[i].bytes,
        flat_ms: flat[i].time_us / 1000, hierarchical_ms: hier[i].time_us / 1000,
        openmpi_tcp_ms: mpi.length ? mpi[i] : null }) + "\n");
    }' "$out/$op-flat.json" "$out/$op-hier.json" "$op" "$mpi" "$want_mpi" "$out/rows.jsonl"
done
if [ -n "${DTRAIN_BENCH_JSON:-}" ]; then
  node -e '
    const [rate, achieved, slots, iters, rows, mpiErr] = process.argv.slice(1);
    const fs = require("fs");
    const err = fs.existsSync(mpiErr) && fs.readFileSync(mpiErr, "utf8").trim();
    console.log(JSON.stringify({ rate, achieved_gbit: Number(achieved), slots, iters: Number(iters),
      rows: fs.readFileSync(rows, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)),
      openmpi_error: err ? err.split("\n").slice(-5).join("\n") : null }));
  ' "$rate" "$achieved" "$slots" "$iters" "$out/rows.jsonl" "$out/mpi.failed" >"$DTRAIN_BENCH_JSON"
fi
