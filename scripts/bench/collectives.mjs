#!/usr/bin/env node
// Benchmarks dtrain's CPU all-reduce (2 ranks on this machine, shared memory) against OpenMPI (a C program
// built here with mpicc, allreduce-mpi.c; and mpi4py) and PyTorch Gloo, same sizes, same run. Every
// implementation times each op; rounds alternate between the implementations (the order reverses every
// other round), and each size's figures are the mean, p50 and p99 over every timed op of every round,
// with all ranks' CPU time per op (src/runtime/bench-stats.ts defines them, for all). A ratio is the
// median over rounds of that round's ratio. dtrain runs through `dtrain bench <config>`, i.e. the real
// launcher (controller, agent, supervisor) stays up around the workers, as in a job.
//
//   node scripts/bench/collectives.mjs [--sizes 4KiB,16MiB] [--rounds 10] [--max-ops 100000]
//        [--impls dtrain-alloc,dtrain-typed,openmpi-c,mpi4py,gloo,one-step-c] [--json]
//
// one-step-c (not run unless asked) is dtrain's small all-reduce algorithm in plain C with no API
// (allreduce-shm-c.c): what that exchange costs the hardware, so dtrain's own overhead above it shows.
//
// Timed ops per size, all rounds together: bench-stats' opsFor(size) (100k for small sizes), at most
// --max-ops (a quick look; the targets need the default). Needs a built package (npm run build), mpicc
// and mpirun; mpi4py and gloo need python3.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
const stats = await import(join(root, 'dist', 'runtime', 'bench-stats.js'));
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '4KiB,64KiB,1MiB,16MiB' },
    rounds: { type: 'string', default: '10' },
    'max-ops': { type: 'string', default: '100000' },
    impls: { type: 'string', default: 'dtrain-alloc,dtrain-typed,openmpi-c,mpi4py,gloo' },
    json: { type: 'boolean', default: false },
  },
});
const units = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const sizes = values.sizes.split(',').map((s) => {
  const m = /^(\d+)(|B|KiB|MiB|GiB)$/.exec(s.trim());
  if (!m) usage(`--sizes ${values.sizes}: sizes are bytes, or a number with KiB, MiB or GiB`);
  return Number(m[1]) * units[m[2]];
});
const rounds = Number(values.rounds);
if (!(Number.isInteger(rounds) && rounds >= 1)) usage('--rounds must be a positive integer');
const maxOps = Number(values['max-ops']);
if (!(Number.isInteger(maxOps) && maxOps >= 1)) usage('--max-ops must be a positive integer');
const ops = sizes.map((b) => Math.ceil(Math.min(stats.opsFor(b), maxOps) / rounds));
// untimed ops before each run's timed ones, for every implementation (dtrain's worker applies the same rule)
const warmups = ops.map((n) => stats.warmupFor(n));
// what every reference takes before its output folder: sizes, timed ops and warm-up ops per size
const lists = [sizes, ops, warmups].map((l) => l.join(','));
const python = '/usr/bin/python3';
const reference = 'openmpi-c';

