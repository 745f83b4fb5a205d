/**
 * Structure-aware fuzzing of the store server, before and after authentication.
 *
 * Most connections are in-memory Duplex pairs handed to server.serveStream (the very code path TCP
 * sockets take), so 200k frames fit in well under a minute on a busy machine; a slice of the same
 * generators also runs over real TCP sockets. Every frame's fate is checked against a spec oracle
 * (test/helpers/store-fuzz.ts): garbage is never answered with success, broken framing closes only
 * that connection, and a clean client is served afterwards.
 *
 * Reproduce a failure with DTRAIN_FUZZ_SEED=<seed printed in the output>; DTRAIN_FUZZ_FRAMES scales
 * the frame counts (default 100000 each side).
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { StoreProxy } from '../../../src/store/proxy.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClientHandshake, rejectText, RejectReason, rejectMessage } from '../../../src/store/auth.js';
import { Op, Status, decodeBody, type Message } from '../../../src/store/frame.js';
import { duplexPair } from '../../helpers/store-duplex-pair.js';
import { RawPeer, authenticateRaw } from '../../helpers/store-raw.js';
import {
  Rng,
  body,
  expect,
  mutate,
  okShapeProblem,
  stampId,
  validRequest,
  type Expectation,
} from '../../helpers/store-fuzz.js';

const seed = Number(process.env.DTRAIN_FUZZ_SEED ?? 20261125);
const target = Number(process.env.DTRAIN_FUZZ_FRAMES ?? 100_000);
const jobKey = randomBytes(32);
t.comment(`fuzz seed ${seed} (DTRAIN_FUZZ_SEED to reproduce), ${target} frames per side`);

type StreamMaker = () => Promise<Duplex>;

function inMemory(server: StoreServer): StreamMaker {
  return async () => {
    const [mine, theirs] = duplexPair();
    server.serveStream(theirs, 'fuzz');
    return mine;
  };
}

function overTcp(server: StoreServer): StreamMaker {
  return () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: server.port, noDelay: true });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
}

/** Writes bytes in random pieces, so frame boundaries and chunk boundaries rarely agree. */
function writeChunked(rng: Rng, peer: RawPeer, bytes: Buffer): void {
  if (rng.chance(0.7)) return peer.writeRaw(bytes);
  for (let at = 0; at < bytes.length;) {
    const n = rng.range(1, Math.max(1, bytes.length - at));
    peer.writeRaw(bytes.subarray(at, at + n));
    at += n;
  }
}

