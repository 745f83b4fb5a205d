// The agent process as remote spawners use it (`dtrain agent --stdio`), held to the contract
// (agent-contract.ts) at the protocol level only: hello, spec on stdin, control through the store, output
// records on stdout, workers' store through the proxy, stop/kill/restart, failure reports, the GPU probe;
// stdin EOF (controller gone) kills every worker. Any other agent can be held to it by changing `argv`.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import t from 'tap';
import {
  controllerHelloLine,
  type AgentEvent,
  type AgentSpec,
  type ControllerHello,
} from '../../../src/launch/agent-contract.js';
import { backendKeys } from '../../../src/launch/backend.js';
import { StoreControl } from '../../../src/launch/store-node.js';
import { StoreServer } from '../../../src/store/index.js';
import { packageVersion } from '../../../src/util/version.js';
import { alive, built, dtrainBin, fixtures, root, tempDir, waitFor } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';
const argv = [process.execPath, dtrainBin, 'agent', '--stdio'];

function spec(
  dir: string,
  port: number,
  jobKey: Buffer,
  command: string[],
  env: Record<string, string> = {},
): AgentSpec {
  const ranks = [0, 1].map((rank) => ({
    rank,
    node_rank: 0,
    host: 'localhost',
    local_rank: rank,
    data: rank,
    pipeline: 0,
    tensor: 0,
    command,
    env: {
      RANK: String(rank),
      WORLD_SIZE: '2',
      MASTER_ADDR: 'auto',
      MASTER_PORT: 'auto',
      DTRAIN_STORE: 'auto',
      TORCHELASTIC_RUN_ID: 'auto',
      ...env,
    },
  }));
  return {
    type: 'spec',
    run_id: 'agent-test',
    node: { node_rank: 0, host: 'localhost', nproc: 2, local: true },
    ranks,
    world_size: 2,
    nnodes: 1,
    workdir: dir,
    master: { addr: '127.0.0.1', port: 'auto' },
    store: { kind: 'tcp', host: '127.0.0.1', port },
    job_key: jobKey.toString('base64'),
    restarts_max: 0,
    heartbeat_interval_ms: 200,
    logs: { dir: join(dir, 'logs'), ranks: 'all', tee: true },
  };
}

/** A store and the controller's side of it (StoreControl), collecting the agents' events; closed at teardown. */
async function controller(t: { teardown(fn: () => unknown): void }) {
  const jobKey = randomBytes(32);
  const store = await StoreServer.start({ jobKey });
  t.teardown(() => store.close());
  const events: AgentEvent[] = [];
  const control = await StoreControl.open(
    { host: '127.0.0.1', port: store.port, jobKey },
    (e) => events.push(e),
    () => {},
    { interval: 200, timeout: 5000 },
  );
  t.teardown(() => control.close());
  return { jobKey, store, events, control };
}

/** An agent handed these stdin lines (stdin left open): its exit code and output once it ends. */
async function agentWithStdin(t: { teardown(fn: () => void): void }, lines: object[]) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  for (const line of lines) child.stdin.write(JSON.stringify(line) + '\n');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

type Exit = Extract<AgentEvent, { type: 'exit' }>;
const exitsOf = (events: AgentEvent[], attempt = 0) =>
  events.filter((e): e is Exit => e.type === 'exit' && e.attempt === attempt).sort((a, b) => a.rank - b.rank);

async function startAgent(
  t: { teardown(fn: () => void): void },
  s: AgentSpec,
  env: NodeJS.ProcessEnv = process.env,
  hello = controllerHelloLine(packageVersion(), 10_000),
) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
  t.teardown(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout });
  const records: { type: string; [k: string]: unknown }[] = [];
  lines.on('line', (l) => records.push(JSON.parse(l)));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  // by default the hello the SSH and srun controllers send: a spec_within_ms the spec right behind it keeps
  child.stdin.write(hello);
  child.stdin.write(JSON.stringify(s) + '\n');
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, records, exited, stderr: () => stderr };
}

