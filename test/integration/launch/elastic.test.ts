// Elastic membership end to end with real agent processes: this machine's nodes as child agents
// (DTRAIN_LOCAL_AGENT=child, driven through the store with heartbeats like remote ones), addressed as
// distinct loopback names. A node's agent is SIGKILLed to lose the node; its heartbeats stop and the job
// must go on without it (or end saying why), and nothing may be left running.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { alive, built, fixtures, startDtrain, tempDir, waitFor, yamlConfig } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

interface Record {
  resumed?: number;
  rank: number;
  world: number;
  data: number;
  node_rank: number;
  prev: number;
  restarts: number;
  pid: number;
  agent: number;
}

function setup(
  t: { teardown(fn: () => void): void },
  nodes: string[],
  extra: string[] = [],
  worker = 'elastic-worker.mjs',
) {
  const dir = tempDir(t, 'elastic');
  const config = join(dir, 'job.yaml');
  writeFileSync(
    config,
    yamlConfig([
      `entrypoint: ${JSON.stringify([process.execPath, join(fixtures, worker), dir])}`,
      'nproc_per_node: 1',
      'backend: cpu',
      'heartbeat: {interval: 200ms, timeout: 5s}',
      'shutdown_grace: 2s',
      'logs: {tee: false}',
      'nodes:',
      ...nodes.map((h) => (h.endsWith('*') ? `  - {host: ${h.slice(0, -1)}, spare: true}` : `  - host: ${h}`)),
      ...extra,
    ]),
  );
  const rec = (attempt: number, rank: number): Record | undefined => {
    const f = join(dir, `a${attempt}-r${rank}.json`);
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record) : undefined;
  };
  const run = (env: { [k: string]: string } = {}) =>
    startDtrain(['launch', '--json', config], { cwd: dir, env: { DTRAIN_LOCAL_AGENT: 'child', ...env } });
  return { dir, rec, run };
}

async function nothingLeft(t: Test, pids: number[]) {
  t.ok(await waitFor(() => pids.every((p) => !alive(p)), 5000), `no process left (${pids.join(' ')})`);
}