function framed(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

// ---------------------------------------------------------------- before authentication

function mutateHandshake(rng: Rng, msg: Buffer): Buffer {
  const b = Buffer.from(msg);
  switch (rng.int(9)) {
    case 0:
      for (let i = rng.range(1, 3); i > 0; i--) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    case 1:
      return b.subarray(0, rng.int(b.length));
    case 2:
      return Buffer.concat([b, rng.bytes(rng.range(1, 40))]);
    case 3:
      b[3] = rng.int(8);
      return b;
    case 4:
      b[4] = rng.int(4);
      return b;
    case 5:
      return rng.bytes(rng.range(0, 256));
    case 6:
      return validRequest(rng, rng.int(100));
    case 7:
      return rejectMessage(rng.pick([RejectReason.auth, RejectReason.busy, RejectReason.version]));
    default:
      return Buffer.concat([Buffer.from('DTS'), Buffer.of(rng.int(6)), rng.bytes(rng.range(0, 80))]);
  }
}

type HelloFate = 'challenge' | 'version' | 'close';

/** What PROTOCOL.md says a first frame gets. */
function helloFate(b: Buffer): HelloFate {
  const isHello = b.length >= 5 && b.subarray(0, 3).toString('latin1') === 'DTS' && b[3] === 1;
  if (isHello && b[4] !== 1) return 'version';
  return isHello && b.length === 37 ? 'challenge' : 'close';
}

async function preAuthSession(make: StreamMaker, sessionSeed: number, problems: string[]): Promise<number> {
  const rng = new Rng(sessionSeed);
  const peer = new RawPeer(await make());
  const where = `pre-auth session seed ${sessionSeed}`;
  const fail = (what: string) => problems.push(`${where}: ${what}`);
  const hs = new ClientHandshake(jobKey);
  const scenario = rng.int(10);
  try {
    if (scenario === 9) {
      // A length over 256 must be refused from its header alone.
      const header = Buffer.alloc(4);
      header.writeUInt32BE(rng.range(257, 2 ** 32 - 1));
      peer.writeRaw(Buffer.concat([header, rng.bytes(rng.int(64))]));
      const r = await peer.next();
      if (r !== 'closed') fail(`oversize frame got ${r === 'timeout' ? 'no close' : 'an answer'}`);
      return 1;
    }
    const first = scenario < 4 ? mutateHandshake(rng, hs.hello()) : hs.hello();
    writeChunked(rng, peer, framed(first));
    const fate = helloFate(first);
    const r = await peer.next();
    if (fate === 'close') {
      if (r !== 'closed')
        fail(`bad first frame ${first.toString('hex').slice(0, 80)} got ${Buffer.isBuffer(r) ? 'an answer' : r}`);
      return 1;
    }
    if (fate === 'version') {
      if (!Buffer.isBuffer(r) || !/version/.test(rejectText(r) ?? ''))
        fail('version mismatch not rejected with REJECT version');
      if ((await peer.next()) !== 'closed') fail('no close after REJECT version');
      return 1;
    }
    if (!Buffer.isBuffer(r)) return (fail(`valid hello got ${r}`), 1);
    if (!first.equals(hs.hello())) {
      // A mutation that is still a valid hello (other nonce): the challenge must answer that nonce.
      const other = r.length === 69 && r.subarray(0, 5).equals(Buffer.from([0x44, 0x54, 0x53, 2, 1]));
      if (!other) fail('a mutated but valid hello got no proper CHALLENGE');
      return 1;
    }
    const proof = hs.answerChallenge(r); // throws if the server's challenge is wrong
    let sent = proof;
    if (scenario >= 4 && scenario <= 6) sent = mutateHandshake(rng, proof);
    const frames = [framed(sent)];
    if (scenario === 8) {
      sent = mutateHandshake(rng, proof);
      frames[0] = framed(sent);
      for (let i = rng.range(1, 4); i > 0; i--) frames.push(framed(mutateHandshake(rng, hs.hello())));
    }
    writeChunked(rng, peer, Buffer.concat(frames));
    const correct = sent.equals(proof);
    const answer = await peer.next();
    if (correct) {
      if (!Buffer.isBuffer(answer)) return (fail(`correct proof got ${answer}`), 1 + frames.length);
      const welcome = decodeBody(hs.session().open(answer));
      if (welcome.code !== Status.ok || welcome.id !== 0) fail('welcome is not status 0 id 0');
      return 2;
    }
    if (Buffer.isBuffer(answer)) {
      if (rejectText(answer) === undefined) fail(`wrong proof ${sent.toString('hex')} got a non-REJECT answer`);
      const after = await peer.next();
      if (after !== 'closed') fail(`wrong proof: after REJECT got ${Buffer.isBuffer(after) ? 'more data' : after}`);
    } else if (answer !== 'closed') fail(`wrong proof got ${answer}`);
    return 1 + frames.length;
  } catch (err) {
    fail(`threw ${(err as Error).message}`);
    return 1;
  } finally {
    peer.destroy();
  }
}

async function runPreAuth(make: StreamMaker, frames: number, concurrency: number, rng: Rng, problems: string[]) {
  let sent = 0;
  let sessions = 0;
  while (sent < frames && problems.length < 20) {
    const seeds = Array.from({ length: concurrency }, () => rng.seed());
    const counts = await Promise.all(seeds.map((s) => preAuthSession(make, s, problems)));
    for (const c of counts) sent += c;
    sessions += concurrency;
  }
  return { sent, sessions };
}

// ---------------------------------------------------------------- after authentication

interface Sent {
  id: number;
  exp: Expectation | { kind: 'envelope' };
  bytes: Buffer;
}

function statusProblem(s: Sent, res: Message): string | undefined {
  const e = s.exp;
  const show = () => `${s.bytes.toString('hex').slice(0, 120)} → status ${res.code}`;
  switch (e.kind) {
    case 'malformed':
    case 'envelope':
      return `answered a frame that must close the connection: ${show()}`;
    case 'invalid':
      return res.code === Status.badRequest ? undefined : `invalid request not refused: ${show()}`;
    case 'proxyOnly':
      return res.code === Status.notAuthorized ? undefined : `proxy-only op answered: ${show()}`;
    case 'valid': {
      const blockingOps: number[] = [Op.get, Op.wait, Op.barrier];
      const allowed =
        res.code === Status.ok ||
        (res.code === Status.timeout && blockingOps.includes(e.op)) ||
        (res.code === Status.notFound && [Op.get, Op.wait, Op.cas].includes(e.op as 2)) ||
        (res.code === Status.badRequest && [Op.add, Op.barrier].includes(e.op as 3)) ||
        (res.code === Status.cancelled && e.blocking);
      if (!allowed) return `valid request got an impossible status: ${show()}`;
      return res.code === Status.ok ? okShapeProblem(e, res.args) : undefined;
    }
  }
}

/** One connection the post-auth fuzzer drives: the TCP store (envelopes) or the Unix proxy (plain). */
interface Channel {
  peer: RawPeer;
  seal(body: Buffer): Buffer;
  open(envelope: Buffer): Buffer;
  /** authenticated envelopes that can be attacked */
  envelopes: boolean;
  /** the agent's proxy: answers JOB_KEY and WHOAMI itself */
  proxy: boolean;
}
type ChannelMaker = () => Promise<Channel>;

function authenticatedChannel(make: StreamMaker): ChannelMaker {
  return async () => {
    const peer = new RawPeer(await make());
    try {
      const session = await authenticateRaw(peer, jobKey);
      return { peer, seal: (b) => session.seal(b), open: (b) => session.open(b), envelopes: true, proxy: false };
    } catch (err) {
      peer.destroy();
      throw err;
    }
  };
}

function proxyChannel(socketPath: string): ChannelMaker {
  return async () => {
    const socket = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return { peer: new RawPeer(socket), seal: framed, open: (b) => b, envelopes: false, proxy: true };
  };
}

/** The spec's expectation, adjusted for the ops only the proxy answers. */
function expectOn(channel: Channel, b: Buffer): Expectation {
  const e = expect(b);
  if (channel.proxy && e.kind === 'proxyOnly') {
    const argc = b[5];
    return argc === 0 ? { kind: 'valid', op: b[0], blocking: false, argc } : { kind: 'invalid' };
  }
  return e;
}

async function postAuthConnection(
  makeChannel: ChannelMaker,
  rng: Rng,
  budget: number,
  problems: string[],
  sentinels: string[],
): Promise<number> {
  let channel: Channel;
  try {
    channel = await makeChannel();
  } catch (err) {
    problems.push(`honest connection failed: ${(err as Error).message}`);
    return 0;
  }
  const { peer } = channel;
  const sent = new Map<number, Sent>();
  const answered = new Set<number>();
  let nextId = 1;
  let frames = 0;
  let lastSealed: Buffer | undefined;
  const drain = () => {
    while (peer.bodies.length) {
      let res: Message;
      try {
        res = decodeBody(channel.open(peer.bodies.shift()!));
      } catch (err) {
        problems.push(`server sent an envelope we cannot open: ${(err as Error).message}`);
        continue;
      }
      const s = sent.get(res.id);
      if (!s) problems.push(`answer for id ${res.id} that was never sent`);
      else if (answered.has(res.id)) problems.push(`second answer for id ${res.id}`);
      else {
        answered.add(res.id);
        const p = statusProblem(s, res);
        if (p) problems.push(p);
      }
    }
  };
  try {
    while (frames < budget && problems.length < 20) {
      const batch: Sent[] = [];
      let breaking: Sent | undefined;
      const size = rng.range(1, 96);
      for (let i = 0; i < size; i++) {
        const id = nextId++;
        const r = rng.next();
        if (channel.envelopes && r < 0.004) {
          // Envelope attacks: a valid body in a broken envelope must close without being executed.
          const sentinel = `sentinel-${rng.seed()}`;
          sentinels.push(sentinel);
          const b = body(Op.set, id, [Buffer.from(sentinel), Buffer.from('x')]);
          const attack = lastSealed ? rng.int(3) : rng.int(2);
          let bytes: Buffer;
          if (attack === 0) {
            bytes = channel.seal(b);
            bytes[rng.range(4, bytes.length - 1)] ^= 1 << rng.int(8);
          } else if (attack === 1) {
            channel.seal(b); // a sequence number skipped
            bytes = channel.seal(b);
          } else {
            bytes = lastSealed!; // replayed: its sequence number is already used
          }
          breaking = { id, exp: { kind: 'envelope' }, bytes: b };
          sent.set(id, breaking);
          writeChunked(rng, peer, bytes);
          frames++;
          break;
        }
        const valid = validRequest(rng, id);
        const b =
          r < 0.4 ? valid : r < 0.98 ? stampId(mutate(rng, valid), id) : stampId(rng.bytes(rng.range(0, 64)), id);
        const s: Sent = { id, exp: expectOn(channel, b), bytes: b };
        sent.set(id, s);
        batch.push(s);
        lastSealed = channel.seal(b);
        writeChunked(rng, peer, lastSealed);
        frames++;
        if (s.exp.kind === 'malformed') {
          breaking = s;
          break;
        }
      }
      let syncId = 0;
      if (!breaking) {
        syncId = nextId++;
        const ping = body(Op.ping, syncId, []);
        sent.set(syncId, { id: syncId, exp: expect(ping), bytes: ping });
        peer.writeRaw(channel.seal(ping));
        frames++;
      }
      // Wait for the sync answer (every earlier non-blocking request is answered before it) or the close.
      const deadline = Date.now() + 5000;
      while (!(syncId && answered.has(syncId)) && !peer.closed && Date.now() < deadline) {
        await peer.next(deadline - Date.now()).then((b) => Buffer.isBuffer(b) && peer.bodies.unshift(b));
        drain();
      }
      drain();
      if (!breaking && !answered.has(syncId)) {
        problems.push(
          peer.closed ? 'connection closed after only well-formed frames' : 'no answer to the sync PING within 5 s',
        );
        break;
      }
      for (const s of batch) {
        if (s === breaking) continue;
        // The proxy answers forwarded requests asynchronously; broken framing closes the worker at
        // once, so answers still in flight upstream are dropped with it.
        if (channel.proxy && breaking) continue;
        const needs =
          s.exp.kind === 'invalid' || s.exp.kind === 'proxyOnly' || (s.exp.kind === 'valid' && !s.exp.blocking);
        if (needs && !answered.has(s.id)) problems.push(`no answer to ${s.bytes.toString('hex').slice(0, 80)}`);
      }
      if (breaking) {
        if (!peer.closed) await Promise.race([peer.closedPromise, new Promise((r) => setTimeout(r, 3000))]);
        drain();
        if (!peer.closed)
          problems.push(`${breaking.exp.kind} frame did not close: ${breaking.bytes.toString('hex').slice(0, 80)}`);
        if (answered.has(breaking.id)) problems.push('the breaking frame was answered');
        for (const id of answered)
          if (id > breaking.id) problems.push(`frame after a breaking one was executed (id ${id})`);
        break;
      }
    }
  } finally {
    peer.destroy();
  }
  return frames;
}

async function runPostAuth(make: ChannelMaker, frames: number, rng: Rng, problems: string[], sentinels: string[]) {
  let sent = 0;
  let connections = 0;
  while (sent < frames && problems.length < 20) {
    sent += await postAuthConnection(make, rng, frames - sent, problems, sentinels);
    connections++;
  }
  return { sent, connections };
}

// ---------------------------------------------------------------- the tests

async function assertHealthy(t: Test, server: StoreServer, sentinels: string[]) {
  for (let i = 0; i < 100 && server.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
  const stats = server.stats();
  t.equal(stats.connections, 0, 'every fuzz connection was cleaned up');
  t.equal(stats.unauthenticated, 0, 'no connection still counted as authenticating');
  t.equal(stats.blocked, 0, 'no blocked request left behind');
  const c = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey, timeoutMs: 5000 });
  await c.set('after-fuzz', 'fine');
  t.equal((await c.get('after-fuzz')).toString(), 'fine', 'a clean client is served afterwards');
  for (let i = 0; i < sentinels.length; i += 200) {
    const seen = await c.check(sentinels.slice(i, i + 200));
    t.notOk(seen.some(Boolean), 'no body inside a broken envelope was executed');
  }
  await c.close();
}

