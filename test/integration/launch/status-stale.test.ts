// Registry entries that name no reachable controller: a pid that lives on (reused by another process) with
// its control socket gone or refusing, and a controller that accepts but never answers. `dtrain status`,
// `status --json`, `stacks` and `top` answer as for no such run, or say the run does not answer: one line on
// stderr and exit 2, never a stack trace. So do a status.json, a controller's answer or a registry entry that
// is not what dtrain writes, without quoting the file.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ControlServer, jsonReply } from '../../../src/launch/control-server.js';
import { built, root, runDtrain, tempDir } from '../../helpers/launch.js';

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
    const none = await runDtrain(['status'], { cwd: root, env });
    oneLine(t, none, /^dtrain: no running dtrain job of yours on this machine\n$/, 'odd entries only');
    const socket = join(runs, 'live.sock');
    const answers = [{ ok: true }, minimalDoc('live')];
    const live = await ControlServer.listenUnix(socket, { 'GET /api/status': () => jsonReply(answers.shift()) });
    t.teardown(() => live.close());
    writeEntry(runs, 'live', process.pid, '2026-01-01T00:00:00.000Z', socket);
    const odd = await runDtrain(['status'], { cwd: root, env });
    oneLine(t, odd, /^dtrain: run live answered: not a dtrain status document \(no run_id\)\n$/, 'an odd answer');
    const good = await runDtrain(['status', '--json'], { cwd: root, env });
    t.equal(good.code, 0, good.stderr);
    t.match(JSON.parse(good.stdout || '{}'), { run_id: 'live' }, 'the next answer is a document');
  },
);
