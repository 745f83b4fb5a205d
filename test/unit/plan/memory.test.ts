import t from 'tap';
import { configFromArgs } from '../../../src/config/index.js';
import { buildPlan, estimateMemory, peakInFlight, type ParallelismPlan } from '../../../src/plan/index.js';

const grid = (over: Partial<ParallelismPlan>): ParallelismPlan => ({
  data: 1,
  tensor: 1,
  pipeline: 1,
  zero_stage: 0,
  microbatches: 1,
  schedule: '1f1b',
  virtual_stages: 1,
  ...over,
});
const model = { params: 7.5e9, micro_batch_size: 1, dtype: 'bf16' as const };

t.test('7.5B params, 64 data ranks, bf16: model states 120 / 31.4 / 16.6 GB for ZeRO 0 / 1 / 2', async (t) => {
  const gb = (stage: 0 | 1 | 2) => {
    const m = estimateMemory(model, grid({ data: 64, zero_stage: stage }), 0);
    return +((m.params + m.grads + m.optimizer) / 1e9).toFixed(1);
  };
  t.equal(gb(0), 120);
  t.equal(gb(1), 31.4);
  t.equal(gb(2), 16.6);
  t.same(estimateMemory(model, grid({ data: 64, zero_stage: 2 }), 0), {
    params: 15e9,
    grads: 15e9 / 64,
    optimizer: 90e9 / 64,
    activations: 0,
    total: 15e9 + 15e9 / 64 + 90e9 / 64,
  });
});

t.test('fp32 keeps 4Ψ + 4Ψ + 8Ψ; tensor and pipeline split Ψ', async (t) => {
  const m = estimateMemory({ ...model, params: 1e9, dtype: 'fp32' }, grid({ tensor: 2, pipeline: 2 }), 0);
  t.same([m.params, m.grads, m.optimizer], [1e9, 1e9, 2e9]);
});

t.test('activations: Korthikanti per layer × layers per stage × in-flight microbatches', async (t) => {
  const shape = { ...model, layers: 32, hidden: 4096, heads: 32, seq_len: 2048 };
  const perLayer = 2048 * 1 * 4096 * (10 + 24 / 1 + (5 * 32 * 2048) / 4096);
  t.equal(estimateMemory(shape, grid({}), 0).activations, perLayer * 32);
  // 1F1B with 4 stages and 8 microbatches: stage s holds min(4 - s, 8) microbatches of 8 layers
  const g = grid({ pipeline: 4, microbatches: 8 });
  t.same(
    [0, 1, 2, 3].map((s) => estimateMemory(shape, g, s).activations),
    [4, 3, 2, 1].map((k) => k * 8 * perLayer),
  );
  // tensor 2 shrinks the per-layer term
  const t2 = 2048 * 4096 * (10 + 24 / 2 + (5 * 32 * 2048) / (4096 * 2));
  t.equal(estimateMemory(shape, grid({ tensor: 2 }), 0).activations, t2 * 32);
});

t.test('peak in-flight microbatches per schedule', async (t) => {
  t.same(
    [0, 1, 2, 3].map((s) => peakInFlight(grid({ pipeline: 4, microbatches: 8, schedule: 'gpipe' }), s)),
    [8, 8, 8, 8],
  );
  t.same(
    [0, 1, 2, 3].map((s) => peakInFlight(grid({ pipeline: 4, microbatches: 2 }), s)),
    [2, 2, 2, 1],
  );
  // interleaved, 4 stages × 2 chunks, 8 microbatches: (p - s - 1)·2 + (v - 1)·p + 1
  t.same(
    [0, 1, 2, 3].map((s) =>
      peakInFlight(grid({ pipeline: 4, microbatches: 8, schedule: 'interleaved-1f1b', virtual_stages: 2 }), s),
    ),
    [11, 9, 7, 5],
  );
});

t.test('the plan carries per-rank memory and warns when it does not fit', async (t) => {
  const loaded = await configFromArgs({
    nprocPerNode: 8,
    hosts: ['a', 'b'],
    entrypoint: ['x'],
    sets: [
      'model={params: 7.5e9, layers: 32, hidden: 4096, heads: 32, seq_len: 2048, gpu_memory_gb: 40}',
      'parallelism.tensor=2',
    ],
  });
  const p = buildPlan(loaded);
  t.ok(p.ranks.every((r) => r.memory && r.memory.total > 40e9));
  t.equal(p.warnings.length, 1);
  t.match(
    p.warnings[0],
    /^model\.gpu_memory_gb: does not fit in gpu_memory_gb 40: 16 of 16 ranks need more; rank 0 \(pipeline stage 0\) needs \d+\.\d GB/,
  );
  const fits = buildPlan(
    await configFromArgs({
      nprocPerNode: 8,
      hosts: ['a', 'b'],
      entrypoint: ['x'],
      sets: ['model={params: 1e9, layers: 16, hidden: 2048, heads: 16, seq_len: 1024, gpu_memory_gb: 80}'],
    }),
  );
  t.same(fits.warnings, []);
  const noShape = buildPlan(
    await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: ['model={params: 1e9}'] }),
  );
  t.match(noShape.warnings, [/activations are not estimated/]);
});

t.test("the closed form agrees with the pipeline runtime's own schedules", async (t) => {
  const { computeOrder } = await import('../../../src/runtime/pipeline/compute-order.js');
  const { peakInFlight: scheduled } = await import('../../../src/runtime/pipeline/schedule.js');
  const shapes: [ParallelismPlan['schedule'], number, number, number][] = [
    ['1f1b', 4, 8, 1],
    ['1f1b', 4, 2, 1],
    ['1f1b', 8, 64, 1],
    ['gpipe', 4, 8, 1],
    ['gpipe', 3, 2, 1],
    ['interleaved-1f1b', 4, 8, 2],
    ['interleaved-1f1b', 2, 4, 3],
    ['interleaved-1f1b', 4, 4, 2],
    ['interleaved-1f1b', 3, 9, 4],
  ];
  for (const [schedule, stages, microbatches, virtualStages] of shapes) {
    const g = grid({ schedule, pipeline: stages, microbatches, virtual_stages: virtualStages });
    const mine = [...Array(stages).keys()].map((s) => peakInFlight(g, s));
    const real = [...Array(stages).keys()].map((s) =>
      scheduled(computeOrder({ kind: schedule, stages, microbatches, virtualStages }, s)),
    );
    t.same(mine, real, `${schedule} p=${stages} m=${microbatches} v=${virtualStages}`);
  }
});
