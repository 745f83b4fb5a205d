/**
 * Attacks on the store's TCP port with real sockets: each must close only the attacker's connection,
 * have no effect on the data, and leave the server serving a clean client.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { StoreServer, type StoreServerOptions } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { ClientHandshake, rejectText } from '../../../src/store/auth.js';
import { Op, Status, decodeBody, encodeBody } from '../../../src/store/frame.js';
import { RawPeer, authenticateRaw } from '../../helpers/store-raw.js';

const jobKey = randomBytes(32);
type T = Test;

async function startServer(t: T, opts: Partial<StoreServerOptions> = {}) {
  const violations: string[] = [];
  const server = await StoreServer.start({ jobKey, onViolation: (reason) => violations.push(reason), ...opts });
  t.teardown(() => server.close());
  return { server, violations };
}

/** A clean client can still authenticate and use the store. */
async function assertServing(t: T, server: StoreServer) {
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey, timeoutMs: 3000 });
  const key = `probe-${randomBytes(4).toString('hex')}`;
  await c.set(key, 'ok');
  t.equal((await c.get(key, 1000)).toString(), 'ok', 'server still serves a clean client');
  await c.close();
}

t.test('a proof made without the key gets REJECT and a close', async (t) => {
  const { server, violations } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  peer.send(new ClientHandshake(randomBytes(32)).hello());
  const challenge = await peer.next();
  t.ok(Buffer.isBuffer(challenge));
  peer.send(Buffer.concat([Buffer.from('DTS'), Buffer.of(3), randomBytes(32)]));
  const answer = await peer.next();
  t.match(rejectText(answer as Buffer), /wrong job key/);
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/wrong proof/]);
  await assertServing(t, server);
});

t.test('a client with the wrong key never sends a proof and fails with a StartError', async (t) => {
  const { server, violations } = await startServer(t);
  const err = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey: randomBytes(32) }).catch(
    (e) => e,
  );
  t.equal(err.exitCode, 3);
  t.match(err.message, /did not prove knowledge of the job key/);
  await new Promise((r) => setTimeout(r, 50));
  t.match(violations, [/closed after its HELLO without proving the job key/], 'no proof at all, so no wrong one');
  t.equal(server.stats().unauthenticated, 0);
  await assertServing(t, server);
});

t.test('a frame replayed on another connection is refused and not executed', async (t) => {
  const { server, violations } = await startServer(t);
  const a = await RawPeer.tcp(server.port);
  const sa = await authenticateRaw(a, jobKey);
  const recorded = sa.seal(encodeBody(Op.add, 1, ['replayed', '1']));
  a.writeRaw(recorded);
  t.equal(decodeBody(sa.open((await a.next()) as Buffer)).code, Status.ok);
  const b = await RawPeer.tcp(server.port);
  await authenticateRaw(b, jobKey);
  b.writeRaw(recorded);
  t.equal(await b.next(), 'closed');
  t.match(violations, [/MAC does not match/]);
  a.destroy();
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.equal((await c.get('replayed')).toString(), '1', 'the replay did not add again');
  await c.close();
  await assertServing(t, server);
});

t.test('a tampered frame closes the connection without effect', async (t) => {
  const { server, violations } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  const session = await authenticateRaw(peer, jobKey);
  const sealed = session.seal(encodeBody(Op.set, 1, ['tampered', 'yes']));
  sealed[4 + 8 + 10] ^= 0x01; // one bit of the body
  peer.writeRaw(sealed);
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/MAC/]);
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.same(await c.check(['tampered', 'tamperee']), [false, false]);
  await c.close();
  await assertServing(t, server);
});

t.test('reusing a sequence number on the same connection is refused', async (t) => {
  const { server, violations } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  const session = await authenticateRaw(peer, jobKey);
  const first = session.seal(encodeBody(Op.add, 1, ['seq', '1']));
  peer.writeRaw(first);
  t.equal(decodeBody(session.open((await peer.next()) as Buffer)).code, Status.ok);
  peer.writeRaw(first);
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/sequence number 0, expected 1/]);
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.equal(await c.add('seq', 0), 1);
  await c.close();
});