t.test('the agent keeps the contract', { skip }, async (t) => {
  t.test('start, events, output records, exit', async (t) => {
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    const agent = await startAgent(
      t,
      spec(dir, store.port, jobKey, ['sh', '-c', 'echo "hi from $RANK port $MASTER_PORT"; exit $RANK']),
    );
    const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
    handle.start(0);
    t.ok(await waitFor(() => events.filter((e) => e.type === 'exit').length === 2, 10000), 'two exit events');
    const started = events.find((e) => e.type === 'started');
    t.match(started, { node_rank: 0, attempt: 0 });
    const exits = events
      .filter((e) => e.type === 'exit')
      .sort((a, b) => (a as { rank: number }).rank - (b as { rank: number }).rank);
    t.match(exits, [
      { rank: 0, exit_code: 0 },
      { rank: 1, exit_code: 1 },
    ]);
    await handle.close();
    t.equal(await agent.exited, 0, 'exit command: agent exits 0');
    t.match(agent.records[0], { type: 'hello', pid: agent.child.pid });
    const out = agent.records.filter((r) => r.type === 'out' && r.stream === 'stdout');
    const port = (started as { master_port: number }).master_port;
    t.same(
      out
        .map((r) => r.lines)
        .flat()
        .sort(),
      [`hi from 0 port ${port}`, `hi from 1 port ${port}`],
    );
  });

  t.test(
    'an elastic start carries the attempt: node rank, ranks, world; keys stay on the stable node id',
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const cmd = [
        'sh',
        '-c',
        'echo "$RANK/$WORLD_SIZE $DTRAIN_ATTEMPT $DTRAIN_PREV_WORLD_SIZE $TORCHELASTIC_RESTART_COUNT"',
      ];
      const base = spec(dir, store.port, jobKey, cmd);
      // node id 5 (a spare), started with no ranks of its own: everything comes with the attempt's start
      const s: AgentSpec = { ...base, node: { ...base.node, node_rank: 5 }, ranks: [] };
      const agent = await startAgent(t, s);
      const handle = control.handle(5, 'localhost', async () => void (await agent.exited));
      const ranks = base.ranks.map((r) => ({
        ...r,
        rank: r.rank + 2,
        env: { ...r.env, RANK: String(r.rank + 2), WORLD_SIZE: '4' },
      }));
      handle.start(3, {
        restarts: 1,
        prev_world_size: 6,
        assignment: { node_rank: 1, ranks, world_size: 4, nnodes: 2, master: { addr: '127.0.0.1', port: 'auto' } },
      });
      // node 1 of attempt 3 learns the master port from that attempt's node 0
      await control.storeClient.set('ctl/a3/master_port', '4242');
      t.ok(await waitFor(() => exitsOf(events, 3).length === 2, 10000), 'two exit events for attempt 3');
      t.match(
        events.find((e) => e.type === 'started'),
        { node_rank: 5, attempt: 3, master_port: 4242 },
      );
      t.match(exitsOf(events, 3), [
        { node_rank: 5, rank: 2, exit_code: 0 },
        { node_rank: 5, rank: 3, exit_code: 0 },
      ]);
      await handle.close();
      t.equal(await agent.exited, 0);
      const out = agent.records.filter((r) => r.type === 'out' && r.stream === 'stdout');
      t.same(
        out
          .map((r) => r.lines)
          .flat()
          .sort(),
        ['2/4 3 6 1', '3/4 3 6 1'],
        'DTRAIN_ATTEMPT 3, previous world 6, restarts 1',
      );
    },
  );

  t.test('checkpoint.dir not shared (the marker is not there): an error event, no worker started', async (t) => {
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    const marker = { path: join(dir, 'ckpt', '.dtrain-marker-x'), token: 'abc' };
    const s = { ...spec(dir, store.port, jobKey, ['sh', '-c', 'touch started-$RANK']), checkpoint_marker: marker };
    const agent = await startAgent(t, s);
    const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
    handle.start(0);
    t.ok(await waitFor(() => events.some((e) => e.type === 'error'), 10000), 'an error event');
    t.match(
      events.find((e) => e.type === 'error'),
      {
        attempt: 0,
        message: /checkpoint\.dir .*ckpt is not the folder the controller wrote to \(.* is missing\)/,
      },
    );
    mkdirSync(join(dir, 'ckpt'));
    writeFileSync(marker.path, 'abc');
    handle.start(1);
    t.ok(await waitFor(() => exitsOf(events, 1).length === 2, 10000), 'with the marker there, attempt 1 runs');
    await handle.close();
    t.equal(await agent.exited, 0);
  });

  t.test(
    'a controller of another version: the agent answers the hello, then exits 3 without running the spec behind it',
    async (t) => {
      const dir = tempDir(t);
      // a listener in the store's place: the spec must not even be read, so nothing may dial it
      let dialled = 0;
      const listener = createServer((sock) => {
        dialled++;
        sock.destroy();
      });
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      t.teardown(() => listener.close());
      const port = (listener.address() as AddressInfo).port;
      const { code, stdout, stderr } = await agentWithStdin(t, [
        { type: 'hello', version: '0.0.0-other' },
        spec(dir, port, randomBytes(32), ['sh', '-c', 'exit 0']),
      ]);
      t.equal(code, 3);
      t.match(JSON.parse(stdout.split('\n')[0]), { type: 'hello', version: packageVersion() });
      t.match(stderr, /the controller runs 0\.0\.0-other, this agent .*: not starting/);
      t.equal(dialled, 0, 'it never dialled the store the spec names');
    },
  );

  t.test(
    "no spec within the hello's spec_within_ms (the controller gone or cut off without closing stdin): one line, " +
      'exit 3, stdin still open',
    async (t) => {
      const t0 = Date.now();
      const hello: ControllerHello = { type: 'hello', version: packageVersion(), spec_within_ms: 400 };
      const { code, stdout, stderr } = await agentWithStdin(t, [hello]);
      const ms = Date.now() - t0;
      t.equal(code, 3);
      t.ok(ms >= 400 && ms < 5000, `gave up after the deadline (${ms} ms)`);
      t.match(JSON.parse(stdout.split('\n')[0]), { type: 'hello', version: packageVersion() }, 'the hello answered');
      t.match(
        stderr,
        /^dtrain: dtrain agent: no spec within 0\.4s of the controller's hello \(the controller is gone or cut off\)\n$/,
      );
    },
  );

  t.test("the spec in time: the hello's deadline is off, workers run past it", async (t) => {
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    const hello: ControllerHello = { type: 'hello', version: packageVersion(), spec_within_ms: 300 };
    const s = spec(dir, store.port, jobKey, ['sh', '-c', 'sleep 1']);
    const agent = await startAgent(t, s, process.env, JSON.stringify(hello) + '\n');
    const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
    handle.start(0);
    t.ok(await waitFor(() => exitsOf(events).length === 2, 10000), 'both ranks ran their second');
    t.match(exitsOf(events), [{ exit_code: 0 }, { exit_code: 0 }]);
    await handle.close();
    t.equal(await agent.exited, 0, agent.stderr());
  });

  t.test('stdin EOF: the agent kills its workers and exits 1', async (t) => {
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    const agent = await startAgent(t, spec(dir, store.port, jobKey, [join(fixtures, 'escapee.sh'), dir, 'wait']));
    control.handle(0, 'localhost', async () => {}).start(0);
    t.ok(await waitFor(() => events.some((e) => e.type === 'started'), 10000));
    t.ok(
      await waitFor(() => {
        try {
          return [0, 1].every((r) => readFileSync(join(dir, `escapee_${r}`), 'utf8').trim());
        } catch {
          return false;
        }
      }, 5000),
    );
    const pids = [0, 1].flatMap((r) =>
      ['escapee', 'worker'].map((k) => Number(readFileSync(join(dir, `${k}_${r}`), 'utf8'))),
    );
    agent.child.stdin.end();
    t.equal(await agent.exited, 1);
    t.ok(await waitFor(() => !pids.some(alive), 3000), 'workers and setsid grandchildren gone');
  });

  t.test(
    "workers reach the store through the agent's proxy: attempt-prefixed keys, WHOAMI, " +
      "JOB_KEY never the controller's key",
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const worker = join(dir, 'store-worker.mjs');
      writeFileSync(
        worker,
        `import { StoreClient } from ${JSON.stringify(join(root, 'dist/store/client.js'))};
const c = await StoreClient.connectUnix(process.env.DTRAIN_STORE.slice('unix:'.length));
const me = Number(process.env.RANK);
await c.set('r' + me, 'from ' + me);
const other = (await c.get('r' + (1 - me), 5000)).toString();
await c.add('count', 1);
await c.barrier('b', 2, 5000);
const who = await c.whoami();
const key = await c.jobKey();
console.log(JSON.stringify({ me, other, who, key: key.toString('base64') }));
await c.close();`,
      );
      const agent = await startAgent(t, spec(dir, store.port, jobKey, [process.execPath, worker]));
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000), 'two exit events');
      t.match(
        exitsOf(events),
        [
          { rank: 0, exit_code: 0 },
          { rank: 1, exit_code: 0 },
        ],
        agent.stderr(),
      );
      const said = agent.records
        .filter((r) => r.type === 'out' && r.stream === 'stdout')
        .flatMap((r) => r.lines as string[])
        .map((l) => JSON.parse(l));
      t.same(
        said.sort((a, b) => a.me - b.me).map((s) => s.other),
        ['from 1', 'from 0'],
        'each rank read the other',
      );
      t.same(said[0].who, { attempt: 0, prefix: 'a0/' });
      t.equal(said[0].key, jobKey.toString('base64'), 'JOB_KEY answered by the proxy');
      t.equal(await control.storeClient.add('a0/count', 0), 2, 'the keys live under a0/ in the store');
      await handle.close();
      t.equal(await agent.exited, 0);
    },
  );

  t.test(
    'stop: the signal reaches each worker, survivors are SIGKILLed after the grace; ' +
      'the next attempt restarts with its count',
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const script = [
        'if [ "$TORCHELASTIC_RESTART_COUNT" != 0 ]; then ' +
          'echo "attempt $TORCHELASTIC_RESTART_COUNT rank $RANK"; exit 0; fi',
        'if [ "$RANK" = 0 ]; then trap "exit 7" TERM; else trap "" TERM; fi',
        'echo up; while :; do sleep 0.05; done',
      ].join('\n');
      const agent = await startAgent(t, spec(dir, store.port, jobKey, ['sh', '-c', script]));
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      t.ok(await waitFor(() => agent.records.filter((r) => r.type === 'out').length >= 2, 10000), 'both running');
      handle.stop(0, 'SIGTERM', 400);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000), 'both reported');
      t.match(exitsOf(events), [
        { rank: 0, exit_code: 7, signal: null },
        { rank: 1, exit_code: null, signal: 'SIGKILL' },
      ]);
      handle.start(1);
      t.ok(await waitFor(() => exitsOf(events, 1).length === 2, 10000), 'attempt 1 ran');
      t.match(exitsOf(events, 1), [{ exit_code: 0 }, { exit_code: 0 }]);
      t.equal(
        readFileSync(join(dir, 'logs/agent-test/attempt_1/rank_1.out'), 'utf8'),
        'attempt 1 rank 1\n',
        "attempt 1's own log",
      );
      t.equal(readFileSync(join(dir, 'logs/agent-test/attempt_0/rank_0.out'), 'utf8'), 'up\n');
      await handle.close();
      t.equal(await agent.exited, 0);
    },
  );

  t.test(
    'a fixed master.port: a restart binds it again although the last attempt left it in TIME_WAIT; ' +
      'a taken one is an error event',
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, () => {
          const p = (probe.address() as AddressInfo).port;
          probe.close(() => resolve(p));
        });
      });
      // Rank 0 serves on MASTER_PORT and closes first, so its side of the connection waits in TIME_WAIT.
      const worker = join(dir, 'rendezvous.cjs');
      writeFileSync(
        worker,
        `const net = require('net'); const port = Number(process.env.MASTER_PORT);
if (process.env.RANK === '0') { const s = net.createServer((c) => { c.end(); s.close(); }).listen(port); }
else { const dial = () => net.connect(port, '127.0.0.1')
  .on('error', () => setTimeout(dial, 20)).on('end', function () { this.end(); }); dial(); }`,
      );
      const s = spec(dir, store.port, jobKey, [process.execPath, worker]);
      s.master.port = port;
      for (const r of s.ranks) r.env.MASTER_PORT = String(port);
      const agent = await startAgent(t, s);
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000), 'attempt 0 ran');
      handle.start(1);
      t.ok(await waitFor(() => exitsOf(events, 1).length === 2, 10000), 'attempt 1 ran on the same port');
      t.match(
        [...exitsOf(events), ...exitsOf(events, 1)],
        [{ exit_code: 0 }, { exit_code: 0 }, { exit_code: 0 }, { exit_code: 0 }],
      );
      t.notOk(
        events.some((e) => e.type === 'error'),
        JSON.stringify(events.filter((e) => e.type === 'error')),
      );
      const taken = createServer().listen(port);
      await new Promise((resolve) => taken.once('listening', resolve));
      t.teardown(() => taken.close());
      handle.start(2);
      t.ok(await waitFor(() => events.some((e) => e.type === 'error' && e.attempt === 2), 10000));
      t.match(
        events.find((e) => e.type === 'error'),
        { message: `master.port: port ${port} is already in use; pick another or set master.port: auto` },
      );
      await handle.close();
      t.equal(await agent.exited, 0);
    },
  );

  t.test(
    'a failed worker is reported with its error file, the last 20 lines of its stderr, and its signal',
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const script = [
        'if [ "$RANK" = 0 ]; then',
        '  i=0; while [ $i -lt 25 ]; do echo "err line $i" >&2; i=$((i+1)); done',
        '  printf \'{"message":{"message":"boom"}}\' > "$TORCHELASTIC_ERROR_FILE"; exit 3',
        'fi',
        'printf "not json" > "$TORCHELASTIC_ERROR_FILE"; kill -SEGV $$',
      ].join('\n');
      const agent = await startAgent(t, spec(dir, store.port, jobKey, ['sh', '-c', script]));
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000));
      const [e0, e1] = exitsOf(events);
      t.match(e0, { exit_code: 3, signal: null, error_file: { message: { message: 'boom' } }, host: 'localhost' });
      t.same(
        e0.stderr_tail,
        Array.from({ length: 20 }, (_, i) => `err line ${i + 5}`),
      );
      t.match(e1, { exit_code: null, signal: 'SIGSEGV', error_file: 'not json' });
      t.match(e0.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      await handle.close();
      t.equal(await agent.exited, 0);
    },
  );

  t.test('output is relayed as whole lines, byte for byte as Node decodes them, and logged as written', async (t) => {
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    // quotes, backslash, tab, a control byte, multi-byte UTF-8, a lone invalid byte, and no final newline
    // a lone invalid byte, truncated sequences (one U+FFFD per maximal subpart), an overlong and a
    // surrogate encoding, and a sequence cut by the end of the stream
    const invalid = [
      0x61, 0xff, 0x62, 0xe2, 0x82, 0x41, 0xf0, 0x9f, 0x98, 0x20, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x0a,
    ];
    const text = Buffer.concat([
      Buffer.from('say "hi" \\ \t \x01 é€😀\n'),
      Buffer.from(invalid),
      Buffer.from('last'),
      Buffer.from([0xe2, 0x82]),
    ]);
    const file = join(dir, 'text.bin');
    writeFileSync(file, text);
    const agent = await startAgent(t, spec(dir, store.port, jobKey, ['sh', '-c', `cat ${file}; cat ${file} >&2`]));
    const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
    handle.start(0);
    t.ok(await waitFor(() => exitsOf(events).length === 2, 10000));
    await handle.close();
    t.equal(await agent.exited, 0);
    const expected = text.toString('utf8').split('\n');
    for (const stream of ['stdout', 'stderr']) {
      const lines = agent.records
        .filter((r) => r.type === 'out' && r.rank === 0 && r.stream === stream)
        .flatMap((r) => r.lines as string[]);
      t.same(lines, expected, stream);
    }
    t.same(
      readFileSync(join(dir, 'logs/agent-test/attempt_0/rank_1.err')),
      Buffer.concat([text, Buffer.from('\n')]),
      'the log holds the bytes',
    );
  });

  t.test('backend auto: the probe is published for the controller, and its decision reaches the workers', async (t) => {
    const dir = tempDir(t);
    // A file named like the driver library makes the driver "maybe loadable": the real probe then runs in a
    // child process (and finds the file is no library). Without it, the probe is answered without a child.
    const fakeDriver = join(dir, 'fake-driver');
    mkdirSync(fakeDriver);
    writeFileSync(join(fakeDriver, 'libcuda.so.1'), 'not a library');
    // Every Node process started under the agent notes its script, so the test sees whether a probe ran.
    const scripts = join(dir, 'node-scripts');
    const marker = join(dir, 'marker.cjs');
    writeFileSync(marker, `require('fs').appendFileSync(${JSON.stringify(scripts)}, String(process.argv[1]) + '\\n');`);
    const rounds = [
      ['no driver library', {}],
      ['a driver library that does not load', { LD_LIBRARY_PATH: fakeDriver, NODE_OPTIONS: `--require ${marker}` }],
    ] as const;
    const reason = /^no NVIDIA driver \(libcuda\.so\.1 not found\)$/;
    for (const [label, env] of rounds) {
      const { jobKey, store, events, control } = await controller(t);
      const agent = await startAgent(
        t,
        spec(dir, store.port, jobKey, ['sh', '-c', 'echo "backend=$DTRAIN_BACKEND"'], { DTRAIN_BACKEND: 'auto' }),
        { ...process.env, ...env },
      );
      const probe = JSON.parse((await control.storeClient.get(backendKeys.probe(0), 20000)).toString());
      t.match(probe, { node_rank: 0, host: 'localhost', backend: 'cpu', gpus: 0, reason }, `${label}: ${probe.reason}`);
      if (label !== rounds[0][0]) t.match(readFileSync(scripts, 'utf8'), /probe/, 'the probe ran in a child process');
      await control.storeClient.set(backendKeys.decision, 'cpu');
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000));
      const said = agent.records.filter((r) => r.type === 'out').flatMap((r) => r.lines as string[]);
      t.same(said, ['backend=cpu', 'backend=cpu'], label);
      await handle.close();
      t.equal(await agent.exited, 0);
    }
  });

  t.test(
    "samples: about once a second, each worker's own pid, CPU, memory, output age and progress; " +
      'the controller deletes a sample once read',
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      // three steps 0.5 s apart, 0.1 s of which waiting in collectives, 8 samples each; then one line and idle
      const worker =
        'const fs = require("fs"); const f = process.env.DTRAIN_PROGRESS_FILE;' +
        'for (let s = 1; s <= 3; s++) fs.appendFileSync(f, JSON.stringify({ step: s, time: 100 + s / 2, ' +
        'samples: 8, wait_s: 0.1, loss: 1 / s }) + "\\n");' +
        'console.log("up"); const big = Buffer.alloc(32 << 20, 1); setInterval(() => big[0]++, 1000);';
      const agent = await startAgent(t, spec(dir, store.port, jobKey, [process.execPath, '-e', worker]));
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      type Sample = Extract<AgentEvent, { type: 'sample' }>;
      const samples = () => events.filter((e): e is Sample => e.type === 'sample');
      t.ok(await waitFor(() => samples().some((s) => s.ranks.every((r) => r.step === 3)), 15000), 'samples come');
      const started = events.find((e) => e.type === 'started') as Extract<AgentEvent, { type: 'started' }>;
      const last = samples().at(-1)!;
      t.match(last, { node_rank: 0, attempt: 0 });
      t.same(
        last.ranks.map((r) => r.rank),
        [0, 1],
        "one event carries the node's ranks",
      );
      for (const r of last.ranks) {
        t.equal(r.pid, started.workers[r.rank].pid, `rank ${r.rank}: the pid the started event gave`);
        t.match(
          readFileSync(`/proc/${r.pid}/cmdline`, 'utf8'),
          /^[^\0]*node\0-e\0/,
          `rank ${r.rank}: the worker itself, not its shepherd`,
        );
        t.ok(r.rss_bytes > 32 << 20, `rank ${r.rank}: resident memory from statm (${r.rss_bytes})`);
        t.ok(r.cpu_percent >= 0 && r.last_output_age_s >= 0);
        t.match(r, { step: 3, loss: 1 / 3, step_s: 0.5, samples_per_s: 16, compute_s: 0.4 });
      }
      const t1 = events.indexOf(samples()[0]);
      await new Promise((r) => setTimeout(r, 1500));
      const n = samples().length;
      t.ok(n >= 2, `${n} samples so far`);
      const { StoreClient } = await import('../../../src/store/index.js');
      const { controlKeys } = await import('../../../src/launch/agent-contract.js');
      const probe = await StoreClient.connectTcp({ host: '127.0.0.1', port: store.port, jobKey });
      t.teardown(() => probe.close());
      const seqOf = (e: AgentEvent) => events.indexOf(e); // one node: arrival order is its sequence
      t.same(
        await probe.check([controlKeys.event(0, seqOf(started)), controlKeys.event(0, t1)]),
        [true, false],
        'the started event stays, a read sample is gone',
      );
      handle.stop(0, 'SIGTERM', 2000);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000));
      await handle.close();
      t.equal(await agent.exited, 0);
    },
  );

  t.test(
    "gather: one gathered event with every rank's stack or why not (python -I), nothing stopped; progress events",
    async (t) => {
      const dir = tempDir(t);
      const { jobKey, store, events, control } = await controller(t);
      const py =
        'def napping_in_user_code():\n    import time\n    print("up", flush=True)\n    time.sleep(60)\n' +
        'napping_in_user_code()';
      const s = spec(dir, store.port, jobKey, [
        'sh',
        '-c',
        'if [ "$RANK" = 0 ]; then exec /usr/bin/python3 -c "$PY"; else exec /usr/bin/python3 -I -c "$PY"; fi',
      ]);
      for (const r of s.ranks) r.env.PY = py;
      s.hang_timeout_ms = 2000;
      const agent = await startAgent(t, s);
      const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
      handle.start(0);
      const lines = () => agent.records.filter((r) => r.type === 'out').flatMap((r) => r.lines as string[]);
      t.ok(await waitFor(() => lines().filter((l) => l === 'up').length === 2, 20000), 'both ranks run');
      t.ok(await waitFor(() => events.some((e) => e.type === 'progress'), 5000), 'their output is progress');
      t.match(
        events.find((e) => e.type === 'progress'),
        { node_rank: 0, attempt: 0 },
      );
      handle.gather!(0, 7, false, 1500);
      t.ok(await waitFor(() => events.some((e) => e.type === 'gathered'), 10000), 'one gathered event');
      const gathered = events.find((e) => e.type === 'gathered') as Extract<AgentEvent, { type: 'gathered' }>;
      t.match(gathered, { node_rank: 0, attempt: 0, id: 7 });
      t.same(
        gathered.ranks.map((r) => [r.rank, r.language]),
        [
          [0, 'python'],
          [1, 'python'],
        ],
      );
      t.match(gathered.ranks[0].stack, /File "<string>", line \d+ in napping_in_user_code/);
      t.equal(gathered.ranks[0].missing, null);
      t.equal(gathered.ranks[1].stack, null);
      t.match(gathered.ranks[1].missing, /python runs with -I/);
      t.match(gathered.ranks[0], { recorder: null, recorder_missing: /never started the dtrain runtime/ });
      t.equal(exitsOf(events).length, 0, 'nothing was stopped');
      handle.kill(0);
      t.ok(await waitFor(() => exitsOf(events).length === 2, 10000));
      await handle.close();
    },
  );

  t.test('stdin that is not the contract: exit 3 with one line, no stack', async (t) => {
    for (const [input, why] of [
      ['not json\n', /stdin line is not JSON/],
      ['{"type":"launch"}\n', /expected a spec message, got "launch"/],
      ['', /stdin closed before the spec arrived/],
      // JSON, but no message (a TypeError before) or a spec without what the agent reads first
      ['null\n', /stdin line is not a message \(a JSON object\)/],
      ['[1, 2]\n', /stdin line is not a message \(a JSON object\)/],
      ['{"type":"spec"}\n', /not a spec dtrain's controller sends: its run_id is not a string/],
      ['{"type":"spec","run_id":"r","node":{},"ranks":"all"}\n', /its ranks is not a list of objects/],
    ] as const) {
      const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdin.end(input);
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      t.equal(code, 3, String(why));
      t.match(stderr, why);
      t.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
      t.notMatch(stderr, /internal error/);
    }
  });
});

