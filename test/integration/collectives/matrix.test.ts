/**
 * Every op × dtype × odd lengths on worlds of 1-4 real processes, each rank checking its results
 * against the JS reference, and stats() proving which transport and algorithm ran: shared memory on
 * one node, TCP when every rank is on its own node, hierarchical when nodes hold several ranks.
 */
import t, { type Test } from 'tap';
import { fixture, runWorkers, type WorkerResult } from '../../helpers/collectives-harness.js';

const all = (results: WorkerResult[]): any[] => results.map((r) => r.report);

function expectClean(t: Test, results: WorkerResult[]) {
  for (const r of results) {
    t.equal(r.code, 0, `rank ${r.rank} exits 0`, { stderr: r.stderr.slice(-2000) });
    t.ok(r.report, `rank ${r.rank} reports`);
    t.same(r.report?.failures, [], `rank ${r.rank} results match the reference`);
    t.ok(r.report?.checks > 0, `rank ${r.rank} checked elements`);
  }
}

function algorithms(report: any, group: string, op: string): string[] {
  return (report.stats[group] as any[])
    .filter((s) => s.op === op)
    .map((s) => `${s.transport}/${s.algorithm}`)
    .sort();
}

t.test('world of 1: every op is a local no-op or copy', async (t) => {
  const res = await runWorkers({ nodes: [1], script: fixture('matrix.mjs') });
  expectClean(t, res);
  t.same(algorithms(res[0].report, 'world', 'allReduce'), ['self/none']);
});

for (const n of [2, 3, 4]) {
  t.test(`${n} ranks on one node: shared memory, one-step and reduce-scatter + all-gather`, async (t) => {
    const res = await runWorkers({
      nodes: [n],
      script: fixture('matrix.mjs'),
      env: { COLL_LENGTHS: '0,1,7,1023,12289' },
    });
    expectClean(t, res);
    for (const r of all(res)) {
      t.equal(r.kinds.world, 'shm');
      t.same(algorithms(r, 'world', 'allReduce'), ['shm/one-step', 'shm/rs-ag-staged']);
      t.same(algorithms(r, 'world', 'send'), ['shm/stream']);
    }
  });
}

t.test('messages bigger than the staging area go in several rounds', async (t) => {
  const res = await runWorkers({
    nodes: [3],
    script: fixture('matrix.mjs'),
    env: { COLL_LENGTHS: '50001', COLL_DTYPES: 'float32,bfloat16,int64', DTRAIN_SHM_STAGING_BYTES: '65536' },
  });
  expectClean(t, res);
});

t.test('dist.alloc buffers are reduced in place (zero copy)', async (t) => {
  const res = await runWorkers({
    nodes: [3],
    script: fixture('matrix.mjs'),
    env: { COLL_LENGTHS: '7,20001', COLL_DTYPES: 'float32,float64,bfloat16', COLL_ALLOC: '1' },
  });
  expectClean(t, res);
  for (const r of all(res)) {
    t.ok(algorithms(r, 'world', 'allReduce').includes('shm/rs-ag-zero-copy'), 'large allReduce read peers in place');
    t.ok(algorithms(r, 'world', 'allGather').includes('shm/direct-zero-copy'));
  }
});

for (const n of [2, 3, 4]) {
  t.test(`${n} nodes of one rank: TCP ring`, async (t) => {
    const res = await runWorkers({
      nodes: Array(n).fill(1),
      script: fixture('matrix.mjs'),
      env: { COLL_LENGTHS: '0,1,7,5003' },
    });
    expectClean(t, res);
    for (const r of all(res)) {
      t.equal(r.kinds.world, 'tcp');
      t.same(algorithms(r, 'world', 'allReduce'), ['tcp/ring']);
      t.same(algorithms(r, 'world', 'recv'), ['tcp/stream']);
    }
  });
}

t.test(
  'large messages over TCP (receives that sleep until up to 1 MiB arrived) with odd tails, then small ones',
  async (t) => {
    for (const n of [2, 4]) {
      const res = await runWorkers({
        nodes: Array(n).fill(1),
        script: fixture('matrix.mjs'),
        env: { COLL_LENGTHS: '300007,7', COLL_DTYPES: 'float32,bfloat16,float64' },
      });
      expectClean(t, res);
      for (const r of all(res)) t.same(algorithms(r, 'world', 'allReduce'), ['tcp/ring']);
    }
  },
);

t.test('16-bit floats over TCP are accumulated in fp32 and rounded once, wherever the large term sits', async (t) => {
  for (const nodes of [[1, 1, 1], [1, 1, 1, 1], [3]]) {
    const res = await runWorkers({ nodes, script: fixture('half-accumulate.mjs') });
    expectClean(t, res);
  }
});

t.test('two nodes of two ranks: hierarchical all-reduce, all-gather, reduce-scatter and broadcast', async (t) => {
  const res = await runWorkers({
    nodes: [2, 2],
    script: fixture('matrix.mjs'),
    env: { COLL_LENGTHS: '1,7,5003', COLL_ROOTS: 'all' },
  });
  expectClean(t, res);
  for (const r of all(res)) {
    t.equal(r.kinds.world, 'hierarchical');
    t.same(algorithms(r, 'world', 'allReduce'), ['hierarchical/shm-reduce+tcp-ring+shm-broadcast']);
    t.same(algorithms(r, 'world', 'allGather'), ['hierarchical/shm-gather+tcp-ring+shm-broadcast']);
    t.same(algorithms(r, 'world', 'reduceScatter'), ['hierarchical/shm-reduce-scatter+tcp-rail-ring']);
    t.same(algorithms(r, 'world', 'broadcast'), ['hierarchical/shm+tcp-linear+shm'], 'from every root, leader or not');
  }
});