function usage(msg) {
  console.error(`collectives: ${msg}`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'dtrain-bench-collectives-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// --- the implementations: each runs every size once and leaves <dir>/<bytes>.f64 plus { bytes, cpu_s } lines
function run(argv, what, env = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    cwd: root,
    timeout: 900_000,
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}
const jsonLines = (out) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
const mpirun = ['mpirun', '--allow-run-as-root', '-np', '2'];

let cBinary, oneStepBinary;
function dtrainRunner(alloc) {
  return (dir) => {
    const config = join(dir, 'bench.yaml');
    writeFileSync(
      config,
      [
        'name: bench-collectives',
        'entrypoint: node bench-worker.js', // replaced by `dtrain bench`
        'nodes: [{host: localhost, slots: 2}]',
        'nproc_per_node: 2',
        `logs: {dir: ${JSON.stringify(join(dir, 'logs'))}}`,
        `env: {BENCH_SAMPLES_DIR: ${JSON.stringify(dir)}, BENCH_ITERS: "${ops.join(',')}"}`,
      ].join('\n'),
    );
    const argv = [process.execPath, join(root, 'bin', 'dtrain'), 'bench', config, '--sizes', sizes.join(','), '--json'];
    const doc = JSON.parse(run(alloc ? [...argv, '--alloc'] : argv, 'dtrain bench'));
    return doc.rows.map((r) => ({
      bytes: r.bytes,
      cpu_s: (r.cpu_us_per_op * r.ops) / 1e6,
      algorithm: `${r.transport}/${r.algorithm}`,
    }));
  };
}
const runners = {
  'dtrain-alloc': dtrainRunner(true),
  'dtrain-typed': dtrainRunner(false),
  'openmpi-c': (dir) => jsonLines(run([...mpirun, cBinary, ...lists, dir], 'allreduce-mpi')),
  'one-step-c': (dir) =>
    jsonLines(run([oneStepBinary, ...lists, dir], 'allreduce-shm-c')).map((r) => ({ ...r, algorithm: 'c/one-step' })),
  mpi4py: (dir) =>
    jsonLines(run([...mpirun, python, join(root, 'scripts/bench/collectives-mpi.py'), ...lists, dir], 'mpi4py')),
  gloo: (dir) => jsonLines(run([python, join(root, 'scripts/bench/collectives-gloo.py'), '2', ...lists, dir], 'gloo')),
};
const impls = values.impls.split(',');
for (const i of impls) if (!runners[i]) usage(`--impls: unknown '${i}' (${Object.keys(runners).join(', ')})`);
if (!impls.includes(reference)) usage(`--impls must include ${reference}, the reference of every ratio`);

cBinary = join(work, 'allreduce-mpi');
execFileSync('mpicc', ['-O2', '-o', cBinary, join(root, 'scripts/bench/allreduce-mpi.c')], { stdio: 'inherit' });
if (impls.includes('one-step-c')) {
  oneStepBinary = join(work, 'allreduce-shm-c');
  const source = join(root, 'scripts/bench/allreduce-shm-c.c');
  execFileSync('cc', ['-O3', '-march=native', '-o', oneStepBinary, source], { stdio: 'inherit' });
}

// --- alternating rounds
const loadBefore = loadavg();
const per = new Map(); // impl|bytes → { samples: Float64Array[], cpu_s, means: [], p99s: [], algorithm }
for (let r = 0; r < rounds; r++) {
  for (const impl of r % 2 ? [...impls].reverse() : impls) {
    const dir = join(work, `${r}-${impl}`);
    mkdirSync(dir);
    for (const row of runners[impl](dir)) {
      const key = `${impl}|${row.bytes}`;
      const acc = per.get(key) ?? { samples: [], cpu_s: 0, means: [], p99s: [], algorithm: row.algorithm ?? '' };
      const samples = stats.readSamples(join(dir, `${row.bytes}.f64`));
      const s = stats.summarize(samples);
      acc.samples.push(samples);
      acc.cpu_s += row.cpu_s;
      acc.means.push(s.mean_us);
      acc.p99s.push(s.p99_us);
      per.set(key, acc);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
const loadAfter = loadavg();

const rows = [];
for (const bytes of sizes)
  for (const impl of impls) {
    const acc = per.get(`${impl}|${bytes}`);
    const s = stats.summarize(stats.concatSamples(acc.samples));
    const algbw = bytes / s.mean_us / 1e3;
    rows.push({
      impl,
      bytes,
      ...s,
      cpu_us_per_op: (acc.cpu_s / s.ops) * 1e6,
      algbw_GBps: algbw,
      busbw_GBps: algbw, // 2 ranks: busbw = algbw × 2(n-1)/n = algbw
      algorithm: acc.algorithm,
    });
  }
// per-round ratios against the C reference, their median
const ratios = [];
for (const bytes of sizes)
  for (const impl of impls) {
    if (impl === reference) continue;
    const a = per.get(`${impl}|${bytes}`),
      ref = per.get(`${reference}|${bytes}`);
    ratios.push({
      impl,
      bytes,
      mean_vs_openmpi_c: stats.median(a.means.map((m, i) => m / ref.means[i])),
      p99_vs_openmpi_c: stats.median(a.p99s.map((p, i) => p / ref.p99s[i])),
      busbw_vs_openmpi_c: stats.median(a.means.map((m, i) => ref.means[i] / m)),
    });
  }
const machine = {
  cpu: cpus()[0]?.model ?? '?',
  cores: cpus().length,
  load_before: loadBefore.map((l) => +l.toFixed(2)),
  load_after: loadAfter.map((l) => +l.toFixed(2)),
};

if (values.json) {
  const doc = { op: 'all_reduce', type: 'float', ranks: 2, rounds, ops_per_round: ops, machine, rows, ratios };
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
} else {
  const pad = (s, n) => String(s).padStart(n);
  const f = (x) => x.toFixed(2);
  console.log(
    `all_reduce, float32, sum, 2 ranks; ${rounds} alternating rounds; per op over all rounds: ` +
      `mean, p50, p99 (µs); cpu: all ranks' CPU µs per op`,
  );
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores; load ${machine.load_before.join(' ')} before, ` +
      `${machine.load_after.join(' ')} after`,
  );
  console.log(
    `${'impl'.padEnd(14)}${pad('bytes', 10)}${pad('ops', 9)}${pad('mean', 10)}${pad('p50', 9)}${pad('p99', 10)}` +
      `${pad('cpu', 9)}${pad('busbw GB/s', 12)}${pad('best chunk', 12)}  algorithm`,
  );
  for (const r of rows)
    console.log(
      `${r.impl.padEnd(14)}${pad(r.bytes, 10)}${pad(r.ops, 9)}${pad(f(r.mean_us), 10)}${pad(f(r.p50_us), 9)}` +
        `${pad(f(r.p99_us), 10)}${pad(f(r.cpu_us_per_op), 9)}${pad(r.busbw_GBps.toFixed(3), 12)}` +
        `${pad(f(r.best_chunk_us), 12)}  ${r.algorithm}`,
    );
  console.log(`\nratios against ${reference}, median of per-round ratios (targets: dtrain 4 KiB mean <= 0.5x,`);
  console.log(`p99 <= 1x; 16 MiB dist.alloc busbw >= 2x):`);
  console.log(`${'impl'.padEnd(14)}${pad('bytes', 10)}${pad('mean', 9)}${pad('p99', 9)}${pad('busbw', 9)}`);
  for (const r of ratios)
    console.log(
      `${r.impl.padEnd(14)}${pad(r.bytes, 10)}${pad(f(r.mean_vs_openmpi_c) + 'x', 9)}` +
        `${pad(f(r.p99_vs_openmpi_c) + 'x', 9)}${pad(f(r.busbw_vs_openmpi_c) + 'x', 9)}`,
    );
}
