/**
 * Many agents join at once: a store in its own process (as in the controller) and a thousand simulated
 * agents in four processes (the store's real client, its retry included), all connecting at the same
 * moment. Every one must get in and see everyone without a single eviction: the budget of unauthenticated
 * connections holds a burst the kernel hands over at once. The time for 10,000 is
 * scripts/bench/store-rendezvous.mjs's, not this test's.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { exited, line, node } from '../../helpers/store-processes.js';

const jobKey = randomBytes(32);
const agents = 1000;
const processes = 4;

t.test('a thousand agents joining at once all get in and rendezvous', { timeout: 120000 }, async (t) => {
  const store = node('store-server-child.ts');
  const children = [store];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.stdin!.end();
    await Promise.all(children.map(exited));
  });
  store.stdin!.write(`${jobKey.toString('hex')}\n`);
  const started = JSON.parse((await line(store, /listening .*\n/)).slice('listening '.length)) as {
    port: number;
    budget: number;
    openFiles: number;
  };
  t.ok(started.openFiles > 2 * agents, `the store may open ${started.openFiles} files`);
  t.ok(started.budget >= agents, `the unauthenticated budget (${started.budget}) holds the whole burst`);

  const clients = Array.from({ length: processes }, (_, p) => {
    const child = node('store-rendezvous-child.ts');
    children.push(child);
    const count = agents / processes;
    child.stdin!.write(`${JSON.stringify({ port: started.port, n: agents, first: p * count, count })}\n`);
    return child;
  });
  // The job key last, to every process at once: the agents all connect in the same moment.
  for (const c of clients) c.stdin!.write(`${jobKey.toString('hex')}\n`);
  const results = await Promise.all(clients.map((c) => line(c, /(done|failed .*)\n/, 90000)));
  t.same(results, Array(processes).fill('done\n'), 'every agent saw all the others');

  store.stdin!.write('stats\n');
  const stats = JSON.parse((await line(store, /stats .*\n/)).slice('stats '.length)) as {
    authenticated: number;
    unauthenticated: number;
    evicted: number;
  };
  t.equal(stats.authenticated, agents, 'every agent holds an authenticated connection');
  t.equal(stats.unauthenticated, 0);
  t.equal(stats.evicted, 0, 'no agent was evicted on its way in');
});
