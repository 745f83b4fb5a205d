/**
 * `dtrain bench`: nccl-tests columns as one JSON document, the transport it measured, and usage errors
 * (exit 2); with a config, the same through the real launcher over the config's nodes.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/collectives-harness.js';

const dtrain = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin', 'dtrain'), 'bench', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });

t.test('--json: one row per size with nccl-tests fields', async (t) => {
  const r = dtrain(['--sizes', '4096,65540', '--iters', '30', '--json']);
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.op, 'all_reduce');
  t.equal(doc.ranks, 2);
  t.same(
    doc.rows.map((row: { bytes: number }) => row.bytes),
    [4096, 65540],
  );
  for (const row of doc.rows) {
    t.equal(row.count, row.bytes / 4);
    t.equal(row.type, 'float');
    t.ok(row.time_us > 0 && row.algbw_GBps > 0);
    t.equal(row.ops, 30, 'every timed op counts');
    t.ok(row.p50_us > 0 && row.p50_us <= row.p99_us && row.p99_us <= row.max_us, 'p50 <= p99 <= max');
    t.ok(row.best_chunk_us <= row.time_us * (1 + 1e-9), 'the fastest chunk is at most the mean');
    t.ok(Math.abs(row.algbw_GBps - row.bytes / row.time_us / 1e3) < 1e-9, 'algbw comes from the mean');
    t.ok(row.cpu_us_per_op > 0, 'CPU per op');
    t.equal(row.busbw_GBps, row.algbw_GBps, 'busbw = algbw × 2(n-1)/n = algbw for 2 ranks');
    t.equal(row.transport, 'shm');
  }
});

t.test('--op reduce_scatter and broadcast: nccl-tests bus factors for 4 ranks', async (t) => {
  // nccl-tests: reduce_scatter busbw = algbw × (n-1)/n, broadcast busbw = algbw
  for (const [op, factor] of [
    ['reduce_scatter', 0.75],
    ['broadcast', 1],
  ] as const) {
    const r = dtrain(['--op', op, '--nproc', '4', '--sizes', '65536', '--iters', '10', '--json']);
    t.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    t.equal(doc.op, op);
    const row = doc.rows[0];
    t.ok(row.time_us > 0, `${op}: ${row.time_us} µs`);
    t.ok(Math.abs(row.busbw_GBps - row.algbw_GBps * factor) < 1e-9, `${op}: busbw = algbw × ${factor}`);
  }
});

t.test('two simulated nodes measure the TCP path', async (t) => {
  const r = dtrain([
    '--op',
    'all_gather',
    '--nnodes',
    '2',
    '--nproc',
    '1',
    '--sizes',
    '8192',
    '--iters',
    '20',
    '--json',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).rows[0].transport, 'tcp');
});

t.test('--op sendrecv: each rank sends to the next and receives from the previous, on shm and on TCP', async (t) => {
  // nccl-tests' sendrecv_perf: bytes is what each rank sends; busbw = algbw
  for (const [args, transport] of [
    [['--nproc', '3'], 'shm'],
    [['--nnodes', '2', '--nproc', '1'], 'tcp'],
  ] as const) {
    const r = dtrain(['--op', 'sendrecv', ...args, '--sizes', '4096,65536', '--iters', '20', '--json']);
    t.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    t.equal(doc.op, 'sendrecv');
    t.same(
      doc.rows.map((row: { bytes: number }) => row.bytes),
      [4096, 65536],
    );
    for (const row of doc.rows) {
      t.equal(row.redop, 'none');
      t.ok(row.time_us > 0, `${transport}: ${row.bytes} B in ${row.time_us} µs`);
      t.equal(row.busbw_GBps, row.algbw_GBps);
      t.equal(row.transport, transport);
      t.equal(row.algorithm, 'stream');
    }
  }
  const one = dtrain(['--op', 'sendrecv', '--nproc', '1']);
  t.equal(one.status, 2);
  t.match(one.stderr, /^dtrain: --op sendrecv needs at least 2 ranks \(--nproc or --nnodes\)\n$/);
});

t.test('bad usage is one line and exit 2', async (t) => {
  const r = dtrain(['--nproc', '0']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^dtrain: --nproc 0: must be a positive integer\n$/);
  // more than Node's largest buffer: refused before any worker starts (each failed to allocate, exit 1)
  for (const sizes of ['4096,99999999999999999', '4294967297', '3']) {
    const big = dtrain(['--sizes', sizes, '--iters', '1']);
    t.equal(big.status, 2, sizes);
    t.equal(big.stderr, `dtrain: --sizes ${sizes}: sizes are whole numbers of bytes from 4 to 4294967296 (4 GiB)\n`);
  }
});

function benchConfig(t: { teardown(fn: () => void): void }, nodes: string): { file: string; logs: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-bench-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bench.yaml');
  // the entrypoint is replaced by the bench worker: a command that would fail shows it is not run
  writeFileSync(
    file,
    [
      'name: bench-cfg',
      'entrypoint: node /nonexistent/train.js',
      `nodes: ${nodes}`,
      'nproc_per_node: 2',
      `logs: {dir: ${dir}/logs}`,
    ].join('\n'),
  );
  return { file, logs: join(dir, 'logs') };
}

t.test('a config: 2 ranks on one node through the launcher, nccl-tests table', async (t) => {
  const { file, logs } = benchConfig(t, '[{host: localhost, slots: 2}]');
  const r = dtrain([file, '--sizes', '4096,1048576', '--iters', '30']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^# all_reduce, 2 ranks on 1 node\(s\) of bench-cfg .*through dtrain launch/);
  t.match(r.stdout, /#\s+size\s+count\s+type\s+redop\s+ops\s+time\s+p50\s+p99\s+cpu\s+algbw\s+busbw/);
  t.match(r.stdout, /\n\s+4096\s+1024\s+float\s+sum\s+30(\s+[\d.]+){6}\s+shm\/one-step\n/);
  t.match(r.stdout, /\n\s+1048576\s+262144\s+float\s+sum\s+30(\s+[\d.]+){6}\s+shm\/rs-ag-staged\n/);
  t.match(r.stderr, /2\/2 workers running/, 'the launcher ran it');
  t.equal(readdirSync(logs).length, 1, 'one run folder of per-rank logs, as dtrain launch writes');
});

t.test('a config: 4 ranks on two nodes (--json) measure the hierarchical path', async (t) => {
  const { file } = benchConfig(t, '[{host: localhost, slots: 2}, {host: 127.0.0.1, slots: 2}]');
  const r = dtrain([file, '--op', 'all_reduce', '--sizes', '4096,65536', '--iters', '10', '--json']);
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.ranks, 4);
  t.equal(doc.nodes, 2);
  t.match(doc.run_id, /^bench-cfg-/);
  t.same(
    doc.rows.map((row: { bytes: number }) => row.bytes),
    [4096, 65536],
  );
  for (const row of doc.rows) {
    t.equal(row.ranks, 4);
    t.equal(row.transport, 'hierarchical');
    t.ok(Math.abs(row.busbw_GBps - row.algbw_GBps * 1.5) < 1e-9, 'busbw = algbw × 2(n-1)/n for 4 ranks');
  }
});

t.test('a config: the rows come from rank 0 through the store, not from what the workers print', async (t) => {
  const { file } = benchConfig(t, '[{host: localhost, slots: 2}]');
  // every worker first prints a line that reads like a row: a bench reading console text would count it
  const preload = join(file, '..', 'noise.cjs');
  writeFileSync(preload, `process.stdout.write(JSON.stringify({ op: 'noise', bytes: 1 }) + '\\n');\n`);
  const r = dtrain([
    file,
    '--sizes',
    '4096,65536',
    '--iters',
    '10',
    '--json',
    '--set',
    `env.NODE_OPTIONS=--require ${preload}`,
  ]);
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { rows: { op: string; bytes: number }[] };
  t.same(
    doc.rows.map((row) => [row.op, row.bytes]),
    [
      ['all_reduce', 4096],
      ['all_reduce', 65536],
    ],
  );
  t.notMatch(r.stdout, /noise/, "workers' output stays off the document");
});

t.test('a config with --nproc is a usage error (exit 2)', async (t) => {
  const { file } = benchConfig(t, '[{host: localhost, slots: 2}]');
  const r = dtrain([file, '--nproc', '4']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^dtrain: --nproc and --nnodes are for runs without a config/);
});
