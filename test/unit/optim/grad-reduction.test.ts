import t from 'tap';
import { ShardedAdam, OptimizerUsageError } from '../../../src/runtime/optim/index.js';
import { summarise } from '../../../src/runtime/optim/grad-reduction.js';
import { createLoopbackGroups, onEveryRank } from '../../helpers/optim-loopback-group.js';
import { HYPER, localGrads, randomArray } from '../../helpers/optim-data.js';

const opts = {
  lr: HYPER.lr,
  betas: [HYPER.beta1, HYPER.beta2] as const,
  eps: HYPER.eps,
  weightDecay: HYPER.weightDecay,
};
// a model's tensors: 300, 2000, 500 and 1201 elements (layer sizes in flat order)
const LAYERS = [300, 2000, 500, 1201];
const N = LAYERS.reduce((a, b) => a + b, 0);

function split(flat: Float32Array): Float32Array[] {
  let at = 0;
  return LAYERS.map((len) => flat.slice(at, (at += len)));
}

/**
 * Trains STEPS steps on every rank; with overlap, each "layer" is marked ready in backward order (last first)
 * as a backward would. Returns each rank's final params (flat) and the last step's bucket timeline.
 */
async function train(world: number, stage: 1 | 2, bucketBytes: number, overlap: boolean) {
  const { groups } = createLoopbackGroups(world);
  return onEveryRank(groups, async (group, rank) => {
    const params = split(randomArray(N, 1));
    const opt = new ShardedAdam(params, { group, stage, ...opts, bucketBytes });
    let postedBeforeFinish = 0;
    let timeline: Array<{ postedAt: number }> = [];
    for (let s = 1; s <= 4; s++) {
      const grads = split(localGrads(N, rank, s));
      if (overlap) {
        const r = opt.beginReduction(grads);
        for (let k = LAYERS.length - 1; k >= 0; k--) r.ready(k);
        postedBeforeFinish = r.posted;
        timeline = r.timeline;
      }
      await opt.step(grads);
    }
    const flat = new Float32Array(N);
    let at = 0;
    for (const p of params) flat.set(p, (at += p.length) - p.length);
    return { flat, postedBeforeFinish, timeline };
  });
}

// The loopback group sums in float64 in rank order and rounds once, so any bucketing gives the same bits; the
// real transports' bitwise equality is checked with exact (quantized) gradients in the integration test.
for (const stage of [1, 2] as const) {
  t.test(
    `stage ${stage}: overlapped reduction gives bitwise the params of the plain step, any bucket size`,
    async (t) => {
      for (const world of [2, 3]) {
        const want = (await train(world, stage, 1 << 20, false))[0].flat;
        // 1 KiB: smaller than every layer; 4 KiB: layers share and split buckets; 1 MiB: one bucket
        for (const bucketBytes of [1024, 4096, 1 << 20]) {
          const got = await train(world, stage, bucketBytes, true);
          for (const [rank, r] of got.entries())
            t.same(
              Buffer.from(r.flat.buffer),
              Buffer.from(want.buffer),
              `world ${world}, ${bucketBytes} B, rank ${rank}`,
            );
          // every bucket was posted by the ready() calls, before step() waited
          t.ok(got[0].postedBeforeFinish > 0, `world ${world}, ${bucketBytes} B: buckets posted during the backward`);
        }
      }
    },
  );
}

t.test('a bucket starts only once all of it is ready, in one order from the end of the flat space', async (t) => {
  const { groups } = createLoopbackGroups(2);
  await onEveryRank(groups, async (group, rank) => {
    const params = split(randomArray(N, 1));
    // 4 KiB buckets over 4001 fp32 elements: [0,1024) [1024,2048) [2048,3072) [3072,4001)
    const opt = new ShardedAdam(params, { group, stage: 1, ...opts, bucketBytes: 4096 });
    const grads = split(localGrads(N, rank, 1));
    const r = opt.beginReduction(grads);
    r.ready(3, 500); // flat [3300, 4001): part of the last bucket only
    r.ready(3, 500); // again: counted once (twice would complete [3072, 4001))
    t.equal(r.posted, 0, 'a partly ready bucket waits');
    r.ready(3); // flat [2800, 4001): the last bucket is complete
    t.equal(r.posted, 1, 'the last bucket starts');
    r.ready(1); // flat [300, 2300): [1024, 2048) is complete, but [2048, 3072) before it in the order is not
    t.equal(r.posted, 1, 'a ready bucket waits for those before it in the order');
    r.ready(2); // flat [2300, 2800)
    t.equal(r.posted, 3, 'then both start');
    r.ready(0);
    t.equal(r.posted, 4, 'and the first');
    t.throws(() => r.ready(4), RangeError);
    t.throws(() => r.ready(0, 0, 301), RangeError);
    t.throws(() => opt.beginReduction(grads), OptimizerUsageError, 'one reduction at a time');
    await t.rejects(opt.step(split(localGrads(N, rank, 1))), OptimizerUsageError, 'step() with other grads');
    const summary = await r.finish();
    t.equal(summary.buckets, 4);
  });
});

t.test('summarise: in-flight time is a union, overlapped time ends where the step waited', async (t) => {
  const timeline = [
    { bucket: 0, bytes: 8, postedAt: 10, settledAt: 20 },
    { bucket: 1, bytes: 8, postedAt: 15, settledAt: 30 },
    { bucket: 2, bytes: 8, postedAt: 40, settledAt: 50 },
  ];
  t.same(summarise(timeline, 25, 50), {
    buckets: 3,
    bytes: 24,
    inFlightMs: 30,
    overlappedMs: 15,
    exposedMs: 25,
  });
});
