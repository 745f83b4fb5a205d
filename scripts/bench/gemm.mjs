#!/usr/bin/env node
// Single-thread fp32 GEMM: dtrain's layer kernel (addon/src/layers) against Debian's OpenBLAS
// (libopenblas-dev, cblas_sgemm from a C program built here, gemm-openblas.c, OPENBLAS_NUM_THREADS=1), same
// shapes, same operands' layout and flags, same run. Shapes: 1024³, and every product of the example trainer's
// layers (inputs 32, hidden 96, classes 8) at 128 rows (global batch 128 at world 1) and 64 (world 2):
// forward Y = X·Wᵀ, backward dX = dY·W and dW += dYᵀ·X. Rounds alternate dtrain and OpenBLAS (the order
// reverses every other round); each side's figures are the mean, p50 and p99 over every timed call of every
// round (src/runtime/bench-stats.ts), GFLOP/s from the mean, and CPU seconds over wall seconds of the timed
// calls (1.00 = one core). The ratio is the median over rounds of that round's mean-time ratio.
//
//   node scripts/bench/gemm.mjs [--rounds 5] [--simd auto|scalar|avx2|avx512] [--shapes all|big|model] [--json]
//
// Needs a built package (npm run build), gcc and libopenblas-dev. Target: dtrain >= 60% of OpenBLAS.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
const stats = await import(join(root, 'dist', 'runtime', 'bench-stats.js'));
// the exported wrappers, as a user calls them (the addon's build/Release/dtrain_native.node underneath)
const kernels = await import(join(root, 'dist', 'runtime', 'layers', 'kernels.js'));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    simd: { type: 'string', default: 'auto' },
    shapes: { type: 'string', default: 'all' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || !['all', 'big', 'model'].includes(values.shapes)) {
  console.error('usage: node scripts/bench/gemm.mjs [--rounds N] [--simd PATH] [--shapes all|big|model] [--json]');
  process.exit(2);
}
const simd = kernels.layersSimd(values.simd);

const shapes = [];
if (values.shapes !== 'model') shapes.push({ name: '1024³', m: 1024, n: 1024, k: 1024 });
if (values.shapes !== 'big') {
  for (const rows of [128, 64]) {
    const layer = (nin, nout, tag) => [
      { name: `${tag} fwd ${rows}×${nin}·(${nout}×${nin})ᵀ`, m: rows, n: nout, k: nin, transB: true },
      { name: `${tag} dX ${rows}×${nout}·${nout}×${nin}`, m: rows, n: nin, k: nout },
      { name: `${tag} dW (${rows}×${nout})ᵀ·${rows}×${nin}`, m: nout, n: nin, k: rows, transA: true, acc: true },
    ];
    shapes.push(...layer(32, 96, 'in'), ...layer(96, 96, 'hid'), ...layer(96, 8, 'head'));
  }
}
// about 0.25 s of work per side per round at 100 GFLOP/s
const opsFor = (s) => Math.max(10, Math.min(5000, Math.floor(25e9 / (2 * s.m * s.n * s.k))));

const dir = mkdtempSync(join(tmpdir(), 'dtrain-gemm-bench-'));
const binary = join(dir, 'gemm-openblas');
execFileSync('gcc', ['-O2', '-o', binary, join(root, 'scripts/bench/gemm-openblas.c'), '-lopenblas'], {
  stdio: 'inherit',
});

function filled(n, mod, scale, offset) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (i % mod) * scale - offset;
  return a;
}

function runDtrain(s, ops) {
  const a = filled(s.m * s.k, 17, 0.01, 0.08);
  const b = filled(s.k * s.n, 13, 0.01, 0.06);
  const c = new Float32Array(s.m * s.n);
  const args = { a, b, c, m: s.m, n: s.n, k: s.k, transA: !!s.transA, transB: !!s.transB, accumulate: !!s.acc, simd };
  for (let i = 0; i < Math.max(2, ops / 10); i++) kernels.gemm(args);
  const samples = new Float64Array(ops);
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const t0 = process.hrtime.bigint();
    kernels.gemm(args);
    samples[i] = Number(process.hrtime.bigint() - t0);
  }
  const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { samples, cpu_s: (cpu.user + cpu.system) / 1e6, wall_s: wall };
}

