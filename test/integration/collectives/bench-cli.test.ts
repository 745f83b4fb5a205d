/** `dtrain bench`: nccl-tests columns as one JSON document, the transport it measured, and usage errors (exit 2). */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/collectives-harness.js';

const dtrain = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin', 'dtrain'), 'bench', ...args], { encoding: 'utf8', timeout: 120_000 });

t.test('--json: one row per size with nccl-tests fields', async (t) => {
  const r = dtrain(['--sizes', '4096,65540', '--iters', '30', '--json']);
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.op, 'all_reduce');
  t.equal(doc.ranks, 2);
  t.same(doc.rows.map((row: { bytes: number }) => row.bytes), [4096, 65540]);
  for (const row of doc.rows) {
    t.equal(row.count, row.bytes / 4);
    t.equal(row.type, 'float');
    t.ok(row.time_us > 0 && row.algbw_GBps > 0);
    t.equal(row.busbw_GBps, row.algbw_GBps, 'busbw = algbw × 2(n-1)/n = algbw for 2 ranks');
    t.equal(row.transport, 'shm');
  }
});

t.test('two simulated nodes measure the TCP path', async (t) => {
  const r = dtrain(['--op', 'all_gather', '--nnodes', '2', '--nproc', '1', '--sizes', '8192', '--iters', '20', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).rows[0].transport, 'tcp');
});

t.test('bad usage is one line and exit 2', async (t) => {
  const r = dtrain(['--nproc', '0']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^dtrain: --nproc 0: must be a positive integer\n$/);
});