t.test(
  'hosts whose members are not consecutive group ranks (0, 2, 1, 3): all-gather and reduce-scatter keep group order',
  async (t) => {
    const res = await runWorkers({
      nodes: [2, 2],
      script: fixture('matrix.mjs'),
      env: {
        COLL_LENGTHS: '1,5003',
        COLL_DTYPES: 'float32,int64,bfloat16',
        COLL_GROUPS: 'interleaved',
        COLL_ROOTS: 'all',
      },
    });
    expectClean(t, res);
    for (const r of all(res)) {
      t.equal(r.kinds.interleaved, 'hierarchical');
      t.same(algorithms(r, 'interleaved', 'allGather'), ['hierarchical/shm-gather+tcp-ring+shm-broadcast']);
      t.same(algorithms(r, 'interleaved', 'reduceScatter'), ['hierarchical/shm-reduce-scatter+tcp-rail-ring']);
    }
  },
);

t.test(
  'DTRAIN_HIERARCHICAL=0 (the benchmark baseline): two nodes of two on the flat TCP ring, same results',
  async (t) => {
    const res = await runWorkers({
      nodes: [2, 2],
      script: fixture('matrix.mjs'),
      env: { COLL_LENGTHS: '7,5003', COLL_DTYPES: 'float32,bfloat16', DTRAIN_HIERARCHICAL: '0' },
    });
    expectClean(t, res);
    for (const r of all(res)) {
      t.equal(r.kinds.world, 'tcp');
      t.same(algorithms(r, 'world', 'allGather'), ['tcp/ring']);
    }
  },
);

t.test('ranks that disagree on DTRAIN_HIERARCHICAL are refused at init on every rank, naming both', async (t) => {
  const res = await runWorkers({ nodes: [2, 2], script: fixture('init-only.mjs'), env: { COLL_FLAT_RANK: '2' } });
  for (const r of res) {
    t.match(
      r.report?.error,
      /group world: DTRAIN_HIERARCHICAL=0 is set on rank 2 but not on rank \d: set it on every rank or on none/,
      `rank ${r.rank}`,
    );
    t.ok(
      r.report?.elapsedMs < 20_000,
      `rank ${r.rank} failed after ${r.report?.elapsedMs} ms, not at collective_timeout`,
    );
  }
});

t.test(
  'uneven nodes (2 + 1): hierarchical with a lone rank, all-gather too; reduce-scatter takes the flat ring',
  async (t) => {
    const res = await runWorkers({
      nodes: [2, 1],
      script: fixture('matrix.mjs'),
      env: { COLL_LENGTHS: '3,1001', COLL_DTYPES: 'float32,int32,float16', COLL_ROOTS: 'all' },
    });
    expectClean(t, res);
    for (const r of all(res)) {
      t.equal(r.kinds.world, 'hierarchical');
      t.same(algorithms(r, 'world', 'broadcast'), ['hierarchical/shm+tcp-linear+shm']);
      t.same(
        algorithms(r, 'world', 'allGather'),
        ['hierarchical/shm-gather+tcp-ring+shm-broadcast'],
        'hosts of unequal size',
      );
      t.same(algorithms(r, 'world', 'reduceScatter'), ['tcp/ring'], 'the rails need hosts of equal size');
    }
  },
);

t.test(
  'uneven nodes in a reordered group: 1 + 3 with (0, 2, 1, 3), hosts consecutive again; 2 + 1 with (0, 2, 1), not',
  async (t) => {
    for (const nodes of [
      [1, 3],
      [2, 1],
    ]) {
      const res = await runWorkers({
        nodes,
        script: fixture('matrix.mjs'),
        env: {
          COLL_LENGTHS: '1,5003',
          COLL_DTYPES: 'float32,int64,bfloat16',
          COLL_GROUPS: 'interleaved',
          COLL_ROOTS: 'all',
        },
      });
      expectClean(t, res);
      for (const r of all(res))
        t.same(
          algorithms(r, 'interleaved', 'allGather'),
          ['hierarchical/shm-gather+tcp-ring+shm-broadcast'],
          `nodes ${nodes.join(',')}`,
        );
    }
  },
);

t.test('data, pipeline and tensor groups in Megatron order (tensor 2 × pipeline 2)', async (t) => {
  const res = await runWorkers({
    nodes: [2, 2],
    parallelism: { tensor: 2, pipeline: 2 },
    script: fixture('matrix.mjs'),
    env: { COLL_LENGTHS: '5', COLL_DTYPES: 'float32,int64', COLL_GROUPS: 'all' },
  });
  expectClean(t, res);
  for (const r of all(res)) {
    // tensor groups are node-local, pipeline stages span the two nodes, data groups too (1 rank per node)
    t.equal(r.kinds.tensor, 'shm');
    t.equal(r.kinds.pipeline, 'tcp');
    t.equal(r.kinds.data, 'self');
  }
});

t.test('newGroup: sub-groups of even and odd ranks', async (t) => {
  const res = await runWorkers({
    nodes: [4],
    script: fixture('matrix.mjs'),
    env: { COLL_LENGTHS: '9', COLL_GROUPS: 'sub' },
  });
  expectClean(t, res);
  for (const r of all(res)) t.equal(r.kinds.sub, 'shm');
});