t.test('before authentication', async (t) => {
  const violations = { n: 0 };
  const server = await StoreServer.start({ jobKey, maxUnauthenticated: 1024, onViolation: () => void violations.n++ });
  t.teardown(() => server.close());
  const rng = new Rng(seed);
  const problems: string[] = [];
  const started = Date.now();
  const mem = await runPreAuth(inMemory(server), target, 128, rng, problems);
  const tcp = await runPreAuth(overTcp(server), Math.ceil(target / 50), 16, rng, problems);
  t.comment(
    `pre-auth: ${mem.sent} frames in ${mem.sessions} in-memory sessions + ${tcp.sent} frames in ` +
      `${tcp.sessions} TCP sessions, ` +
      `${violations.n} violations, ${Date.now() - started} ms`,
  );
  t.same(problems.slice(0, 20), [], 'every frame met its fate per PROTOCOL.md');
  t.ok(mem.sent + tcp.sent >= target, `at least ${target} frames sent`);
  await assertHealthy(t, server, []);
});

t.test('after authentication', async (t) => {
  const server = await StoreServer.start({ jobKey });
  t.teardown(() => server.close());
  const rng = new Rng(seed ^ 0x9e3779b9);
  const problems: string[] = [];
  const sentinels: string[] = [];
  const started = Date.now();
  const mem = await runPostAuth(authenticatedChannel(inMemory(server)), target, rng, problems, sentinels);
  const tcp = await runPostAuth(
    authenticatedChannel(overTcp(server)),
    Math.ceil(target / 20),
    rng,
    problems,
    sentinels,
  );
  t.comment(
    `post-auth: ${mem.sent} frames on ${mem.connections} in-memory connections + ${tcp.sent} on ` +
      `${tcp.connections} TCP ` +
      `connections, ${sentinels.length} envelope attacks, ${Date.now() - started} ms`,
  );
  t.same(problems.slice(0, 20), [], 'every frame met its fate per PROTOCOL.md');
  t.ok(mem.sent + tcp.sent >= target, `at least ${target} frames sent`);
  await assertHealthy(t, server, sentinels);
});

