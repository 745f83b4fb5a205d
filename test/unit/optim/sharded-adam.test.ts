import t from 'tap';
import { ShardedAdam, OptimizerUsageError } from '../../../src/runtime/optim/index.js';
import { optimNative } from '../../../src/runtime/optim/native.js';
import { createLoopbackGroups, onEveryRank } from '../../helpers/optim-loopback-group.js';
import { HYPER, averaged, localGrads, maxRelError, randomArray, referenceRun } from '../../helpers/optim-data.js';

const STEPS = 5;
const opts = {
  lr: HYPER.lr,
  betas: [HYPER.beta1, HYPER.beta2] as const,
  eps: HYPER.eps,
  weightDecay: HYPER.weightDecay,
};

/** Every rank starts from the same params, steps with its own gradients; returns each rank's final params. */
async function trainSharded(
  n: number,
  world: number,
  stage: 0 | 1 | 2 | undefined,
  extra: Record<string, unknown> = {},
  split?: number[],
) {
  const { groups, stats } = createLoopbackGroups(world);
  const finals = await onEveryRank(groups, async (group, rank) => {
    const flat = randomArray(n, 1);
    // optionally a list of arrays (the model's tensors), flattened once by the optimizer
    const params = split
      ? split.map((len, i) => flat.slice(split.slice(0, i).reduce((a, b) => a + b, 0)).subarray(0, len))
      : [flat];
    const opt = new ShardedAdam(split ? params : flat, { group, stage, ...opts, ...extra });
    for (let s = 1; s <= STEPS; s++) {
      const g = localGrads(n, rank, s);
      const gl = split
        ? split.map((len, i) => g.slice(split.slice(0, i).reduce((a, b) => a + b, 0)).subarray(0, len))
        : g;
      await opt.step(gl);
    }
    const out = new Float32Array(n);
    let at = 0;
    for (const p of params) {
      out.set(p, at);
      at += p.length;
    }
    return { params: out, opt };
  });
  return { finals, stats };
}

for (const stage of [0, 1, 2] as const) {
  t.test(`stage ${stage}: same params as the unsharded optimizer for worlds 1-4, uneven shards`, async (t) => {
    for (const n of [1, 37, 1000, 4099]) {
      for (const world of [1, 2, 3, 4]) {
        const want = referenceRun(randomArray(n, 1), world, STEPS);
        const { finals } = await trainSharded(n, world, stage);
        for (const [rank, f] of finals.entries()) {
          const err = maxRelError(f.params, want);
          if (!(err <= 1e-6)) t.fail(`n ${n} world ${world} rank ${rank}: relative error ${err}`);
        }
        t.pass(`n ${n}, world ${world}: every rank within 1e-6`);
      }
    }
  });
}

t.test('small buckets: many collectives, same result; stage 2 never all-reduces gradients', async (t) => {
  const n = 5003;
  const want = referenceRun(randomArray(n, 1), 3, STEPS);
  for (const stage of [0, 1, 2] as const) {
    const { finals, stats } = await trainSharded(n, 3, stage, { bucketBytes: 1024 });
    t.ok(maxRelError(finals[0].params, want) <= 1e-6, `stage ${stage} with 1 KiB buckets`);
    if (stage < 2)
      t.ok((stats.ops.allReduce ?? 0) >= STEPS * Math.ceil(n / 256), `stage ${stage} all-reduces bucket by bucket`);
    else {
      t.equal(stats.ops.allReduce ?? 0, 0, 'stage 2 sends no all-reduce');
      t.ok((stats.ops.reduceScatter ?? 0) >= STEPS * 2, 'stage 2 reduce-scatters in buckets');
    }
    if (stage === 0) t.equal(stats.ops.allGather ?? 0, 0, 'stage 0 (DDP) updates every parameter: no all-gather');
    else t.ok((stats.ops.allGather ?? 0) >= STEPS * 2, 'params are all-gathered in buckets');
  }
});

