import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWorkers, type WorkerResult } from '../../helpers/collectives-harness.js';
import { HYPER, maxRelError, quantizedGrads, randomArray, referenceRun } from '../../helpers/optim-data.js';

const worker = fileURLToPath(new URL('../../fixtures/optim/zero-worker.mjs', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'dtrain-optim-proc-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const built = existsSync(fileURLToPath(new URL('../../../dist/runtime/index.js', import.meta.url)));
const skip = built ? false : 'dist/ not built (npx tsc -p .)';
if (!built && process.env.DTRAIN_REQUIRE_INTEGRATION)
  throw new Error('dist/ is not built: run npx tsc -p . (required under CI)');

function nodes(world: number): number[] {
  // two simulated hosts when possible, so the TCP path between "nodes" is used as well as shared memory
  return world >= 2 ? [Math.ceil(world / 2), Math.floor(world / 2)] : [1];
}

async function run(world: number, job: Record<string, unknown>): Promise<WorkerResult[]> {
  const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
  (await import('node:fs')).mkdirSync(out);
  const results = await runWorkers({
    nodes: nodes(world),
    script: worker,
    args: [JSON.stringify({ ...job, out })],
    timeoutMs: 120_000,
  });
  for (const r of results) {
    (r as WorkerResult & { params?: Float32Array }).params = existsSync(join(out, `rank${r.rank}.bin`))
      ? new Float32Array(readFileSync(join(out, `rank${r.rank}.bin`)).buffer)
      : undefined;
  }
  return results;
}

function paramsOf(r: WorkerResult): Float32Array {
  return (r as WorkerResult & { params: Float32Array }).params;
}

t.test(
  'real processes: every rank ends with the unsharded optimizer params (worlds 2-4, stages 0, 1 and 2)',
  { skip },
  async (t) => {
    const n = 10_007;
    const steps = 4;
    for (const world of [2, 3, 4]) {
      // quantized gradients: the real all-reduce sums in fp32, exactly on this grid (see quantizedGrads)
      const want = referenceRun(randomArray(n, 1), world, steps, HYPER, undefined, quantizedGrads);
      for (const stage of [0, 1, 2] as const) {
        const results = await run(world, { mode: 'train', n, steps, stage, bucketBytes: 16 * 1024 });
        for (const r of results) {
          if (r.code !== 0) t.fail(`rank ${r.rank} exited ${r.code}: ${r.stderr.slice(-2000)}`);
        }
        if (results.some((r) => r.code !== 0)) continue;
        const errs = results.map((r) => maxRelError(paramsOf(r), want));
        t.ok(
          Math.max(...errs) <= 1e-6,
          `world ${world} stage ${stage}: max relative error ${Math.max(...errs).toExponential(2)}`,
        );
        const ops = JSON.stringify(results[0].report.stats);
        if (stage === 2) t.match(ops, /reduce_?scatter/i, 'stage 2 reduce-scatters');
        else t.match(ops, /all_?reduce/i, `stage ${stage} all-reduces`);
        if (stage === 0) t.equal(results[0].report.stateBytes, 8 * n, 'stage 0: every rank holds all the states');
        else t.equal(results[0].report.stateBytes, 8 * Math.ceil(n / world / 16) * 16, 'stateBytes is this rank’s 1/N');
      }
    }
  },
);

t.test('real processes: save on 4, resume on 2 and 3, same result as uninterrupted', { skip }, async (t) => {
  const n = 6_001;
  const dir = join(work, 'ckpt');
  const straight = await run(4, { mode: 'train', n, steps: 6, stage: 2, gradWorld: 4, save: { dir, at: 3 } });
  t.ok(
    straight.every((r) => r.code === 0),
    straight
      .map((r) => r.stderr)
      .join('')
      .slice(-2000),
  );
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_3/gen_1');
  for (const world of [2, 3]) {
    const resumed = await run(world, { mode: 'train', n, steps: 6, from: 4, stage: 2, gradWorld: 4, load: dir });
    t.ok(
      resumed.every((r) => r.code === 0),
      resumed
        .map((r) => r.stderr)
        .join('')
        .slice(-2000),
    );
    if (resumed.some((r) => r.code !== 0)) continue;
    const err = Math.max(...resumed.map((r) => maxRelError(paramsOf(r), paramsOf(straight[0]))));
    t.ok(err <= 1e-6, `resumed on ${world}: max relative error ${err.toExponential(2)}`);
  }
});

t.test('real processes: a rank lost during a save leaves latest on the last complete step', { skip }, async (t) => {
  const n = 4_001;
  const dir = join(work, 'ckpt-dying');
  const results = await run(4, {
    mode: 'train',
    n,
    steps: 3,
    stage: 2,
    gradWorld: 4,
    save: { dir, at: [2, 3] },
    die: { rank: 2, step: 3 },
  });
  t.equal(results[2].code, 9, 'rank 2 died');
  for (const r of [0, 1, 3]) {
    t.not(results[r].code, 0, `rank ${r}'s save failed rather than committing or hanging`);
  }
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_2/gen_1');
  t.notOk(existsSync(join(dir, 'step_3', 'gen_1', 'manifest.json')), 'step_3 was never committed');
  const resumed = await run(2, { mode: 'train', n, steps: 2, from: 3, stage: 2, gradWorld: 4, load: dir });
  t.ok(
    resumed.every((r) => r.code === 0),
    resumed
      .map((r) => r.stderr)
      .join('')
      .slice(-2000),
  );
  t.equal(resumed[0].report?.step, 2, 'the resumed run starts from step 2');
});

t.test(
  'real processes: SIGKILL while re-saving the step latest names leaves that step loadable',
  { skip },
  async (t) => {
    const n = 3_001;
    for (const when of ['any', 'shard'] as const) {
      const dir = join(work, `ckpt-resave-${when}`);
      // saves step 2, writes its params out, then saves step 2 again; rank 0 (the committer) is SIGKILLed
      // as soon as that second save has changed the checkpoint directory (when 'shard': a shard file)
      const killed = await run(2, {
        mode: 'train',
        n,
        steps: 2,
        stage: 2,
        save: { dir, at: 2 },
        resave: { dir, killRank: 0, when },
      });
      t.equal(killed[0].signal, 'SIGKILL', `${when}: rank 0 was killed mid-save`);
      t.not(killed[1].code, 0, `${when}: rank 1's save failed rather than committing`);
      const resumed = await run(2, { mode: 'train', n, steps: 2, from: 3, stage: 2, load: dir });
      t.ok(
        resumed.every((r) => r.code === 0),
        `${when}: the checkpoint still loads: ${resumed
          .map((r) => r.stderr)
          .join('')
          .slice(-2000)}`,
      );
      if (resumed.some((r) => r.code !== 0)) continue;
      t.equal(resumed[0].report?.step, 2, `${when}: at step 2`);
      t.same(paramsOf(resumed[0]), paramsOf(killed[0]), `${when}: with the params step 2 had`);
    }
  },
);

t.test(
  'real processes: bf16 params (all-gathered as bfloat16) stay identical on every rank and track fp32',
  { skip },
  async (t) => {
    const n = 5_003;
    // the worker starts from the fp32 values truncated to bf16; so does this fp32 reference
    const start = randomArray(n, 1);
    const bits = new Uint32Array(start.buffer);
    for (let i = 0; i < n; i++) bits[i] = bits[i] & 0xffff0000;
    const want = referenceRun(start, 3, 4, HYPER, undefined, quantizedGrads);
    for (const stage of [1, 2] as const) {
      const results = await run(3, { mode: 'train', n, steps: 4, stage, dtype: 'bfloat16', bucketBytes: 8 * 1024 });
      t.ok(
        results.every((r) => r.code === 0),
        results
          .map((r) => r.stderr)
          .join('')
          .slice(-2000),
      );
      if (results.some((r) => r.code !== 0)) continue;
      for (const r of results.slice(1))
        t.same(paramsOf(r), paramsOf(results[0]), `stage ${stage}: rank ${r.rank} holds rank 0's params`);
      // the fp32 master follows the fp32 run; the params are its rounding to bf16
      const err = maxRelError(paramsOf(results[0]), want, HYPER.lr);
      t.ok(err <= 2 ** -8 * 1.001, `stage ${stage}: within bf16 rounding of the fp32 run (${err.toExponential(2)})`);
    }
  },
);
