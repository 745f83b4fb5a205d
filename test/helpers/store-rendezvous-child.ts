/**
 * Simulated agents for the store's scale test: reads {port, n, first, count} and the job key (hex) as two
 * lines on stdin, then runs `count` clients at once, each as an agent joins: connect and authenticate (with
 * the agents' retry), SET its member key, ADD the count, the N-th SETs "all", and every one GETs "all" (a
 * blocking GET) and checks it holds N. Prints `done`, or `failed <first error>`; holds its connections
 * until stdin ends.
 */
import { StoreClient } from '../../src/store/client.js';

const lines: string[] = [];
let wake: () => void = () => {};
let text = '';
process.stdin.on('data', (chunk: Buffer) => {
  text += chunk.toString();
  const parts = text.split('\n');
  text = parts.pop()!;
  lines.push(...parts);
  wake();
});
const nextLine = async () => {
  while (!lines.length) await new Promise<void>((r) => (wake = r));
  return lines.shift()!;
};

const { port, n, first, count } = JSON.parse(await nextLine()) as {
  port: number;
  n: number;
  first: number;
  count: number;
};
const jobKey = Buffer.from(await nextLine(), 'hex');
const timing = { retryForMs: 60000, timeoutMs: 60000 };

async function agent(i: number): Promise<StoreClient> {
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, ...timing });
  await c.set(`member/${i}`, String(process.pid));
  if ((await c.add('count', 1)) === n) await c.set('all', String(n));
  const all = (await c.get('all', timing.timeoutMs)).toString();
  if (all !== String(n)) throw new Error(`agent ${i} saw ${all} of ${n}`);
  return c;
}

try {
  const held = await Promise.all(Array.from({ length: count }, (_, k) => agent(first + k)));
  process.stdout.write('done\n');
  process.stdin.once('end', () => void Promise.all(held.map((c) => c.close())).then(() => process.exit(0)));
} catch (err) {
  process.stdout.write(`failed ${(err as Error).message}\n`);
  process.exit(1);
}