t.test("each node's events are their own sequence: a node lost mid-report stalls nobody else", async (t) => {
  // What a node killed between reserving an event slot and writing it used to leave: a hole in one shared
  // sequence that every later event, from every node, waited behind (the job hung). Node 1 here reports
  // nothing at all while node 0 reports twice; node 0's events must arrive, in order, and node 1's later.
  const { jobKey, store, events, control } = await controller(t);
  control.handle(0, 'a', async () => {});
  control.handle(1, 'b', async () => {});
  const { StoreClient } = await import('../../../src/store/index.js');
  const { controlKeys } = await import('../../../src/launch/agent-contract.js');
  const agent = await StoreClient.connectTcp({ host: '127.0.0.1', port: store.port, jobKey });
  t.teardown(() => agent.close());
  const exit = (node: number, rank: number) => ({
    type: 'exit',
    node_rank: node,
    attempt: 0,
    rank,
    local_rank: 0,
    exit_code: 0,
    signal: null,
  });
  await agent.set(controlKeys.event(0, 0), JSON.stringify(exit(0, 0)));
  await agent.set(controlKeys.event(0, 1), JSON.stringify(exit(0, 1)));
  t.ok(await waitFor(() => events.length === 2, 5000), "node 0's events arrive although node 1 has reported nothing");
  t.same(
    events.map((e) => (e as { rank: number }).rank),
    [0, 1],
    'in order',
  );
  await agent.set(controlKeys.event(1, 0), JSON.stringify(exit(1, 2)));
  t.ok(await waitFor(() => events.length === 3, 5000), "and node 1's, when it reports");
});

