#!/usr/bin/env bash
# Launch latency over SSH on N local sshd hosts (network namespaces): `dtrain launch` of a job whose workers
# are `node -e 0` (one per host: controller, store, ssh2 connections, a Node agent per host, supervision,
# teardown) against `pdsh -R ssh -w <hosts> node -e 0` (Debian's pdsh driving the OpenSSH client with the
# same key, known_hosts and strict checking). A third line shows where dtrain's time goes: the SSH spawner
# alone (connections + a Node agent stub running `node -e 0`). hyperfine times all three end to end in one
# run; the script prints the means and the ratio dtrain launch / pdsh (information: all hosts share this
# machine's cores, so every host's Node agent adds up here, where real clusters pay it in parallel).
# What matters at scale, each against OpenSSH in the same run:
#   - the controller's CPU per host: `dtrain launch`'s own process (its children included, none remote)
#     against pdsh's (its ssh clients included), divided by the host count;
#   - the latency from SSH connect to a ready agent on one host (ssh-ready-driver.mjs) against
#     `ssh host node -e 0`;
# and the CPU time the whole machine spent per run of each.
#
# It measures twice, on two testbeds:
#   login as this machine has it: each SSH session runs root's ~/.bashrc. All hosts share this machine's
#     /root, so an rc file that takes a lock there (pyenv's `pyenv rehash`, retried every 100 ms) makes
#     the hosts' logins run one after another, which separate machines would not.
#   plain login: the same hosts with root's ~/.bashrc empty in their sessions (netns-hosts.sh --plain-login).
# Both tools go through the same sshd and the same login shell in each; only the login's rc differs.
#   scripts/bench/ssh-launch.sh [hosts=8] [runs=10] [both|as-is|plain]   (root; needs a built dist/: npm run build)
# DTRAIN_BASELINE=/path/to/another/built/checkout adds its controller CPU per host and its connect-to-ready
# latency to the same run, interleaved (before/after on a shared machine: only figures from one run compare).
# DTRAIN_BENCH_JSON=FILE also appends one JSON line per testbed to FILE (what is printed stays the same): the
# label, host count, hyperfine's per-run seconds of each command, and the CPU figures above in ms.
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

# CPU of one run of the command's own process tree (it and the children it waited for), in ms, from
# /usr/bin/time: for dtrain launch that is the controller alone (the agents run under the hosts' sshd).
own_cpu_once() {
  local u s
  read -r u s < <(/usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1)
  awk -v u="$u" -v s="$s" 'BEGIN { printf "%d", (u + s) * 1000 }'
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
  # No ssh.remote_dtrain: the hosts share this filesystem, so each finds this bin/dtrain by its own path.
  {
    echo "name: ssh-bench"
    echo "workdir: $out"
    echo "entrypoint: [$(command -v node), -e, '0']"
    echo "logs: {dir: $out/logs, tee: false}"
    echo "ssh: {user: root, identity_file: $bed/id_ed25519, known_hosts: $bed/known_hosts}"
    echo "nodes:"
    node -e 'for (const h of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).hosts) console.log(`  - {host: "${h.address}", slots: 1}`)' "$bed/testbed.json"
  } >"$out/job.yaml"
  local launch_cmd="$PWD/bin/dtrain launch $out/job.yaml"
  # Each must work before it is timed.
  $pdsh_cmd >/dev/null
  $spawner_cmd
  $launch_cmd 2>/dev/null

  echo "== $label" >&2
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/result.json" \
    -n "pdsh -R ssh ($hosts hosts, node -e 0)" "$pdsh_cmd" \
    -n "dtrain launch ($hosts hosts, one node -e 0 worker each)" "$launch_cmd" \
    -n "dtrain ssh spawner alone ($hosts hosts, agent stub + node -e 0)" "$spawner_cmd" >&2
  local cpu_pdsh cpu_launch own_pdsh own_launch
  cpu_pdsh=$(cpu_ms $pdsh_cmd)
  cpu_launch=$(cpu_ms $launch_cmd)
  # mean of 5 runs each, interleaved (the baseline's controller starts the baseline's agents: the hosts find
  # bin/dtrain by the controller's own path)
  local base_cmd="" own_base=0 i
  [ -n "${DTRAIN_BASELINE:-}" ] && base_cmd="$DTRAIN_BASELINE/bin/dtrain launch $out/job.yaml"
  own_pdsh=0
  own_launch=0
  for i in 1 2 3 4 5; do
    own_pdsh=$((own_pdsh + $(own_cpu_once $pdsh_cmd)))
    own_launch=$((own_launch + $(own_cpu_once $launch_cmd)))
    if [ -n "$base_cmd" ]; then own_base=$((own_base + $(own_cpu_once $base_cmd))); fi
  done
  own_pdsh=$((own_pdsh / 5))
  own_launch=$((own_launch / 5))
  own_base=$((own_base / 5))

  echo "== $label"
  echo "CPU per run, all processes on this machine ($(nproc) cores): pdsh ${cpu_pdsh} ms, dtrain launch ${cpu_launch} ms"
  echo "controller CPU per host (5 runs): dtrain launch $((own_launch / hosts)) ms (${own_launch} ms in all)," \
    "pdsh + its ssh clients $((own_pdsh / hosts)) ms (${own_pdsh} ms in all)"
  if [ -n "$base_cmd" ]; then
    echo "controller CPU per host, baseline ($DTRAIN_BASELINE): $((own_base / hosts)) ms (${own_base} ms in all)"
  fi
  node scripts/bench/ssh-ready-driver.mjs "$bed/testbed.json" "$PWD/bin/dtrain" "$runs"
  node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
  const [p, d, s] = r;
  const ms = (x) => (x * 1000).toFixed(1);
  console.log(`pdsh -R ssh                   ${ms(p.mean)} ms ± ${ms(p.stddev)} (median ${ms(p.median)})`);
  console.log(`dtrain launch                 ${ms(d.mean)} ms ± ${ms(d.stddev)} (median ${ms(d.median)})`);
  console.log(`dtrain spawner alone          ${ms(s.mean)} ms ± ${ms(s.stddev)} (median ${ms(s.median)})`);
  console.log(`ratio dtrain launch / pdsh (mean) ${(d.mean / p.mean).toFixed(2)}, (median) ${(d.median / p.median).toFixed(2)}`);
  ' "$out/result.json"
  if [ -n "${DTRAIN_BENCH_JSON:-}" ]; then
    node -e '
    const [file, label, hosts, cpuPdsh, cpuLaunch, ownPdsh, ownLaunch] = process.argv.slice(1);
    const [pdsh, launch, spawner] = JSON.parse(require("fs").readFileSync(file, "utf8")).results.map((r) => r.times);
    const n = Number(hosts);
    console.log(JSON.stringify({ label, hosts: n, seconds: { pdsh, launch, spawner },
      cpu_all_ms: { pdsh: +cpuPdsh, launch: +cpuLaunch },
      controller_cpu_ms_per_host: { pdsh: ownPdsh / n, launch: ownLaunch / n } }));
    ' "$out/result.json" "$label" "$hosts" "$cpu_pdsh" "$cpu_launch" "$own_pdsh" "$own_launch" >>"$DTRAIN_BENCH_JSON"
  fi
}

if [ "$which" != plain ]; then measure "login as this machine has it (root's ~/.bashrc)"; fi
if [ "$which" != as-is ]; then measure "plain login (root's ~/.bashrc empty on the hosts)" --plain-login; fi
