// SIGINT / SIGTERM stop the job (forwarded, grace, kill; no restart; 130 / 143); a second SIGINT kills at
// once; SIGUSR1 is forwarded and supervision goes on.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { alive, built, fixtures, root, startDtrain, tempDir, waitFor } from '../../helpers/launch.js';
import { isStopped, parentOf } from '../../../src/launch/process-tree.js';

const skip = !built() && 'run npx tsc -p . first';

function start(dir: string, extra: string[] = [], env: Record<string, string> = {}) {
  return startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--max-restarts',
      '3',
      '--set',
      'shutdown_grace=20s',
      '--set',
      `logs.dir=${dir}/logs`,
      ...extra,
      '--',
      process.execPath,
      join(fixtures, 'crash.mjs'),
      dir,
      '-1',
      '0',
    ],
    { cwd: dir, env },
  );
}

const running = (dir: string) => existsSync(join(dir, 'pid_0')) && existsSync(join(dir, 'pid_1'));

for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  t.test(`${sig} stops the job without restart, exit ${code}`, { skip }, async (t) => {
    const dir = tempDir(t);
    const run = start(dir, ['--json']);
    t.ok(await waitFor(() => running(dir), 10000), 'workers started');
    await new Promise((r) => setTimeout(r, 200));
    run.child.kill(sig);
    const r = await run.done;
    t.equal(r.code, code, r.stderr);
    t.ok(existsSync(join(dir, `got_0_${sig}`)) && existsSync(join(dir, `got_1_${sig}`)), `workers got ${sig}`);
    const summary = JSON.parse(r.stdout);
    t.equal(summary.exit_code, code);
    t.equal(summary.attempts.length, 1, 'no restart after an interrupt');
  });
}

t.test('a second SIGINT kills at once', { skip }, async (t) => {
  const dir = tempDir(t);
  // rank 1 ignores SIGTERM only; SIGINT makes crash.mjs exit, so use a shell that ignores INT
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      'shutdown_grace=60s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      `trap '' INT; echo $$ > ${dir}/pid_$RANK; sleep 60 & wait`,
    ],
    { cwd: dir },
  );
  t.ok(await waitFor(() => running(dir), 10000));
  await new Promise((r) => setTimeout(r, 200));
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGINT');
  const r = await run.done;
  t.equal(r.code, 130);
  t.ok(r.ms < 15000, `did not wait for the 60 s grace (${r.ms} ms)`);
  t.match(r.stderr, /second SIGINT/);
});

/** A process's state letter from /proc (T: stopped); '' once it is gone. */
/** The two ranks' pids (pid_0, pid_1 in dir), once both ran. */
const rankPids = (dir: string) => [0, 1].map((r) => Number(readFileSync(join(dir, `pid_${r}`), 'utf8')));

t.test('SIGTERM: a worker that stopped itself (SIGSTOP) is continued and acts on it, exit 143', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      'shutdown_grace=30s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--json',
      '--',
      'sh',
      '-c',
      `trap 'echo x > ${dir}/got_$RANK; exit 0' TERM; echo $$ > ${dir}/pid_$RANK; kill -STOP $$; sleep 60`,
    ],
    { cwd: dir },
  );
  t.ok(await waitFor(() => running(dir) && rankPids(dir).every(isStopped), 10000), 'both stopped');
  const sentAt = Date.now();
  run.child.kill('SIGTERM');
  const r = await doneWithin(run, 60_000);
  const took = Date.now() - sentAt;
  t.equal(r?.code, 143, r?.stderr ?? '');
  t.ok(took < 10_000, `did not wait out the 30 s grace to SIGKILL them (${took} ms)`);
  t.ok(existsSync(join(dir, 'got_0')) && existsSync(join(dir, 'got_1')), 'their SIGTERM trap ran');
  const ranks = JSON.parse(r?.stdout ?? '{}').attempts[0].ranks as { exit_code: number | null }[];
  t.same(
    ranks.map((x) => x.exit_code),
    [0, 0],
    'both left by their trap, not SIGKILL',
  );
});

