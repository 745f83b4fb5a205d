#!/usr/bin/env bash
# Launch latency over SSH on 8 local sshd hosts (network namespaces): `dtrain launch` of a job whose workers
# are `node -e 0` (one per host: controller, store, ssh2 connections, the native agent per host,
# supervision, teardown) against `pdsh -R ssh -w <hosts> node -e 0` (Debian's pdsh driving the OpenSSH client
# with the same key, known_hosts and strict checking). Two more lines show where dtrain's time goes: the same
# launch with the Node agent on every host (DTRAIN_SSH_AGENT=node), and the SSH spawner alone (connections +
# a Node agent stub running `node -e 0`). hyperfine times all four end to end in one
# run; the script prints the means and the ratio dtrain launch / pdsh (below 1: dtrain is faster), and the CPU
# time the whole machine spent per run of each.
#
# It measures twice, on two testbeds:
#   login as this machine has it: each SSH session runs root's ~/.bashrc. All hosts share this machine's
#     /root, so an rc file that takes a lock there (pyenv's `pyenv rehash`, retried every 100 ms) makes
#     the hosts' logins run one after another, which separate machines would not.
#   plain login: the same hosts with root's ~/.bashrc empty in their sessions (netns-hosts.sh --plain-login).
# Both tools go through the same sshd and the same login shell in each; only the login's rc differs.
#   scripts/bench/ssh-launch.sh [hosts=8] [runs=10] [both|as-is|plain]   (root; needs a built dist/: npm run build)
set -euo pipefail
cd "$(dirname "$0")/../.."
hosts=${1:-8}
runs=${2:-10}
which=${3:-both}
prefix=dtbench
testbed=scripts/testbed/netns-hosts.sh
command -v pdsh >/dev/null || { echo "ssh-launch: pdsh not installed (apt-get install pdsh)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "ssh-launch: hyperfine not installed" >&2; exit 1; }
[ -f dist/launch/ssh/spawner.js ] || { echo "ssh-launch: build first (npx tsc -p .)" >&2; exit 1; }
case "$which" in both | as-is | plain) ;; *) echo "ssh-launch: the third argument is both, as-is or plain" >&2; exit 2 ;; esac

out=$(mktemp -d /tmp/dtrain-bench-ssh.XXXXXX)
trap '"$testbed" down --prefix "$prefix"; rm -rf "$out"' EXIT
bed=/tmp/dtrain-testbed-$prefix
names=$(seq -s, -f "$prefix-h%g" 1 "$hosts")
agent=$PWD/test/fixtures/ssh/agent-stub.mjs

# CPU the whole machine spent per run (every process: client, sshd, login shells, agents, workers), from
# /proc/stat around each run: with all hosts on this machine's cores, wall time follows it.
cpu_ms() {
  local hz total=0 a b i
  hz=$(getconf CLK_TCK)
  for i in 1 2 3 4 5; do
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
    "$@" >/dev/null 2>&1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
    total=$((total + b - a))
  done
  echo $((total * 1000 / hz / 5))
}

# measure <label> [netns-hosts.sh flags]
measure() {
  local label=$1
  shift
  "$testbed" up "$hosts" --prefix "$prefix" --subnet 10.231.250 "$@" >/dev/null
  # pdsh runs `ssh <PDSH_SSH_ARGS>`; -F points it at the testbed's config (key, known_hosts, strict checking).
  export PDSH_SSH_ARGS="-F $bed/ssh_config -x -l%u %h"
  local pdsh_cmd="pdsh -R ssh -f 32 -w $names node -e 0"
  local spawner_cmd="node scripts/bench/ssh-launch-driver.mjs $bed/testbed.json $agent"
  {
    echo "name: ssh-bench"
    echo "workdir: $out"
    echo "entrypoint: [$(command -v node), -e, '0']"
    echo "logs: {dir: $out/logs, tee: false}"
    echo "ssh: {user: root, identity_file: $bed/id_ed25519, known_hosts: $bed/known_hosts, remote_dtrain: $PWD/bin/dtrain}"
    echo "nodes:"
    node -e 'for (const h of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).hosts) console.log(`  - {host: "${h.address}", slots: 1}`)' "$bed/testbed.json"
  } >"$out/job.yaml"
  local launch_cmd="$PWD/bin/dtrain launch $out/job.yaml"
  local node_agent_cmd="env DTRAIN_SSH_AGENT=node $launch_cmd"
  # Each must work before it is timed.
  $pdsh_cmd >/dev/null
  $spawner_cmd
  $launch_cmd 2>/dev/null
  $node_agent_cmd 2>/dev/null

  echo "== $label" >&2
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/result.json" \
    -n "pdsh -R ssh ($hosts hosts, node -e 0)" "$pdsh_cmd" \
    -n "dtrain launch ($hosts hosts, one node -e 0 worker each)" "$launch_cmd" \
    -n "dtrain launch, Node agent ($hosts hosts, DTRAIN_SSH_AGENT=node)" "$node_agent_cmd" \
    -n "dtrain ssh spawner alone ($hosts hosts, agent stub + node -e 0)" "$spawner_cmd" >&2
  local cpu_pdsh cpu_launch cpu_node_agent
  cpu_pdsh=$(cpu_ms $pdsh_cmd)
  cpu_launch=$(cpu_ms $launch_cmd)
  cpu_node_agent=$(cpu_ms $node_agent_cmd)

  echo "== $label"
  echo "CPU per run, all processes on this machine ($(nproc) cores): pdsh ${cpu_pdsh} ms, dtrain launch ${cpu_launch} ms, with the Node agent ${cpu_node_agent} ms"
  node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
  const [p, d, n, s] = r;
  const ms = (x) => (x * 1000).toFixed(1);
  console.log(`pdsh -R ssh                   ${ms(p.mean)} ms ± ${ms(p.stddev)} (median ${ms(p.median)})`);
  console.log(`dtrain launch                 ${ms(d.mean)} ms ± ${ms(d.stddev)} (median ${ms(d.median)})`);
  console.log(`dtrain launch, Node agent     ${ms(n.mean)} ms ± ${ms(n.stddev)} (median ${ms(n.median)})`);
  console.log(`dtrain spawner alone          ${ms(s.mean)} ms ± ${ms(s.stddev)} (median ${ms(s.median)})`);
  console.log(`ratio dtrain launch / pdsh (mean) ${(d.mean / p.mean).toFixed(2)}, (median) ${(d.median / p.median).toFixed(2)}`);
  console.log(`ratio with the Node agent / pdsh (mean) ${(n.mean / p.mean).toFixed(2)}, (median) ${(n.median / p.median).toFixed(2)}`);
  ' "$out/result.json"
}

if [ "$which" != plain ]; then measure "login as this machine has it (root's ~/.bashrc)"; fi
if [ "$which" != as-is ]; then measure "plain login (root's ~/.bashrc empty on the hosts)" --plain-login; fi
