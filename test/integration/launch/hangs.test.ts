// Hangs explain themselves: a stuck job names the culprit and shows its stack, before any rank is stopped,
// for a Node rank (collective_timeout, flight recorder) and a Python rank (hang_timeout, faulthandler);
// a job that is merely slow is not declared hung.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { built, fixtures, runDtrain, startDtrain, tempDir, waitFor } from '../../helpers/launch.js';

const python = '/usr/bin/python3';
const hasTorch = spawnSync(python, ['-c', 'import torch.distributed'], { stdio: 'ignore' }).status === 0;
const noTorch = process.env.DTRAIN_REQUIRE_INTEGRATION ? false : !hasTorch && `${python} has no torch`;
const notBuilt = !built() && 'run npm run build first';
const spinner = join(fixtures, 'hangs/node_spinner.mjs');

interface Summary {
  exit_code: number;
  hung?: { cause: string; diagnosis: string[]; culprits: number[]; ranks: { rank: number; stack: string | null }[] };
}

t.test(
  'a Node rank spinning outside a collective is named, with its op, seq and stack',
  { skip: notBuilt },
  async (t) => {
    const dir = tempDir(t, 'hang-node');
    const args = [
      'launch',
      '--json',
      '--nproc-per-node',
      '3',
      '--set',
      'collective_timeout=5s',
      '--set',
      'shutdown_grace=5s',
    ];
    // NODE_OPTIONS: tap's preloads (in this process's env) hook SIGTERM on the event loop, which a spinning rank
    // never reaches; a worker of a real job has none of them
    const job = startDtrain([...args, '--set', `logs.dir=${dir}/logs`, '--', process.execPath, spinner], {
      cwd: dir,
      env: { NODE_OPTIONS: '' },
    });
    const t0 = Date.now();
    let diagnosedAfter = -1;
    let stderr = '';
    job.child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (diagnosedAfter < 0 && /dtrain: hang: /.test(stderr)) diagnosedAfter = Date.now() - t0;
    });
    const r = await job.done;
    t.equal(r.code, 1, r.stderr.slice(-3000));
    t.match(
      r.stderr,
      /dtrain: hang: rank 1 never entered allReduce seq 2 of group world \(ranks 0, 2 waiting \d+\.\ds\)/,
    );
    t.ok(diagnosedAfter > 0 && diagnosedAfter < 40_000, `diagnosed after ${diagnosedAfter} ms`);
    const stackAt = r.stderr.indexOf('dtrain: stack of rank 1 ');
    t.ok(stackAt > 0, 'the stack of rank 1 follows');
    t.match(r.stderr.slice(stackAt), /at spinOutsideAnyCollective \(.*node_spinner\.mjs:\d+:\d+\)/);
    t.match(r.stderr, /job \S+ hung: rank \d timed out in a collective/);
    const doc = JSON.parse(r.stdout) as Summary;
    t.equal(doc.exit_code, 1);
    t.equal(doc.hung?.cause, 'collective_timeout');
    t.same(doc.hung?.culprits, [1]);
    // gathered before any rank was stopped: rank 1 still ran, and answered with its stack
    t.match(doc.hung?.ranks.find((x) => x.rank === 1)?.stack ?? '', /spinOutsideAnyCollective/);
  },
);

t.test(
  'a Python rank asleep in a user function while the other waits in a gloo barrier: hung (hang_timeout)',
  { skip: notBuilt || noTorch },
  async (t) => {
    const dir = tempDir(t, 'hang-py');
    const r = await runDtrain(
      [
        'launch',
        '--json',
        '--nproc-per-node',
        '2',
        '--set',
        'hang_timeout=8s',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        python,
        join(fixtures, 'hangs/py_sleeper.py'),
      ],
      { cwd: dir },
    );
    t.equal(r.code, 1, r.stderr.slice(-3000));
    t.ok(r.ms < 60_000, `ended after ${r.ms} ms`);
    t.match(
      r.stderr,
      /dtrain: hang: rank 1 is in user_function_that_sleeps, outside any collective, while rank 0 waits in barrier/,
    );
    t.match(
      r.stderr,
      /dtrain: stack of rank 1 \(host \S+, pid \d+, python\):\n.*\n.*line \d+ in user_function_that_sleeps/,
    );
    t.match(r.stderr, /job \S+ hung: no rank made progress for \d+\.\ds \(hang_timeout\)/);
    const doc = JSON.parse(r.stdout) as Summary;
    t.equal(doc.hung?.cause, 'no_progress');
    t.same(doc.hung?.culprits, [1]);
    t.match(doc.hung?.ranks.find((x) => x.rank === 0)?.stack ?? '', /in barrier/);
  },
);

t.test(
  'a slow Python job (long CPU-bound data loading, no output) is not declared hung',
  { skip: notBuilt || noTorch },
  async (t) => {
    const dir = tempDir(t, 'hang-slow');
    const r = await runDtrain(
      [
        'launch',
        '--nproc-per-node',
        '2',
        '--set',
        'hang_timeout=4s',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        python,
        join(fixtures, 'hangs/py_sleeper.py'),
      ],
      { cwd: dir, env: { HANG_MODE: 'slow', SLOW_SECONDS: '12' } },
    );
    t.equal(r.code, 0, r.stderr.slice(-3000));
    t.notMatch(r.stderr, /hang/);
    t.match(r.stdout, /done 1/);
  },
);

t.test(
  'dtrain stacks prints every rank of a running job, and does not stop it',
  { skip: notBuilt || noTorch },
  async (t) => {
    const dir = tempDir(t, 'stacks');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const job = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '2',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        python,
        join(fixtures, 'hangs/py_sleeper.py'),
      ],
      { cwd: dir, env },
    );
    t.teardown(() => void job.child.kill('SIGKILL'));
    let out = '';
    job.child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    t.ok(await waitFor(() => out.includes('ready 1') && out.includes('ready 0'), 60_000), 'both ranks initialised');
    const r = await runDtrain(['stacks', '--json'], { cwd: dir, env });
    t.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { ranks: { rank: number; language: string; stack: string | null }[] };
    t.same(
      doc.ranks.map((x) => [x.rank, x.language]),
      [
        [0, 'python'],
        [1, 'python'],
      ],
    );
    t.match(doc.ranks[1].stack, /line \d+ in user_function_that_sleeps/);
    t.match(doc.ranks[0].stack, /in barrier/);
    const text = await runDtrain(['stacks'], { cwd: dir, env });
    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /stack of rank 1 \(host \S+, pid \d+, python\):\n(.*\n)*.*in user_function_that_sleeps/);
    const native = await runDtrain(['stacks', '--native', '--json'], { cwd: dir, env });
    t.equal(native.code, 0, native.stderr);
    for (const x of (JSON.parse(native.stdout) as { ranks: { stack: string | null; missing: string | null }[] }).ranks)
      t.ok(
        /^#\d+ /m.test(x.stack ?? '') || /gdb/.test(x.missing ?? ''),
        `native: ${x.stack?.slice(0, 80) ?? x.missing}`,
      );
    t.equal(job.child.exitCode, null, 'the job still runs');
    const none = await runDtrain(['stacks', 'no-such-run'], { cwd: dir, env });
    t.equal(none.code, 2);
    t.match(none.stderr, /no running job "no-such-run" here/);
    job.child.kill('SIGINT');
    await job.done;
  },
);
