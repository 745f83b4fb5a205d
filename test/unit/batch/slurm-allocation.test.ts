import t from 'tap';
import { detectSlurmAllocation, expandHostlist } from '../../../src/launch/slurm/allocation.js';
import { srunArgs } from '../../../src/launch/slurm/srun-spawner.js';
import { StartError } from '../../../src/util/errors.js';

t.test('hostlists expand like scontrol show hostnames', async (t) => {
  t.same(expandHostlist('vm'), ['vm']);
  t.same(expandHostlist('n[1-3]'), ['n1', 'n2', 'n3']);
  t.same(expandHostlist('gpu[08-10,12],cpu-a'), ['gpu08', 'gpu09', 'gpu10', 'gpu12', 'cpu-a']);
  t.same(expandHostlist('r[1-2]-n[1-2]'), ['r1-n1', 'r1-n2', 'r2-n1', 'r2-n2']);
  t.throws(() => expandHostlist('n[1-2'), StartError);
  t.throws(() => expandHostlist('n[a-b]'), StartError);
});

t.test('allocation from the environment', async (t) => {
  t.equal(detectSlurmAllocation({}), undefined);
  t.equal(detectSlurmAllocation({ SLURM_JOB_ID: '5' }), undefined);
  t.same(
    detectSlurmAllocation({
      SLURM_JOB_ID: '5',
      SLURM_JOB_NODELIST: 'n[1-4]',
      SLURM_JOB_NUM_NODES: '4',
      SLURM_CPUS_PER_TASK: '8',
    }),
    {
      jobId: '5',
      nodelist: 'n[1-4]',
      numNodes: 4,
      cpusPerTask: 8,
      inStep: false,
    },
  );
  t.match(detectSlurmAllocation({ SLURM_JOBID: '6', SLURM_NODELIST: 'a,b', SLURM_STEP_ID: '0' }), {
    numNodes: 2,
    inStep: true,
  });
});

t.test('one srun step per node, pinned to it, agent in stdio mode', async (t) => {
  const args = srunArgs(
    { workdir: '/w', dtrain: ['/n/node', '/d/bin/dtrain'], cpusPerTask: 16 },
    { node_rank: 1, host: 'n2' },
  );
  t.same(args.slice(args.indexOf('--')), ['--', '/n/node', '/d/bin/dtrain', 'agent', '--stdio']);
  for (const a of ['--nodes=1', '--ntasks=1', '--nodelist=n2', '--overlap', '--chdir=/w', '--cpus-per-task=16'])
    t.ok(args.includes(a), a);
  t.notOk(args.includes('--no-kill'), 'a job that is not elastic keeps Slurm defaults');
  const elastic = srunArgs({ workdir: '/w', dtrain: ['/d/bin/dtrain'], elastic: true }, { node_rank: 0, host: 'n1' });
  const options = elastic.slice(0, elastic.indexOf('--'));
  t.ok(options.includes('--no-kill') && options.includes('--kill-on-bad-exit=0'), 'elastic: the step outlives a node');
});

t.test("an elastic job's hosts beyond scheduler.nodes are its spares", async (t) => {
  const { applySlurmAllocation } = await import('../../../src/launch/slurm/index.js');
  const { loadConfig } = await import('../../../src/config/index.js');
  const path = await import('node:path');
  const load = async (yaml: string) => {
    const dir = t.testdir({ 'job.yaml': yaml });
    return (await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir })).config;
  };
  const env = {
    PATH: '/nonexistent',
    SLURM_JOB_ID: '9',
    SLURM_JOB_NODELIST: 'gpu[1-4]',
    SLURM_JOB_NUM_NODES: '4',
    SLURMD_NODENAME: 'gpu1',
  };
  const yaml = 'entrypoint: x\nnproc_per_node: 2\nscheduler: {kind: slurm, nodes: 2}\n';
  const a = await applySlurmAllocation(await load(yaml + 'elastic: {min_nodes: 1}\n'), env);
  t.same(
    a.config.nodes.map((n) => [n.host, n.local]),
    [
      ['gpu1', true],
      ['gpu2', false],
    ],
  );
  t.same(
    a.config.elastic?.spares.map((n) => [n.host, n.nproc, n.spare]),
    [
      ['gpu3', 2, true],
      ['gpu4', 2, true],
    ],
  );
  t.match(a.config.elastic, { min_nodes: 1, max_nodes: 2 }, 'max_nodes stays scheduler.nodes');
  t.same(a.warnings, ['Slurm job 9 has 4 nodes and scheduler.nodes is 2: the last 2 are spares of the elastic job']);

  const plain = await applySlurmAllocation(await load(yaml), env);
  t.equal(plain.config.nodes.length, 4, 'a job that is not elastic runs on every host');
  t.equal(plain.config.elastic, undefined);

  const fewer = await applySlurmAllocation(await load(yaml + 'elastic: {min_nodes: 1}\n'), {
    ...env,
    SLURM_JOB_NODELIST: 'gpu1',
    SLURM_JOB_NUM_NODES: '1',
  });
  t.same(
    fewer.config.nodes.map((n) => n.host),
    ['gpu1'],
  );
  t.same(fewer.config.elastic?.spares, [], 'no spare when the allocation has no host to spare');
});

