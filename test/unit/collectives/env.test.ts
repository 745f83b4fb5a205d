import t from 'tap';
import { groupRanks, parseDurationMs, readWorkerConfig, readWorkerEnv } from '../../../src/runtime/worker-env.js';
import { WORKER_ENV } from '../../../src/runtime/worker-env-table.js';

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
  t.throws(() => readWorkerEnv({ WORLD_SIZE: '2', DTRAIN_STORE: 'unix:/x' }), /RANK is not set/);
  t.throws(() => readWorkerEnv({ ...base, RANK: 'x' }), /not a non-negative integer/);
});

t.test('durations', async (t) => {
  t.equal(parseDurationMs('300', 'X'), 300_000);
  t.equal(parseDurationMs('2s', 'X'), 2000);
  t.equal(parseDurationMs('5m', 'X'), 300_000);
  t.equal(parseDurationMs('250ms', 'X'), 250);
  t.equal(parseDurationMs('1h30m', 'X'), 5_400_000, "compound, as in the config's grammar");
  t.equal(parseDurationMs('1.5', 'X'), 1500);
  t.equal(readWorkerEnv({ DTRAIN_COLLECTIVE_TIMEOUT: '1h30m' }).collectiveTimeoutMs, 5_400_000);
  t.throws(
    () => parseDurationMs('soon', 'DTRAIN_COLLECTIVE_TIMEOUT'),
    /DTRAIN_COLLECTIVE_TIMEOUT=soon is not a duration/,
  );
});

t.test('unset: the config defaults (collective_timeout 300s, rendezvous.timeout 60s, parallelism.*)', async (t) => {
  const w = readWorkerEnv({});
  t.equal(w.collectiveTimeoutMs, 300_000);
  t.equal(w.rendezvousTimeoutMs, 60_000);
  t.equal(w.backend, 'auto');
  t.same(w.config, {
    zeroStage: 0,
    schedule: '1f1b',
    microbatches: 1,
    virtualStages: 1,
    bucketCapMb: 25,
    restartCount: 0,
  });
});

t.test('the job settings: zero stage, schedule, microbatches, virtual stages, attempt', async (t) => {
  const env = {
    DTRAIN_ZERO_STAGE: '2',
    DTRAIN_SCHEDULE: 'interleaved-1f1b',
    DTRAIN_MICROBATCHES: '8',
    DTRAIN_VIRTUAL_STAGES: '2',
    DTRAIN_BUCKET_CAP_MB: '4',
    TORCHELASTIC_RESTART_COUNT: '3',
  };
  const want = {
    zeroStage: 2,
    schedule: 'interleaved-1f1b',
    microbatches: 8,
    virtualStages: 2,
    bucketCapMb: 4,
    restartCount: 3,
  };
  t.same(readWorkerConfig(env), want);
  t.same(readWorkerEnv(env).config, want);
  t.throws(() => readWorkerConfig({ DTRAIN_ZERO_STAGE: '3' }), { name: 'InitError', message: /not one of 0, 1, 2/ });
  t.throws(() => readWorkerConfig({ DTRAIN_MICROBATCHES: '0' }), /DTRAIN_MICROBATCHES=0 must be at least 1/);
  t.throws(() => readWorkerConfig({ DTRAIN_BUCKET_CAP_MB: '0' }), /DTRAIN_BUCKET_CAP_MB=0 must be at least 1/);
  t.throws(() => readWorkerEnv({ DTRAIN_BACKEND: 'gloo' }), /DTRAIN_BACKEND=gloo is not one of auto, cpu, nccl/);
});

t.test('the runtime reads no variable outside the table', async (t) => {
  const read = new Set<string>();
  const env = new Proxy<NodeJS.ProcessEnv>(
    { ...base },
    {
      get(target, name) {
        if (typeof name === 'string') read.add(name);
        return target[name as string];
      },
    },
  );
  readWorkerEnv(env);
  const names = new Set(WORKER_ENV.map((v) => v.name));
  t.same(
    [...read].filter((n) => !names.has(n)),
    [],
  );
  t.ok(read.has('DTRAIN_ZERO_STAGE') && read.has('DTRAIN_COLLECTIVE_TIMEOUT'), 'the proxy sees the reads');
});
