/**
 * `dtrain status --json` on a job launched over SSH to real sshd hosts (network namespaces): every rank shows
 * the host it runs on, the pid of the worker itself (living in that host's namespace), its state, its steps
 * and the collective it is in, all carried in the remote agents' samples.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';
import { NODE_WORKER_V8_FLAGS } from '../../../src/runtime/worker-env-table.js';
import { skipReason, testbedUp, type TestbedHost } from '../../helpers/ssh-testbed.js';

/** what the agent puts between node and a Node worker's script by default */
const nodeFlags = NODE_WORKER_V8_FLAGS.join(' ');

const skip = skipReason() ?? (built() ? undefined : 'needs a built dist/ (npm run build)');
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

interface StatusDoc {
  state: string;
  nodes: { node_rank: number; host: string; state: string }[];
  ranks: {
    rank: number;
    node_rank: number;
    host: string;
    pid: number;
    state: string;
    step?: number;
    collective?: { group: string; op: string };
  }[];
}

const bed = testbedUp(2, 'ts');
t.teardown(() => bed.down());
const [h1, h2] = bed.hosts as [TestbedHost, TestbedHost];

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

t.test('status of an SSH job: hosts, worker pids in their hosts, states, steps, collectives', async (t) => {
  const dir = tempDir(t, 'ssh-status');
  const env = { DTRAIN_RUNS_DIR: join(dir, 'runs'), NODE_OPTIONS: '' };
  const prog = join(root, 'test/fixtures/launch/report-steps.mjs');
  writeFileSync(
    join(dir, 'job.yaml'),
    [
      'name: ssh-status',
      `workdir: ${JSON.stringify(dir)}`,
      `entrypoint: ${JSON.stringify([process.execPath, prog])}`,
      `nodes: [{host: "${h1.address}", slots: 2}, {host: "${h2.address}", slots: 1}]`,
      'ssh:',
      '  user: root',
      `  identity_file: ${JSON.stringify(bed.client_key)}`,
      `  known_hosts: ${JSON.stringify(bed.known_hosts)}`,
      `  remote_dtrain: ${JSON.stringify(join(root, 'bin/dtrain'))}`,
      '  connect_timeout: 5s',
      'shutdown_grace: 2s',
      `logs: {dir: ${JSON.stringify(join(dir, 'logs'))}}`,
    ].join('\n') + '\n',
  );
  const launch = startDtrain(['launch', 'job.yaml'], { cwd: dir, env });
  t.teardown(() => launch.child.kill('SIGKILL'));
  let doc: StatusDoc | undefined;
  for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 500))) {
    const r = await runDtrain(['status', '--json'], { cwd: root, env });
    doc = r.code === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
    if (doc?.ranks.every((r) => (r.step ?? 0) > 5 && r.collective)) break;
  }
  if (!doc?.ranks.every((r) => (r.step ?? 0) > 5)) {
    launch.child.kill('SIGTERM');
    t.fail(`no status with steps: ${JSON.stringify(doc)} ${(await launch.done).stderr.slice(-2000)}`);
    return;
  }
  t.equal(doc.state, 'running');
  t.match(doc.nodes, [
    { node_rank: 0, host: h1.address, state: 'running' },
    { node_rank: 1, host: h2.address, state: 'running' },
  ]);
  const hostOf = [h1, h1, h2];
  const inH1 = netnsPids(h1);
  const inH2 = netnsPids(h2);
  for (const r of doc.ranks) {
    const h = hostOf[r.rank];
    t.match(r, { node_rank: h === h1 ? 0 : 1, host: h.address, state: 'running' }, `rank ${r.rank}`);
    t.match(
      cmdline(r.pid),
      new RegExp(`^${process.execPath} ${nodeFlags} ${prog}`),
      `rank ${r.rank}: pid ${r.pid} is the worker`,
    );
    t.ok((h === h1 ? inH1 : inH2).includes(r.pid), `rank ${r.rank}: pid ${r.pid} runs in ${h.name}'s namespace`);
    t.match(r.collective, { group: 'world', op: 'allReduce' }, `rank ${r.rank}: its collective`);
  }
  launch.child.kill('SIGTERM');
  await launch.done;
});

function netnsPids(h: TestbedHost): number[] {
  return execFileSync('ip', ['netns', 'pids', h.namespace], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
}