t.test('inside an allocation the placeholder nodes become its hosts', async (t) => {
  const { applySlurmAllocation, allocatedGpus } = await import('../../../src/launch/slurm/index.js');
  const { loadConfig } = await import('../../../src/config/index.js');
  const path = await import('node:path');
  const load = async (yaml: string) => {
    const dir = t.testdir({ 'job.yaml': yaml });
    return (await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir })).config;
  };
  // no scontrol on this PATH: the built-in hostlist expansion stands in
  const env = {
    PATH: '/nonexistent',
    SLURM_JOB_ID: '9',
    SLURM_JOB_NODELIST: 'gpu[1-3]',
    SLURM_JOB_NUM_NODES: '3',
    SLURMD_NODENAME: 'gpu1',
  };

  const fixed = await load('entrypoint: x\nnproc_per_node: 4\nscheduler: {kind: slurm, nodes: 3}\n');
  const a = await applySlurmAllocation(fixed, env);
  t.same(
    a.config.nodes.map((n) => [n.host, n.nproc, n.local]),
    [
      ['gpu1', 4, true],
      ['gpu2', 4, false],
      ['gpu3', 4, false],
    ],
  );
  t.same(a.warnings, []);
  t.equal(a.allocation?.jobId, '9');

  const auto = await load('entrypoint: x\nscheduler: {kind: slurm, nodes: 2}\n');
  const b = await applySlurmAllocation(auto, { ...env, SLURM_GPUS_ON_NODE: '8' });
  t.same(
    b.config.nodes.map((n) => [n.nproc, n.nproc_assumed ?? false]),
    [
      [8, false],
      [8, false],
      [8, false],
    ],
  );
  t.match(b.warnings, [/scheduler.nodes is 2 but Slurm job 9 has 3 node\(s\): using the allocation/]);

  const listed = await load('entrypoint: x\nnodes: [{host: a}, {host: b}]\nscheduler: {kind: slurm}\n');
  t.equal((await applySlurmAllocation(listed, env)).config, listed, 'explicit nodes are left alone');
  t.equal(
    (await applySlurmAllocation(listed, { PATH: '/nonexistent' })).config,
    listed,
    'outside Slurm nothing changes',
  );
  await t.rejects(applySlurmAllocation(fixed, { PATH: '/nonexistent' }), {
    message:
      'job: the nodes come from a slurm allocation: run dtrain submit, or dtrain launch inside one ' +
      '(salloc), or list nodes in the config',
    exitCode: 2,
  });
  t.equal(
    (await applySlurmAllocation(fixed, { PATH: '/nonexistent' }, { dryRun: true })).config,
    fixed,
    'a dry run shows the placeholders',
  );

  const elsewhere = await applySlurmAllocation(fixed, { ...env, SLURMD_NODENAME: 'login1' });
  t.same(
    elsewhere.config.nodes.map((n) => n.local),
    [false, false, false],
  );
  t.match(elsewhere.warnings, [
    /this machine \(login1\) is not one of Slurm job 9's nodes \(gpu\[1-3\]\): every agent starts with srun/,
  ]);

  t.equal(allocatedGpus({ CUDA_VISIBLE_DEVICES: '0,1' }), 2);
  t.equal(allocatedGpus({ CUDA_VISIBLE_DEVICES: '' }), undefined);
  t.equal(allocatedGpus({}), undefined);
});
