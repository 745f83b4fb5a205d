// `dtrain agent --stdio` as remote spawners use it: hello, spec on stdin, control through the store,
// output records on stdout; stdin EOF (controller gone) kills every worker.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import t from 'tap';
import type { AgentEvent, AgentSpec } from '../../../src/launch/agent-contract.js';
import { StoreControl } from '../../../src/launch/store-node.js';
import { StoreServer } from '../../../src/store/index.js';
import { packageVersion } from '../../../src/util/version.js';
import { alive, built, dtrainBin, fixtures, tempDir, waitFor } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

function spec(dir: string, port: number, jobKey: Buffer, command: string[]): AgentSpec {
  const ranks = [0, 1].map((rank) => ({
    rank, node_rank: 0, host: 'localhost', local_rank: rank, data: rank, pipeline: 0, tensor: 0, command,
    env: { RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: 'auto', MASTER_PORT: 'auto', DTRAIN_STORE: 'auto', TORCHELASTIC_RUN_ID: 'auto' },
  }));
  return {
    type: 'spec', run_id: 'agent-test', node: { node_rank: 0, host: 'localhost', nproc: 2, local: true }, ranks,
    world_size: 2, nnodes: 1, workdir: dir, master: { addr: '127.0.0.1', port: 'auto' },
    store: { kind: 'tcp', host: '127.0.0.1', port }, job_key: jobKey.toString('base64'), restarts_max: 0,
    heartbeat_interval_ms: 200, logs: { dir: join(dir, 'logs'), ranks: 'all', tee: true },
  };
}

/** A store and the controller's side of it (StoreControl), collecting the agents' events; closed at teardown. */
async function controller(t: { teardown(fn: () => void): void }) {
  const jobKey = randomBytes(32);
  const store = await StoreServer.start({ jobKey });
  t.teardown(() => store.close());
  const events: AgentEvent[] = [];
  const control = await StoreControl.open({ host: '127.0.0.1', port: store.port, jobKey }, (e) => events.push(e), () => {}, { interval: 200, timeout: 5000 });
  t.teardown(() => control.close());
  return { jobKey, store, events, control };
}

async function startAgent(t: { teardown(fn: () => void): void }, s: AgentSpec) {
  const child = spawn(process.execPath, [dtrainBin, 'agent', '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout! });
  const records: { type: string; [k: string]: unknown }[] = [];
  lines.on('line', (l) => records.push(JSON.parse(l)));
  child.stdin!.write(JSON.stringify({ type: 'hello', version: packageVersion() }) + '\n');
  child.stdin!.write(JSON.stringify(s) + '\n');
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, records, exited };
}

t.test('start, events, output records, exit', { skip }, async (t) => {
  const dir = tempDir(t);
  const { jobKey, store, events, control } = await controller(t);
  const agent = await startAgent(t, spec(dir, store.port, jobKey, ['sh', '-c', 'echo "hi from $RANK port $MASTER_PORT"; exit $RANK']));
  const handle = control.handle(0, 'localhost', async () => void (await agent.exited));
  handle.start(0);
  t.ok(await waitFor(() => events.filter((e) => e.type === 'exit').length === 2, 10000), 'two exit events');
  const started = events.find((e) => e.type === 'started');
  t.match(started, { node_rank: 0, attempt: 0 });
  const exits = events.filter((e) => e.type === 'exit').sort((a, b) => (a as { rank: number }).rank - (b as { rank: number }).rank);
  t.match(exits, [{ rank: 0, exit_code: 0 }, { rank: 1, exit_code: 1 }]);
  await handle.close();
  t.equal(await agent.exited, 0, 'exit command: agent exits 0');
  t.match(agent.records[0], { type: 'hello', pid: agent.child.pid });
  const out = agent.records.filter((r) => r.type === 'out' && r.stream === 'stdout');
  const port = (started as { master_port: number }).master_port;
  t.same(out.map((r) => r.lines).flat().sort(), [`hi from 0 port ${port}`, `hi from 1 port ${port}`]);
});

t.test('a controller of another version: the agent answers the hello, then exits 3 without running the spec behind it', { skip }, async (t) => {
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
  const child = spawn(process.execPath, [dtrainBin, 'agent', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.write(JSON.stringify({ type: 'hello', version: '0.0.0-other' }) + '\n');
  child.stdin!.write(JSON.stringify(spec(dir, port, randomBytes(32), ['sh', '-c', 'exit 0'])) + '\n');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.equal(code, 3);
  t.match(JSON.parse(stdout.split('\n')[0]!), { type: 'hello', version: packageVersion() });
  t.match(stderr, /the controller runs 0\.0\.0-other, this agent .*: not starting/);
  t.equal(dialled, 0, 'it never dialled the store the spec names');
});

t.test('stdin EOF: the agent kills its workers and exits 1', { skip }, async (t) => {
  const dir = tempDir(t);
  const { jobKey, store, events, control } = await controller(t);
  const agent = await startAgent(t, spec(dir, store.port, jobKey, [join(fixtures, 'escapee.sh'), dir, 'wait']));
  control.handle(0, 'localhost', async () => {}).start(0);
  t.ok(await waitFor(() => events.some((e) => e.type === 'started'), 10000));
  t.ok(await waitFor(() => { try { return [0, 1].every((r) => readFileSync(join(dir, `escapee_${r}`), 'utf8').trim()); } catch { return false; } }, 5000));
  const pids = [0, 1].flatMap((r) => ['escapee', 'worker'].map((k) => Number(readFileSync(join(dir, `${k}_${r}`), 'utf8'))));
  agent.child.stdin!.end();
  t.equal(await agent.exited, 1);
  t.ok(await waitFor(() => !pids.some(alive), 3000), 'workers and setsid grandchildren gone');
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
  const exit = (node: number, rank: number) => ({ type: 'exit', node_rank: node, attempt: 0, rank, local_rank: 0, exit_code: 0, signal: null });
  await agent.set(controlKeys.event(0, 0), JSON.stringify(exit(0, 0)));
  await agent.set(controlKeys.event(0, 1), JSON.stringify(exit(0, 1)));
  t.ok(await waitFor(() => events.length === 2, 5000), "node 0's events arrive although node 1 has reported nothing");
  t.same(events.map((e) => (e as { rank: number }).rank), [0, 1], 'in order');
  await agent.set(controlKeys.event(1, 0), JSON.stringify(exit(1, 2)));
  t.ok(await waitFor(() => events.length === 3, 5000), "and node 1's, when it reports");
});
