// The worker side of elastic training with real trainer processes, this test playing the controller: the
// job's store, one agent proxy per attempt, openAttempt/closeAttempt/requestResize on the commit record.
// A resize requested during attempt 1 (world 2) makes every rank exit 75 at the step 10 commit; attempt 2
// (world 3) resumes from that commit and ends with an uninterrupted run's eval_loss; a process of the ended
// attempt has its commit refused.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { StoreClient, StoreProxy, StoreServer } from '../../../src/store/index.js';
import {
  closeAttempt,
  latestCommit,
  openAttempt,
  requestResize,
  RESIZE_EXIT_CODE,
} from '../../../src/runtime/commits.js';
import { root, tempDir } from '../../helpers/launch.js';

const trainer = join(root, 'dist/examples/train/main.js');
const jobKey = randomBytes(32);

interface Exit {
  code: number | null;
  out: string;
}

/** `world` processes of `argv` with the worker environment, reaching the store through `proxy`. */
function runRanks(proxy: StoreProxy, world: number, argv: string[]): Promise<Exit[]> {
  return Promise.all(
    Array.from({ length: world }, (_, rank) => {
      const env = {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(world),
        DTRAIN_NODE_RANK: '0',
        DTRAIN_STORE: `unix:${proxy.socketPath}`,
        DTRAIN_BACKEND: 'cpu',
        DTRAIN_MICROBATCHES: '4',
        DTRAIN_SPIN: '0',
        OMP_NUM_THREADS: '1',
      };
      return new Promise<Exit>((resolve) => {
        const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
    }),
  );
}

async function startJob(t: { teardown(fn: () => unknown): void }, dir: string) {
  const server = await StoreServer.start({ jobKey });
  const controller = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const closers: Array<() => Promise<unknown>> = [];
  let agents = 0;
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await controller.close();
    await server.close();
  });
  const agent = async (attempt: number) => {
    const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
    const proxy = await StoreProxy.start({ upstream, dir: join(dir, `agent-${agents++}`), attempt, jobKey });
    closers.push(
      () => proxy.close(),
      () => upstream.close(),
    );
    return proxy;
  };
  return { controller, agent };
}

function evalLoss(exits: Exit[]): number {
  const m = /^eval_loss (\S+)$/m.exec(exits[0].out);
  if (!m) throw new Error(`no eval_loss line in:\n${exits[0].out}`);
  return Number(m[1]);
}

if (!existsSync(trainer) || !existsSync(join(root, 'build/Release/dtrain_native.node'))) {
  t.fail('build first: npm run build');
} else {
  t.test('a resize exits 75 at the commit; the next attempt on another world resumes from it', async (t) => {
    const dir = tempDir(t, 'e2e-commit-resize');
    const args = (ckpt: string) => [
      trainer,
      '--steps',
      '20',
      '--global-batch',
      '96',
      '--train-samples',
      '12288',
      '--log-every',
      '5',
      '--checkpoint-dir',
      ckpt,
      '--checkpoint-every',
      '10',
    ];

    const reference = await startJob(t, dir);
    await openAttempt(reference.controller, 0);
    const clean = await runRanks(await reference.agent(0), 2, args(join(dir, 'clean')));
    t.same(
      clean.map((e) => e.code),
      [0, 0],
      clean[0].out.slice(-1500),
    );

    const { controller, agent } = await startJob(t, dir);
    await openAttempt(controller, 1);
    await requestResize(controller, 1);
    const first = await runRanks(await agent(1), 2, args(join(dir, 'ckpt')));
    t.same(
      first.map((e) => e.code),
      [RESIZE_EXIT_CODE, RESIZE_EXIT_CODE],
      `every rank exits ${RESIZE_EXIT_CODE}: ${first[0].out.slice(-1500)}`,
    );
    t.match(first[0].out, /^step 10 loss/m);
    t.notMatch(first[0].out, /^step 15 loss/m, 'no step after the commit');
    t.match(first[0].out, /step 10 committed; the job resizes/);
    t.match(await latestCommit(controller), { step: 10, attempt: 1, world_size: 2 });

    await closeAttempt(controller, 1);
    await openAttempt(controller, 2);
    const second = await runRanks(await agent(2), 3, args(join(dir, 'ckpt')));
    t.same(
      second.map((e) => e.code),
      [0, 0, 0],
      second[0].out.slice(-1500),
    );
    t.match(second[0].out, /^resumed from step 10 \(the job's last commit, world 3\)$/m);
    t.notMatch(second[0].out, /^step (1|5|10) loss/m, 'steps 1-10 are not trained again');
    t.match(await latestCommit(controller), { step: 20, attempt: 2, world_size: 3 });
    const loss = evalLoss(second);
    const ref = evalLoss(clean);
    t.ok(Math.abs(loss - ref) / ref <= 1e-3, `resized: eval_loss ${loss}, uninterrupted ${ref}`);

    // a process still running as attempt 1 (cut off, say) cannot commit over attempt 2's step 20
    const stale = await runRanks(await agent(1), 1, [
      '--input-type=module',
      '-e',
      `import { init } from ${JSON.stringify(join(root, 'dist/runtime/index.js'))};
       const dist = await init();
       await dist.checkpoint.commit(30).catch((e) => { console.log(e.name + ': ' + e.message); process.exit(3); });`,
    ]);
    t.equal(stale[0].code, 3, stale[0].out);
    t.match(stale[0].out, /CommitRefusedError: checkpoint commit of step 30 refused: attempt 2 is running, not 1/);
    t.match(await latestCommit(controller), { step: 20, attempt: 2 }, 'the record still says step 20');
  });
}
