import t, { type Test } from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient, StoreAuthError } from '../../../src/store/client.js';
import { StoreConnectionError, StoreRequestError, StoreTimeoutError } from '../../../src/store/errors.js';
import { Op, Status } from '../../../src/store/frame.js';
import { StartError, ExitCode } from '../../../src/util/errors.js';
import { duplexPair } from '../../helpers/store-duplex-pair.js';

const jobKey = randomBytes(32);

async function fixture(t: Test, clients = 1) {
  const server = await StoreServer.start({ jobKey });
  const cs = await Promise.all(
    Array.from({ length: clients }, () =>
      StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey, timeoutMs: 5000 }),
    ),
  );
  t.teardown(async () => {
    await Promise.all(cs.map((c) => c.close()));
    await server.close();
  });
  return { server, cs };
}

t.test('every non-blocking op over TCP', async (t) => {
  const {
    cs: [c],
  } = await fixture(t);
  await c.set('k', 'v');
  t.equal((await c.get('k')).toString(), 'v');
  t.equal(await c.tryGet('nope'), undefined);
  t.equal(await c.add('n'), 1);
  t.equal(await c.add('n', 41n), 42);
  t.equal((await c.cas('c', null, 'one'))?.toString(), 'one');
  t.equal((await c.cas('c', 'wrong', 'two'))?.toString(), 'one');
  t.equal((await c.cas('c', 'one', 'two'))?.toString(), 'two');
  t.equal(await c.cas('absent', 'x', 'y'), undefined);
  t.same(await c.check(['k', 'nope', 'n']), [true, false, true]);
  t.equal(await c.delete('k'), true);
  t.equal(await c.delete('k'), false);
  await c.ping();
  const big = randomBytes(3 * 1024 * 1024);
  await c.set('big', big);
  t.ok((await c.get('big')).equals(big), 'a 3 MiB value round-trips');
  await t.rejects(
    c
      .add('k2', 1)
      .then(() => c.set('t', 'x'))
      .then(() => c.add('t', 1)),
    StoreRequestError,
  );
  await t.rejects(c.jobKey(), /not allowed on this connection/);
  await t.rejects(c.set('huge', Buffer.alloc(64 * 1024 * 1024)), /over the store's limit/, 'refused before sending');
  await c.ping();
  t.ok(c.isOpen, 'so the connection stays open');
});

t.test('blocking get/wait answered by other clients; answers come out of order', async (t) => {
  const { cs } = await fixture(t, 3);
  const [a, b, c] = cs as [StoreClient, StoreClient, StoreClient];
  const got = a.get('late', 5000);
  const waited = b.wait(['late', 'later'], 5000);
  await a.ping(); // answered while the GET on the same connection is still blocked
  t.equal(a.inFlight, 1);
  await c.set('late', 'L');
  t.equal((await got).toString(), 'L');
  await c.set('later', 'L2');
  await waited;
});

t.test('timeouts name the key and the time', async (t) => {
  const {
    server,
    cs: [c],
  } = await fixture(t);
  const started = Date.now();
  const err = await c.get('rank/7/addr', 150).catch((e) => e);
  t.type(err, StoreTimeoutError);
  t.match(err.message, /timed out after 150 ms waiting for key "rank\/7\/addr"/);
  t.equal(err.exitCode, ExitCode.cannotStart);
  t.ok(Date.now() - started >= 140, 'waited the full timeout');
  await t.rejects(c.wait(['x', 'y'], 50), /waiting for keys "x", "y"/);
  await t.rejects(c.get('frac', 20.6), /after 21 ms/, 'fractional timeouts are rounded, not refused');
  const forever = c.get('forever', Infinity);
  await c.set('forever', 'now');
  t.equal((await forever).toString(), 'now', 'an infinite timeout waits as long as the wire allows');
  await t.rejects(c.barrier('b', 2, 50), /at barrier "b"/);
  t.equal(server.stats().blocked, 0, 'nothing left blocked');
});

t.test('a barrier over four connections releases all at once; a new round reuses the name', async (t) => {
  const { cs } = await fixture(t, 4);
  for (let round = 0; round < 2; round++) {
    const arrived: number[] = [];
    const ps = cs.map((c, i) => c.barrier('sync', 4, 5000).then(() => arrived.push(i)));
    await Promise.all(ps);
    t.equal(arrived.length, 4, `round ${round}`);
  }
  const early = cs.slice(0, 3).map((c) => c.barrier('partial', 4, 100).catch((e: Error) => e));
  for (const p of early) t.type(await p, StoreTimeoutError, 'three of four time out');
});

t.test('a closed connection leaves nothing blocked and no arrival behind', async (t) => {
  const { server, cs } = await fixture(t, 2);
  const [gone, stays] = cs as [StoreClient, StoreClient];
  const pending = [gone.get('x', 60000), gone.barrier('b', 2, 60000)].map((p) =>
    p.then(
      () => undefined,
      (e: Error) => e,
    ),
  );
  await stays.ping();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(server.stats().blocked, 2);
  await gone.close();
  for (const p of pending) t.type(await p, StoreConnectionError);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(server.stats().blocked, 0);
  await t.rejects(stays.barrier('b', 2, 100), StoreTimeoutError, 'the closed client no longer counts');
});

t.test('cancel answers a blocked request on the same connection', async (t) => {
  const {
    cs: [c],
  } = await fixture(t);
  const raw = c.send(Op.get, [Buffer.from('never'), Buffer.from('60000')]);
  t.equal(await c.cancel(raw.id), true);
  t.equal((await raw.response).code, Status.cancelled);
  t.equal(await c.cancel(raw.id), false);
});

t.test('a thousand pipelined requests on one connection', async (t) => {
  const {
    cs: [c],
  } = await fixture(t);
  await Promise.all(Array.from({ length: 1000 }, (_, i) => c.set(`k${i}`, String(i))));
  const values = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.get(`k${i}`)));
  t.same(
    values.map((v) => Number(v)),
    Array.from({ length: 1000 }, (_, i) => i),
  );
  t.equal(await c.add('ctr', 0), 0);
  await Promise.all(Array.from({ length: 500 }, () => c.add('ctr', 1)));
  t.equal(await c.add('ctr', 0), 500);
});