t.test('elastic membership', { skip }, async (t) => {
  t.test('an agent SIGKILLed: node lost, the job goes on with fewer nodes (not a failure)', async (t) => {
    const { rec, run } = setup(t, ['localhost', '127.0.0.2', '127.0.0.3'], ['elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 20000), 'attempt 0 runs on 3 nodes');
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    process.kill(before[2].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    t.match(
      done.stderr,
      /dtrain: node 2 \(host 127\.0\.0\.3\) lost: no heartbeat for \ds; continuing on 2 nodes, world 2 \(data 2\), attempt 1\n/,
    );
    t.match(rec(1, 0), { world: 2, data: 2, prev: 3, restarts: 0, agent: before[0].agent });
    t.match(rec(1, 1), { world: 2, agent: before[1].agent });
    t.notOk(rec(1, 2), 'no rank 2 in attempt 1');
    const doc = JSON.parse(done.stdout) as { membership: { [k: string]: unknown }[]; exit_code: number };
    t.match(doc.membership, [
      { attempt: 1, nodes: 2, world: 2, reason: /^node 2 \(host 127\.0\.0\.3\) lost: no heartbeat/ },
    ]);
    t.ok((doc.membership[0].detected_after_s as number) >= 5, 'detected after heartbeat.timeout');
    t.type(doc.membership[0].resumed_after_s, 'number');
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('a spare takes the lost node its place: world unchanged', async (t) => {
    const { rec, run } = setup(t, ['localhost', '127.0.0.2', '127.0.0.3*'], ['elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1].every((r) => rec(0, r)), 20000), 'attempt 0 runs on the 2 listed nodes');
    t.notOk(rec(0, 2), 'the spare runs nothing at full strength');
    const before = [0, 1].map((r) => rec(0, r)!);
    process.kill(before[1].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    t.match(done.stderr, /node 1 \(host 127\.0\.0\.2\) lost: .*; continuing on 2 nodes, world 2 \(data 2\), attempt 1/);
    t.match(rec(1, 0), { world: 2, agent: before[0].agent });
    const spare = rec(1, 1)!;
    t.match(spare, { world: 2, node_rank: 1, prev: 2 });
    t.not(spare.agent, before[1].agent, "rank 1 runs on the spare's agent");
    await nothingLeft(t, [...before.map((r) => r.agent), spare.agent, spare.pid]);
  });

  t.test('node 0 lost: ranks renumbered, node 0 is the first node kept', async (t) => {
    const { rec, run } = setup(t, ['localhost', '127.0.0.2', '127.0.0.3'], ['elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 20000));
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    process.kill(before[0].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    t.match(done.stderr, /node 0 \(host localhost\) lost: .*continuing on 2 nodes, world 2 \(data 2\), attempt 1/);
    t.match(rec(1, 0), { node_rank: 0, agent: before[1].agent }, "node 1's agent runs rank 0");
    t.match(rec(1, 1), { node_rank: 1, agent: before[2].agent });
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('fewer than min_nodes alive: exit 1 saying why', async (t) => {
    const { rec, run } = setup(t, ['localhost', '127.0.0.2', '127.0.0.3'], ['elastic: {min_nodes: 3}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 20000));
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    process.kill(before[2].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 1);
    t.match(done.stderr, /failed: cannot continue: 2 nodes alive, fewer than elastic\.min_nodes \(3\)/);
    t.notOk(rec(1, 0), 'no attempt 1');
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('a worker SIGKILLed on a live node is a failure, not a loss', async (t) => {
    const { rec, run } = setup(t, ['localhost', '127.0.0.2', '127.0.0.3'], ['elastic: {min_nodes: 2}']);
    const job = run({ SELF_KILL_RANK: '1' });
    t.teardown(() => job.child.kill('SIGKILL'));
    const done = await job.done;
    t.equal(done.code, 1, 'restarts.max 0: the failure ends the job');
    t.match(done.stderr, /rank 1 .*was killed by SIGKILL/);
    t.notMatch(done.stderr, /lost/);
    const doc = JSON.parse(done.stdout) as { membership: unknown[]; root_cause: { rank: number } };
    t.same(doc.membership, [], 'no membership change');
    t.equal(doc.root_cause.rank, 1);
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('a lost node back in reach grows the job at the next commit, no step lost', async (t) => {
    const { rec, run } = setup(
      t,
      ['localhost', '127.0.0.2', '127.0.0.3'],
      ['elastic: {min_nodes: 2, rejoin: 1s}'],
      'grow-worker.mjs',
    );
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 20000), 'attempt 0 runs on 3 nodes');
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    process.kill(before[2].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    t.match(
      done.stderr,
      /node 2 \(host 127\.0\.0\.3\) lost: .*; continuing on 2 nodes, world 2 \(data 2\), attempt 1\n/,
    );
    t.match(done.stderr, /dtrain: node 2 \(host 127\.0\.0\.3\) is back: the job grows at its next checkpoint commit\n/);
    t.match(
      done.stderr,
      /dtrain: node 2 \(host 127\.0\.0\.3\) rejoined; continuing on 3 nodes, world 3 \(data 3\), attempt 2\n/,
    );
    const doc = JSON.parse(done.stdout) as { membership: { [k: string]: unknown }[]; log_dir: string };
    // rank 0 says where the resize left off (its own stderr: logs.tee is off)
    const said = /dtrain: step (\d+) committed; the job resizes, every rank exits 75 to restart from it/.exec(
      readFileSync(join(doc.log_dir, 'attempt_1', 'rank_0.err'), 'utf8'),
    );
    t.ok(said, "rank 0's log says the resize's step");
    const resizedAt = Number(said?.[1]);
    const grown = [0, 1, 2].map((r) => rec(2, r)!);
    t.match(grown[0], { world: 3, prev: 2, restarts: 0 });
    t.ok(
      grown.every((g) => g.resumed === resizedAt),
      `attempt 2 resumes from the resize's commit (step ${resizedAt}): no step lost`,
    );
    t.not(grown[2].agent, before[2].agent, 'rank 2 runs under a new agent on node 2');
    t.match(doc.membership, [
      { attempt: 1, nodes: 2, world: 2, reason: /^node 2 .* lost/ },
      { attempt: 2, nodes: 3, world: 3, reason: 'node 2 (host 127.0.0.3) rejoined' },
    ]);
    const attempt1 = [0, 1].map((r) => rec(1, r)!);
    await nothingLeft(t, [...[...before, ...attempt1, ...grown].map((r) => r.pid), ...grown.map((r) => r.agent)]);
  });
});
