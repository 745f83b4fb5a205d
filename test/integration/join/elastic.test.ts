/**
 * Elastic join mode with real `dtrain agent --join` processes on this machine (the --host names stand for
 * separate hosts): an agent that joins while the job runs is taken in at the next checkpoint commit, a
 * joined agent that dies is a node loss, and a late agent the job cannot use is told why (exit 3).
 */
import t, { type Test } from 'tap';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { alive, built, fixtures, startDtrain, tempDir, waitFor, yamlConfig, type Run } from '../../helpers/launch.js';
import { freePort } from '../../../src/launch/ports.js';

if (!built() && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, 'dist/ is not built (npx tsc -p .)');
  process.exit(0);
}

interface Record {
  rank: number;
  world: number;
  prev: number;
  resumed: number;
  pid: number;
}

function setup(t: Test, hosts: string[], extra: string[]) {
  const dir = tempDir(t, 'join-elastic');
  const secret = join(dir, 'secret');
  writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
  chmodSync(secret, 0o600);
  const config = join(dir, 'job.yaml');
  writeFileSync(
    config,
    yamlConfig([
      'name: joined',
      `entrypoint: ${JSON.stringify([process.execPath, join(fixtures, 'grow-worker.mjs'), dir])}`,
      'nproc_per_node: 1',
      'backend: cpu',
      'heartbeat: {interval: 250ms, timeout: 3s}',
      'shutdown_grace: 2s',
      'logs: {tee: false}',
      `nodes: [${hosts.map((h) => `{host: ${h}}`).join(', ')}]`,
      ...extra,
    ]),
  );
  const rec = (attempt: number, rank: number): Record | undefined => {
    const f = join(dir, `a${attempt}-r${rank}.json`);
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record) : undefined;
  };
  const runs: Run[] = [];
  t.teardown(() => runs.forEach((r) => r.child.kill('SIGKILL')));
  const launch = (port: number, agents: number) => {
    const run = startDtrain(
      [
        'launch',
        config,
        '--json',
        '--join-agents',
        String(agents),
        '--secret-file',
        secret,
        '--set',
        `rendezvous.port=${port}`,
      ],
      { cwd: dir },
    );
    runs.push(run);
    return run;
  };
  const agent = (port: number, host: string) => {
    const run = startDtrain(
      ['agent', '--join', `127.0.0.1:${port}`, '--secret-file', secret, '--host', host, '--timeout', '20s'],
      { cwd: dir },
    );
    runs.push(run);
    return run;
  };
  return { rec, launch, agent };
}

async function nothingLeft(t: Test, pids: number[]) {
  t.ok(await waitFor(() => pids.every((p) => !alive(p)), 5000), `no process left (${pids.join(' ')})`);
}

t.test('an agent joining a running elastic job is taken in at the next commit, no step lost', async (t) => {
  const { rec, launch, agent } = setup(t, ['node-a', 'node-b', 'node-c'], ['elastic: {min_nodes: 2, rejoin: 1s}']);
  const port = await freePort();
  const ctl = launch(port, 2);
  const a = agent(port, 'node-a');
  const b = agent(port, 'node-b');
  t.ok(await waitFor(() => [0, 1].every((r) => rec(0, r)), 30_000), 'attempt 0 runs on the 2 agents that joined');
  t.match(rec(0, 0), { world: 2 });

  // a host the config does not list is refused with one line, and the job goes on
  const stranger = await agent(port, 'node-x').done;
  t.equal(stranger.code, 3, stranger.stderr);
  t.match(stranger.stderr, /node-x is not one of the config's hosts \(node-a, node-b, node-c\)/);
  t.notMatch(stranger.stderr, /\n\s+at /, 'no stack trace');

  const c = agent(port, 'node-c');
  const [done, ra, rb, rc] = await Promise.all([ctl.done, a.done, b.done, c.done]);
  t.equal(done.code, 0, done.stderr);
  for (const r of [ra, rb, rc]) t.equal(r.code, 0, r.stderr);
  t.match(done.stderr, /dtrain: node 2 \(host node-c\) joined: the job grows at its next checkpoint commit\n/);
  t.match(done.stderr, /dtrain: node 2 \(host node-c\) joined; continuing on 3 nodes, world 3 \(data 3\), attempt 1\n/);
  const doc = JSON.parse(done.stdout) as { membership: { [k: string]: unknown }[]; log_dir: string };
  t.match(doc.membership, [{ attempt: 1, nodes: 3, world: 3, reason: 'node 2 (host node-c) joined' }]);
  const said = /dtrain: step (\d+) committed; the job resizes, every rank exits 75 to restart from it/.exec(
    readFileSync(join(doc.log_dir, 'attempt_0', 'rank_0.err'), 'utf8'),
  );
  t.ok(said, "rank 0's log says the resize's step");
  const grown = [0, 1, 2].map((r) => rec(1, r)!);
  t.ok(
    grown.every((g) => g?.world === 3 && g.prev === 2 && g.resumed === Number(said?.[1])),
    `attempt 1 runs on 3 and resumes from the resize's commit (step ${said?.[1]}): ${JSON.stringify(grown)}`,
  );
  await nothingLeft(t, [...[0, 1].map((r) => rec(0, r)!.pid), ...grown.map((g) => g.pid)]);
});

t.test('a joined agent killed mid-run is a node loss: the job goes on with fewer nodes', async (t) => {
  const { rec, launch, agent } = setup(
    t,
    ['node-a', 'node-b', 'node-c'],
    ['elastic: {min_nodes: 2, rejoin: 1s}', 'env: {FULL_WORLD: "2"}'],
  );
  const port = await freePort();
  const ctl = launch(port, 3);
  const a = agent(port, 'node-a');
  const b = agent(port, 'node-b');
  const c = agent(port, 'node-c');
  t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 30_000), 'attempt 0 runs on 3 nodes');
  const before = [0, 1, 2].map((r) => rec(0, r)!);
  c.child.kill('SIGKILL');
  const [done, ra, rb] = await Promise.all([ctl.done, a.done, b.done]);
  t.equal(done.code, 0, done.stderr);
  t.equal(ra.code, 0, ra.stderr);
  t.equal(rb.code, 0, rb.stderr);
  t.match(
    done.stderr,
    /dtrain: node 2 \(host node-c\) lost: its agent's connection to the controller closed .*; continuing on 2 nodes, world 2 \(data 2\), attempt 1\n/,
  );
  const doc = JSON.parse(done.stdout) as { membership: { [k: string]: unknown }[] };
  t.match(doc.membership, [{ attempt: 1, nodes: 2, world: 2, reason: /^node 2 \(host node-c\) lost: / }]);
  const after = [0, 1].map((r) => rec(1, r)!);
  t.ok(
    after.every((r) => r?.world === 2 && r.prev === 3),
    `attempt 1 runs on 2 nodes: ${JSON.stringify(after)}`,
  );
  t.notOk(rec(1, 2), 'no rank 2 in attempt 1');
  await nothingLeft(t, [...before, ...after].map((r) => r.pid).concat(c.child.pid!));
});
