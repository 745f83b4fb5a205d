// Registry entries that name no reachable controller: a pid that lives on (reused by another process) with
// its control socket gone or refusing, and a controller that accepts but never answers. `dtrain status`,
// `status --json`, `stacks` and `top` answer as for no such run, or say the run does not answer: one line on
// stderr and exit 2, never a stack trace. So do a status.json, a controller's answer or a registry entry that
// is not what dtrain writes, without quoting the file.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ControlServer, jsonReply } from '../../../src/launch/control-server.js';
import { alive, built, root, runDtrain, startDtrain, tempDir, waitFor } from '../../helpers/launch.js';

/** A Unix socket file with no listener behind it: its process was SIGKILLed while listening. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  await new Promise((r) => child.on('exit', r));
  if (!existsSync(path)) throw new Error(`no stale socket at ${path}`);
}

/** Registry entries as a controller writes them, naming `pid` (alive) and a socket of our choosing. */
function writeEntry(runs: string, runId: string, pid: number, startedAt: string, socket: string) {
  mkdirSync(runs, { recursive: true, mode: 0o700 });
  const entry = { run_id: runId, pid, started_at: startedAt, log_dir: `/nonexistent/logs/${runId}`, socket };
  writeFileSync(join(runs, `${runId}.json`), JSON.stringify(entry) + '\n', { mode: 0o600 });
}

/** The least status document `status` and `top` show (what run-status.ts's check asks for). */
const minimalDoc = (runId: string, state = 'running') => ({
  run_id: runId,
  state,
  attempt: 0,
  world_size: 0,
  started_at: '2026-01-01T00:00:00.000Z',
  stragglers: [],
  nodes: [],
  ranks: [],
});