t.test("without a stage, the job's parallelism.zero_stage from the environment decides", async (t) => {
  const saved = process.env.DTRAIN_ZERO_STAGE;
  t.teardown(() => {
    if (saved === undefined) delete process.env.DTRAIN_ZERO_STAGE;
    else process.env.DTRAIN_ZERO_STAGE = saved;
  });
  const n = 5003;
  const want = referenceRun(randomArray(n, 1), 3, STEPS);
  for (const [zero, stage] of [
    ['2', 2],
    ['1', 1],
    ['0', 0],
    [undefined, 0],
  ] as const) {
    if (zero === undefined) delete process.env.DTRAIN_ZERO_STAGE;
    else process.env.DTRAIN_ZERO_STAGE = zero;
    const { finals, stats } = await trainSharded(n, 3, undefined, { bucketBytes: 1024 });
    t.ok(maxRelError(finals[0].params, want) <= 1e-6, `DTRAIN_ZERO_STAGE=${zero}: same params`);
    if (stage === 2) t.equal(stats.ops.allReduce ?? 0, 0, 'zero 2: reduce-scatter, no all-reduce');
    else t.ok((stats.ops.allReduce ?? 0) > 0, `DTRAIN_ZERO_STAGE=${zero}: stage ${stage} all-reduces the gradients`);
    t.equal((stats.ops.allGather ?? 0) > 0, stage > 0, `DTRAIN_ZERO_STAGE=${zero}: all-gathers only when sharded`);
    t.equal(new ShardedAdam(new Float32Array(8), { group: createLoopbackGroups(1).groups[0] }).stage, stage);
  }
  process.env.DTRAIN_ZERO_STAGE = '2';
  const group = createLoopbackGroups(1).groups[0];
  t.equal(new ShardedAdam(new Float32Array(8), { group, stage: 1 }).stage, 1, 'a given stage wins');
  process.env.DTRAIN_ZERO_STAGE = '3';
  t.throws(() => new ShardedAdam(new Float32Array(8), { group }), {
    name: 'InitError',
    message: /DTRAIN_ZERO_STAGE=3 is not one of 0, 1, 2/,
  });
});

t.test('a list of param arrays is one flat space; updated in place', async (t) => {
  const n = 1000;
  const split = [10, 333, 1, 400, 256];
  const want = referenceRun(randomArray(n, 1), 3, STEPS);
  for (const stage of [1, 2] as const) {
    const { finals } = await trainSharded(n, 3, stage, {}, split);
    for (const f of finals) t.ok(maxRelError(f.params, want) <= 1e-6, `stage ${stage}`);
  }
});

t.test('stages 0, 1 leave the averaged gradients in place (DDP semantics); stage 2 leaves them alone', async (t) => {
  const n = 300;
  for (const stage of [0, 1, 2] as const) {
    const { groups } = createLoopbackGroups(2);
    const after = await onEveryRank(groups, async (group, rank) => {
      const opt = new ShardedAdam(randomArray(n, 1), { group, stage, ...opts });
      const g = localGrads(n, rank, 1);
      await opt.step(g);
      return g;
    });
    const avg = averaged(n, 2, 1);
    if (stage < 2) t.ok(maxRelError(after[1], avg) < 1e-7, `stage ${stage}: grads averaged`);
    else t.ok(maxRelError(after[1], localGrads(n, 1, 1)) === 0, 'stage 2: local grads untouched');
  }
});

t.test('global-norm clipping uses the norm across all shards', async (t) => {
  const n = 2001;
  const want = referenceRun(randomArray(n, 1), 4, STEPS, HYPER, 1.0);
  const unclipped = referenceRun(randomArray(n, 1), 4, STEPS);
  t.ok(maxRelError(want, unclipped) > 1e-4, 'clipping changes the result (the test can fail)');
  for (const stage of [0, 1, 2] as const) {
    const { finals } = await trainSharded(n, 4, stage, { maxGradNorm: 1.0 });
    t.ok(maxRelError(finals[2].params, want) <= 1e-6, `stage ${stage}: clipped like the unsharded optimizer`);
    const expectNorm = Math.sqrt(optimNative().sumSquares({ data: averaged(n, 4, STEPS), dtype: 'float32' }));
    t.ok(Math.abs(finals[0].opt.lastGradNorm! - expectNorm) / expectNorm < 1e-6, 'lastGradNorm is the global norm');
  }
});

t.test('bf16 params with an fp32 master: the master matches the fp32 run, params are its rounding', async (t) => {
  const n = 777;
  const native = optimNative();
  const want = referenceRun(randomArray(n, 1), 2, STEPS);
  for (const stage of [1, 2] as const) {
    const { groups } = createLoopbackGroups(2);
    const res = await onEveryRank(groups, async (group, rank) => {
      const p = new Uint16Array(n);
      native.convertElements({ src: randomArray(n, 1), srcType: 'float32', dst: p, dstType: 'bfloat16' });
      // the master starts from the bf16 params, as it would in a real model
      const opt = new ShardedAdam(p, { group, stage, dtype: 'bfloat16', ...opts });
      for (let s = 1; s <= STEPS; s++) await opt.step(localGrads(n, rank, s)); // fp32 grads are allowed
      const back = new Float32Array(n);
      native.convertElements({ src: p, srcType: 'bfloat16', dst: back, dstType: 'float32' });
      return { back, opt };
    });
    // compare to an fp32 run started from the bf16-rounded params
    const start = new Float32Array(n);
    const tmp = new Uint16Array(n);
    native.convertElements({ src: randomArray(n, 1), srcType: 'float32', dst: tmp, dstType: 'bfloat16' });
    native.convertElements({ src: tmp, srcType: 'bfloat16', dst: start, dstType: 'float32' });
    const ref = referenceRun(start, 2, STEPS);
    t.ok(
      maxRelError(res[0].back, ref, HYPER.lr) < 2 ** -8,
      `stage ${stage}: bf16 params within bf16 rounding of the fp32 run`,
    );
    t.same(res[0].back, res[1].back, 'every rank holds the same params');
    t.equal(res[0].opt.stateBytes, 3 * 4 * Math.ceil(n / 2 / 16) * 16, 'm, v and master for half the params');
    t.ok(want.length === n);
  }
});

