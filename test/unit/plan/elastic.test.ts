// Elastic configs (schema and semantic checks) and the pure re-planning of an attempt on the nodes alive.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import type { JobConfig } from '../../../src/config/types.js';
import { ElasticPlanError, planAttempt, reachableWorlds } from '../../../src/plan/elastic.js';
import { planDocument, renderPlanTable } from '../../../src/plan/render.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-elastic-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
async function load(lines: string[]): Promise<JobConfig> {
  const name = `c${n++}.yaml`;
  writeFileSync(join(tmp, name), lines.join('\n') + '\n');
  return (await loadConfig(name, { cwd: tmp })).config;
}
async function problems(lines: string[]): Promise<string[]> {
  const err = await load(lines).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ConfigError)) throw new Error(`not rejected: ${String(err)}`);
  return err.problems.map(formatProblem);
}

const base = (extra: string[] = [], nodes = ['a', 'b', 'c', 'd']) => [
  'entrypoint: node train.js',
  'nproc_per_node: 2',
  'backend: cpu',
  'nodes:',
  ...nodes.map((h) => (h.startsWith('spare:') ? `  - {host: ${h.slice(6)}, spare: true}` : `  - host: ${h}`)),
  ...extra,
];

t.test('config: elastic, spares and checkpoint.dir normalised', async (t) => {
  const c = await load(
    base(
      ['elastic: {min_nodes: 2, rejoin: 10s, data_divides: 12}', 'checkpoint: {dir: ckpt}'],
      ['a', 'spare:s1', 'b', 'c'],
    ),
  );
  t.same(
    c.nodes.map((x) => x.host),
    ['a', 'b', 'c'],
    'spares are not in nodes',
  );
  t.same(
    c.elastic?.spares.map((x) => x.host),
    ['s1'],
  );
  t.match(c.elastic, { min_nodes: 2, max_nodes: 3, rejoin: 10_000, max_losses_per_node: 3, data_divides: 12 });
  t.equal(c.parallelism.data, 6, 'the data size at full strength counts no spare');
  t.equal(c.checkpoint?.dir, join(tmp, 'ckpt'), 'checkpoint.dir is absolute, relative to workdir');
  t.equal(
    planAttempt(c, [0, 1, 2]).plan.ranks[5].env.DTRAIN_CHECKPOINT_DIR,
    join(tmp, 'ckpt'),
    'every worker gets it as DTRAIN_CHECKPOINT_DIR',
  );
  t.equal((await load(base())).elastic, undefined, 'no elastic key: not elastic');
});

t.test('config: elastic semantic checks are located problems', async (t) => {
  t.same(await problems(base(['elastic: {min_nodes: 5}'])), [
    `c${n - 1}.yaml:9:22: elastic.min_nodes: is 5, but the config lists 4 nodes that are not spares`,
  ]);
  t.same(await problems(base([], ['a', 'spare:b'])), [
    `c${n - 1}.yaml:6:22: nodes.1.spare: a spare needs elastic: (only elastic jobs replace lost nodes)`,
  ]);
  t.same(await problems(base(['elastic: {min_nodes: 3, max_nodes: 2}'])), [
    `c${n - 1}.yaml:9:36: elastic.max_nodes: is 2, less than elastic.min_nodes (3)`,
  ]);
  t.same(await problems(base(['elastic: {data_divides: 12}'])), [
    `c${n - 1}.yaml:9:25: elastic.data_divides: is 12, but parallelism.data (8, the size at full strength) ` +
      'does not divide it',
  ]);
  t.same(await problems(base(['elastic: {min_nodes: 1}'], ['spare:a'])), [
    `c${n - 1}.yaml:5:3: nodes: every node is a spare: list at least one that is not`,
  ]);
});

t.test('plan: all alive is the full-strength plan', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 2}']));
  const a = planAttempt(c, [0, 1, 2, 3], { launcherEnv: {} });
  t.same(a.nodeIds, [0, 1, 2, 3]);
  t.equal(a.plan.world_size, 8);
  t.equal(a.plan.ranks[7].env.DTRAIN_DATA_SIZE, '8');
});

