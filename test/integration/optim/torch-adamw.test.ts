import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShardedAdam } from '../../../src/runtime/optim/index.js';
import { createLoopbackGroups, onEveryRank } from '../../helpers/optim-loopback-group.js';
import { averaged, localGrads, maxRelError, randomArray } from '../../helpers/optim-data.js';
import { PYTHON, torchSkip } from '../../helpers/optim-python.js';

const script = fileURLToPath(new URL('../../fixtures/optim/torch_adamw.py', import.meta.url));
const skip = torchSkip();
const work = mkdtempSync(join(tmpdir(), 'dtrain-optim-torch-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const n = 3001;
const steps = 8;
const hyper = { lr: 3e-3, betas: [0.85, 0.995] as const, eps: 1e-7, weightDecay: 0.05 };

function torchRun(world: number, maxGradNorm: number | null): Float32Array {
  const grads = new Float32Array(steps * n);
  for (let s = 1; s <= steps; s++) grads.set(averaged(n, world, s), (s - 1) * n);
  const files = {
    params: join(work, 'p0.bin'),
    grads: join(work, `g${world}.bin`),
    out: join(work, `out${world}-${maxGradNorm}.bin`),
  };
  writeFileSync(files.params, randomArray(n, 1));
  writeFileSync(files.grads, grads);
  const cfg = join(work, 'cfg.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      n,
      steps,
      lr: hyper.lr,
      betas: hyper.betas,
      eps: hyper.eps,
      weight_decay: hyper.weightDecay,
      max_grad_norm: maxGradNorm,
      ...files,
    }),
  );
  execFileSync(PYTHON, [script, cfg], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  const out = readFileSync(files.out);
  return new Float32Array(out.buffer, out.byteOffset, n).slice();
}

t.test('ShardedAdam equals torch.optim.AdamW on the same data', { skip }, async (t) => {
  for (const maxGradNorm of [null, 2.0]) {
    for (const world of [1, 2, 3]) {
      const want = torchRun(world, maxGradNorm);
      for (const stage of [1, 2] as const) {
        const { groups } = createLoopbackGroups(world);
        const got = await onEveryRank(groups, async (group, rank) => {
          const p = randomArray(n, 1);
          const opt = new ShardedAdam(p, { group, stage, ...hyper, ...(maxGradNorm ? { maxGradNorm } : {}) });
          for (let s = 1; s <= steps; s++) await opt.step(localGrads(n, rank, s));
          return p;
        });
        const err = maxRelError(got[0], want, hyper.lr);
        t.ok(
          err < 1e-6,
          `world ${world}, stage ${stage}, clip ${maxGradNorm}: max relative error ${err.toExponential(2)}`,
        );
      }
    }
  }
});
