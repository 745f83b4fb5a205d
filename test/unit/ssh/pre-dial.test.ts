// PreDials (src/launch/ssh/pre-dial.ts): the SSH nodes' TCP connections dialled before ssh2 loads. Real
// sockets against local listeners: which targets are dialled, each taken once, a failed one never handed
// over, and nothing left open.
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { PreDials } from '../../../src/launch/ssh/pre-dial.js';
import { defaultSshSettings } from '../../../src/launch/ssh/target.js';

/** A listener that counts the connections it accepts and keeps them. */
async function listener(t: {
  teardown(fn: () => void): void;
}): Promise<{ port: number; accepted: Socket[]; server: Server }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, accepted, server };
}

/** An ssh_config file holding `text`, removed after the test. */
function sshConfig(t: { teardown(fn: () => void): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-predial-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config'), text);
  return join(dir, 'config');
}

const settings = { ...defaultSshSettings, user: 'nobody', identity_file: '/dev/null', known_hosts: '/dev/null' };
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
};

t.test('one connection per host:port among the first ssh.concurrency nodes, each taken once', async (t) => {
  const a = await listener(t);
  const b = await listener(t);
  const c = await listener(t);
  const nodes = [
    { node_rank: 0, host: '127.0.0.1', port: a.port },
    { node_rank: 1, host: '127.0.0.1', port: a.port }, // same host:port: not dialled twice
    { node_rank: 2, host: '127.0.0.1', port: b.port },
    { node_rank: 3, host: '127.0.0.1', port: c.port }, // beyond concurrency 3
  ];
  const dials = PreDials.start(nodes, { ...settings, concurrency: 3 }, '/dev/null');
  t.equal(dials.size, 2);
  await until(() => a.accepted.length + b.accepted.length === 2);
  t.equal(a.accepted.length, 1);
  t.equal(b.accepted.length, 1);
  t.equal(c.accepted.length, 0, 'the third target waits for the spawner');
  const sock = dials.take('127.0.0.1', a.port);
  t.ok(sock && !sock.destroyed, 'a live socket for the first target');
  t.equal(dials.take('127.0.0.1', a.port), undefined, 'taken once');
  t.equal(dials.take('127.0.0.1', c.port), undefined, 'never dialled');
  dials.close();
  t.equal(dials.size, 0);
  // the untaken socket to b is closed; the taken one stays with its taker
  const served = b.accepted[0];
  served.resume();
  await until(() => served.readableEnded || served.destroyed);
  t.ok(served.readableEnded || served.destroyed, 'close() ends what was not taken');
  t.notOk(sock!.destroyed, 'close() leaves a taken socket alone');
  sock!.destroy();
});

t.test('a connection that failed before it was taken is not handed over', async (t) => {
  const gone = await listener(t);
  const port = gone.port;
  gone.server.close();
  await once(gone.server, 'close');
  const dials = PreDials.start([{ node_rank: 0, host: '127.0.0.1', port }], settings, '/dev/null');
  t.equal(dials.size, 1);
  await new Promise((r) => setTimeout(r, 100)); // ECONNREFUSED arrives
  t.equal(dials.take('127.0.0.1', port), undefined, 'refused: the spawner dials afresh and reports its own error');
});

t.test('a connection the server closed before it was taken is not handed over, banner unread or not', async (t) => {
  for (const banner of [false, true]) {
    const l = await listener(t);
    const dials = PreDials.start([{ node_rank: 0, host: '127.0.0.1', port: l.port }], settings, '/dev/null');
    await until(() => l.accepted.length === 1);
    // sshd speaks first: its version line then sits unread in the socket, and no 'end' or 'close' follows
    if (banner) l.accepted[0].end('SSH-2.0-OpenSSH_9.2\r\n');
    else l.accepted[0].destroy();
    await new Promise((r) => setTimeout(r, 100));
    t.equal(dials.take('127.0.0.1', l.port), undefined, banner ? 'closed after its banner' : 'closed');
  }
});

t.test("only the first ssh.concurrency nodes are dialled: the spawner's first batch", async (t) => {
  const a = await listener(t);
  const b = await listener(t);
  const config = sshConfig(t, 'Host behind\n  HostName 127.0.0.1\n  ProxyJump hop\n');
  const nodes = [
    { node_rank: 0, host: 'behind' }, // within the batch but not dialled directly
    { node_rank: 1, host: '127.0.0.1', port: a.port },
    { node_rank: 2, host: '127.0.0.1', port: b.port }, // beyond concurrency 2: the spawner dials it later
  ];
  const dials = PreDials.start(nodes, { ...settings, concurrency: 2 }, config);
  t.equal(dials.size, 1);
  t.ok(dials.take('127.0.0.1', a.port));
  t.equal(dials.take('127.0.0.1', b.port), undefined);
  dials.close();
});

t.test('a port no socket can have is left to the spawner, and the others are still dialled', async (t) => {
  const a = await listener(t);
  const dials = PreDials.start(
    [
      { node_rank: 0, host: '127.0.0.1', port: 99999 },
      { node_rank: 1, host: '127.0.0.1', port: a.port },
    ],
    settings,
    '/dev/null',
  );
  t.equal(dials.size, 1);
  dials.close();
});

t.test('a target that does not resolve (ProxyCommand) is left to the spawner', async (t) => {
  const config = sshConfig(
    t,
    'Host viaproxy\n  ProxyCommand nc %h %p\nHost hop\n  HostName 127.0.0.1\nHost behind\n  ProxyJump hop\n',
  );
  const dials = PreDials.start(
    [
      { node_rank: 0, host: 'viaproxy' },
      { node_rank: 1, host: 'behind' },
    ],
    settings,
    config,
  );
  t.equal(dials.size, 0, 'neither a ProxyCommand host nor a ProxyJump host is dialled directly');
});
