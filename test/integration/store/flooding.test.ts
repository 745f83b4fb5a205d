/**
 * Floods, with real processes and sockets: strangers holding connections open at the store while agent
 * processes join (they join), and one worker flooding its node's store proxy while another worker of the
 * same node uses it (the other's GETs succeed; the flooder alone is refused, with its own error).
 */
import t, { type Test } from 'tap';
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { maxInFlightPerWorker } from '../../../src/store/proxy.js';
import { maxBlockedPerConnection } from '../../../src/store/state.js';
import { exited, line, node, until } from '../../helpers/store-processes.js';

const jobKey = randomBytes(32);

async function setUp(t: Test) {
  const violations: string[] = [];
  const server = await StoreServer.start({ jobKey, onViolation: (reason) => violations.push(reason) });
  const base = mkdtempSync(path.join(tmpdir(), 'dtrain-store-flood-'));
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });
  const agent = (name: string) => {
    const p = node('store-agent-child.ts');
    children.push(p);
    p.stdin!.write(
      `${JSON.stringify({ port: server.port, dir: path.join(base, name), attempt: 1, retryForMs: 20000 })}\n`,
    );
    p.stdin!.write(`${jobKey.toString('hex')}\n`);
    return p;
  };
  const child = (env: NodeJS.ProcessEnv) => {
    const p = node('store-flood-child.ts', env);
    children.push(p);
    return p;
  };
  return { server, violations, agent, child };
}

t.test('a store flooded by unauthenticated connections still lets agents join', { timeout: 120000 }, async (t) => {
  const { server, violations, agent } = await setUp(t);
  const strangers = new Set<Socket>();
  t.teardown(() => strangers.forEach((s) => s.destroy()));
  const stranger = () => {
    const s = connect({ host: '127.0.0.1', port: server.port });
    s.on('error', () => {});
    s.on('close', () => strangers.delete(s));
    strangers.add(s);
  };
  // Half as many again as the budget, both ends in this process: within the open-file limit (budget: a quarter).
  const budget = server.options.maxUnauthenticated;
  for (let i = 0; i < budget + budget / 2; i++) stranger();
  await until('the store holds a full budget of strangers', () => server.stats().unauthenticated === budget);
  // Strangers keep coming while the agents start: 16 new idle connections every 20 ms.
  const flood = setInterval(() => {
    for (let i = 0; i < 16; i++) stranger();
  }, 20);
  t.teardown(() => clearInterval(flood));
  const agents = Array.from({ length: 4 }, (_, i) => agent(`agent-${i}`));
  const ready = await Promise.all(agents.map((a) => line(a, /ready \S+/, 60000)));
  clearInterval(flood);
  t.equal(ready.length, 4, 'every agent authenticated and serves its proxy');
  t.equal(server.stats().authenticated, 4);
  t.ok(
    violations.some((v) => /evicted/.test(v)),
    'strangers were evicted for newer connections',
  );
  t.same(
    agents.map((a) => a.exitCode),
    [null, null, null, null],
    'no agent gave up',
  );
});

t.test(
  "one worker flooding its node's store proxy gets its own error; another worker's GETs succeed",
  { timeout: 120000 },
  async (t) => {
    const { server, agent, child } = await setUp(t);
    const a = agent('agent');
    const socket = (await line(a, /ready \S+/)).slice('ready '.length);
    await until('the agent blocks its GET', () => server.stats().blocked === 1);
    const flood = maxBlockedPerConnection;
    const flooder = child({ DTRAIN_STORE: `unix:${socket}`, FLOOD: String(flood) });
    const report = await line(flooder, /refused .*\n/, 90000);
    const [, count, rest] = /^refused (\d+) (.*)\n$/.exec(report)!;
    t.equal(Number(count), flood - maxInFlightPerWorker, 'every GET past its limit was refused, to it alone');
    t.match(rest, /^6 .*refused: this process has 4096 store requests in flight through its agent, its limit/);
    t.equal(server.stats().blocked, 1 + maxInFlightPerWorker, 'the store holds what the proxy let through');

    const controller = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
    t.teardown(() => controller.close());
    await controller.set('a1/present', 'here');
    const other = child({ DTRAIN_STORE: `unix:${socket}`, GET: 'present' });
    t.equal(await line(other, /(got|failed) .*\n/), 'got here\n', 'a GET of a key that exists');
    t.equal(await exited(other), 0);
    const waiting = child({ DTRAIN_STORE: `unix:${socket}`, GET: 'later' });
    const got = line(waiting, /(got|failed) .*\n/);
    await until('the blocked GET reaches the store', () => server.stats().blocked === 2 + maxInFlightPerWorker);
    await controller.set('a1/later', 'set after');
    t.equal(await got, 'got set after\n', 'a GET that waits for its key');
    t.equal(await exited(waiting), 0);
  },
);
