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
  t.same(detectSlurmAllocation({ SLURM_JOB_ID: '5', SLURM_JOB_NODELIST: 'n[1-4]', SLURM_JOB_NUM_NODES: '4', SLURM_CPUS_PER_TASK: '8' }), {
    jobId: '5',
    nodelist: 'n[1-4]',
    numNodes: 4,
    cpusPerTask: 8,
    inStep: false,
  });
  t.match(detectSlurmAllocation({ SLURM_JOBID: '6', SLURM_NODELIST: 'a,b', SLURM_STEP_ID: '0' }), { numNodes: 2, inStep: true });
});

t.test('one srun step per node, pinned to it, agent in stdio mode', async (t) => {
  const args = srunArgs({ workdir: '/w', dtrain: ['/n/node', '/d/bin/dtrain'], cpusPerTask: 16 }, { node_rank: 1, host: 'n2' });
  t.same(args.slice(args.indexOf('--')), ['--', '/n/node', '/d/bin/dtrain', 'agent', '--stdio']);
  for (const a of ['--nodes=1', '--ntasks=1', '--nodelist=n2', '--overlap', '--chdir=/w', '--cpus-per-task=16']) t.ok(args.includes(a), a);
});
