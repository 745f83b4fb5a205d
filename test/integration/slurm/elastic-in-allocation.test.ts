/**
 * An elastic job inside a Slurm allocation: every node's agent runs in its own srun step (started with
 * --no-kill); an agent SIGKILLed ends its step, the node is lost at once, and the job goes on without it
 * (a spare host of the allocation takes its place when there is one, or it ends saying why below
 * min_nodes). Nothing may be left running: no srun step, no agent, no worker.
 *
 * The testbed is one real slurmd, so the allocation's "nodes" are that one host named several times in
 * SLURM_JOB_NODELIST: the steps, srun's options, the agents and the step ending are real; what this cannot
 * show is a whole machine failing (slurmd gone, the node DOWN), which Slurm reports to srun the same way, as
 * the step ending.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, fixtures, startDtrain, tempDir, waitFor, yamlConfig } from '../../helpers/launch.js';
import { dtrain, launchUsesSrun, slurm, slurmSkipReason, slurmUp } from '../../helpers/slurm-testbed.js';

interface Record {
  rank: number;
  world: number;
  data: number;
  node_rank: number;
  prev: number;
  pid: number;
  agent: number;
}

const skip = slurmSkipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else if (!launchUsesSrun()) {
  t.plan(0, 'dtrain launch does not start agents with srun yet (the Slurm node source is not built)');
} else {
  const tb = slurmUp('elastic');
  t.teardown(() => tb.down());
  const holder = slurm(tb, ['sbatch', '--parsable', '--output=/dev/null', '--wrap', 'sleep 600']).trim();
  t.teardown(() => void slurm(tb, ['scancel', holder]));
  const steps = () =>
    slurm(tb, ['squeue', '-h', '-s', '-j', holder, '-o', '%i'])
      .split('\n')
      .filter((s) => s && !/\.(batch|extern)$/.test(s));
  let node = '';
  t.before(async () => {
    for (let i = 0; i < 50 && slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%T']).trim() !== 'RUNNING'; i++)
      await sleep(200);
    node = slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim();
  });
  const realSrun = execFileSync('sh', ['-c', 'command -v srun'], { env: tb.env, encoding: 'utf8' }).trim();

  /** An elastic job in the held allocation, its hosts `hosts` times the one real node. */
  function setup(t: Test, hosts: number, yaml: string[]) {
    const dir = tempDir(t, 'slurm-elastic');
    writeFileSync(
      path.join(dir, 'job.yaml'),
      yamlConfig([
        `entrypoint: ${JSON.stringify([process.execPath, path.join(fixtures, 'elastic-worker.mjs'), dir])}`,
        'nproc_per_node: 1',
        'backend: cpu',
        'heartbeat: {interval: 200ms, timeout: 5s}',
        'shutdown_grace: 2s',
        'logs: {tee: false}',
        ...yaml,
      ]),
    );
    // a stand-in srun first on PATH notes each call's arguments, then runs the real one
    mkdirSync(path.join(dir, 'bin'));
    const calls = path.join(dir, 'srun-calls');
    writeFileSync(path.join(dir, 'bin', 'srun'), `#!/bin/bash\necho "$*" >> ${calls}\nexec ${realSrun} "$@"\n`);
    chmodSync(path.join(dir, 'bin', 'srun'), 0o755);
    const rec = (attempt: number, rank: number): Record | undefined => {
      const f = path.join(dir, `a${attempt}-r${rank}.json`);
      return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record) : undefined;
    };
    const run = () =>
      startDtrain(['launch', '--json', 'job.yaml'], {
        cwd: dir,
        env: {
          ...(tb.env as { [k: string]: string }),
          PATH: `${path.join(dir, 'bin')}:${tb.env.PATH ?? ''}`,
          SLURM_JOB_ID: holder,
          SLURM_JOB_NODELIST: Array<string>(hosts).fill(node).join(','),
          SLURM_JOB_NUM_NODES: String(hosts),
          // the controller is not one of the nodes: every agent, node 0's too, runs in an srun step
          SLURMD_NODENAME: 'login-node',
        },
      });
    const srunCalls = () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : []);
    return { dir, rec, run, srunCalls };
  }

  async function nothingLeft(t: Test, pids: number[]) {
    t.ok(await waitFor(() => pids.every((p) => !alive(p)), 10_000), `no process left (${pids.join(' ')})`);
    t.ok(await waitFor(() => steps().length === 0, 10_000), 'no srun step left');
    t.same(steps(), []);
  }

  t.test('an agent SIGKILLed: its step ends, the node is lost, the job goes on with fewer nodes', async (t) => {
    const { rec, run, srunCalls } = setup(t, 3, ['scheduler: {kind: slurm, nodes: 3}', 'elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1, 2].every((r) => rec(0, r)), 60_000), 'attempt 0 runs on 3 nodes');
    const before = [0, 1, 2].map((r) => rec(0, r)!);
    t.equal(new Set(before.map((r) => r.agent)).size, 3, 'three agents');
    t.equal(steps().length, 3, 'one srun step per node');
    const calls = srunCalls();
    t.equal(calls.length, 3);
    for (const c of calls) t.match(c, /(^| )--no-kill --kill-on-bad-exit=0 /, `elastic srun: ${c}`);
    process.kill(before[2].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    const lost = new RegExp(
      `dtrain: node 2 \\(host ${node}\\) lost: ${node}: srun step ended \\([^\\n]*; continuing on 2 nodes, ` +
        'world 2 \\(data 2\\), attempt 1\\n',
    );
    t.match(done.stderr, lost);
    t.match(rec(1, 0), { world: 2, data: 2, prev: 3, agent: before[0].agent });
    t.match(rec(1, 1), { world: 2, agent: before[1].agent });
    t.notOk(rec(1, 2), 'no rank 2 in attempt 1');
    const doc = JSON.parse(done.stdout) as { membership: { [k: string]: unknown }[]; exit_code: number };
    t.equal(doc.exit_code, 0);
    t.match(doc.membership, [
      { attempt: 1, nodes: 2, world: 2, reason: /^node 2 \(host .*\) lost: .*srun step ended/ },
    ]);
    t.type(doc.membership[0].detected_after_s, 'number');
    t.type(doc.membership[0].resumed_after_s, 'number');
    t.comment(
      done.stderr
        .split('\n')
        .filter((l) => l.includes('lost'))
        .join('\n'),
    );
    t.comment(JSON.stringify(doc.membership));
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('a host beyond scheduler.nodes is a spare: started with srun to take the lost node its place', async (t) => {
    const { rec, run, srunCalls } = setup(t, 3, ['scheduler: {kind: slurm, nodes: 2}', 'elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1].every((r) => rec(0, r)), 60_000), 'attempt 0 runs on the 2 nodes');
    t.notOk(rec(0, 2), 'the spare runs nothing at full strength');
    t.equal(srunCalls().length, 2, 'no step for the spare until it is needed');
    const before = [0, 1].map((r) => rec(0, r)!);
    process.kill(before[1].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 0, done.stderr);
    t.match(done.stderr, 'the last 1 is a spare of the elastic job');
    t.match(done.stderr, /node 1 \(host .*\) lost: .*; continuing on 2 nodes, world 2 \(data 2\), attempt 1/);
    t.match(rec(1, 0), { world: 2, agent: before[0].agent });
    const spare = rec(1, 1)!;
    t.match(spare, { world: 2, node_rank: 1, prev: 2 });
    t.not(spare.agent, before[1].agent, "rank 1 runs on the spare's agent");
    t.match(srunCalls()[2], /--job-name=dtrain-agent-2 .*--no-kill/, 'the spare started in its own srun step');
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid), spare.agent, spare.pid]);
  });

  t.test('fewer than min_nodes alive: exit 1 saying why, nothing left', async (t) => {
    const { rec, run } = setup(t, 2, ['scheduler: {kind: slurm, nodes: 2}', 'elastic: {min_nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1].every((r) => rec(0, r)), 60_000));
    const before = [0, 1].map((r) => rec(0, r)!);
    process.kill(before[1].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 1, done.stderr);
    t.match(done.stderr, /cannot continue: 1 node alive, fewer than elastic\.min_nodes \(2\)/);
    t.notOk(rec(1, 0), 'no attempt 1');
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('not elastic: srun keeps Slurm defaults and a lost node ends the job', async (t) => {
    const { rec, run, srunCalls } = setup(t, 2, ['scheduler: {kind: slurm, nodes: 2}']);
    const job = run();
    t.teardown(() => job.child.kill('SIGKILL'));
    t.ok(await waitFor(() => [0, 1].every((r) => rec(0, r)), 60_000));
    for (const c of srunCalls()) t.notMatch(c, /--no-kill|--kill-on-bad-exit/, c);
    const before = [0, 1].map((r) => rec(0, r)!);
    process.kill(before[1].agent, 'SIGKILL');
    const done = await job.done;
    t.equal(done.code, 1, done.stderr);
    t.notOk(rec(1, 0), 'no attempt 1');
    await nothingLeft(t, [...before.map((r) => r.agent), ...before.map((r) => r.pid)]);
  });

  t.test('dtrain submit of an elastic config: the script asks for --no-kill and the job runs', async (t) => {
    const dir = tempDir(t, 'slurm-elastic-submit');
    const worker = "console.log('rank', process.env.RANK, 'attempt', process.env.DTRAIN_ATTEMPT)";
    writeFileSync(
      path.join(dir, 'job.yaml'),
      yamlConfig([
        'name: elastic-submit',
        `entrypoint: ${JSON.stringify([process.execPath, '-e', worker])}`,
        'nproc_per_node: 2',
        'backend: cpu',
        'shutdown_grace: 5s',
        'scheduler: {kind: slurm, nodes: 1, time: "5"}',
        'elastic: {min_nodes: 1}',
      ]),
    );
    const r = dtrain(['submit', 'job.yaml', '--wait', '--json'], { env: tb.env, cwd: dir, timeoutMs: 180_000 });
    t.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { state: string; script: string; output: string; result: unknown };
    t.match(doc, { state: 'COMPLETED', result: { exit_code: 0, membership: [] } });
    t.match(readFileSync(doc.script, 'utf8'), /^#SBATCH --no-kill$/m);
    const out = readFileSync(doc.output, 'utf8');
    t.match(out, /rank 0 attempt 0/);
    t.match(out, /rank 1 attempt 0/);
  });
}
