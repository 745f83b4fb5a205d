import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { StoreProxy } from '../../../src/store/proxy.js';
import { Op, Status, decodeBody, encodeBody, frame } from '../../../src/store/frame.js';

const jobKey = randomBytes(32);

async function fixture(t: { teardown(fn: () => unknown): void }, attempt = 0) {
  const base = mkdtempSync(path.join(tmpdir(), 'dtrain-store-proxy-'));
  const server = await StoreServer.start({ jobKey });
  const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const proxy = await StoreProxy.start({ upstream, dir: path.join(base, 'agent'), attempt, jobKey });
  const workers: StoreClient[] = [];
  const worker = async () => {
    const w = await StoreClient.connectUnix(`unix:${proxy.socketPath}`, { timeoutMs: 5000 });
    workers.push(w);
    return w;
  };
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await proxy.close();
    await upstream.close();
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });
  return { base, server, upstream, proxy, worker };
}

t.test('the socket is 0600 in a 0700 folder created for it, and removed on close', async (t) => {
  const { proxy } = await fixture(t);
  t.equal(statSync(path.dirname(proxy.socketPath)).mode & 0o777, 0o700);
  t.equal(statSync(proxy.socketPath).mode & 0o777, 0o600);
  await proxy.close();
  t.throws(() => statSync(proxy.socketPath), /ENOENT/);
});

