// The SSH NodeSource (src/launch/ssh/node-source.ts): once the plan exists, `prepare` dials the remote
// nodes (pre-dial.ts) so sshd works while the launch loads, never this machine's node, and `close` ends
// what was not taken. Real sockets against a local listener.
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { configFromArgs } from '../../../src/config/index.js';
import { sshNodeSource } from '../../../src/launch/ssh/node-source.js';
import type { Plan } from '../../../src/plan/types.js';

t.test('prepare dials the remote nodes of the plan; close ends the connections not taken', async (t) => {
  const accepted: Socket[] = [];
  const closed: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.on('close', () => closed.push(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const { config } = await configFromArgs({ entrypoint: ['true'], nprocPerNode: 1, sets: [] });
  const plan = {
    nodes: [
      { node_rank: 0, host: 'localhost', nproc: 1, local: true },
      { node_rank: 1, host: '127.0.0.1', port, user: 'nobody', nproc: 1, local: false },
    ],
  } as unknown as Plan;
  const source = sshNodeSource();
  t.equal(source.kind, 'ssh');
  await source.prepare!(plan, config);
  for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(accepted.length, 1, 'one connection, to the remote node only');
  await source.close();
  for (let i = 0; i < 200 && closed.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(closed.length, 1, 'the connection not taken is ended by close()');
});