t.test('SIGTERM: a worker that stopped its shepherd (SIGSTOP) is still gone within the grace', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      'shutdown_grace=1s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      `echo $$ > ${dir}/pid_$RANK; if [ $RANK = 0 ]; then kill -STOP $PPID; fi; exec sleep 60`,
    ],
    { cwd: dir },
  );
  t.ok(await waitFor(() => running(dir), 10000), 'workers started');
  const [worker] = rankPids(dir);
  t.ok(await waitFor(() => isStopped(parentOf(worker)), 5000), "rank 0's shepherd is stopped");
  const shepherd = parentOf(worker);
  const sentAt = Date.now();
  run.child.kill('SIGTERM');
  // before: the kill after the grace never reached the stopped shepherd, and the launcher waited on it forever
  const r = await doneWithin(run, 20_000);
  const took = Date.now() - sentAt;
  t.ok(r, `the launcher left (${took} ms)`);
  t.equal(r?.code, 143, r?.stderr ?? '');
  t.ok(took < 6000, `within the 1 s grace and a few seconds (${took} ms)`);
  t.ok(await waitFor(() => ![shepherd, ...rankPids(dir)].some(alive), 3000), 'the shepherd and the workers are gone');
  for (const p of [shepherd, ...rankPids(dir)]) if (alive(p)) process.kill(p, 'SIGKILL');
});

for (const agent of ['in-process', 'child'] as const)
  t.test(
    `a worker that stopped its shepherd (SIGSTOP) and failed is reported, no signal needed: exit 1 (${agent} agent)`,
    { skip },
    async (t) => {
      const dir = tempDir(t);
      const run = startDtrain(
        [
          'launch',
          '--nproc-per-node',
          '2',
          '--set',
          `logs.dir=${dir}/logs`,
          '--',
          'sh',
          '-c',
          `echo $$ > ${dir}/pid_$RANK; if [ $RANK = 0 ]; then kill -STOP $PPID; echo gone >&2; exit 3; fi`,
        ],
        { cwd: dir, env: agent === 'child' ? { DTRAIN_LOCAL_AGENT: 'child' } : {} },
      );
      // before: the stopped shepherd never reaped its worker (or never reported its pid, when it was stopped first),
      // and the launcher waited on it forever
      const r = await doneWithin(run, 20_000);
      t.ok(r, 'the launcher left');
      if (!r) process.kill(parentOf(rankPids(dir)[0]), 'SIGKILL'); // the stopped shepherd, else left behind
      t.equal(r?.code, 1, r?.stderr ?? '');
      t.match(r?.stderr, /failed: rank 0 .* exited with code 3/);
      t.ok(r && r.ms < 10_000, `within seconds (${r?.ms} ms)`);
    },
  );

t.test(
  "SIGINT while nobody reads the launcher's output (a paused pager): it still leaves, exit 130",
  { skip },
  async (t) => {
    const dir = tempDir(t);
    // stdout is a pipe this test never reads: it fills, the worker is paused behind it, the launcher holds the rest
    const run = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '1',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        'sh',
        '-c',
        `echo $$ > ${dir}/pid_0; exec yes dtrain-output-line`,
      ],
      { cwd: dir, stdoutPipe: true },
    );
    t.ok(await waitFor(() => existsSync(join(dir, 'pid_0')), 10000), 'the worker runs');
    await new Promise((r) => setTimeout(r, 1000));
    run.child.kill('SIGINT');
    const r = await doneWithin(run, 20_000);
    t.ok(r, 'the launcher left (it waited on its stdout forever before)');
    t.equal(r?.code, 130);
    t.match(r?.stderr, /stopped by SIGINT/);
    t.notOk(alive(Number(readFileSync(join(dir, 'pid_0'), 'utf8'))), 'the worker is gone');
  },
);

/** The launcher's `dtrain agent` child (DTRAIN_LOCAL_AGENT=child), once it exists. */
function agentOf(launcher: number): number | undefined {
  let children: string;
  try {
    children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8');
  } catch {
    return undefined;
  }
  for (const pid of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.includes('agent')) return pid;
  }
  return undefined;
}

/**
 * The run's result, or null when the launcher is still there after `ms` (it is SIGKILLed then). Its exit,
 * not its pipes' close: a leftover agent would hold them open.
 */
async function doneWithin(run: ReturnType<typeof startDtrain>, ms: number) {
  const exited = new Promise<NodeJS.Signals | null>((r) => run.child.once('exit', (_code, sig) => r(sig)));
  const timer = setTimeout(() => run.child.kill('SIGKILL'), ms);
  const sig = run.child.exitCode !== null || run.child.signalCode !== null ? run.child.signalCode : await exited;
  clearTimeout(timer);
  return sig === 'SIGKILL' ? null : run.done;
}