const oneLine = (t: Test, r: { code: number | null; stderr: string }, line: RegExp, what: string) => {
  t.equal(r.code, 2, `${what}: exit 2`);
  t.match(r.stderr, line, `${what}: says why`);
  t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`, { stderr: r.stderr });
  t.notMatch(r.stderr, /internal error|\n\s+at /, `${what}: no stack trace`);
};

t.test(
  'an entry whose pid lives on but whose socket is missing or refuses is no running job',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-stale');
    const runs = join(dir, 'runs');
    const env = { DTRAIN_RUNS_DIR: runs };
    // a live pid that is no controller: a sleeping child (as a reused pid would be)
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    t.teardown(() => sleeper.kill('SIGKILL'));
    const refused = join(dir, 'refused.sock');
    const stale = async () => {
      writeEntry(runs, 'gone', process.pid, '2026-01-02T00:00:00.000Z', join(runs, 'gone.sock'));
      if (!existsSync(refused)) await staleSocket(refused);
      writeEntry(runs, 'refused', sleeper.pid!, '2026-01-03T00:00:00.000Z', refused);
    };
    const none = /^dtrain: no running dtrain job of yours on this machine\n$/;

    for (const args of [['status'], ['status', '--json'], ['stacks'], ['stacks', '--json'], ['top']]) {
      await stale();
      const r = await runDtrain(args, { cwd: root, env });
      oneLine(t, r, none, `dtrain ${args.join(' ')}`);
      t.same(readdirSync(runs), [], `dtrain ${args.join(' ')}: the dead entries are removed`);
    }
    for (const args of [
      ['status', 'refused'],
      ['stacks', 'gone'],
      ['top', 'refused'],
    ]) {
      await stale();
      const r = await runDtrain(args, { cwd: root, env });
      oneLine(t, r, new RegExp(`^dtrain: no running job "${args[1]}" here`), `dtrain ${args.join(' ')}`);
      t.notMatch(r.stderr, /running: /, 'the dead entries are not listed as running');
    }

    // a live controller older than the stale entries is the newest job running
    const liveSocket = join(runs, 'live.sock');
    await stale();
    const live = await ControlServer.listenUnix(liveSocket, {
      'GET /api/status': () => jsonReply(minimalDoc('live')),
    });
    t.teardown(() => live.close());
    writeEntry(runs, 'live', process.pid, '2026-01-01T00:00:00.000Z', liveSocket);
    const found = await runDtrain(['status', '--json'], { cwd: root, env });
    t.equal(found.code, 0, found.stderr);
    t.match(JSON.parse(found.stdout || '{}'), { run_id: 'live' }, 'the live run answers');
    t.same(readdirSync(runs).sort(), ['live.json', 'live.sock'], 'only the live entry is left');
  },
);

t.test(
  'a controller that accepts but does not answer: status, stacks and top say so on stderr, exit 2',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-mute');
    const runs = join(dir, 'runs');
    const env = { DTRAIN_RUNS_DIR: runs };
    const socket = join(dir, 'mute.sock');
    const mute: Server = createServer((c) => c.destroy());
    await new Promise<void>((r) => mute.listen(socket, r));
    t.teardown(() => new Promise((r) => mute.close(r)));
    writeEntry(runs, 'mute', process.pid, '2026-01-01T00:00:00.000Z', socket);
    for (const args of [['status'], ['status', '--json'], ['stacks'], ['top'], ['top', '--iterations', '1']]) {
      const r = await runDtrain(args, { cwd: root, env });
      oneLine(t, r, /^dtrain: run mute does not answer/, `dtrain ${args.join(' ')}`);
      if (args[0] === 'top') t.equal(r.stdout, '', 'top draws nothing');
      t.ok(existsSync(join(runs, 'mute.json')), 'a run that accepts connections is not forgotten');
    }
  },
);

t.test(
  'a status.json, an answer or a registry entry that is not what dtrain writes: one line, exit 2, no content',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-doc');
    const runs = join(dir, 'runs');
    const env = { DTRAIN_RUNS_DIR: runs };
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const file = join(logs, 'status.json');
    // the shapes one by one are unit-tested (status-doc.test.ts); here each command meets one
    for (const [text, args] of [
      ['{"version":1}', ['status', logs]],
      ['[]', ['status', logs, '--json']],
      ['{"nodes":[{}]}', ['top', logs, '--iterations', '1']],
    ] as const) {
      writeFileSync(file, text + '\n');
      const r = await runDtrain([...args], { cwd: root, env });
      oneLine(t, r, new RegExp(`^dtrain: ${file}: not a dtrain status document \\(`), `${text}: dtrain ${args[0]}`);
    }
    const secret = 'hf_SECRETVALUE50abcdefghijklmnopqrstuvwxyz';
    const token = join(dir, 'tok.txt');
    writeFileSync(token, secret + '\n');
    writeFileSync(file, `{"run_id": "x", "token": "${secret}",}`);
    for (const [args, where] of [
      [['status', token], `${token}`],
      [['top', logs], `${file}:1:\\d+`],
    ] as const) {
      const r = await runDtrain([...args], { cwd: root, env });
      oneLine(t, r, new RegExp(`^dtrain: ${where}: not valid JSON`), `dtrain ${args.join(' ')}`);
      t.notMatch(r.stderr, /SECRET|token|"/, 'not a byte of the file');
    }

    // a registry entry of another shape is skipped; a controller answering something else is one line
    mkdirSync(runs, { mode: 0o700 });
    writeFileSync(join(runs, 'odd.json'), JSON.stringify({ run_id: 'odd', pid: process.pid }) + '\n');
    writeFileSync(join(runs, 'null.json'), 'null\n');
    execFileSync('mkfifo', [join(runs, 'fifo.json')]); // read as an entry, it held every command forever
    const none = await runDtrain(['status'], { cwd: root, env });
    oneLine(t, none, /^dtrain: no running dtrain job of yours on this machine\n$/, 'odd entries only');
    const socket = join(runs, 'live.sock');
    const answers = [{ ok: true }, minimalDoc('live')];
    const stacksAnswers = ['{"run_id": "live", "ranks": [{"rank": 0, "stack": 7}], "unanswered": []}', 'nonsense'];
    const live = await ControlServer.listenUnix(socket, {
      'GET /api/status': () => jsonReply(answers.shift()),
      'POST /api/stacks': () => ({ status: 200, type: 'application/json', body: stacksAnswers.shift() ?? '' }),
    });
    t.teardown(() => live.close());
    writeEntry(runs, 'live', process.pid, '2026-01-01T00:00:00.000Z', socket);
    const odd = await runDtrain(['status'], { cwd: root, env });
    oneLine(t, odd, /^dtrain: run live answered: not a dtrain status document \(no run_id\)\n$/, 'an odd answer');
    const good = await runDtrain(['status', '--json'], { cwd: root, env });
    t.equal(good.code, 0, good.stderr);
    t.match(JSON.parse(good.stdout || '{}'), { run_id: 'live' }, 'the next answer is a document');
    for (const what of ['a stack that is not text', 'not JSON']) {
      const stacks = await runDtrain(['stacks', 'live'], { cwd: root, env });
      oneLine(t, stacks, /^dtrain: run live answered: not a dtrain stacks document\n$/, `stacks: ${what}`);
    }
  },
);

t.test(
  'a status.json that is a FIFO or a device: one line, exit 2, at once (it was read forever)',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-fifo');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const fifo = join(dir, 'fifo');
    const zero = join(dir, 'zero');
    mkdirSync(fifo);
    mkdirSync(zero);
    execFileSync('mkfifo', [join(fifo, 'status.json')]);
    symlinkSync('/dev/zero', join(zero, 'status.json'));
    for (const logs of [fifo, zero]) {
      for (const args of [
        ['status', logs],
        ['status', logs, '--json'],
        ['top', logs, '--iterations', '1'],
      ]) {
        const started = Date.now();
        const r = await runDtrain(args, { cwd: root, env });
        const file = join(logs, 'status.json');
        oneLine(t, r, new RegExp(`^dtrain: ${file}: cannot read \\(not a regular file\\)\n$`), args.join(' '));
        t.ok(Date.now() - started < 10_000, `${args.join(' ')}: answers at once`);
      }
    }
  },
);

t.test(
  'a run id or an argument holding a newline or escape sequences: one line, written escaped, never sent raw',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-escapes');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    for (const args of [
      ['status', 'a\nb\x1b[2J'],
      ['stacks', 'a\nb\x1b[2J'],
      ['top', 'a\nb\x1b[2J', '--iterations', '1'],
    ]) {
      const r = await runDtrain(args, { cwd: dir, env });
      oneLine(t, r, /^dtrain: no running job "a\\nb\\u001b\[2J" here/, args[0]);
      t.notMatch(r.stderr, /\x1b/, `${args[0]}: no escape sequence reaches the terminal`);
    }
    const usage = await runDtrain(['status', 'x', 'a\nb\x1b[2J'], { cwd: dir, env });
    oneLine(t, usage, /^dtrain: Unknown argument: a b\\u001b\[2J\n$/, "yargs' own message");
    const choices = await runDtrain(['submit', 'x.yaml', '--scheduler', 'bogus'], { cwd: dir, env });
    oneLine(t, choices, /^dtrain: Invalid values: Argument: scheduler, Given: "bogus", Choices: /, 'a yargs message');
  },
);

t.test(
  'a status.json whose controller is gone: status and top say it is stale; an ended run is not',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-file-stale');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const file = join(dir, 'status.json');
    const gone = spawn('true');
    await new Promise((r) => gone.on('close', r));
    const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
    const cases = [
      { why: 'its pid gone here', state: 'running', at: minutesAgo(0), ctl: { host: hostname(), pid: gone.pid! } },
      { why: 'not rewritten', state: 'running', at: minutesAgo(10), ctl: { host: 'elsewhere', pid: process.pid } },
      { why: 'not rewritten', state: 'hung', at: minutesAgo(180), ctl: undefined },
      { why: 'fresh', state: 'restarting', at: minutesAgo(0), ctl: { host: 'elsewhere', pid: 1 } },
      { why: 'alive here', state: 'running', at: minutesAgo(0), ctl: { host: hostname(), pid: process.pid } },
      { why: 'ended', state: 'failed', at: minutesAgo(600), ctl: { host: hostname(), pid: gone.pid! } },
    ];
    const expected: Record<string, RegExp | undefined> = {
      'its pid gone here': new RegExp(`^its controller \\(pid ${gone.pid}\\) is gone and wrote no final state`),
      'not rewritten': /^not updated for (10m|3h), though a live controller rewrites it every 2s: its controller/,
    };
    for (const c of cases) {
      const doc = { ...minimalDoc('r1', c.state), updated_at: c.at, ...(c.ctl ? { controller: c.ctl } : {}) };
      writeFileSync(file, JSON.stringify(doc) + '\n');
      const json = await runDtrain(['status', dir, '--json'], { cwd: root, env });
      t.equal(json.code, 0, `${c.why}: exit 0`, { stderr: json.stderr });
      const stale = (JSON.parse(json.stdout || '{}') as { stale?: string }).stale;
      const want = expected[c.why];
      if (want) t.match(stale, want, `${c.why}, ${c.state}: --json says why it is stale`);
      else t.equal(stale, undefined, `${c.why}, ${c.state}: not stale`);
      const text = await runDtrain(['status', dir], { cwd: root, env });
      t.equal(/^stale: /m.test(text.stdout), Boolean(want), `${c.why}, ${c.state}: the table says so or not`);
    }
    writeFileSync(file, JSON.stringify({ ...minimalDoc('r1'), updated_at: minutesAgo(10) }) + '\n');
    const top = await runDtrain(['top', dir, '--iterations', '1'], { cwd: root, env });
    t.match(top.stdout, /stale: not updated for 10m/, 'top shows it too');
  },
);

t.test(
  'a launcher killed with SIGKILL: its workers go, and its status.json says the run was killed',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-killed');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const logs = join(dir, 'logs');
    const launch = startDtrain(['launch', '--nproc-per-node', '2', '--set', `logs.dir=${logs}`, '--', 'sleep', '600'], {
      cwd: dir,
      env,
    });
    t.teardown(() => launch.child.kill('SIGKILL'));
    let doc: { ranks: { pid: number; state: string }[]; log_dir: string } | undefined;
    for (let i = 0; i < 120 && !(doc && doc.ranks.every((r) => r.state === 'running' && r.pid)); i++) {
      const r = await runDtrain(['status', '--json'], { cwd: root, env });
      doc = r.code === 0 ? JSON.parse(r.stdout) : undefined;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!t.ok(doc, 'the run is up')) return;
    const pids = doc!.ranks.map((r) => r.pid);
    // the controller rewrites status.json every 2 s: see it name the ranks' pids before the kill
    await waitFor(() => existsSync(join(doc!.log_dir, 'status.json')), 5000);
    await new Promise((r) => setTimeout(r, 2500));
    launch.child.kill('SIGKILL');
    await launch.done;
    t.ok(await waitFor(() => pids.every((p) => !alive(p)), 15_000), 'the workers are gone (agents saw stdin end)');
    const r = await runDtrain(['status', doc!.log_dir], { cwd: root, env });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^\S+ {2}running {2}.*\nstale: its controller \(pid \d+\) is gone and wrote no final state/);
    const none = await runDtrain(['status'], { cwd: root, env });
    t.match(none.stderr, /no running dtrain job of yours on this machine/, 'the registry forgets it');
  },
);
