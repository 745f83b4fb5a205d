/**
 * The store across real processes, as in a job: controller (this test) ↔ agent process over TCP,
 * agent ↔ worker processes over the Unix proxy. Killing a worker or the agent with SIGKILL must drop
 * exactly what they had blocked, and the store keeps serving.
 */
import t from 'tap';
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { exited, line, node, until } from '../../helpers/store-processes.js';

const jobKey = randomBytes(32);

t.test('SIGKILLed workers and agents leave nothing blocked; the store keeps serving', { timeout: 90000 }, async (t) => {
  const server = await StoreServer.start({ jobKey });
  const base = mkdtempSync(path.join(tmpdir(), 'dtrain-store-proc-'));
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });

  const agent = node('store-agent-child.ts');
  children.push(agent);
  agent.stdin!.write(`${JSON.stringify({ port: server.port, dir: path.join(base, 'agent'), attempt: 1 })}\n`);
  agent.stdin!.write(`${jobKey.toString('hex')}\n`);
  const socketPath = (await line(agent, /ready \S+/)).slice('ready '.length);
  await until('the agent blocks its GET', () => server.stats().blocked === 1);

  const spawnWorker = () => {
    const w = node('store-worker-child.ts', { DTRAIN_STORE: `unix:${socketPath}` });
    children.push(w);
    return w;
  };
  const [doomed, survivor] = [spawnWorker(), spawnWorker()];
  await Promise.all([line(doomed, /waiting/), line(survivor, /waiting/)]);
  await until('both workers wait at the barrier', () => server.stats().blocked === 3);

  doomed.kill('SIGKILL');
  await until("the killed worker's arrival is dropped", () => server.stats().blocked === 2);

  const controller = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.teardown(() => controller.close());
  const late = spawnWorker();
  const passed = Promise.all([line(survivor, /passed/), line(late, /passed/)]);
  await line(late, /waiting/);
  // Exactly three live arrivals now: survivor, late, and this one. A dead arrival would have let the
  // barrier through before this call.
  await until('two live workers wait', () => server.stats().blocked === 3);
  await controller.barrier('a1/b', 3, 10000);
  await passed;
  t.same(await Promise.all([exited(survivor), exited(late)]), [0, 0], 'workers passed the barrier and exited 0');
  const workersSeen = await controller.check([
    `a1/worker/${survivor.pid}`,
    `a1/worker/${late.pid}`,
    `worker/${late.pid}`,
  ]);
  t.same(workersSeen, [true, true, false], 'worker keys landed under the attempt prefix');

  agent.kill('SIGKILL');
  await until('the agent connection is gone', () => server.stats().connections === 1 && server.stats().blocked === 0);
  await controller.set('after', 'agent death');
  t.equal((await controller.get('after')).toString(), 'agent death', 'the store still serves');
});