t.test("the agent's Unix proxy, with the same generators", async (t) => {
  const server = await StoreServer.start({ jobKey });
  const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-store-fuzz-'));
  const proxy = await StoreProxy.start({ upstream, dir: path.join(dir, 'agent'), attempt: 0, jobKey });
  t.teardown(async () => {
    await proxy.close();
    await upstream.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rng = new Rng(seed ^ 0x85ebca6b);
  const problems: string[] = [];
  const started = Date.now();
  const run = await runPostAuth(proxyChannel(proxy.socketPath), Math.ceil(target / 10), rng, problems, []);
  t.comment(`proxy: ${run.sent} frames on ${run.connections} worker connections, ${Date.now() - started} ms`);
  t.same(problems.slice(0, 20), [], 'every frame met its fate per PROTOCOL.md');
  t.ok(upstream.isOpen, 'the upstream connection survived every worker');
  for (let i = 0; i < 100 && server.stats().blocked > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(server.stats().blocked, 0, "closed workers' blocked requests were cancelled upstream");
  const worker = await StoreClient.connectUnix(proxy.socketPath);
  await worker.set('after-fuzz', 'fine');
  t.equal((await worker.get('after-fuzz')).toString(), 'fine', 'a clean worker is served afterwards');
  t.ok((await worker.jobKey()).equals(jobKey));
  await worker.close();
});
