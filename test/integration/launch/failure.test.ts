// The first failing worker stops the job: SIGTERM to every worker, SIGKILL after shutdown_grace, a
// root-cause report (rank, host, local rank, pid, exit code, stderr tail), exit 1; restarts recover.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, fixtures, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';

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
    t.match(r.stderr, /restarting the group \(restart 1 of 2\)/);
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
  t.match(
    r.stderr,
    /\n {2}error: ValueError: bad batch\n {2}traceback:\n {4}\| x\n/,
    'message and traceback, not JSON',
  );
});

// 20 lines of 1,000,000 control bytes (6 bytes each as JSON: 120 MB, over the store's 64 MiB value limit)
const flood =
  "const l = Buffer.alloc(1000000, 1); for (let i = 0; i < 20; i++) process.stderr.write(l + '\\n'); " +
  "process.stderr.write('boom\\n', () => process.exit(1))";

/** dtrain launch of the flooding worker, SIGKILLed after 60 s if it has not ended by then. */
async function launchFlood(dir: string, extra: string[], env: Record<string, string> = {}) {
  const run = startDtrain(
    ['launch', '--nproc-per-node', '1', '--set', `logs.dir=${dir}/logs`, ...extra, '--', process.execPath, '-e', flood],
    { cwd: dir, env },
  );
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
  const r = await run.done;
  clearTimeout(timer);
  const [runId] = readdirSync(join(dir, 'logs'));
  return { ...r, log: readFileSync(join(dir, 'logs', runId, 'attempt_0', 'rank_0.err'), 'latin1') };
}

for (const agent of ['in-process', 'child'] as const) {
  t.test(
    `huge stderr lines of control bytes (${agent} agent): exit 1 promptly, bounded reports`,
    { skip },
    async (t) => {
      const dir = tempDir(t);
      const r = await launchFlood(dir, ['--json'], agent === 'child' ? { DTRAIN_LOCAL_AGENT: 'child' } : {});
      t.equal(r.code, 1, `exit 1, not a hang (${r.ms} ms): ${r.stderr.slice(-300)}`);
      t.ok(r.stdout.length + r.stderr.length < 2 << 20, `bounded output (${r.stdout.length + r.stderr.length} chars)`);
      t.match(r.stderr, '… [cut: 1000000 bytes, whole line in rank_0.err]', 'the relay says where the whole line is');
      const tail = (JSON.parse(r.stdout) as { root_cause: { stderr_tail: string[] } }).root_cause.stderr_tail;
      t.equal(tail.length, 20);
      t.equal(tail.at(-1), 'boom');
      t.ok(
        tail.every((l) => Buffer.byteLength(l) <= 4096 + 64),
        'every line of the stderr tail is cut at 4 KiB (plus its note)',
      );
      t.equal(r.log, `${'\x01'.repeat(1000000)}\n`.repeat(20) + 'boom\n', 'the log file keeps every line whole');
    },
  );
}

t.test('logs.tee false: no report shows the worker stderr, the summary says where it is', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await launchFlood(dir, ['--set', 'logs.tee=false']);
  t.equal(r.code, 1, r.stderr.slice(-300));
  t.notMatch(r.stdout + r.stderr, /\x01|boom/, 'none of its output is printed');
  t.match(r.stderr, /its stderr: .*attempt_0\/rank_0\.err/);
  t.ok(r.log.endsWith('boom\n'));
});
