import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromArgs, loadConfig } from '../../../src/config/index.js';
import { AUTO, WORKER_ENV, buildPlan, fillAtLaunch, planDocument, renderPlanTable } from '../../../src/plan/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-plan-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('node placement: nodes in order, ranks [offset, offset + nproc), local ranks from 0', async (t) => {
  writeFileSync(join(tmp, 'hosts'), 'w0 slots=4\nw1 slots=2\nw2 slots=4\n');
  writeFileSync(join(tmp, 'p.yaml'), 'entrypoint: python3 train.py\nhostfile: hosts\nexclude: w2:0,1\n');
  const p = buildPlan(await loadConfig(join(tmp, 'p.yaml')));
  t.same(
    p.nodes.map((n) => [n.node_rank, n.host, n.nproc, n.cuda_visible_devices]),
    [
      [0, 'w0', 4, undefined],
      [1, 'w1', 2, undefined],
      [2, 'w2', 2, '2,3'],
    ],
  );
  t.same(
    p.ranks.map((r) => `${r.rank}@${r.host}:${r.local_rank}`),
    ['0@w0:0', '1@w0:1', '2@w0:2', '3@w0:3', '4@w1:0', '5@w1:1', '6@w2:0', '7@w2:1'],
  );
  t.same(
    p.ranks.map((r) => r.env.LOCAL_WORLD_SIZE),
    ['4', '4', '4', '4', '2', '2', '2', '2'],
  );
  t.equal(p.ranks[6].env.CUDA_VISIBLE_DEVICES, '2,3');
  t.equal(p.ranks[0].env.CUDA_VISIBLE_DEVICES, undefined);
});

t.test('the env contract: torchrun variables and DTRAIN_*, launch-time values as AUTO', async (t) => {
  const loaded = await configFromArgs({
    nprocPerNode: 2,
    hosts: ['a', 'b'],
    maxRestarts: 2,
    backend: 'cpu',
    entrypoint: ['python3', 'train.py'],
    sets: ['parallelism.pipeline=2', 'parallelism.microbatches=4', 'parallelism.zero_stage=1', 'env.NCCL_DEBUG=WARN'],
  });
  const p = buildPlan(loaded, { extraArgs: ['--steps', '5'] });
  const r3 = p.ranks[3];
  for (const { name, optional } of WORKER_ENV) if (!optional) t.ok(name in r3.env, `${name} is set`);
  t.match(r3.env, {
    RANK: '3',
    LOCAL_RANK: '1',
    WORLD_SIZE: '4',
    LOCAL_WORLD_SIZE: '2',
    GROUP_RANK: '1',
    GROUP_WORLD_SIZE: '2',
    ROLE_RANK: '3',
    ROLE_WORLD_SIZE: '4',
    ROLE_NAME: 'default',
    MASTER_ADDR: AUTO,
    MASTER_PORT: AUTO,
    TORCHELASTIC_RESTART_COUNT: AUTO,
    TORCHELASTIC_MAX_RESTARTS: '2',
    TORCHELASTIC_RUN_ID: AUTO,
    TORCHELASTIC_USE_AGENT_STORE: 'False',
    TORCHELASTIC_ERROR_FILE: AUTO,
    DTRAIN_STORE: AUTO,
    DTRAIN_PROGRESS_FILE: AUTO,
    DTRAIN_RUN_ID: AUTO,
    DTRAIN_NODE_RANK: '1',
    DTRAIN_DATA_RANK: '1',
    DTRAIN_DATA_SIZE: '2',
    DTRAIN_PIPELINE_RANK: '1',
    DTRAIN_PIPELINE_SIZE: '2',
    DTRAIN_TENSOR_RANK: '0',
    DTRAIN_TENSOR_SIZE: '1',
    DTRAIN_ZERO_STAGE: '1',
    DTRAIN_MICROBATCHES: '4',
    DTRAIN_SCHEDULE: '1f1b',
    DTRAIN_VIRTUAL_STAGES: '1',
    DTRAIN_BACKEND: 'cpu',
    NCCL_DEBUG: 'WARN',
    OMP_NUM_THREADS: '1',
  });
  t.same(r3.command, ['python3', 'train.py', '--steps', '5'], 'extra args appended');
  t.equal(p.config, loaded.config, 'the plan carries its config for the launcher');
});