let openblasConfig = '';
function runOpenblas(s, ops) {
  const out = join(dir, 'samples.f64');
  const flags = [s.transA, s.transB, s.acc].map((f) => (f ? '1' : '0'));
  const r = spawnSync(binary, [s.m, s.n, s.k, ...flags, ops, Math.max(2, Math.floor(ops / 10)), out].map(String), {
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`gemm-openblas failed: ${r.stderr}`);
  const row = JSON.parse(r.stdout.trim());
  openblasConfig = `${row.config}, ${row.threads} thread(s)`;
  return { samples: stats.readSamples(out), cpu_s: row.cpu_s, wall_s: row.wall_s };
}

const loadBefore = loadavg().map((x) => x.toFixed(2));
const results = [];
for (const s of shapes) {
  const ops = opsFor(s);
  const acc = { dtrain: [], openblas: [] };
  const ratios = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? ['openblas', 'dtrain'] : ['dtrain', 'openblas'];
    const got = {};
    for (const side of order) got[side] = side === 'dtrain' ? runDtrain(s, ops) : runOpenblas(s, ops);
    for (const side of order) acc[side].push(got[side]);
    const mean = (x) => x.samples.reduce((t, v) => t + v, 0) / x.samples.length;
    ratios.push(mean(got.openblas) / mean(got.dtrain));
  }
  const flops = 2 * s.m * s.n * s.k;
  const side = (runs) => {
    const sum = stats.summarize(stats.concatSamples(runs.map((x) => x.samples)));
    const cpu = runs.reduce((t, x) => t + x.cpu_s, 0);
    const wall = runs.reduce((t, x) => t + x.wall_s, 0);
    return { ...sum, gflops: flops / (sum.mean_us * 1e3), cpu_per_wall: cpu / wall };
  };
  results.push({
    shape: s.name,
    m: s.m,
    n: s.n,
    k: s.k,
    dtrain: side(acc.dtrain),
    openblas: side(acc.openblas),
    fraction_of_openblas: stats.median(ratios),
  });
}
rmSync(dir, { recursive: true, force: true });

const report = {
  simd,
  openblas: openblasConfig,
  rounds,
  machine: { cpu: cpus()[0]?.model ?? '?', cores: cpus().length, load_before: loadBefore, load_after: loadavg() },
  results,
};
if (values.json) {
  process.stdout.write(JSON.stringify(report) + '\n');
} else {
  const pad = (x, w) => String(x).padStart(w);
  const f = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  console.log(`fp32 GEMM, 1 thread: dtrain (${simd}) vs ${openblasConfig}; ${rounds} rounds`);
  console.log(
    `machine: ${report.machine.cpu}, ${report.machine.cores} cores; load ${loadBefore.join(' ')} before, ` +
      `${report.machine.load_after.map((x) => x.toFixed(2)).join(' ')} after (shared machine)`,
  );
  console.log('times in µs (mean p50 p99); cpu = CPU s / wall s of the timed calls');
  console.log(
    `${'shape'.padEnd(34)}${pad('dtrain mean', 12)}${pad('p50', 9)}${pad('p99', 9)}${pad('GF/s', 7)}${pad('cpu', 6)}` +
      ` |${pad('oblas mean', 11)}${pad('p50', 9)}${pad('p99', 9)}${pad('GF/s', 7)}${pad('cpu', 6)} | of OpenBLAS`,
  );
  for (const r of results) {
    const cols = (x) =>
      `${pad(f(x.mean_us), 9)}${pad(f(x.p50_us), 9)}${pad(f(x.p99_us), 9)}${pad(x.gflops.toFixed(1), 7)}` +
      `${pad(x.cpu_per_wall.toFixed(2), 6)}`;
    console.log(
      `${r.shape.padEnd(34)}   ${cols(r.dtrain)} | ${cols(r.openblas)} | ${(r.fraction_of_openblas * 100).toFixed(0)}%`,
    );
  }
  console.log('target: dtrain >= 60% of OpenBLAS GFLOP/s');
}
