/**
 * `dtrain bench <config> --join-agents N --secret-file F`: the bench runs wherever `dtrain launch` runs,
 * join mode included (two `dtrain agent --join` agents on this machine standing for two hosts), and its
 * rows come from rank 0 through the job's store.
 */
import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { built, startDtrain, tempDir } from '../../helpers/launch.js';
import { freePort } from '../../../src/launch/ports.js';

// CI (DTRAIN_REQUIRE_INTEGRATION) builds first: there a missing dist/ is a failure, not a skip
if (!built() && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, 'dist/ is not built (npx tsc -p .)');
  process.exit(0);
}

t.test('bench in join mode: two joined agents run the bench worker, rows as data', async (t) => {
  const dir = tempDir(t, 'join-bench');
  const secret = join(dir, 'secret');
  writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
  chmodSync(secret, 0o600);
  const port = await freePort();
  const cfg = join(dir, 'bench.yaml');
  writeFileSync(
    cfg,
    [
      'name: joined-bench',
      // replaced by the bench worker: a command that would fail shows it is not run
      'entrypoint: node /nonexistent/train.js',
      'nproc_per_node: 1',
      'nodes: [{host: node-a}, {host: node-b}]',
      'heartbeat: {interval: 250ms, timeout: 2s}',
      'shutdown_grace: 2s',
      `logs: {dir: ${join(dir, 'logs')}}`,
    ].join('\n') + '\n',
  );
  const ctl = startDtrain(
    [
      'bench',
      cfg,
      '--join-agents',
      '2',
      '--secret-file',
      secret,
      '--set',
      `rendezvous.port=${port}`,
      '--sizes',
      '4096,65536',
      '--iters',
      '10',
      '--json',
    ],
    { cwd: dir },
  );
  const agents = ['node-a', 'node-b'].map((host) =>
    startDtrain(['agent', '--join', `127.0.0.1:${port}`, '--secret-file', secret, '--host', host, '--timeout', '20s'], {
      cwd: dir,
    }),
  );
  const [c, ...rest] = await Promise.all([ctl.done, ...agents.map((a) => a.done)]);
  t.equal(c.code, 0, c.stderr);
  for (const r of rest) t.equal(r.code, 0, r.stderr);
  t.match(c.stderr, /joined: node-a \(node 0, 1 proc\), node-b \(node 1, 1 proc\)/);
  const doc = JSON.parse(c.stdout) as { ranks: number; nodes: number; rows: { bytes: number; ranks: number }[] };
  t.equal(doc.ranks, 2);
  t.equal(doc.nodes, 2);
  t.same(
    doc.rows.map((row) => [row.bytes, row.ranks]),
    [
      [4096, 2],
      [65536, 2],
    ],
  );
});