t.test('an existing folder is tightened to 0700; a symlink or file is refused', async (t) => {
  const base = mkdtempSync(path.join(tmpdir(), 'dtrain-store-dir-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const server = await StoreServer.start({ jobKey });
  const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.teardown(async () => {
    await upstream.close();
    await server.close();
  });
  const open = path.join(base, 'open');
  mkdirSync(open);
  chmodSync(open, 0o755);
  const p = await StoreProxy.start({ upstream, dir: open, attempt: 0, jobKey });
  t.equal(statSync(open).mode & 0o777, 0o700);
  await p.close();
  const { symlinkSync, writeFileSync } = await import('node:fs');
  symlinkSync(open, path.join(base, 'link'));
  await t.rejects(StoreProxy.start({ upstream, dir: path.join(base, 'link'), attempt: 0, jobKey }), /not a folder/);
  writeFileSync(path.join(base, 'file'), '');
  await t.rejects(StoreProxy.start({ upstream, dir: path.join(base, 'file'), attempt: 0, jobKey }), /cannot use/);
  await t.rejects(
    StoreProxy.start({ upstream, dir: path.join(base, 'x'.repeat(120)), attempt: 0, jobKey }),
    /longer than 107 bytes/,
  );
});

t.test('worker keys are namespaced by attempt; JOB_KEY and WHOAMI are answered locally', async (t) => {
  const { upstream, proxy, worker } = await fixture(t, 2);
  const w = await worker();
  await w.set('master_addr', '10.0.0.1');
  t.same(await upstream.check(['a2/master_addr', 'master_addr']), [true, false]);
  t.same(await w.whoami(), { attempt: 2, prefix: 'a2/' });
  t.ok((await w.jobKey()).equals(jobKey));
  await upstream.set('a2/from-agent', 'x');
  await w.wait(['from-agent', 'master_addr'], 1000);
  t.same(await w.check(['from-agent', 'a2/from-agent']), [true, false], 'a worker cannot escape its prefix');
  t.equal(await w.add('ctr', 3), 3);
  t.equal((await upstream.get('a2/ctr')).toString(), '3');
  t.equal((await w.cas('ctr', '3', '4'))?.toString(), '4');
  t.equal(await w.delete('ctr'), true);
  await w.ping();
  await t.rejects(
    w.set('', 'x'),
    /bad request/,
    'an empty worker key is refused, even though the prefix would fill it',
  );
  await t.rejects(w.set('k'.repeat(4094), 'x'), /bad request/, 'the 4096-byte limit includes the prefix');
  await w.set('k'.repeat(4093), 'x');

  proxy.setAttempt(3);
  const closed = new Promise((r) => w.once('close', r));
  await closed;
  t.notOk(w.isOpen, 'a worker of the earlier attempt is disconnected');
  const w3 = await worker();
  t.equal(await w3.tryGet('master_addr'), undefined, 'attempt 3 does not see attempt 2');
  await w3.set('master_addr', '10.0.0.2');
  t.equal((await upstream.get('a3/master_addr')).toString(), '10.0.0.2');
  t.equal((await upstream.get('a2/master_addr')).toString(), '10.0.0.1');
});

t.test('job/ keys pass without the attempt prefix, to GET, CAS, WAIT and CHECK only', async (t) => {
  const { upstream, proxy, worker } = await fixture(t, 2);
  const w = await worker();
  await upstream.set('job/commit', 'v1');
  t.equal((await w.get('job/commit', 1000)).toString(), 'v1', 'GET reads the job record, not a2/job/commit');
  t.equal((await w.cas('job/commit', 'v1', 'v2'))?.toString(), 'v2');
  t.equal((await upstream.get('job/commit')).toString(), 'v2', 'CAS changed the job record upstream');
  t.equal((await w.cas('job/commit', 'v1', 'v3'))?.toString(), 'v2', 'a stale expected value loses');
  await w.set('mine', 'x');
  t.same(await w.check(['job/commit', 'mine', 'job/other']), [true, true, false], 'CHECK mixes both kinds');
  const waiting = w.wait(['job/other', 'mine'], 5000);
  await upstream.set('job/other', 'y');
  await waiting;
  t.same(await upstream.check(['a2/mine', 'a2/job/commit', 'job/commit']), [true, false, true]);

  // a worker can never reset the record: only compare-and-set reaches it
  const refused: Array<[string, () => Promise<unknown>]> = [
    ['SET', () => w.set('job/commit', 'reset')],
    ['ADD', () => w.add('job/n', 1)],
    ['DELETE', () => w.delete('job/commit')],
    ['BARRIER', () => w.barrier('job/b', 1, 100)],
  ];
  for (const [what, call] of refused) {
    await t.rejects(call(), /not allowed on this connection/, `${what} on a job/ key is not authorized`);
  }
  t.equal((await upstream.get('job/commit')).toString(), 'v2', 'the record is unchanged');
  t.same(await upstream.check(['job/n', 'a2/job/n']), [false, false]);
  await w.set('job/', 'plain');
  t.same(await upstream.check(['a2/job/']), [true], "'job/' alone is an ordinary key");
  await t.rejects(w.cas('job/' + 'k'.repeat(4093), '', 'x'), /bad request/, 'the 4096-byte limit holds');

  // every attempt sees the same record
  proxy.setAttempt(3);
  const w3 = await worker();
  t.equal((await w3.get('job/commit', 1000)).toString(), 'v2');
});

t.test('many workers share one upstream connection; equal worker ids do not collide', async (t) => {
  const { server, worker } = await fixture(t);
  const ws = await Promise.all(Array.from({ length: 6 }, () => worker()));
  // Every worker client starts its ids at 1, so the proxy must remap them.
  await Promise.all(ws.map((w, i) => w.set(`k${i}`, `v${i}`)));
  const got = await Promise.all(ws.map((w, i) => w.get(`k${(i + 1) % 6}`)));
  t.same(
    got.map(String),
    ws.map((_, i) => `v${(i + 1) % 6}`),
  );
  await Promise.all(ws.map((w) => w.barrier('all', 6, 5000)));
  t.equal(server.stats().authenticated, 1, 'one upstream connection for all workers');
});

t.test('a worker that disconnects stops counting at a barrier upstream', async (t) => {
  const { server, worker } = await fixture(t);
  const gone = await worker();
  const stays = await worker();
  const lost = gone.barrier('b', 2, 60000).catch((e: Error) => e);
  await stays.ping();
  await new Promise((r) => setTimeout(r, 30));
  t.equal(server.stats().blocked, 1);
  await gone.close();
  await lost;
  for (let i = 0; i < 50 && server.stats().blocked > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(server.stats().blocked, 0, 'the upstream arrival was cancelled');
  await t.rejects(stays.barrier('b', 2, 100), /timed out/);
});

t.test('worker CANCEL uses the worker id; timeouts come back as timeouts', async (t) => {
  const { worker } = await fixture(t);
  const w = await worker();
  const raw = w.send(Op.get, [Buffer.from('never'), Buffer.from('60000')]);
  await w.ping();
  t.equal(await w.cancel(raw.id), true);
  t.equal((await raw.response).code, Status.cancelled);
  await t.rejects(w.get('never', 80), /timed out after 80 ms waiting for key "never"/);
});

t.test('garbage from one worker closes only that worker', async (t) => {
  const { proxy, worker } = await fixture(t);
  const good = await worker();
  const bad = net.connect(proxy.socketPath);
  await new Promise((r) => bad.once('connect', r));
  const answers: Buffer[] = [];
  bad.on('data', (d) => answers.push(d));
  bad.write(frame(encodeBody(99, 5, [])));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(decodeBody(Buffer.concat(answers).subarray(4)).code, Status.badRequest, 'unknown op: bad request');
  const closed = new Promise((r) => bad.once('close', r));
  bad.write(Buffer.from([0, 0, 0, 7, 1, 0, 0, 0, 1, 9, 9])); // argc 9 with no args
  await closed;
  await good.set('still', 'serving');
  t.equal((await good.get('still')).toString(), 'serving');
});

t.test('when the upstream store connection is lost, workers are disconnected at once', async (t) => {
  const { server, worker } = await fixture(t);
  const idle = await worker();
  const busy = await worker();
  const blocked = busy.get('never', 60000).catch((e: Error) => e);
  const idleClosed = new Promise((r) => idle.once('close', r));
  await server.close();
  await idleClosed;
  t.match(((await blocked) as Error).message, /connection closed/);
  await t.rejects(worker(), /cannot connect to the store proxy/, 'new workers are refused too');
});

t.test('a worker value that would overflow the upstream frame limit is refused, not forwarded', async (t) => {
  const { upstream, worker } = await fixture(t);
  const w = await worker();
  const huge = Buffer.alloc(64 * 1024 * 1024 - 16); // body 64 MiB - 1 from the worker, 64 MiB + 2 once prefixed
  await t.rejects(w.set('k', huge), /bad request/);
  t.ok(upstream.isOpen, "the agent's shared connection survives");
  await w.set('k', 'small');
  t.equal((await w.get('k')).toString(), 'small');
});