t.test('plan: a free spare takes the lost node its place, world unchanged', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 2}'], ['a', 'b', 'c', 'spare:s']));
  const a = planAttempt(c, [0, 2, 3], { launcherEnv: {} });
  t.same(a.nodeIds, [0, 3, 2], 'the spare (node id 3) runs node 1');
  t.same(
    a.plan.nodes.map((x) => x.host),
    ['a', 's', 'c'],
  );
  t.equal(a.plan.world_size, 6);
  t.same(
    a.plan.ranks.filter((r) => r.host === 's').map((r) => r.rank),
    [2, 3],
    "it runs the lost node's ranks",
  );
  const full = planAttempt(c, [0, 1, 2, 3], { launcherEnv: {} });
  t.same(full.nodeIds, [0, 1, 2], 'with every node alive the spare waits');
  t.same(full.idle, [3]);
});

t.test('plan: shrinking keeps tensor × pipeline, renumbers ranks, moves node 0', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 2}', 'parallelism: {tensor: 2}']));
  const a = planAttempt(c, [1, 2, 3], { launcherEnv: {} });
  t.same(a.nodeIds, [1, 2, 3]);
  t.equal(a.plan.world_size, 6);
  t.same(a.plan.parallelism, { ...c.parallelism, data: 3, tensor: 2 });
  t.same(
    a.plan.ranks.map((r) => [r.rank, r.host, r.data, r.tensor]),
    [
      [0, 'b', 0, 0],
      [1, 'b', 0, 1],
      [2, 'c', 1, 0],
      [3, 'c', 1, 1],
      [4, 'd', 2, 0],
      [5, 'd', 2, 1],
    ],
  );
  t.equal(a.plan.nodes[0].host, 'b', "node 0's loss moves node 0 (MASTER_ADDR) to the first node kept");
  t.equal(a.plan.ranks[0].env.GROUP_WORLD_SIZE, '3');
});

t.test('plan: data_divides picks the largest fitting size; idle slots and nodes', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 2, data_divides: 8}']));
  const a = planAttempt(c, [0, 1, 3], { launcherEnv: {} });
  t.equal(a.plan.world_size, 4, '6 slots, but data must divide 8: 4');
  t.same(a.nodeIds, [0, 1]);
  t.same(a.idle, [3], 'the node left without ranks waits');
});

t.test('plan: fewer than min_nodes, or no data size fits: ElasticPlanError (exit 1) saying why', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 3}']));
  t.throws(() => planAttempt(c, [0, 1]), new ElasticPlanError('2 nodes alive, fewer than elastic.min_nodes (3)'));
  t.equal(new ElasticPlanError('x').exitCode, 1);
  const tp = await load(base(['elastic: {min_nodes: 1}', 'parallelism: {tensor: 4}'], ['a', 'b']));
  t.throws(
    () => planAttempt(tp, [1]),
    new ElasticPlanError('no data size fits 2 slots on 1 node with tensor × pipeline = 4'),
  );
});

t.test('validate lists the worlds an elastic config can reach', async (t) => {
  const c = await load(base(['elastic: {min_nodes: 2, data_divides: 8}'], ['a', 'b', 'c', 'd', 'spare:s']));
  t.same(reachableWorlds(c), [
    { alive: 5, nodes: 4, world: 8, data: 8 },
    { alive: 4, nodes: 4, world: 8, data: 8 },
    { alive: 3, nodes: 2, world: 4, data: 4 },
    { alive: 2, nodes: 2, world: 4, data: 4 },
  ]);
  const plan = planAttempt(c, [0, 1, 2, 3, 4], { launcherEnv: {} }).plan;
  const text = renderPlanTable(plan);
  t.match(text, 'spares (node id, host): 4 s');
  t.match(text, '3 nodes alive: world 4 (data 4) on 2 nodes');
  t.match(text, 'fewer than 2: the job ends (exit 1)');
  t.match(planDocument(plan).elastic, {
    min_nodes: 2,
    max_nodes: 4,
    spares: ['s'],
    worlds: [{ alive: 5 }, { alive: 4 }, { alive: 3 }, { alive: 2 }],
  });
});
