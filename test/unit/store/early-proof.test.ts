/**
 * The client's first requests travel with its PROOF instead of a round trip after the welcome
 * (PROTOCOL.md "Order"). The store must still execute nothing before it accepts the proof, and a client
 * turned away after its proof must replay those requests on its next connection, executed exactly once.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import {
  ClientHandshake,
  RejectReason,
  ServerHandshake,
  Session,
  rejectMessage,
  rejectText,
} from '../../../src/store/auth.js';
import { Op, Status, decodeBody, encodeBody, frame } from '../../../src/store/frame.js';
import { RawPeer } from '../../helpers/store-raw.js';

const jobKey = randomBytes(32);

/** A TCP listener whose connections `handle` serves, closed at the end of the test. */
async function listen(t: Test, handle: (socket: net.Socket, index: number) => void): Promise<number> {
  let count = 0;
  const tcp = net.createServer({ noDelay: true }, (socket) => handle(socket, count++));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => tcp.close(() => resolve())));
  return (tcp.address() as net.AddressInfo).port;
}

/** Plays the store's side of the handshake by hand up to the accepted proof; returns the server session. */
async function acceptProof(peer: RawPeer): Promise<Session> {
  const hs = new ServerHandshake(jobKey);
  const hello = await peer.next();
  if (!Buffer.isBuffer(hello)) throw new Error(`no hello: ${hello}`);
  peer.send(hs.answerHello(hello));
  const proof = await peer.next();
  if (!Buffer.isBuffer(proof)) throw new Error(`no proof: ${proof}`);
  return hs.acceptProof(proof);
}

t.test('the first request travels with the proof, before the store has welcomed the client', async (t) => {
  const seen: string[] = [];
  const port = await listen(t, (socket) => {
    const peer = new RawPeer(socket);
    void (async () => {
      const session = await acceptProof(peer);
      const early = await peer.next(2000);
      if (!Buffer.isBuffer(early)) return void seen.push(`no request before the welcome: ${early}`);
      const request = decodeBody(session.open(early));
      seen.push(`${request.code} ${request.args.map(String).join(' ')}`);
      peer.writeRaw(session.seal(encodeBody(Status.ok, 0, []))); // the welcome, only now
      peer.writeRaw(session.seal(encodeBody(Status.ok, request.id, [])));
    })();
  });
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, timeoutMs: 5000 });
  t.teardown(() => c.close());
  await c.set('early', 'v');
  t.same(seen, [`${Op.set} early v`], 'the SET reached the store before any welcome was sent');
});

t.test('a proof followed in the same write by a large request: executed after the proof', async (t) => {
  const server = await StoreServer.start({ jobKey });
  t.teardown(() => server.close());
  const peer = await RawPeer.tcp(server.port);
  const hs = new ClientHandshake(jobKey);
  peer.send(hs.hello());
  const challenge = await peer.next();
  const proof = hs.answerChallenge(challenge as Buffer);
  const session = hs.session();
  const value = randomBytes(4096);
  // Far over the 256-byte limit before authentication: it applies to the proof, not what follows it.
  peer.writeRaw(Buffer.concat([frame(proof), session.seal(encodeBody(Op.set, 7, ['big', value]))]));
  const welcome = decodeBody(session.open((await peer.next()) as Buffer));
  t.same([welcome.code, welcome.id], [Status.ok, 0]);
  const answer = decodeBody(session.open((await peer.next()) as Buffer));
  t.same([answer.code, answer.id], [Status.ok, 7]);
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.ok((await c.get('big', 1000)).equals(value));
  await c.close();
  peer.destroy();
});

t.test('a wrong proof with requests behind it in the same write: REJECT, nothing executed', async (t) => {
  const violations: string[] = [];
  const server = await StoreServer.start({ jobKey, onViolation: (why) => violations.push(why) });
  t.teardown(() => server.close());
  const peer = await RawPeer.tcp(server.port);
  peer.send(new ClientHandshake(randomBytes(32)).hello());
  t.ok(Buffer.isBuffer(await peer.next()));
  const guessed = new Session(randomBytes(32), randomBytes(32));
  peer.writeRaw(
    Buffer.concat([
      frame(Buffer.concat([Buffer.from('DTS'), Buffer.of(3), randomBytes(32)])),
      guessed.seal(encodeBody(Op.set, 1, ['smuggled', 'x'])),
      guessed.seal(encodeBody(Op.add, 2, ['smuggled-count', '1'])),
    ]),
  );
  t.match(rejectText((await peer.next()) as Buffer), /wrong job key/);
  t.equal(await peer.next(), 'closed');
  t.match(violations, [/wrong proof/]);
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.same(await c.check(['smuggled', 'smuggled-count']), [false, false], 'neither request was executed');
  await c.close();
});

t.test('turned away after its proof: the requests sent with it are replayed once on the next connection', async (t) => {
  const server = await StoreServer.start({ jobKey });
  t.teardown(() => server.close());
  const turnedAway: string[] = [];
  const port = await listen(t, (socket, index) => {
    if (index > 0) return server.serveStream(socket, 'front');
    // The first connection: proof accepted by hand, then "busy" instead of the welcome, as an eviction is.
    const peer = new RawPeer(socket);
    void (async () => {
      const session = await acceptProof(peer);
      const early = await peer.next(2000);
      if (Buffer.isBuffer(early)) turnedAway.push(decodeBody(session.open(early)).args.map(String).join(' '));
      peer.writeRaw(frame(rejectMessage(RejectReason.busy)));
      socket.end();
    })();
  });
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, retryForMs: 10000, timeoutMs: 5000 });
  t.teardown(() => c.close());
  t.equal(await c.add('joined', 1), 1, 'executed once, on the second connection');
  t.same(turnedAway, ['joined 1'], 'the first connection carried the request and was turned away');
  t.equal(await c.add('joined', 1), 2, 'the replacement connection goes on serving');
  t.equal(server.stats().authenticated, 1);
});

t.test('turned away after its proof with no time to retry: the request fails with the reason', async (t) => {
  const port = await listen(t, (socket) => {
    const peer = new RawPeer(socket);
    void (async () => {
      await acceptProof(peer);
      peer.writeRaw(frame(rejectMessage(RejectReason.busy)));
      socket.end();
    })();
  });
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, timeoutMs: 5000 });
  await t.rejects(c.set('k', 'v'), /too many connections still authenticating/);
  t.notOk(c.isOpen);
});
