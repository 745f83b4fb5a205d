import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  PreAuthQueue,
  minPreAuthBudget,
  preAuthBudget,
  preAuthBudgetFor,
  preAuthShareOfOpenFiles,
} from '../../../src/store/admission.js';
import { openFileLimit } from '../../../src/store/open-files.js';
import { StoreServer } from '../../../src/store/server.js';
import type net from 'node:net';
import { ClientHandshake } from '../../../src/store/auth.js';
import { RawPeer, authenticateRaw } from '../../helpers/store-raw.js';

const jobKey = randomBytes(32);

t.test('the unauthenticated budget: the backlog, at most a quarter of the open files, at least 64', async (t) => {
  t.equal(preAuthBudgetFor(undefined), preAuthBudget, 'a limit not known: the full budget');
  t.equal(preAuthBudgetFor(1_048_576), preAuthBudget, 'a high limit: the full budget');
  t.equal(preAuthBudgetFor(4 * preAuthBudget), preAuthBudget);
  t.equal(preAuthBudgetFor(8192), 8192 * preAuthShareOfOpenFiles, 'a lower limit: its quarter');
  t.equal(preAuthBudgetFor(1024), 256, "the usual 1,024: strangers leave three quarters to the job's agents");
  t.equal(preAuthBudgetFor(100), minPreAuthBudget, 'never below the floor');
  t.ok(preAuthBudget >= 1000, 'a burst of a thousand agents fits');
});

t.test('a full queue evicts its oldest; those that left no longer count', async (t) => {
  const q = new PreAuthQueue<string>(3);
  t.equal(q.admit('a'), undefined);
  t.equal(q.admit('b'), undefined);
  t.equal(q.admit('c'), undefined);
  t.equal(q.admit('d'), 'a', 'the oldest goes');
  q.leave('b'); // authenticated
  t.equal(q.size, 2);
  t.equal(q.admit('e'), undefined, 'room again');
  t.equal(q.admit('f'), 'c');
  t.equal(q.size, 3);
});

t.test('the store sizes its budget by its own open-file limit', async (t) => {
  const limit = openFileLimit();
  t.ok(limit !== undefined && limit > 0, `this process may open ${limit} files`);
  const server = await StoreServer.start({ jobKey: randomBytes(32) });
  t.teardown(() => server.close());
  t.equal(server.options.maxUnauthenticated, preAuthBudgetFor(limit));
  const chosen = await StoreServer.start({ jobKey: randomBytes(32), maxUnauthenticated: 8 });
  t.teardown(() => chosen.close());
  t.equal(chosen.options.maxUnauthenticated, 8, 'an explicit budget wins');
});

t.test('every handshake gets its own deadline from one timer; an authenticated connection keeps none', async (t) => {
  const violations: string[] = [];
  const authTimeoutMs = 400;
  const server = await StoreServer.start({ jobKey, authTimeoutMs, onViolation: (why) => violations.push(why) });
  t.teardown(() => server.close());
  const closedAt = (peer: RawPeer) => peer.closedPromise.then(() => performance.now());
  const first = await RawPeer.tcp(server.port);
  const firstAt = performance.now();
  const honest = await RawPeer.tcp(server.port);
  await authenticateRaw(honest, jobKey);
  await new Promise((r) => setTimeout(r, 200));
  const second = await RawPeer.tcp(server.port);
  const secondAt = performance.now();
  const [firstClosed, secondClosed] = await Promise.all([closedAt(first), closedAt(second)]);
  t.ok(firstClosed - firstAt >= authTimeoutMs - 20, `the first closed after ${Math.round(firstClosed - firstAt)} ms`);
  t.ok(secondClosed - secondAt >= authTimeoutMs - 20, `the second after ${Math.round(secondClosed - secondAt)} ms`);
  t.ok(secondClosed - firstClosed >= 150, 'each at its own deadline, not the first one');
  t.same(violations, Array(2).fill(`not authenticated within ${authTimeoutMs} ms`));
  await new Promise((r) => setTimeout(r, authTimeoutMs));
  t.notOk(honest.closed, 'the authenticated connection outlives every deadline');
  t.equal(server.stats().unauthenticated, 0);
  honest.destroy();
});

t.test('the queue tells when its oldest was admitted and who is past a cutoff', async (t) => {
  const q = new PreAuthQueue<string>(8);
  t.equal(q.oldestAdmittedAt, undefined);
  q.admit('a', 10);
  q.admit('b', 20);
  q.admit('c', 30);
  t.equal(q.oldestAdmittedAt, 10);
  t.same(q.admittedBy(20), ['a', 'b']);
  q.leave('a');
  t.equal(q.oldestAdmittedAt, 20);
  t.same(q.admittedBy(5), []);
});

t.test('a violation names the TCP peer it came from (address and port)', async (t) => {
  const violations: [string, string][] = [];
  const server = await StoreServer.start({ jobKey, onViolation: (why, remote) => violations.push([why, remote]) });
  t.teardown(() => server.close());
  const nameOf = (peer: RawPeer) => {
    const socket = peer.stream as net.Socket;
    return `${socket.localAddress}:${socket.localPort}`;
  };
  // A stranger with another key: the store proves itself, the stranger hangs up without a proof.
  const stranger = await RawPeer.tcp(server.port);
  const strangerName = nameOf(stranger);
  stranger.send(new ClientHandshake(randomBytes(32)).hello());
  t.ok(Buffer.isBuffer(await stranger.next()), 'challenged');
  stranger.stream.end();
  await stranger.closedPromise;
  // A broken frame: over the pre-authentication size limit.
  const broken = await RawPeer.tcp(server.port);
  const brokenName = nameOf(broken);
  broken.writeRaw(Buffer.of(0, 0, 1, 1));
  await broken.closedPromise;
  while (violations.length < 2) await new Promise((r) => setTimeout(r, 10));
  t.match(violations, [
    [/closed after its HELLO/, strangerName],
    [/exceeds the limit/, brokenName],
  ]);
});
