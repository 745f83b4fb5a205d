import t from 'tap';
import { configFromArgs } from '../../../src/config/index.js';
import { buildPlan, coordsOf, rankOf } from '../../../src/plan/index.js';

const plan = async (nproc: number, hosts: string[], sets: string[]) =>
  buildPlan(await configFromArgs({ nprocPerNode: nproc, hosts, entrypoint: ['python3', 'train.py'], sets }));

t.test('Megatron order, tensor fastest: data 2 × tensor 2 × pipeline 2 on 2 nodes of 4', async (t) => {
  const p = await plan(4, ['n0', 'n1'], ['parallelism.tensor=2', 'parallelism.pipeline=2']);
  t.equal(p.world_size, 8);
  t.same(p.parallelism, {
    data: 2,
    tensor: 2,
    pipeline: 2,
    zero_stage: 0,
    microbatches: 1,
    schedule: '1f1b',
    virtual_stages: 1,
  });
  t.same(
    p.ranks.map((r) => [r.rank, r.host, r.local_rank, r.pipeline, r.data, r.tensor]),
    [
      [0, 'n0', 0, 0, 0, 0],
      [1, 'n0', 1, 0, 0, 1],
      [2, 'n0', 2, 0, 1, 0],
      [3, 'n0', 3, 0, 1, 1],
      [4, 'n1', 0, 1, 0, 0],
      [5, 'n1', 1, 1, 0, 1],
      [6, 'n1', 2, 1, 1, 0],
      [7, 'n1', 3, 1, 1, 1],
    ],
    'pipeline stages span nodes; tensor pairs stay inside one',
  );
});

t.test('tensor 8 inside nodes, pipeline 2 across 4 nodes of 8 (data 2)', async (t) => {
  const p = await plan(8, ['a', 'b', 'c', 'd'], ['parallelism.tensor=8', 'parallelism.pipeline=2']);
  t.equal(p.parallelism.data, 2);
  for (const node of p.nodes) {
    const ranks = p.ranks.filter((r) => r.node_rank === node.node_rank);
    t.equal(
      new Set(ranks.map((r) => `${r.pipeline}/${r.data}`)).size,
      1,
      `${node.host} holds exactly one tensor group`,
    );
  }
  t.same(
    p.ranks
      .filter((r) => r.pipeline === 1)
      .map((r) => r.host)
      .filter((h, i, a) => a.indexOf(h) === i),
    ['c', 'd'],
  );
});

t.test('pure data parallel: coordinates are the rank', async (t) => {
  const p = await plan(3, ['a', 'b'], []);
  t.same(
    p.ranks.map((r) => [r.data, r.tensor, r.pipeline]),
    [0, 1, 2, 3, 4, 5].map((d) => [d, 0, 0]),
  );
});

t.test('pipeline only: one stage per rank', async (t) => {
  const p = await plan(2, ['a', 'b'], ['parallelism.pipeline=4', 'parallelism.microbatches=8']);
  t.same(
    p.ranks.map((r) => r.pipeline),
    [0, 1, 2, 3],
  );
});

t.test('coordsOf and rankOf are inverse for every rank of several grids', async (t) => {
  for (const size of [
    { data: 1, tensor: 1, pipeline: 1 },
    { data: 4, tensor: 2, pipeline: 3 },
    { data: 2, tensor: 8, pipeline: 4 },
    { data: 3, tensor: 1, pipeline: 5 },
  ]) {
    const world = size.data * size.tensor * size.pipeline;
    const ranks = Array.from({ length: world }, (_, r) => rankOf(coordsOf(r, size), size));
    t.same(ranks, [...Array(world).keys()], JSON.stringify(size));
  }
  t.same(
    coordsOf(13, { data: 4, tensor: 2, pipeline: 3 }),
    { tensor: 1, data: 2, pipeline: 1 },
    'rank 13 = 1·8 + 2·2 + 1',
  );
});
