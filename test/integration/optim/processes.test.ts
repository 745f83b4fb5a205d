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

function nodes(world: number): number[] {
  // two simulated hosts when possible, so the TCP path between "nodes" is used as well as shared memory
  return world >= 2 ? [Math.ceil(world / 2), Math.floor(world / 2)] : [1];
}

async function run(world: number, job: Record<string, unknown>): Promise<WorkerResult[]> {
  const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
  (await import('node:fs')).mkdirSync(out);
  const results = await runWorkers({ nodes: nodes(world), script: worker, args: [JSON.stringify({ ...job, out })], timeoutMs: 120_000 });
  for (const r of results) {
    (r as WorkerResult & { params?: Float32Array }).params = r.code === 0 ? new Float32Array(readFileSync(join(out, `rank${r.rank}.bin`)).buffer) : undefined;
  }
  return results;
}

function paramsOf(r: WorkerResult): Float32Array {
  return (r as WorkerResult & { params: Float32Array }).params;
}

t.test('real processes: every rank ends with the unsharded optimizer params (worlds 2-4, stages 1 and 2)', { skip }, async (t) => {
  const n = 10_007;
  const steps = 4;
  for (const world of [2, 3, 4]) {
    // quantized gradients: the real all-reduce sums in fp32, exactly on this grid (see quantizedGrads)
    const want = referenceRun(randomArray(n, 1), world, steps, HYPER, undefined, quantizedGrads);
    for (const stage of [1, 2] as const) {
      const results = await run(world, { mode: 'train', n, steps, stage, bucketBytes: 16 * 1024 });
      for (const r of results) {
        if (r.code !== 0) t.fail(`rank ${r.rank} exited ${r.code}: ${r.stderr.slice(-2000)}`);
      }
      if (results.some((r) => r.code !== 0)) continue;
      const errs = results.map((r) => maxRelError(paramsOf(r), want));
      t.ok(Math.max(...errs) <= 1e-6, `world ${world} stage ${stage}: max relative error ${Math.max(...errs).toExponential(2)}`);
      const ops = JSON.stringify(results[0]!.report.stats);
      if (stage === 2) t.match(ops, /reduce_?scatter/i, 'stage 2 reduce-scatters');
      else t.match(ops, /all_?reduce/i, 'stage 1 all-reduces');
      t.equal(results[0]!.report.stateBytes, 8 * Math.ceil(n / world / 16) * 16, 'stateBytes is this rank’s 1/N');
    }
  }
});

t.test('real processes: save on 4, resume on 2 and 3, same result as uninterrupted', { skip }, async (t) => {
  const n = 6_001;
  const dir = join(work, 'ckpt');
  const straight = await run(4, { mode: 'train', n, steps: 6, stage: 2, gradWorld: 4, save: { dir, at: 3 } });
  t.ok(straight.every((r) => r.code === 0), straight.map((r) => r.stderr).join('').slice(-2000));
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_3');
  for (const world of [2, 3]) {
    const resumed = await run(world, { mode: 'train', n, steps: 6, from: 4, stage: 2, gradWorld: 4, load: dir });
    t.ok(resumed.every((r) => r.code === 0), resumed.map((r) => r.stderr).join('').slice(-2000));
    if (resumed.some((r) => r.code !== 0)) continue;
    const err = Math.max(...resumed.map((r) => maxRelError(paramsOf(r), paramsOf(straight[0]!))));
    t.ok(err <= 1e-6, `resumed on ${world}: max relative error ${err.toExponential(2)}`);
  }
});