t.test('requests before authentication are never executed', async (t) => {
  const { server } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  peer.send(encodeBody(Op.set, 1, ['preauth', 'x']));
  t.equal(await peer.next(), 'closed');
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.same(await c.check(['preauth']), [false]);
  await c.close();
});

t.test('an oversize frame before authentication closes at its length header', async (t) => {
  const { server, violations } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(257);
  peer.writeRaw(header); // no body needed: the length alone is refused
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/257 bytes exceeds the limit of 256/]);
  await assertServing(t, server);
});

t.test('an oversize frame after authentication closes that connection only', async (t) => {
  const { server, violations } = await startServer(t, { maxBodyBytes: 1024 });
  const other = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const peer = await RawPeer.tcp(server.port);
  await authenticateRaw(peer, jobKey);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1024 + 40 + 1);
  peer.writeRaw(header);
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/exceeds the limit of 1064/]);
  await other.set('fine', 'x'.repeat(900));
  await t.rejects(other.set('big', 'x'.repeat(2000)), /connection closed/, 'the limit applies to honest clients too');
  await assertServing(t, server);
});

t.test('slow-loris: a trickled handshake is cut at the 5 s default', async (t) => {
  const { server, violations } = await startServer(t);
  const peer = await RawPeer.tcp(server.port);
  const hello = Buffer.concat([Buffer.of(0, 0, 0, 37), new ClientHandshake(jobKey).hello()]);
  const started = Date.now();
  let i = 0;
  const drip = setInterval(() => peer.writeRaw(hello.subarray(i, ++i)), 300);
  t.teardown(() => clearInterval(drip));
  t.equal(await peer.next(8000), 'closed');
  clearInterval(drip);
  const took = Date.now() - started;
  t.ok(took >= 4800 && took < 7000, `closed after ${took} ms`);
  t.match(violations, [/not authenticated within 5000 ms/]);
  await assertServing(t, server);
});

t.test('a full budget of unauthenticated connections evicts the oldest: an honest client gets in', async (t) => {
  const { server, violations } = await startServer(t, { maxUnauthenticated: 8 });
  const idle = await Promise.all(Array.from({ length: 8 }, () => RawPeer.tcp(server.port)));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(server.stats().unauthenticated, 8);
  const newer = await RawPeer.tcp(server.port);
  t.match(rejectText((await idle[0].next()) as Buffer), /too many connections/, 'the oldest is told "busy"');
  t.equal(await idle[0].next(), 'closed');
  const honest = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.teardown(() => honest.close());
  await honest.set('k', 'v');
  // 6 idle ones left (the honest client evicted the second oldest on its way in) and the newer one
  t.equal(server.stats().unauthenticated, 7, 'the authenticated one no longer counts');
  t.equal(server.stats().authenticated, 1);
  t.ok(violations.filter((v) => /evicted/.test(v)).length >= 2, 'each eviction is a violation');
  for (const p of [...idle, newer]) p.destroy();
  await Promise.all([...idle, newer].map((p) => p.closedPromise));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(server.stats().unauthenticated, 0, 'closed ones are no longer counted');
  await assertServing(t, server);
});

t.test('garbage, wrong magic, a second hello and a wrong version each close', async (t) => {
  const { server } = await startServer(t);
  const bodies = [
    randomBytes(40),
    Buffer.concat([Buffer.from('XYZ'), Buffer.of(1, 1), randomBytes(32)]),
    Buffer.alloc(0),
  ];
  for (const body of bodies) {
    const peer = await RawPeer.tcp(server.port);
    peer.send(body);
    t.equal(await peer.next(), 'closed');
  }
  const twice = await RawPeer.tcp(server.port);
  const hello = new ClientHandshake(jobKey).hello();
  twice.send(hello);
  twice.send(hello);
  t.ok(Buffer.isBuffer(await twice.next()), 'first hello answered');
  t.match(rejectText((await twice.next()) as Buffer), /wrong job key/);
  t.equal(await twice.next(), 'closed');
  const old = await RawPeer.tcp(server.port);
  const v9 = Buffer.from(hello);
  v9[4] = 9;
  old.send(v9);
  t.match(rejectText((await old.next()) as Buffer), /version mismatch/);
  await assertServing(t, server);
  t.equal(server.stats().unauthenticated, 0);
});