t.test('SIGINT while the start-up waits for an agent: exit 130 at once, nothing left', { skip }, async (t) => {
  const dir = tempDir(t);
  // The node's agent (a child `dtrain agent`) hangs before it reports its GPU probe: the launcher is
  // still starting the job (backend auto waits for every probe) when SIGINT comes.
  writeFileSync(
    join(dir, 'slow-agent.cjs'),
    `if (process.argv.includes('agent')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);\n`,
  );
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--set',
      'backend=auto',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      `echo $$ > ${dir}/pid_0; sleep 60`,
    ],
    { cwd: dir, env: { DTRAIN_LOCAL_AGENT: 'child', NODE_OPTIONS: `--require=${join(dir, 'slow-agent.cjs')}` } },
  );
  let agent: number | undefined;
  t.ok(await waitFor(() => (agent = agentOf(run.child.pid!)) !== undefined, 20000), 'the agent was started');
  await new Promise((r) => setTimeout(r, 500));
  run.child.kill('SIGINT');
  const r = await doneWithin(run, 8000);
  t.ok(r, 'the launcher left within 8 s');
  t.equal(r?.code, 130, r?.stderr ?? '');
  t.notOk(existsSync(join(dir, 'pid_0')), 'no worker was started');
  t.ok(await waitFor(() => !alive(agent!), 2000), 'the agent is gone');
  if (alive(agent!)) process.kill(agent!, 'SIGKILL');
});

t.test('a second SIGINT while an agent cannot answer: the launcher leaves, the worker is dead', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--set',
      'shutdown_grace=60s',
      '--set',
      'heartbeat.timeout=120s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      `echo $$ > ${dir}/pid_0; exec sleep 60`,
    ],
    { cwd: dir, env: { DTRAIN_LOCAL_AGENT: 'child' } },
  );
  t.ok(await waitFor(() => existsSync(join(dir, 'pid_0')), 20000), 'the worker runs');
  await new Promise((r) => setTimeout(r, 300));
  const worker = Number(readFileSync(join(dir, 'pid_0'), 'utf8'));
  const agent = agentOf(run.child.pid!);
  t.ok(agent, 'the agent is a child of the launcher');
  // A stopped agent hears nothing: neither the stop nor the kill, and it reports no exit.
  process.kill(agent!, 'SIGSTOP');
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 500));
  run.child.kill('SIGINT');
  const r = await doneWithin(run, 10000);
  t.ok(r, 'the launcher left within 10 s of the second SIGINT');
  t.equal(r?.code, 130, r?.stderr ?? '');
  t.match(r?.stderr ?? '', /second SIGINT/);
  t.ok(await waitFor(() => !alive(worker) && !alive(agent!), 5000), 'the agent and its worker are dead');
  if (alive(agent!)) process.kill(agent!, 'SIGKILL');
  if (alive(worker)) process.kill(worker, 'SIGKILL');
});

t.test('SIGUSR1 and SIGUSR2 are forwarded once each and supervision goes on', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = start(dir, ['--json'], { LIVE_MS: '1500' });
  t.ok(await waitFor(() => running(dir), 10000));
  await new Promise((r) => setTimeout(r, 200));
  run.child.kill('SIGUSR1');
  run.child.kill('SIGUSR2');
  const r = await run.done;
  t.equal(r.code, 0, r.stderr);
  for (const rank of [0, 1])
    for (const sig of ['SIGUSR1', 'SIGUSR2'])
      t.equal(readFileSync(join(dir, `got_${rank}_${sig}`), 'utf8'), 'x\n', `rank ${rank} got ${sig} once`);
});

t.test('SIGTERM: a worker that ignores it is killed after shutdown_grace, exit 143', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      'shutdown_grace=1s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--json',
      '--',
      process.execPath,
      join(fixtures, 'crash.mjs'),
      dir,
      '-1',
      '0',
      '1',
    ],
    { cwd: dir },
  );
  t.ok(await waitFor(() => running(dir), 10000), 'workers started');
  await new Promise((r) => setTimeout(r, 200));
  const sentAt = Date.now();
  run.child.kill('SIGTERM');
  const r = await run.done;
  const took = Date.now() - sentAt;
  t.equal(r.code, 143, r.stderr);
  t.ok(took >= 1000 && took < 6000, `waited the 1 s grace for the stubborn rank, then killed it (${took} ms)`);
  const ranks = JSON.parse(r.stdout).attempts[0].ranks as {
    rank: number;
    exit_code: number | null;
    signal: string | null;
  }[];
  t.match(
    ranks.find((x) => x.rank === 0),
    { exit_code: 143 },
    'rank 0 left on SIGTERM',
  );
  t.match(
    ranks.find((x) => x.rank === 1),
    { signal: 'SIGKILL' },
    'rank 1 ignored it and was killed',
  );
});