t.test('stateBytes is 1/N of the unsharded figure from stage 1, all of it at stage 0', async (t) => {
  const n = 102_400; // divisible into aligned shards, so the figure is exact
  for (const world of [1, 2, 4]) {
    const { groups } = createLoopbackGroups(world);
    const opt = new ShardedAdam(new Float32Array(n), { group: groups[0], stage: 2, ...opts });
    t.equal(opt.stateBytes, (8 * n) / world, `world ${world}`);
    t.equal(new ShardedAdam(new Float32Array(n), { group: groups[0], stage: 0, ...opts }).stateBytes, 8 * n);
  }
});

t.test('bad arguments are one clear error', async (t) => {
  const { groups } = createLoopbackGroups(1);
  const group = groups[0];
  t.throws(() => new ShardedAdam(new Uint16Array(4), { group }), OptimizerUsageError);
  t.throws(() => new ShardedAdam(new Float32Array(4), { group, stage: 3 as never }), /stage must be 0, 1 or 2/);
  t.throws(() => new ShardedAdam(new Float32Array(4), { group, lr: -1 }), /lr must be a positive number/);
  t.throws(() => new ShardedAdam(new Float32Array(4), { group, betas: [1, 0.9] }), /betas\[0\]/);
  t.throws(() => new ShardedAdam([], { group }), /no parameters/);
  const opt = new ShardedAdam(new Float32Array(4), { group });
  await t.rejects(opt.step(new Float32Array(5)), /grads have 5 elements, params 4/);
  await t.rejects(opt.step(new Uint16Array(4)), /fp32 params need Float32Array grads/);
  const first = opt.step(new Float32Array(4));
  await t.rejects(opt.step(new Float32Array(4)), /while another step/);
  await first;
});

t.test('16-bit gradients in a list of arrays: staged through fp32, same result on any world size', async (t) => {
  const native = optimNative();
  const n = 1234;
  const split = [100, 34, 1000, 100];
  const cut = <T extends Float32Array | Uint16Array>(a: T): T[] => {
    let at = 0;
    return split.map((len) => a.slice(at, (at += len)) as T);
  };
  const toHalf = (x: Float32Array, dtype: 'bfloat16' | 'float16') => {
    const h = new Uint16Array(x.length);
    native.convertElements({ src: x, srcType: 'float32', dst: h, dstType: dtype });
    return h;
  };
  for (const dtype of ['bfloat16', 'float16'] as const) {
    for (const stage of [1, 2] as const) {
      const finals: Uint16Array[] = [];
      for (const world of [1, 3]) {
        const { groups } = createLoopbackGroups(world);
        const res = await onEveryRank(groups, async (group) => {
          const params = cut(toHalf(randomArray(n, 1), dtype));
          const opt = new ShardedAdam(params, { group, stage, dtype, ...opts, bucketBytes: 512 });
          // the same gradients on every rank: their average is exact, so world size must not matter
          for (let s = 1; s <= 3; s++) await opt.step(cut(toHalf(localGrads(n, 0, s), dtype)));
          const flat = new Uint16Array(n);
          let at = 0;
          for (const p of params) {
            flat.set(p, at);
            at += p.length;
          }
          return flat;
        });
        finals.push(res[0]);
        t.same(res.at(-1), res[0], `${dtype} stage ${stage} world ${world}: ranks agree`);
      }
      t.same(finals[1], finals[0], `${dtype} stage ${stage}: world 3 equals world 1 bit for bit`);
      t.not(finals[0][5], toHalf(randomArray(n, 1), dtype)[5], 'params moved');
    }
  }
});

t.test('communication buffers come from options.alloc (dist.alloc in workers); states do not', async (t) => {
  const { groups } = createLoopbackGroups(2);
  const made: Array<[string, number]> = [];
  const results = await onEveryRank(groups, async (group, rank) => {
    const opt = new ShardedAdam(randomArray(1000, 1), {
      group,
      stage: 2,
      ...opts,
      bucketBytes: 1024,
      alloc: (type, length) => {
        if (rank === 0) made.push([type.name, length]);
        return new type(new ArrayBuffer(length * type.BYTES_PER_ELEMENT), 0, length);
      },
    });
    await opt.step(localGrads(1000, rank, 1));
    return opt.memory();
  });
  t.same(
    made.map(([name]) => name).sort(),
    ['Float32Array', 'Float32Array', 'Float32Array', 'Float32Array'],
    'grad shard, reduce staging, gather in/out',
  );
  const total = made.reduce((s, [, len]) => s + 4 * len, 0);
  t.equal(total, results[0].gradShard + results[0].buffers, 'memory() accounts for exactly those buffers');
});
