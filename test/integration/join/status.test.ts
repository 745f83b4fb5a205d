/**
 * `dtrain status --json` on a join-mode job (`dtrain launch --join-agents 2` and two `dtrain agent --join`,
 * their --host names standing for separate hosts): every rank shows its node's name, the pid of the worker
 * itself, its state, its steps and its collective, carried in the joined agents' samples.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { built, root, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';
import { NODE_WORKER_V8_FLAGS } from '../../../src/runtime/worker-env-table.js';
import { freePort } from '../../../src/launch/ports.js';

/** what the agent puts between node and a Node worker's script by default */
const nodeFlags = NODE_WORKER_V8_FLAGS.join(' ');

if (!built() && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, 'dist/ is not built (npm run build)');
  process.exit(0);
}

interface StatusDoc {
  state: string;
  nodes: { node_rank: number; host: string; state: string }[];
  ranks: { rank: number; host: string; pid: number; state: string; step?: number; collective?: { op: string } }[];
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

t.test('status of a join-mode job: node names, worker pids, states, steps, collectives', async (t) => {
  const dir = tempDir(t, 'join-status');
  const env = { DTRAIN_RUNS_DIR: join(dir, 'runs'), NODE_OPTIONS: '' };
  const secret = join(dir, 'secret');
  writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
  const prog = join(root, 'test/fixtures/launch/report-steps.mjs');
  writeFileSync(
    join(dir, 'job.yaml'),
    [
      'name: joined-status',
      `entrypoint: ${JSON.stringify([process.execPath, prog])}`,
      'nproc_per_node: 1',
      'nodes: [{host: node-a}, {host: node-b}]',
      'heartbeat: {interval: 250ms, timeout: 2s}',
      'shutdown_grace: 2s',
      `logs: {dir: ${JSON.stringify(join(dir, 'logs'))}}`,
    ].join('\n') + '\n',
  );
  const port = await freePort();
  const ctl = startDtrain(
    ['launch', 'job.yaml', '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
    { cwd: dir, env },
  );
  const agents = ['node-a', 'node-b'].map((host) =>
    startDtrain(['agent', '--join', `127.0.0.1:${port}`, '--secret-file', secret, '--host', host, '--timeout', '20s'], {
      cwd: dir,
      env,
    }),
  );
  t.teardown(() => {
    for (const p of [ctl, ...agents]) p.child.kill('SIGKILL');
  });
  let doc: StatusDoc | undefined;
  for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 500))) {
    const r = await runDtrain(['status', '--json'], { cwd: root, env });
    doc = r.code === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
    if (doc?.ranks.every((x) => (x.step ?? 0) > 5 && x.collective)) break;
  }
  if (!doc?.ranks.every((x) => (x.step ?? 0) > 5)) {
    ctl.child.kill('SIGTERM');
    t.fail(`no status with steps: ${JSON.stringify(doc)}\n${(await ctl.done).stderr.slice(-2000)}`);
    return;
  }
  t.equal(doc.state, 'running');
  t.match(doc.nodes, [
    { node_rank: 0, host: 'node-a', state: 'running' },
    { node_rank: 1, host: 'node-b', state: 'running' },
  ]);
  for (const r of doc.ranks) {
    t.match(r, { host: r.rank === 0 ? 'node-a' : 'node-b', state: 'running' }, `rank ${r.rank}`);
    t.match(
      cmdline(r.pid),
      new RegExp(`^${process.execPath} ${nodeFlags} ${prog}`),
      `rank ${r.rank}: pid ${r.pid} is the worker`,
    );
    t.match(r.collective, { op: 'allReduce' }, `rank ${r.rank}: its collective`);
  }
  ctl.child.kill('SIGTERM');
  await Promise.all([ctl.done, ...agents.map((a) => a.done)]);
});