t.test(
  'SIGTERM while a failed job is stopping: the stubborn rank is still killed at shutdown_grace, and the job ends ' +
    'failed (exit 1, rank 0 named), not as stopped by the signal',
  { skip },
  async (t) => {
    const dir = tempDir(t);
    const run = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '2',
        '--set',
        'shutdown_grace=6s',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        process.execPath,
        join(fixtures, 'crash.mjs'),
        dir,
        '0',
        '3',
        '1',
      ],
      { cwd: dir },
    );
    let stoppingAt = 0;
    run.child.stderr!.on('data', (b: Buffer) => {
      if (!stoppingAt && b.toString().includes('stopping all workers: rank 0 failed')) stoppingAt = Date.now();
    });
    t.ok(await waitFor(() => stoppingAt > 0, 15_000), 'rank 0 failed and the job is stopping');
    // half the grace later the user (or the scheduler) sends SIGTERM: a stop that is already under way
    await new Promise((r) => setTimeout(r, 3000));
    run.child.kill('SIGTERM');
    const r = await run.done;
    const took = Date.now() - stoppingAt;
    t.equal(r.code, 1, r.stderr);
    t.match(r.stderr, /failed: rank 0 \(host [^)]*\) exited with code 3/);
    t.notMatch(r.stderr, /stopped by SIGTERM/);
    t.ok(took >= 5500 && took < 8000, `rank 1 killed ${took} ms after the stop began (grace 6 s, not 3 + 6)`);
  },
);

t.test('SIGHUP is forwarded to the workers', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = start(dir, [], { LIVE_MS: '1500' });
  t.ok(await waitFor(() => running(dir), 10000));
  await new Promise((r) => setTimeout(r, 200));
  run.child.kill('SIGHUP');
  await run.done;
  t.ok(existsSync(join(dir, 'got_0_SIGHUP')) && existsSync(join(dir, 'got_1_SIGHUP')), 'both workers got SIGHUP');
});

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

t.test('a forwarded SIGUSR1 opens no inspector in a runtime worker, which keeps running', { skip }, async (t) => {
  const dir = tempDir(t);
  const runtime = JSON.stringify(join(root, 'dist', 'runtime', 'index.js'));
  const script =
    `const { init } = await import(${runtime}); const dist = await init(); ` +
    `require('fs').writeFileSync('${dir}/pid_' + dist.rank, String(process.pid)); setInterval(() => {}, 1000);`;
  t.notOk(await listening(9229), 'nothing listens on 9229 before');
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      process.execPath,
      '--input-type=commonjs',
      '-e',
      `(async () => { ${script} })()`,
    ],
    { cwd: dir },
  );
  t.ok(await waitFor(() => existsSync(join(dir, 'pid_0')), 20000), 'the worker called init()');
  run.child.kill('SIGUSR1');
  // the program itself does not listen for SIGUSR1: without the runtime's listener Node would open its
  // inspector within milliseconds of the signal
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(await listening(9229), 'no inspector listens on 9229');
  t.equal(run.child.exitCode, null, 'the job still runs');
  t.ok(alive(Number(readFileSync(join(dir, 'pid_0'), 'utf8'))), 'and so does the worker');
  run.child.kill('SIGTERM');
  const r = await run.done;
  t.equal(r.code, 143, 'SIGTERM ends it as usual');
  t.notMatch(r.stdout + r.stderr, /Debugger listening/);
});

t.test('a forwarded SIGUSR1 opens no inspector in a plain Node worker, which keeps running', { skip }, async (t) => {
  const dir = tempDir(t);
  t.notOk(await listening(9229), 'nothing listens on 9229 before');
  // no dtrain runtime, no listener of its own; the user's NODE_OPTIONS must still reach it
  const script = `require('fs').writeFileSync('${dir}/pid_0', String(process.pid));`;
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'node',
      '-e',
      `${script} console.log('heap=' + require('v8').getHeapStatistics().heap_size_limit); setInterval(() => {}, 1000)`,
    ],
    { cwd: dir, env: { NODE_OPTIONS: '--max-old-space-size=123' } },
  );
  t.ok(await waitFor(() => existsSync(join(dir, 'pid_0')), 20000), 'the worker runs');
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGUSR1');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(await listening(9229), 'no inspector listens on 9229');
  t.equal(run.child.exitCode, null, 'the job still runs');
  t.ok(alive(Number(readFileSync(join(dir, 'pid_0'), 'utf8'))), 'and so does the worker');
  run.child.kill('SIGTERM');
  const r = await run.done;
  t.equal(r.code, 143, 'SIGTERM ends it as usual');
  t.notMatch(r.stdout + r.stderr, /Debugger listening/);
  t.match(r.stdout, /heap=1\d{8}\b/, "the user's own NODE_OPTIONS still applies");
});