t.test('a fixed port that is taken gives StartError (exit 3) at once', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const port = (holder.address() as net.AddressInfo).port;
  const started = Date.now();
  const err = await StoreServer.start({ jobKey, host: '127.0.0.1', port }).catch((e) => e);
  t.type(err, StartError);
  t.equal(err.exitCode, 3);
  t.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: the port is already in use`));
  t.ok(Date.now() - started < 1000, 'no hang');
  await t.rejects(StoreServer.start({ jobKey: Buffer.alloc(4) }), /at least 16 bytes/);
});

t.test('connecting: refused, wrong key, and the server going away', async (t) => {
  const server = await StoreServer.start({ jobKey });
  const port = server.port;
  const wrong = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey: randomBytes(32) }).catch((e) => e);
  t.type(wrong, StoreAuthError);
  t.equal(wrong.exitCode, 3);
  t.match(wrong.message, /did not prove knowledge of the job key/);
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey });
  const closed = new Promise<Error | undefined>((r) => c.once('close', r));
  const blocked = c.get('k', 60000).catch((e: Error) => e);
  await server.close();
  t.type(await closed, StoreConnectionError, "a close the client didn't ask for carries its reason");
  t.match(((await blocked) as Error).message, /connection closed/);
  await t.rejects(c.ping(), /connection is closed/);
  const refused = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, timeoutMs: 2000 }).catch((e) => e);
  t.type(refused, StoreConnectionError);
  t.match(refused.message, /connection refused/);
});

t.test('over an arbitrary Duplex (as an SSH-forwarded channel is)', async (t) => {
  const server = await StoreServer.start({ jobKey });
  t.teardown(() => server.close());
  const [near, far] = duplexPair();
  server.serveStream(far, 'channel');
  const c = await StoreClient.overStream(near, jobKey, { label: 'store via ssh' });
  await c.set('over', 'stream');
  t.equal((await c.get('over')).toString(), 'stream');
  t.equal(server.stats().authenticated, 1);
  await c.close();
  const [near2, far2] = duplexPair();
  server.serveStream(far2, 'channel');
  await t.rejects(
    StoreClient.overStream(near2, randomBytes(32), { label: 'store via ssh' }),
    /store via ssh: the store did not prove/,
  );
});
