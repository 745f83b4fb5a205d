// `dtrain status --json` against a run of 256 ranks (the target: an answer within 1 s): a controller's run
// view (dist/launch: RunStatus fed with one sample per rank, its control server on a Unix socket, the registry
// entry) is served from this process, and the real CLI is run against it N times. Reference in the same run:
// `dtrain --version` (the CLI's start alone), and the /api/status request alone, in-process.
//   node scripts/bench/status.mjs [N=20] [RANKS=256]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const n = Number(process.argv[2] ?? 20);
const world = Number(process.argv[3] ?? 256);
const dir = mkdtempSync(join(tmpdir(), 'dtrain-bench-status-'));
process.env.DTRAIN_RUNS_DIR = join(dir, 'runs');
const { RunStatus } = await import(join(root, 'dist/launch/run-status.js'));
const { RunView } = await import(join(root, 'dist/launch/run-view.js'));
const { callControl } = await import(join(root, 'dist/launch/control-server.js'));
const { findRun } = await import(join(root, 'dist/launch/run-registry.js'));
void RunStatus;

const perNode = 8;
const nodes = Array.from({ length: world / perNode }, (_, i) => ({ node_rank: i, host: `node${i}`, nproc: perNode }));
const ranks = Array.from({ length: world }, (_, rank) => ({
  rank,
  node_rank: Math.floor(rank / perNode),
  host: `node${Math.floor(rank / perNode)}`,
  local_rank: rank % perNode,
  data: rank,
  pipeline: 0,
  tensor: 0,
}));
const view = await RunView.open({
  runId: 'bench-status',
  logDir: join(dir, 'logs/bench-status'),
  plan: { world_size: world, nodes, ranks },
  warn: (l) => console.error(l),
});
for (const node of nodes) {
  const mine = ranks.filter((r) => r.node_rank === node.node_rank);
  view.status.onEvent({
    type: 'started',
    node_rank: node.node_rank,
    attempt: 0,
    master_port: 1,
    workers: mine.map((r) => ({ rank: r.rank, local_rank: r.local_rank, pid: 10000 + r.rank })),
  });
  view.status.onEvent({
    type: 'sample',
    node_rank: node.node_rank,
    attempt: 0,
    ranks: mine.map((r) => ({
      rank: r.rank,
      pid: 10000 + r.rank,
      cpu_percent: 97.5,
      rss_bytes: 3 << 30,
      last_output_age_s: 1.5,
      step: 1234,
      loss: 2.5,
      step_s: 0.5,
      samples_per_s: 64,
      compute_s: 0.4 + (r.rank === 7 ? 0.2 : 0),
    })),
  });
}
view.status.running(0);

const stats = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return (
    `mean ${(ms.reduce((a, b) => a + b, 0) / ms.length).toFixed(1)} ms, p50 ${at(0.5).toFixed(1)} ms, ` +
    `p99 ${at(0.99).toFixed(1)} ms`
  );
};
const timeCli = (args) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(root, 'bin/dtrain'), ...args], { encoding: 'utf8', env: process.env });
    out.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`dtrain ${args.join(' ')}: ${r.stderr}`);
  }
  return out;
};
const socket = findRun('bench-status').socket;
const api = [];
for (let i = 0; i < n; i++) {
  const t0 = performance.now();
  await callControl(socket, 'GET', '/api/status');
  api.push(performance.now() - t0);
}
const bytes = (await callControl(socket, 'GET', '/api/status')).body.length;
// the CLI runs in child processes; this process only serves (spawnSync would block it: run them async)
const { spawn } = await import('node:child_process');
const timeCliAsync = async (args) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const code = await new Promise((resolve) => {
      const c = spawn(process.execPath, [join(root, 'bin/dtrain'), ...args], { stdio: 'ignore', env: process.env });
      c.on('close', resolve);
    });
    out.push(performance.now() - t0);
    if (code !== 0) throw new Error(`dtrain ${args.join(' ')} exited ${code}`);
  }
  return out;
};
void timeCli;
const status = await timeCliAsync(['status', '--json']);
const table = await timeCliAsync(['status']);
const version = await timeCliAsync(['--version']);
console.log(`${world} ranks, ${n} runs each, /api/status document ${(bytes / 1024).toFixed(0)} KiB`);
console.log(`dtrain status --json : ${stats(status)}`);
console.log(`dtrain status        : ${stats(table)}`);
console.log(`GET /api/status alone: ${stats(api)}`);
console.log(`reference: dtrain --version (CLI start): ${stats(version)}`);
await view.close(true);
rmSync(dir, { recursive: true, force: true });
