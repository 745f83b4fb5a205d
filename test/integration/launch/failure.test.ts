// The first failing worker stops the job: SIGTERM to every worker, SIGKILL after shutdown_grace, a
// root-cause report (rank, host, local rank, pid, exit code, stderr tail), exit 1; restarts recover.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, fixtures, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

function config(dir: string, entry: string[], extra: string[] = []): string {
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    [
      `name: crashy`,
      `entrypoint: ${JSON.stringify(entry)}`,
      'nproc_per_node: 4',
      'shutdown_grace: 1s',
      `logs: {dir: ${dir}/logs}`,
      ...extra,
    ].join('\n') + '\n',
  );
  return file;
}

t.test('a crash tears the job down and names the root cause', { skip }, async (t) => {
  const dir = tempDir(t);
  const file = config(dir, [process.execPath, join(fixtures, 'crash.mjs'), dir, '2', '3', '1']);
  const r = await runDtrain(['launch', file, '--json'], { cwd: dir });
  t.equal(r.code, 1, r.stderr);
  t.ok(r.ms < 8000, `stopped promptly (${r.ms} ms, grace 1 s)`);
  const summary = JSON.parse(r.stdout);
  const pid2 = Number(readFileSync(join(dir, 'pid_2'), 'utf8'));
  t.match(summary.root_cause, { rank: 2, host: 'localhost', local_rank: 2, pid: pid2, exit_code: 3, signal: null });
  t.same(summary.root_cause.stderr_tail.slice(-2), ['loading shard 7', 'RuntimeError: boom on rank 2']);
  t.equal(summary.exit_code, 1);
  t.ok(existsSync(join(dir, 'got_0_SIGTERM')) && existsSync(join(dir, 'got_3_SIGTERM')), 'the others got SIGTERM');
  const byRank = Object.fromEntries(summary.attempts[0].ranks.map((x: { rank: number }) => [x.rank, x]));
  t.match(byRank[1], { signal: 'SIGKILL' }, 'rank 1 ignored SIGTERM and was killed after the grace period');
  t.match(byRank[0], { exit_code: 143 });
  t.match(r.stderr, /rank 2 \(host localhost, local rank 2, pid \d+\) exited with code 3/);
  t.match(r.stderr, /\| RuntimeError: boom on rank 2/);
});

t.test('a worker killed by a signal is reported by signal name', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      'if [ "$RANK" = 1 ]; then kill -SEGV $$; fi; sleep 30',
    ],
    { cwd: dir },
  );
  t.equal(r.code, 1);
  t.match(r.stderr, /rank 1 .* was killed by SIGSEGV/);
});

t.test(
  'restarts: the group restarts with an incremented TORCHELASTIC_RESTART_COUNT and recovers',
  { skip },
  async (t) => {
    const dir = tempDir(t);
    const file = config(dir, [process.execPath, join(fixtures, 'flaky.mjs')], ['restarts: {max: 2, backoff: 0.2s}']);
    const r = await runDtrain(['launch', file, '--json'], { cwd: dir });
    t.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    t.equal(summary.attempts.length, 2);
    t.match(summary.attempts[0].ranks[1], { exit_code: 7 });
    t.match(r.stderr, /restarting the group \(attempt 1 of 2\)/);
    t.match(r.stderr, /\[rank 3\] rank 3 ok at restart 1/);
    t.ok(existsSync(join(dir, 'logs', summary.run_id, 'attempt_1', 'rank_0.out')));
  },
);

t.test('restarts wait restarts.backoff between attempts', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--max-restarts',
      '1',
      '--set',
      'restarts.backoff=1.5s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      process.execPath,
      '-e',
      `require('fs').appendFileSync(${JSON.stringify(join(dir, 'starts'))}, Date.now() + '\\n'); process.exit(4)`,
    ],
    { cwd: dir },
  );
  t.equal(r.code, 1, r.stderr);
  const starts = readFileSync(join(dir, 'starts'), 'utf8').trim().split('\n').map(Number);
  t.equal(starts.length, 2, 'two attempts');
  t.ok(starts[1] - starts[0] >= 1500, `the second attempt started ${starts[1] - starts[0]} ms after the first`);
});

t.test("restarts exhausted: exit 1 with the last attempt's root cause", { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--max-restarts',
      '1',
      '--set',
      'restarts.backoff=0.1s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--json',
      '--',
      'sh',
      '-c',
      'exit 4',
    ],
    { cwd: dir },
  );
  t.equal(r.code, 1);
  const summary = JSON.parse(r.stdout);
  t.equal(summary.attempts.length, 2);
  t.equal(summary.root_cause.attempt, 1);
  t.match(r.stderr, /attempt 2 of 2, restarts exhausted/);
});

t.test('a command that does not exist is a clear failure', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(
    ['launch', '--nproc-per-node', '1', '--set', `logs.dir=${dir}/logs`, '--', 'no-such-program-xyz'],
    { cwd: dir },
  );
  t.equal(r.code, 1);
  t.match(r.stderr, /exited with code 127/);
  t.match(r.stderr, /cannot run no-such-program-xyz: No such file or directory/);
});

t.test('the error file a worker wrote is part of the root cause', { skip }, async (t) => {
  const dir = tempDir(t);
  const script =
    `require('fs').writeFileSync(process.env.TORCHELASTIC_ERROR_FILE, JSON.stringify({ ` +
    `message: { message: 'ValueError: bad batch', extraInfo: { py_callstack: 'x' } } })); process.exit(1)`;
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--json',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      process.execPath,
      '-e',
      script,
    ],
    { cwd: dir },
  );
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout).root_cause.error_file, { message: { message: 'ValueError: bad batch' } });
  t.match(r.stderr, /error file: .*ValueError: bad batch/);
});
