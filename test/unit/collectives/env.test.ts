import t from 'tap';
import { groupRanks, parseDurationMs, readWorkerEnv } from '../../../src/runtime/worker-env.js';

const base = { RANK: '5', WORLD_SIZE: '8', DTRAIN_STORE: 'unix:/tmp/x.sock', DTRAIN_NODE_RANK: '1' };

t.test('Megatron order: tensor fastest, then data, then pipeline', async (t) => {
  // world 8 = pipeline 2 × data 2 × tensor 2; rank 5 = pp 1, dp 0, tp 1
  const w = readWorkerEnv({ ...base, DTRAIN_TENSOR_SIZE: '2', DTRAIN_PIPELINE_SIZE: '2', DTRAIN_DATA_SIZE: '2' });
  t.same([w.pipeline.rank, w.data.rank, w.tensor.rank], [1, 0, 1]);
  const g = groupRanks(w);
  t.same(g.tensor, [4, 5]);
  t.same(g.data, [5, 7]);
  t.same(g.pipeline, [1, 5]);
  t.same(g.world, [0, 1, 2, 3, 4, 5, 6, 7]);
  t.equal(w.nodeRank, 1);
});

t.test('without parallelism variables everything is data parallel', async (t) => {
  const w = readWorkerEnv(base);
  t.same(groupRanks(w).data, [0, 1, 2, 3, 4, 5, 6, 7]);
  t.same(groupRanks(w).tensor, [5]);
});

t.test('a single process needs no store', async (t) => {
  const w = readWorkerEnv({});
  t.equal(w.worldSize, 1);
  t.equal(w.rank, 0);
});

t.test('inconsistent environments are refused with one clear line', async (t) => {
  t.throws(() => readWorkerEnv({ ...base, RANK: '9' }), {
    name: 'InitError',
    message: /RANK=9 is outside WORLD_SIZE=8/,
  });
  t.throws(() => readWorkerEnv({ ...base, DTRAIN_TENSOR_SIZE: '3' }), /is not WORLD_SIZE=8/);
  t.throws(
    () => readWorkerEnv({ ...base, DTRAIN_TENSOR_SIZE: '2', DTRAIN_TENSOR_RANK: '0' }),
    /does not match its coordinates/,
  );
  t.throws(() => readWorkerEnv({ RANK: '1', WORLD_SIZE: '2' }), /DTRAIN_STORE is not set/);
  t.throws(() => readWorkerEnv({ ...base, RANK: 'x' }), /not a non-negative integer/);
});

t.test('durations', async (t) => {
  t.equal(parseDurationMs('300', 'X'), 300_000);
  t.equal(parseDurationMs('2s', 'X'), 2000);
  t.equal(parseDurationMs('5m', 'X'), 300_000);
  t.equal(parseDurationMs('250ms', 'X'), 250);
  t.throws(
    () => parseDurationMs('soon', 'DTRAIN_COLLECTIVE_TIMEOUT'),
    /DTRAIN_COLLECTIVE_TIMEOUT=soon is not a duration/,
  );
});
