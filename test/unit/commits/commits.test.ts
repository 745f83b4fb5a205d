// The checkpoint-commit contract against a real store and the agent's real proxies: the rules of
// src/runtime/commits.ts, and dist.checkpoint (src/runtime/checkpoints.ts) as ranks of one world use it.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StoreServer } from '../../../src/store/server.js';
import { StoreClient } from '../../../src/store/client.js';
import { StoreProxy } from '../../../src/store/proxy.js';
import {
  closeAttempt,
  commitStep,
  latestCommit,
  openAttempt,
  requestResize,
  RESIZE_EXIT_CODE,
} from '../../../src/runtime/commits.js';
import { CommitRefusedError, createCheckpoints } from '../../../src/runtime/checkpoints.js';
import { readWorkerEnv } from '../../../src/runtime/worker-env.js';
import { ShardedAdam } from '../../../src/runtime/optim/index.js';
import { createLoopbackGroups, onEveryRank } from '../../helpers/optim-loopback-group.js';

const jobKey = randomBytes(32);

/** The controller's store and one agent proxy per attempt, as a job has them. */
async function job(t: { teardown(fn: () => unknown): void }) {
  const base = mkdtempSync(path.join(tmpdir(), 'dtrain-commits-'));
  const server = await StoreServer.start({ jobKey });
  const controller = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const closers: Array<() => Promise<unknown>> = [];
  const proxy = async (attempt: number) => {
    const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
    const p = await StoreProxy.start({ upstream, dir: path.join(base, `agent${attempt}`), attempt, jobKey });
    closers.push(
      () => p.close(),
      () => upstream.close(),
    );
    return p;
  };
  const worker = async (p: StoreProxy) => {
    const w = await StoreClient.connectUnix(`unix:${p.socketPath}`, { timeoutMs: 5000 });
    closers.push(() => w.close());
    return w;
  };
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await controller.close();
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });
  return { controller, proxy, worker };
}

function rankEnv(p: StoreProxy, rank: number, worldSize: number) {
  return readWorkerEnv({
    RANK: String(rank),
    WORLD_SIZE: String(worldSize),
    LOCAL_RANK: String(rank),
    DTRAIN_STORE: `unix:${p.socketPath}`,
    DTRAIN_COLLECTIVE_TIMEOUT: '5s',
  });
}

class Exited extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
const exit = (code: number): never => {
  throw new Exited(code);
};

t.test("a commit counts only while its attempt is open; an ended attempt's commit is refused", async (t) => {
  const { controller, proxy, worker } = await job(t);
  const w1 = await worker(await proxy(1));
  t.equal((await latestCommit(w1)).step, null, 'a fresh job has no commit');
  await openAttempt(controller, 1);
  t.match(await commitStep(w1, 1, 10, 4), { kind: 'committed', resize: false });
  t.match(await latestCommit(w1), { step: 10, attempt: 1, world_size: 4, open: 1, managed: true });

  await closeAttempt(controller, 1);
  const ended = await commitStep(w1, 1, 20, 4);
  t.match(ended, { kind: 'refused', why: 'attempt 1 has ended' });
  await openAttempt(controller, 2);
  const w2 = await worker(await proxy(2));
  t.match(await commitStep(w1, 1, 20, 4), { kind: 'refused', why: 'attempt 2 is running, not 1' });
  t.equal((await latestCommit(w2)).step, 10, 'the new attempt resumes from the last accepted commit');
  t.match(await commitStep(w2, 2, 20, 3), { kind: 'committed' });
  t.match(await commitStep(w1, 1, 30, 4), { kind: 'refused' }, 'the cut-off attempt never overwrites it');
  t.match(await latestCommit(controller), { step: 20, attempt: 2, world_size: 3 });
});

t.test('without a controller that opens attempts, commits are kept and attempts only go forward', async (t) => {
  const { proxy, worker } = await job(t);
  const w = await worker(await proxy(0));
  t.match(await commitStep(w, 0, 10, 2), { kind: 'committed' });
  t.match(await commitStep(w, 1, 20, 2), { kind: 'committed' });
  t.match(await commitStep(w, 1, 30, 2), { kind: 'committed' });
  t.match(await commitStep(w, 0, 40, 2), {
    kind: 'refused',
    why: 'attempt 1 has committed since; attempt 0 has ended',
  });
  t.match(await latestCommit(w), { step: 30, attempt: 1, managed: false });
});