t.test('OMP_NUM_THREADS=1 only with several processes and when not set already', async (t) => {
  const one = buildPlan(await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'] }), { launcherEnv: {} });
  t.equal(one.ranks[0].env.OMP_NUM_THREADS, undefined);
  const two = buildPlan(await configFromArgs({ nprocPerNode: 2, entrypoint: ['x'] }), { launcherEnv: {} });
  t.equal(two.ranks[0].env.OMP_NUM_THREADS, '1');
  const inherited = buildPlan(await configFromArgs({ nprocPerNode: 2, entrypoint: ['x'] }), {
    launcherEnv: { OMP_NUM_THREADS: '8' },
  });
  t.equal(
    inherited.ranks[0].env.OMP_NUM_THREADS,
    undefined,
    "a local node inherits the launcher's value (torchrun's rule)",
  );
  const configured = buildPlan(
    await configFromArgs({ nprocPerNode: 2, entrypoint: ['x'], sets: ['env.OMP_NUM_THREADS=4'] }),
    { launcherEnv: {} },
  );
  t.equal(configured.ranks[1].env.OMP_NUM_THREADS, '4');
});

t.test("Node workers start with V8's --single-threaded unless node_single_threaded is false", async (t) => {
  const plan = async (entrypoint: string[], sets: string[] = []) =>
    buildPlan(await configFromArgs({ nprocPerNode: 2, entrypoint, sets }), { extraArgs: ['--steps', '5'] }).ranks.map(
      (r) => r.command,
    );
  const single = ['node', '--single-threaded', 'train.js', '--steps', '5'];
  t.same(await plan(['node', 'train.js']), [single, single], 'every rank, flags before the script and its args');
  t.same((await plan(['/usr/bin/nodejs', 'train.js']))[0], [
    '/usr/bin/nodejs',
    '--single-threaded',
    'train.js',
    '--steps',
    '5',
  ]);
  t.same((await plan([process.execPath, 'train.js']))[0], [
    process.execPath,
    '--single-threaded',
    'train.js',
    '--steps',
    '5',
  ]);
  t.same(
    (await plan(['node', '--no-single-threaded', 'train.js']))[0],
    ['node', '--single-threaded', '--no-single-threaded', 'train.js', '--steps', '5'],
    "the user's own flag comes later, so it wins (V8 keeps a flag's last value)",
  );
  t.same((await plan(['node', '--single-threaded', 'train.js']))[0], single, 'not added twice');
  t.same(
    (await plan(['node', 'train.js', '--single-threaded']))[0],
    ['node', '--single-threaded', 'train.js', '--single-threaded', '--steps', '5'],
    "the script's own argument of that name is not node's flag",
  );
  t.same(
    (await plan(['node', '-e', 'code', 'dir', '--single-threaded']))[0],
    ['node', '--single-threaded', '-e', 'code', 'dir', '--single-threaded', '--steps', '5'],
    'after -e, the first word that is no option starts the arguments',
  );
  t.same(
    (await plan(['node', '--', 'train.js', '--single-threaded']))[0],
    ['node', '--single-threaded', '--', 'train.js', '--single-threaded', '--steps', '5'],
    '-- ends the options',
  );
  t.same(
    (await plan(['node', '-r', './setup.js', '--single-threaded', 'train.js']))[0],
    ['node', '-r', './setup.js', '--single-threaded', 'train.js', '--steps', '5'],
    "node's flag after an option's value is node's",
  );
  t.same((await plan(['node', 'train.js'], ['node_single_threaded=false']))[0], ['node', 'train.js', '--steps', '5']);
  for (const other of [
    ['python3', 'train.py'],
    ['torchrun', 'train.py'],
    ['bash', '-c', 'node train.js'],
  ])
    t.same((await plan(other))[0], [...other, '--steps', '5'], `${other[0]}: unchanged`);
});

t.test('fillAtLaunch fills the launch-time values and keeps fixed ones', async (t) => {
  const facts = {
    masterAddr: '10.0.0.1',
    masterPort: 29555,
    runId: 'run-7',
    restartCount: 1,
    attempt: 2,
    prevWorldSize: 8,
    errorFile: '/tmp/e/3.json',
    progressFile: '/tmp/e/3.progress.jsonl',
    store: 'unix:/tmp/s/store.sock',
    flightRecorder: '/tmp/s/flight-a1-r3.bin',
    stackFile: '/tmp/s/rank_3.stack',
  };
  const auto = buildPlan(await configFromArgs({ nprocPerNode: 4, entrypoint: ['x'] }));
  const env = fillAtLaunch(auto.ranks[3].env, facts);
  t.match(env, {
    RANK: '3',
    MASTER_ADDR: '10.0.0.1',
    MASTER_PORT: '29555',
    TORCHELASTIC_RUN_ID: 'run-7',
    DTRAIN_RUN_ID: 'run-7',
    TORCHELASTIC_RESTART_COUNT: '1',
    DTRAIN_ATTEMPT: '2',
    DTRAIN_PREV_WORLD_SIZE: '8',
    TORCHELASTIC_ERROR_FILE: '/tmp/e/3.json',
    DTRAIN_STORE: 'unix:/tmp/s/store.sock',
    DTRAIN_FLIGHT_RECORDER: '/tmp/s/flight-a1-r3.bin',
    DTRAIN_PROGRESS_FILE: '/tmp/e/3.progress.jsonl',
    DTRAIN_STACK_FILE: '/tmp/s/rank_3.stack',
  });
  t.same(
    Object.keys(env).filter((k) => env[k] === AUTO),
    ['DTRAIN_BACKEND'],
    'nothing left to fill (backend auto without a launch decision is resolved by the runtime)',
  );
  t.equal(fillAtLaunch(auto.ranks[3].env, { ...facts, backend: 'nccl' }).DTRAIN_BACKEND, 'nccl', 'the decided backend');
  t.equal(auto.ranks[3].env.MASTER_PORT, AUTO, 'the plan itself is not changed');
  const fixed = buildPlan(
    await configFromArgs({
      nprocPerNode: 2,
      masterAddr: 'head',
      masterPort: 29400,
      backend: 'cpu',
      entrypoint: ['x'],
    }),
  );
  t.match(fillAtLaunch(fixed.ranks[0].env, { ...facts, backend: 'nccl' }), {
    MASTER_ADDR: 'head',
    MASTER_PORT: '29400',
    DTRAIN_BACKEND: 'cpu',
  });
  t.match(
    fillAtLaunch({ TORCHELASTIC_RESTART_COUNT: '0' }, { ...facts, restartCount: 2 }),
    { TORCHELASTIC_RESTART_COUNT: '2' },
    "the agent rows are always the launch's",
  );
});

t.test('secret-looking env values are masked in the JSON document and the table, not in the plan', async (t) => {
  const p = buildPlan(
    await configFromArgs({
      nprocPerNode: 1,
      entrypoint: ['x'],
      sets: [
        'env.HF_TOKEN=hf_abc',
        'env.AWS_SECRET_ACCESS_KEY=s3cr3t',
        'env.DB_PASSWORD=pw',
        'env.api_key=k',
        'env.VISIBLE=yes',
      ],
    }),
  );
  t.equal(p.ranks[0].env.HF_TOKEN, 'hf_abc', 'workers get the real value');
  const doc = planDocument(p);
  t.match(doc.ranks[0].env, {
    HF_TOKEN: '***',
    AWS_SECRET_ACCESS_KEY: '***',
    DB_PASSWORD: '***',
    api_key: '***',
    VISIBLE: 'yes',
  });
  const printed = JSON.stringify(doc) + renderPlanTable(p);
  for (const secret of ['hf_abc', 's3cr3t', '=pw', '=k '])
    t.notOk(printed.includes(secret), `${secret} is not printed`);
  t.match(renderPlanTable(p), /HF_TOKEN=\*\*\*/);
});

t.test('the JSON document has the documented shape', async (t) => {
  const p = buildPlan(await configFromArgs({ nprocPerNode: 2, entrypoint: ['x'] }));
  const doc = planDocument(p);
  t.same(Object.keys(doc), ['name', 'world_size', 'parallelism', 'nodes', 'ranks', 'warnings']);
  t.same(Object.keys(doc.ranks[0]), [
    'rank',
    'node_rank',
    'host',
    'local_rank',
    'data',
    'pipeline',
    'tensor',
    'command',
    'env',
  ]);
  t.match(doc.nodes[0], { node_rank: 0, host: 'localhost', nproc: 2 });
  t.same(JSON.parse(JSON.stringify(doc)), doc, 'plain JSON');
});

t.test('the table groups ranks by node with coordinates', async (t) => {
  const p = buildPlan(
    await configFromArgs({
      nprocPerNode: 2,
      hosts: ['a', 'b'],
      entrypoint: ['python3', 'train.py'],
      sets: ['parallelism.pipeline=2', 'parallelism.microbatches=2'],
    }),
  );
  t.equal(
    renderPlanTable(p),
    [
      'dtrain: world 4 = data 2 × tensor 1 × pipeline 2, ZeRO 0, 1f1b, 2 microbatches',
      'command: python3 train.py',
      "backend: auto   master: node 0's address, a free port (picked at launch)",
      'worker env: WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 GROUP_WORLD_SIZE=2 ROLE_WORLD_SIZE=4 ROLE_NAME=default',
      '            TORCHELASTIC_MAX_RESTARTS=0 TORCHELASTIC_USE_AGENT_STORE=False OMP_NUM_THREADS=1',
      '            DTRAIN_DATA_SIZE=2 DTRAIN_PIPELINE_SIZE=2 DTRAIN_TENSOR_RANK=0 DTRAIN_TENSOR_SIZE=1',
      '            DTRAIN_ZERO_STAGE=0 DTRAIN_MICROBATCHES=2 DTRAIN_SCHEDULE=1f1b DTRAIN_VIRTUAL_STAGES=1',
      '            DTRAIN_COLLECTIVE_TIMEOUT=5m DTRAIN_RENDEZVOUS_TIMEOUT=1m',
      '            DTRAIN_CHECKPOINT_SIGNAL=SIGUSR1',
      '  per rank: RANK LOCAL_RANK GROUP_RANK ROLE_RANK DTRAIN_NODE_RANK DTRAIN_DATA_RANK',
      '            DTRAIN_PIPELINE_RANK',
      '  at launch: MASTER_ADDR MASTER_PORT TORCHELASTIC_RESTART_COUNT TORCHELASTIC_RUN_ID',
      '             TORCHELASTIC_ERROR_FILE DTRAIN_STORE DTRAIN_PROGRESS_FILE DTRAIN_RUN_ID DTRAIN_ATTEMPT',
      '             DTRAIN_PREV_WORLD_SIZE DTRAIN_BACKEND DTRAIN_FLIGHT_RECORDER DTRAIN_STACK_FILE',
      '',
      'node 0  a  2 processes  (ssh a)',
      '  rank  local  pipeline  data  tensor',
      '     0      0         0     0       0',
      '     1      1         0     1       0',
      '',
      'node 1  b  2 processes  (ssh b)',
      '  rank  local  pipeline  data  tensor',
      '     2      0         1     0       0',
      '     3      1         1     1       0',
      '',
    ].join('\n'),
  );
});

t.test('collective_timeout and rendezvous.timeout reach workers in the form the runtime parses', async (t) => {
  const { parseDurationMs } = await import('../../../src/runtime/worker-env.js');
  const defaults = buildPlan(await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'] }));
  t.equal(
    parseDurationMs(defaults.ranks[0].env.DTRAIN_COLLECTIVE_TIMEOUT, 'c'),
    defaults.config?.collective_timeout,
    'the default too',
  );
  for (const [c, r] of [
    ['90s', '1500ms'],
    ['1h30m', '2m'],
    ['0.5', '45'],
  ]) {
    const p = buildPlan(
      await configFromArgs({
        nprocPerNode: 2,
        entrypoint: ['x'],
        sets: [`collective_timeout=${c}`, `rendezvous.timeout=${r}`],
      }),
    );
    for (const rank of p.ranks) {
      t.equal(
        parseDurationMs(rank.env.DTRAIN_COLLECTIVE_TIMEOUT, 'DTRAIN_COLLECTIVE_TIMEOUT'),
        p.config?.collective_timeout,
        `collective_timeout=${c}`,
      );
      t.equal(
        parseDurationMs(rank.env.DTRAIN_RENDEZVOUS_TIMEOUT, 'DTRAIN_RENDEZVOUS_TIMEOUT'),
        p.config?.rendezvous.timeout,
        `rendezvous.timeout=${r}`,
      );
    }
  }
  const p = buildPlan(
    await configFromArgs({
      nprocPerNode: 1,
      entrypoint: ['x'],
      sets: ['collective_timeout=90s', 'rendezvous.timeout=1500ms'],
    }),
  );
  t.match(p.ranks[0].env, { DTRAIN_COLLECTIVE_TIMEOUT: '90s', DTRAIN_RENDEZVOUS_TIMEOUT: '1500ms' });
});

t.test('a config env naming a contract variable that has a config key is told the key', async (t) => {
  const err = await configFromArgs({
    nprocPerNode: 1,
    entrypoint: ['x'],
    sets: ['env.DTRAIN_COLLECTIVE_TIMEOUT=10s'],
  }).catch((e: unknown) => e);
  t.match(
    (err as Error).message,
    /DTRAIN_COLLECTIVE_TIMEOUT is set by dtrain for every worker from collective_timeout: set that key instead/,
  );
});
