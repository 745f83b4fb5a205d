#!/usr/bin/env node
// Benchmarks dtrain's CPU all-reduce (2 ranks on this machine, shared memory) against OpenMPI (mpirun +
// mpi4py) and PyTorch Gloo on the same sizes in the same run, alternating implementations each round and
// keeping each one's best round (the machine is shared). Prints a table and the ratios, or one
// JSON document with --json. Needs a built package (npm run build).
// Every implementation times its iterations in --chunks chunks and reports its fastest chunk (default
// 5; 1 is the plain mean), so a preemption on this shared machine does not decide a small size's figure.
// Usage: node scripts/bench/collectives.mjs [--sizes 4096,16777216] [--rounds 2] [--chunks 5] [--json]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { runLocalJob } = await import(join(root, 'dist', 'runtime', 'local-job.js'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const sizes = opt('sizes', '4096,65536,1048576,16777216');
const rounds = Number(opt('rounds', '2'));
const chunks = String(Number(opt('chunks', '5')));
const json = args.includes('--json');
const python = '/usr/bin/python3';

async function dtrain(alloc) {
  const rows = [];
  let out = '';
  const exits = await runLocalJob({
    nodes: [2],
    argv: [process.execPath, join(root, 'dist', 'runtime', 'bench-worker.js')],
    env: { BENCH_OP: 'all_reduce', BENCH_SIZES: sizes, BENCH_ALLOC: alloc ? '1' : '0', BENCH_CHUNKS: chunks },
    onStdout: (_rank, chunk) => (out += chunk),
  });
  if (exits.some((e) => e.code !== 0)) throw new Error(`dtrain bench workers failed: ${JSON.stringify(exits)}`);
  for (const line of out.trim().split('\n'))
    rows.push({ impl: alloc ? 'dtrain (dist.alloc)' : 'dtrain (typed array)', ...JSON.parse(line) });
  return rows;
}

function python3(argv, impl) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', cwd: root, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${impl} failed (${r.status}): ${r.stderr.slice(-1500)}`);
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => ({ ...JSON.parse(l), impl }));
}

const runners = {
  'dtrain (dist.alloc)': () => dtrain(true),
  'dtrain (typed array)': () => dtrain(false),
  openmpi: async () =>
    python3(
      [
        'mpirun',
        '--allow-run-as-root',
        '--oversubscribe',
        '-np',
        '2',
        python,
        join(root, 'scripts/bench/collectives-mpi.py'),
        sizes,
        chunks,
      ],
      'openmpi',
    ),
  'gloo (torch)': async () =>
    python3([python, join(root, 'scripts/bench/collectives-gloo.py'), '2', sizes, chunks], 'gloo (torch)'),
};

const best = new Map(); // impl|bytes → row with the lowest time
for (let r = 0; r < rounds; r++) {
  for (const [impl, run] of Object.entries(runners)) {
    for (const row of await run()) {
      const key = `${impl}|${row.bytes}`;
      if (!best.has(key) || best.get(key).time_us > row.time_us) best.set(key, { ...row, impl });
    }
  }
}

const byteList = sizes.split(',').map(Number);
const get = (impl, bytes) => best.get(`${impl}|${bytes}`);
const small = byteList[0],
  large = byteList[byteList.length - 1];
const ratios = {
  busbw_alloc_vs_openmpi: get('dtrain (dist.alloc)', large).busbw_GBps / get('openmpi', large).busbw_GBps,
  busbw_typed_vs_openmpi: get('dtrain (typed array)', large).busbw_GBps / get('openmpi', large).busbw_GBps,
  latency_typed_vs_openmpi: get('dtrain (typed array)', small).time_us / get('openmpi', small).time_us,
  latency_alloc_vs_openmpi: get('dtrain (dist.alloc)', small).time_us / get('openmpi', small).time_us,
  busbw_alloc_vs_gloo: get('dtrain (dist.alloc)', large).busbw_GBps / get('gloo (torch)', large).busbw_GBps,
  latency_typed_vs_gloo: get('dtrain (typed array)', small).time_us / get('gloo (torch)', small).time_us,
};
const rows = [...best.values()].sort((a, b) => a.bytes - b.bytes || a.impl.localeCompare(b.impl));

if (json) {
  process.stdout.write(
    JSON.stringify(
      {
        ranks: 2,
        op: 'all_reduce',
        type: 'float',
        rounds,
        chunks: Number(chunks),
        rows,
        ratios,
        large_bytes: large,
        small_bytes: small,
      },
      null,
      2,
    ) + '\n',
  );
} else {
  const pad = (s, n) => String(s).padStart(n);
  console.log(
    `all_reduce, float32, sum, 2 ranks on this machine; best of ${rounds} rounds, fastest of ${chunks} chunks each`,
  );
  console.log(
    `${'impl'.padEnd(22)}${pad('bytes', 11)}${pad('time(us)', 12)}${pad('algbw(GB/s)', 13)}` +
      `${pad('busbw(GB/s)', 13)}  algorithm`,
  );
  for (const r of rows)
    console.log(
      `${r.impl.padEnd(22)}${pad(r.bytes, 11)}${pad(r.time_us.toFixed(2), 12)}` +
        `${pad(r.algbw_GBps.toFixed(3), 13)}${pad(r.busbw_GBps.toFixed(3), 13)}  ${r.algorithm ?? ''}`,
    );
  console.log(`\nratios (targets: alloc busbw >= 2x OpenMPI, typed busbw >= 1x, 4 KiB latency <= 0.5x):`);
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(28)} ${v.toFixed(2)}x`);
}