t.test(
  "a node's agent started again is a new incarnation: its own keys, the earlier one unheard",
  { skip },
  async (t) => {
    // A lost node rejoining gets a second agent while the first, cut off, may still run: the controller must
    // hear only the new one, and the new one must never read commands meant for the old.
    const dir = tempDir(t);
    const { jobKey, store, events, control } = await controller(t);
    const { StoreClient } = await import('../../../src/store/index.js');
    const probe = await StoreClient.connectTcp({ host: '127.0.0.1', port: store.port, jobKey });
    t.teardown(() => probe.close());
    const first = await startAgent(t, spec(dir, store.port, jobKey, ['sh', '-c', 'exit 3']));
    const old = control.handle(0, 'localhost', async () => void (await first.exited));
    t.equal(control.nextIncarnation(0), 1, 'the next agent of node 0 is incarnation 1');
    const second = await startAgent(t, { ...spec(dir, store.port, jobKey, ['sh', '-c', 'exit 0']), incarnation: 1 });
    const now = control.handle(0, 'localhost', async () => void (await second.exited));
    const present = async (keys: string[], ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
        if ((await probe.check(keys)).every(Boolean)) return true;
      return false;
    };
    t.ok(await present(['ctl/hb/0', 'ctl/hb/0.1'], 5000), 'each heartbeats under its own key');
    old.start(0); // the earlier agent runs its workers (exit 3) and reports them under ctl/event/0/...
    t.ok(await present(['ctl/event/0/1'], 10000), 'the earlier agent reported');
    now.start(0);
    t.ok(await waitFor(() => exitsOf(events).length === 2, 10000), "the new agent's exits arrive");
    await new Promise((r) => setTimeout(r, 300));
    t.same(
      exitsOf(events).map((e) => e.exit_code),
      [0, 0],
      "only the new agent's events are heard (none of the earlier one's exit 3)",
    );
    await now.close();
    t.equal(await second.exited, 0);
    await old.close();
    t.equal(await first.exited, 0);
  },
);