t.test('dist.checkpoint: every rank commits together and learns the same answer', async (t) => {
  const { controller, proxy } = await job(t);
  const p1 = await proxy(1);
  const ranks = [0, 1, 2].map((r) => createCheckpoints(rankEnv(p1, r, 3), exit));
  t.equal(await ranks[1].latest(), null);
  await openAttempt(controller, 1);
  t.same(await Promise.all(ranks.map((c) => c.commit(10))), Array(3).fill({ step: 10, recorded: true, resize: false }));
  t.same(await Promise.all(ranks.map((c) => c.latest())), [10, 10, 10]);
  t.match(await latestCommit(controller), { step: 10, attempt: 1, world_size: 3 });

  // the commit waits for every rank: one late rank holds the others back
  let done = 0;
  const early = ranks.slice(0, 2).map((c) => c.commit(20).then(() => done++));
  await new Promise((r) => setTimeout(r, 200));
  t.equal(done, 0, 'no rank is through before the last one arrives');
  await Promise.all([...early, ranks[2].commit(20)]);
  t.equal((await latestCommit(controller)).step, 20);

  await t.rejects(
    Promise.all([ranks[0].commit(30), ranks[1].commit(31), ranks[2].commit(30)]),
    /rank 1 commits step 31, rank 0 step 30/,
  );

  // resize: every rank exits with the reserved code after the commit, or is told
  await requestResize(controller, 1);
  const exits = await Promise.all(ranks.map((c) => c.commit(40).catch((e: Error) => e)));
  t.same(
    exits.map((e) => (e instanceof Exited ? e.code : e)),
    [RESIZE_EXIT_CODE, RESIZE_EXIT_CODE, RESIZE_EXIT_CODE],
  );
  t.equal((await latestCommit(controller)).step, 40, 'the step was committed before the exit');
  t.same(
    await Promise.all(ranks.map((c) => c.commit(50, { onResize: 'return' }))),
    Array(3).fill({ step: 50, recorded: true, resize: true }),
  );

  // the attempt ends: every rank's commit is refused, and a new attempt's ranks resume from step 50
  await closeAttempt(controller, 1);
  await openAttempt(controller, 2);
  const refused = await Promise.all(ranks.map((c) => c.commit(60).catch((e: Error) => e)));
  for (const e of refused)
    t.ok(
      e instanceof CommitRefusedError && /step 60 refused: attempt 2 is running, not 1/.test(e.message),
      (e as Error).message,
    );
  const p2 = await proxy(2);
  const next = [0, 1].map((r) => createCheckpoints(rankEnv(p2, r, 2), exit));
  t.same(await Promise.all(next.map((c) => c.latest())), [50, 50]);
  await Promise.all(next.map((c) => c.commit(60)));
  t.match(await latestCommit(controller), { step: 60, attempt: 2, world_size: 2 });
});

t.test('a process keeps the attempt it started in, even when its agent has moved on', async (t) => {
  const { controller, proxy } = await job(t);
  const p = await proxy(1);
  await openAttempt(controller, 1);
  const stale = createCheckpoints(rankEnv(p, 0, 1), exit);
  await stale.commit(10);
  await closeAttempt(controller, 1);
  await openAttempt(controller, 2);
  p.setAttempt(2);
  await t.rejects(stale.commit(20), CommitRefusedError, 'WHOAMI now says 2, but this process belongs to 1');
  t.equal((await latestCommit(controller)).step, 10);
});

t.test('without a store (not started by dtrain) nothing is recorded', async (t) => {
  const c = createCheckpoints(readWorkerEnv({ WORLD_SIZE: '1' }), exit);
  t.equal(await c.latest(), null);
  t.same(await c.commit(5), { step: 5, recorded: false, resize: false });
  await t.rejects(c.commit(-1), RangeError);
});

t.test("ShardedAdam's save commits its step once latest names it, on every rank", async (t) => {
  const { controller, proxy } = await job(t);
  const p = await proxy(1);
  await openAttempt(controller, 1);
  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-commits-ckpt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const latestAtCommit: string[] = [];
  await onEveryRank(createLoopbackGroups(2).groups, async (group, rank) => {
    const real = createCheckpoints(rankEnv(p, rank, 2), exit);
    const checkpoint = {
      commit: (step: number) => {
        latestAtCommit.push(readFileSync(path.join(dir, 'latest'), 'utf8').trim());
        return real.commit(step);
      },
    };
    const params = new Float32Array(100).fill(1);
    const opt = new ShardedAdam(params, { group, stage: 1, lr: 0.1, checkpoint });
    for (let s = 0; s < 3; s++) await opt.step(new Float32Array(100).fill(0.5));
    await opt.save(dir);
  });
  t.same(latestAtCommit, ['step_3/gen_1', 'step_3/gen_1'], 'both ranks commit after latest names the step');
  t.match(await latestCommit(controller), { step: 3, attempt: 1, world_size: 2 });
});
