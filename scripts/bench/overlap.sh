#!/usr/bin/env bash
# Gradient all-reduce overlapped with the backward against the same reduction after it: the example trainer
# (data parallel, one rank per host) on network-namespace hosts (scripts/testbed), every host's egress limited
# to RATE with a tbf qdisc so the link, not this machine's cores, carries the gradients, as between real hosts.
# The model (inputs 256, hidden 1024, 6 layers: 4.5 M parameters, 17.9 MB of fp32 gradients) and ROWS samples
# per rank make the all-reduce a large share of the step; DTRAIN_BUCKET_CAP_MB=BUCKET_MB cuts it into buckets
# (the default 25 would be one bucket, posted only when the backward ends). One run, three jobs:
#   reference  --no-overlap: the gradients are averaged after the backward
#   overlap    the trainer's default: each bucket's all-reduce starts when its layers' backward is done
#   unlimited  --no-overlap again with the rate limit lifted: the same processes sharing this machine's cores,
#              with the link almost free, to show the share of the reference step that waits on the link
# Prints step time (ms: mean, p50, p99 over the steps after the first 3), the gain and the link's share.
#   scripts/bench/overlap.sh [rate=1gbit] [steps=30] [hosts=2] [bucket_mb=4] [rows=48]  (root; npm run build first)
# rows: samples per rank and step (the global batch is rows × hosts).
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-1gbit}
steps=${2:-30}
hosts=${3:-2}
bucket_mb=${4:-4}
rows=${5:-48}
warmup=3
batch=$((rows * hosts))
# the training set: a whole number of global batches (of both jobs)
model=(--inputs 256 --hidden 1024 --layers 6 --train-samples $((batch * 64)) --eval-samples 64 --log-every 1000)
prefix=dtovl
testbed=scripts/testbed/netns-hosts.sh
[[ "$hosts" =~ ^[2-9]$ ]] || { echo "overlap: hosts is 2..9" >&2; exit 2; }
[ -f dist/examples/train/main.js ] || { echo "overlap: build first (npm run build)" >&2; exit 1; }
out=$(mktemp -d /tmp/dtrain-bench-overlap.XXXXXX)
trap '"$testbed" down --prefix "$prefix"; rm -rf "$out"' EXIT
"$testbed" up "$hosts" --prefix "$prefix" --subnet 10.231.251 >/dev/null
bed=/tmp/dtrain-testbed-$prefix
for i in $(seq 1 "$hosts"); do
  ip netns exec "$prefix-h$i" tc qdisc add dev eth0 root tbf rate "$rate" burst 512kb latency 100ms
done

# job.yaml over the first $1 hosts, one rank each
job() {
  echo "name: overlap-bench"
  echo "workdir: $out"
  echo "entrypoint: [node, $PWD/scripts/examples/train.js]"
  echo "logs: {dir: $out/logs}"
  echo "nproc_per_node: 1"
  echo "backend: cpu"
  echo "env: {OMP_NUM_THREADS: '1', DTRAIN_BUCKET_CAP_MB: '$bucket_mb'}"
  echo "ssh: {user: root, identity_file: $bed/id_ed25519, known_hosts: $bed/known_hosts,"
  echo "  remote_dtrain: $PWD/bin/dtrain}"
  echo "nodes:"
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).hosts.slice(0, +process.argv[2])
    .forEach((h) => console.log(`  - {host: "${h.address}", slots: 1}`))' "$bed/testbed.json" "$1"
}
job "$hosts" >"$out/job.yaml"

run() { # name config args...
  local name=$1 cfg=$2
  shift 2
  bin/dtrain launch "$cfg" -- --steps "$steps" "${model[@]}" --report-dir "$out/$name" "$@" >"$out/$name.log" 2>&1 ||
    { tail -20 "$out/$name.log" >&2; exit 1; }
}
echo "# $hosts hosts, one rank each, egress limited to $rate; model inputs 256 hidden 1024 layers 6;" \
  "global batch $batch; buckets of $bucket_mb MiB; $steps steps, the first $warmup not counted"
run reference "$out/job.yaml" --global-batch "$batch" --no-overlap
run overlap "$out/job.yaml" --global-batch "$batch"
for i in $(seq 1 "$hosts"); do ip netns exec "$prefix-h$i" tc qdisc del dev eth0 root; done
run unlimited "$out/job.yaml" --global-batch "$batch" --no-overlap
grep -h grad_overlap "$out/overlap.log" | sed 's/^/# overlap run, rank 0: /' || true
node -e '
  const [dir, warmup] = [process.argv[1], +process.argv[2]];
  const fs = require("fs");
  const times = (name) => {
    const ms = Object.entries(JSON.parse(fs.readFileSync(`${dir}/${name}/rank-0.json`, "utf8")).stepMs)
      .filter(([s]) => +s > warmup).map(([, v]) => v).sort((a, b) => a - b);
    const at = (q) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)];
    return { mean: ms.reduce((a, b) => a + b, 0) / ms.length, p50: at(0.5), p99: at(0.99) };
  };
  const rows = {
    "reference (--no-overlap)": times("reference"),
    overlap: times("overlap"),
    "unlimited link (--no-overlap)": times("unlimited"),
  };
  const f = (x) => x.toFixed(1).padStart(9);
  console.log(`${"step ms".padEnd(31)} ${"mean".padStart(9)} ${"p50".padStart(9)} ${"p99".padStart(9)}`);
  for (const [k, r] of Object.entries(rows))
    console.log(`${k.padEnd(31)} ${f(r.mean)} ${f(r.p50)} ${f(r.p99)}`);
  const ref = rows["reference (--no-overlap)"], ovl = rows.overlap, cmp = rows["unlimited link (--no-overlap)"];
  console.log(`share of the reference step waiting on the link: ${(100 * (1 - cmp.mean / ref.mean)).toFixed(0)}%`);
  console.log(`step time with overlap: ${(100 * (1 - ovl.mean / ref.mean)).toFixed(0)}% lower (mean), ` +
    `${(100 * (1 - ovl.p50 / ref.p50)).toFixed(0)}% lower (p50)`);
' "$out" "$warmup"
