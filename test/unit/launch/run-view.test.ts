// The pieces of a run's live view: the run registry, the control server and its route table, the progress
// file reader, straggler detection and the status document built from agent events.
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { callControl, ControlServer, jsonReply } from '../../../src/launch/control-server.js';
import { currentCollective, ProgressReader, RankSampler } from '../../../src/launch/rank-sampler.js';
import { findRun, listRuns, registerRun, registryDir, type RunEntry } from '../../../src/launch/run-registry.js';
import { RunStatus } from '../../../src/launch/run-status.js';
import { findStragglers } from '../../../src/launch/stragglers.js';
import { parseFlightRecorder } from '../../../src/runtime/flight-recorder.js';
import { IMAGE, recorderImage } from '../../helpers/flight-recorder-image.js';
import { twoRankPlan } from '../../helpers/run-plan.js';

function withRunsDir(t: { teardown(fn: () => void): void }): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'dtrain-runs-test-')), 'runs');
  const before = process.env.DTRAIN_RUNS_DIR;
  process.env.DTRAIN_RUNS_DIR = dir;
  t.teardown(() => {
    if (before === undefined) delete process.env.DTRAIN_RUNS_DIR;
    else process.env.DTRAIN_RUNS_DIR = before;
  });
  return dir;
}

const entry = (run_id: string, pid: number, started_at: string) => ({
  run_id,
  pid,
  started_at,
  log_dir: `/logs/${run_id}`,
  socket: join(registryDir(), `${run_id}.sock`),
});

/** A registered run as a controller leaves it: its socket file is there before its entry. */
function registerWithSocket(e: RunEntry) {
  mkdirSync(registryDir(), { recursive: true, mode: 0o700 });
  writeFileSync(e.socket, '');
  return registerRun(e);
}

t.test('the registry: 0700, found by id, log folder or as the newest; dead pids are cleaned', async (t) => {
  const dir = withRunsDir(t);
  const older = registerWithSocket(entry('job-a', process.pid, '2026-01-01T00:00:00.000Z'));
  const newer = registerWithSocket(entry('job-b', process.pid, '2026-01-02T00:00:00.000Z'));
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the folder is private');
  t.equal(statSync(join(dir, 'job-a.json')).mode & 0o077, 0, 'entries are private');
  t.equal(findRun()?.run_id, 'job-b', 'no argument: the newest');
  t.equal(findRun('job-a')?.run_id, 'job-a', 'by run id');
  t.equal(findRun('/logs/job-a')?.run_id, 'job-a', 'by log folder');
  t.equal(findRun('/logs/job-a/attempt_0')?.run_id, 'job-a', 'by a folder inside it');
  t.equal(findRun('job-c'), undefined);

  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => dead.on('exit', r));
  registerRun(entry('job-dead', dead.pid!, '2026-01-03T00:00:00.000Z'));
  writeFileSync(join(dir, 'job-dead.sock'), '');
  t.same(
    listRuns().map((r) => r.run_id),
    ['job-b', 'job-a'],
    'a dead controller is not listed',
  );
  t.notOk(existsSync(join(dir, 'job-dead.json')), 'its entry is removed');
  t.notOk(existsSync(join(dir, 'job-dead.sock')), 'and its socket');

  // a live pid is no proof: it may have been reused since (kill(pid, 0) answers for any process)
  const own = JSON.parse(readFileSync(join(dir, 'job-a.json'), 'utf8')) as { pid_start?: number };
  t.type(own.pid_start, 'number', 'the entry records when its pid started');
  registerWithSocket({ ...entry('job-reused', process.pid, '2026-01-04T00:00:00.000Z'), pid_start: 1 });
  registerRun(entry('job-no-socket', process.pid, '2026-01-05T00:00:00.000Z'));
  t.same(
    listRuns().map((r) => r.run_id),
    ['job-b', 'job-a'],
    'a pid that started at another time, or an entry without its socket, is no live controller',
  );
  t.notOk(existsSync(join(dir, 'job-reused.json')), 'those entries are removed');
  t.notOk(existsSync(join(dir, 'job-reused.sock')), 'with their socket');
  t.notOk(existsSync(join(dir, 'job-no-socket.json')));
  newer();
  newer();
  older();
  t.same(readdirSync(dir), [], 'unregistering removes the entries');
});

t.test('the registry: a JSON file that is no entry is skipped, not read as one', async (t) => {
  const dir = withRunsDir(t);
  const live = registerWithSocket(entry('job-a', process.pid, '2026-01-01T00:00:00.000Z'));
  t.teardown(live);
  const own = JSON.parse(readFileSync(join(dir, 'job-a.json'), 'utf8')) as Record<string, unknown>;
  const bad: Record<string, unknown> = {
    null: null,
    list: [],
    empty: {},
    'no-socket': { ...own, run_id: 'no-socket', socket: undefined, started_at: '2027-01-01T00:00:00.000Z' },
    'no-start': { ...own, run_id: 'no-start', started_at: undefined },
    'pid-text': { ...own, run_id: 'pid-text', pid: String(process.pid), started_at: '2027-01-01T00:00:00.000Z' },
  };
  for (const [name, v] of Object.entries(bad)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(v) + '\n');
  t.same(
    listRuns().map((r) => r.run_id),
    ['job-a'],
    'only the entry',
  );
  t.equal(findRun()?.run_id, 'job-a', 'the newest run is the entry');
  for (const name of Object.keys(bad)) t.ok(existsSync(join(dir, `${name}.json`)), `${name}: left alone`);
});

t.test('the control server: one route table on a Unix socket and on TCP with a token', async (t) => {
  const dir = withRunsDir(t);
  const routes = {
    'GET /api/status': () => jsonReply({ ok: true }),
    'POST /api/echo': (req: { body: Buffer }) => jsonReply({ got: req.body.toString() }),
  };
  const socket = join(mkdtempSync(join(tmpdir(), 'dtrain-sock-')), 'c.sock');
  const unix = await ControlServer.listenUnix(socket, routes);
  t.teardown(() => unix.close());
  void dir;
  t.same(await callControl(socket, 'GET', '/api/status'), { status: 200, body: '{"ok":true}\n' });
  t.same(await callControl(socket, 'POST', '/api/echo', { body: 'hi' }), { status: 200, body: '{"got":"hi"}\n' });
  t.equal((await callControl(socket, 'GET', '/nope')).status, 404);
  t.equal((await callControl(socket, 'POST', '/api/status')).status, 405);

  const tcp = await ControlServer.listenTcp('127.0.0.1', 0, routes, 's3cret');
  t.teardown(() => tcp.close());
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: tcp.port, path, headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  t.equal(await get('/api/status'), 401, 'no token');
  t.equal(await get('/api/status?token=wrong'), 401, 'a wrong token');
  t.equal(await get('/api/status?token=s3cret'), 200, 'token in the query');
  t.equal(await get('/api/status', { authorization: 'Bearer s3cret' }), 200, 'token as a bearer');
  await unix.close();
  t.notOk(existsSync(socket), 'the socket file goes with the server');
});

t.test('the progress reader: whole lines, a window of 20 steps, compute = step time - collective wait', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'dtrain-progress-')), 'p.jsonl');
  const reader = new ProgressReader(file);
  reader.poll();
  t.same(reader.figures(), {}, 'no file yet: nothing');
  appendFileSync(file, JSON.stringify({ step: 1, time: 100, loss: 2 }) + '\n{"step":2,"ti');
  reader.poll();
  t.same(reader.figures(), { step: 1, loss: 2 }, 'a partial line waits for its end');
  appendFileSync(file, 'me":101,"samples":8,"wait_s":0.25}\nnot json\n');
  for (let s = 3; s <= 30; s++)
    appendFileSync(file, JSON.stringify({ step: s, time: 100 + (s - 1), samples: 8, wait_s: 0.25 }) + '\n');
  reader.poll();
  const f = reader.figures();
  t.equal(f.step, 30);
  t.equal(f.step_s, 1, 'mean step time over the window');
  t.equal(f.compute_s, 0.75, 'step time minus wait');
  t.equal(f.samples_per_s, 8);
  t.equal(reader.recent.length, 21, 'the window holds 21 points (20 steps)');
});

t.test('stragglers: compute time over the group median by more than 20%, per group', async (t) => {
  const r = (rank: number, group: string, compute_s?: number) => ({ rank, group, compute_s, state: 'running' });
  t.same(
    [...findStragglers([r(0, 'a', 1), r(1, 'a', 1.1), r(2, 'a', 1.3), r(3, 'a', 1)])],
    [2],
    '1.3 > 1.05 × 1.2; 1.1 is not',
  );
  t.same([...findStragglers([r(0, 'a', 1), r(1, 'b', 3)])], [], 'groups are judged apart; one rank alone never');
  t.same([...findStragglers([r(0, 'a', 1), r(1, 'a'), r(2, 'a', 1)])], [], 'ranks without figures are left out');
});

t.test('the status document follows the agent events and the supervisor', async (t) => {
  const plan = twoRankPlan();
  const s = new RunStatus('job-1', '/logs/job-1', plan);
  t.match(s.doc(), { state: 'starting', ranks: [{ state: 'starting', pid: 0 }, { state: 'starting' }] });
  s.onEvent({
    type: 'started',
    node_rank: 0,
    attempt: 0,
    master_port: 1,
    workers: [
      { rank: 0, local_rank: 0, pid: 101 },
      { rank: 1, local_rank: 1, pid: 102 },
    ],
  });
  s.running(0);
  const sample = (rank: number, compute_s: number) => ({
    rank,
    pid: 101 + rank,
    cpu_percent: 50,
    rss_bytes: 1 << 20,
    last_output_age_s: 1,
    step: 7,
    step_s: 2,
    compute_s,
  });
  s.onEvent({ type: 'sample', node_rank: 0, attempt: 0, ranks: [sample(0, 1), sample(1, 1.6)] });
  const doc = s.doc();
  t.match(doc, {
    run_id: 'job-1',
    state: 'running',
    attempt: 0,
    nodes: [{ node_rank: 0, host: 'h0', state: 'running' }],
    ranks: [
      { rank: 0, pid: 101, state: 'running', step: 7, cpu_percent: 50, rss_bytes: 1 << 20, restarts: 0 },
      { rank: 1, pid: 102, state: 'running', straggler: true },
    ],
    stragglers: [1],
  });
  s.hung();
  s.stopping();
  t.match(s.doc(), { state: 'hung', ranks: [{ state: 'stopping' }] }, 'a hung run stays hung while it stops');
  s.restarting(1);
  t.match(s.doc(), { state: 'restarting', attempt: 1, ranks: [{ restarts: 1, state: 'starting' }] });
  t.notOk('compute_s' in s.doc().ranks[0], "the last attempt's speed is forgotten");
  s.nodeLost(0);
  t.equal(s.doc().membership_changes, 1);
  s.finished(false);
  t.equal(s.doc().state, 'failed');
});

t.test("a rank's collective: the oldest op it is inside, else the one it left last", async (t) => {
  const at = (ms: number) => IMAGE.realAnchorMs + ms;
  const read = (groups: Parameters<typeof recorderImage>[1], nowMs: number) => {
    const img = recorderImage(0, groups);
    return currentCollective(parseFlightRecorder(img, img, nowMs));
  };
  const group = (name: string, entries: Parameters<typeof recorderImage>[1][0]['entries']) => ({
    name,
    members: '0-1',
    size: 2,
    groupRank: 0,
    lastSeq: entries.length ? Math.max(...entries.map((e) => e.seq)) : 0,
    entries,
  });
  t.equal(read([group('world', [])], at(0)), undefined, 'no op yet: none');
  const done = { op: 1, state: 3, enqueuedMs: 100, startedMs: 110, endedMs: 200 };
  t.same(read([group('world', [{ seq: 1, ...done }])], at(2200)), {
    group: 'world',
    op: 'allReduce',
    seq: 1,
    state: 'completed',
    since_s: 2,
  });
  const groups = [
    group('world', [
      { seq: 1, ...done },
      { seq: 2, op: 5, state: 2, enqueuedMs: 300, startedMs: 400 },
    ]),
    group('data', [{ seq: 1, op: 3, state: 1, enqueuedMs: 900 }]),
  ];
  t.same(
    read(groups, at(5400)),
    { group: 'world', op: 'barrier', seq: 2, state: 'started', since_s: 5 },
    'inside two ops: the older one, timed from its start',
  );
  t.match(
    read(
      [group('world', [{ seq: 1, op: 4, state: 2, failed: true, enqueuedMs: 10, startedMs: 20, endedMs: 1020 }])],
      at(3020),
    ),
    { op: 'broadcast', state: 'failed', since_s: 2 },
    'a failed op is left, not inside',
  );

  // the agent's sampler reads the rank's file and the status document keeps its time running between samples
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-sampler-test-'));
  const file = join(dir, 'flight.bin');
  const now = Date.now();
  const startedMs = now - IMAGE.realAnchorMs - 3000;
  writeFileSync(
    file,
    recorderImage(0, [group('world', [{ seq: 9, op: 1, state: 2, enqueuedMs: startedMs, startedMs }])]),
  );
  const sample = new RankSampler(0, join(dir, 'none.jsonl'), file).sample(process.pid, now, now);
  t.match(sample.collective, { group: 'world', op: 'allReduce', seq: 9, state: 'started' });
  t.ok(Math.abs(sample.collective!.since_s - 3) < 0.2, `since_s ${sample.collective!.since_s}: 3 s in the op`);
  t.notOk('collective' in new RankSampler(0, join(dir, 'none.jsonl'), join(dir, 'none.bin')).sample(process.pid, now));
  const plan = {
    world_size: 1,
    nodes: [{ node_rank: 0, host: 'h0', nproc: 1, local: true }],
    ranks: [
      { rank: 0, node_rank: 0, host: 'h0', local_rank: 0, data: 0, pipeline: 0, tensor: 0, command: ['x'], env: {} },
    ],
  };
  const s = new RunStatus('job-c', '/logs/job-c', plan);
  s.onEvent({
    type: 'started',
    node_rank: 0,
    attempt: 0,
    master_port: 1,
    workers: [{ rank: 0, local_rank: 0, pid: 1 }],
  });
  s.onEvent({ type: 'sample', node_rank: 0, attempt: 0, ranks: [sample] });
  await new Promise((r) => setTimeout(r, 300));
  t.ok(s.doc().ranks[0].collective!.since_s >= sample.collective!.since_s + 0.2, 'since_s grows between samples');
  const { collective: _gone, ...outside } = sample;
  s.onEvent({ type: 'sample', node_rank: 0, attempt: 0, ranks: [outside] });
  t.notOk('collective' in s.doc().ranks[0], 'a sample without one clears it');
});
