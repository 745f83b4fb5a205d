// nproc_per_node: auto is settled in config/nproc-auto.ts: what the plan knows, then what the launch finds.
import t from 'tap';
import { nprocAtLaunch, nprocAtPlan } from '../../../src/config/nproc-auto.js';

t.test('at plan time: slots, then gpus_per_node for an allocation, then this machine, else an assumed 1', async (t) => {
  t.same(nprocAtPlan({ slots: 3, fromAllocation: false, localGpus: () => 8 }), { nproc: 3, assumed: false });
  t.same(nprocAtPlan({ fromAllocation: true, gpusPerNode: 4 }), { nproc: 4, assumed: false });
  t.same(nprocAtPlan({ fromAllocation: true, gpusPerNode: 0 }), { nproc: 1, assumed: true });
  t.same(nprocAtPlan({ fromAllocation: true }), { nproc: 1, assumed: true });
  t.same(nprocAtPlan({ fromAllocation: false, localGpus: () => 2 }), { nproc: 2, assumed: false });
  t.same(nprocAtPlan({ fromAllocation: false, localGpus: () => 0 }), { nproc: 1, assumed: false }, 'no GPU: 1');
  t.same(nprocAtPlan({ fromAllocation: false }), { nproc: 1, assumed: true }, 'a remote host without slots');
});

t.test('at launch: only an assumed count takes the GPUs found, at least 1', async (t) => {
  t.same(nprocAtLaunch({ nproc: 1, nproc_assumed: true }, 8), { nproc: 8, assumed: false });
  t.same(nprocAtLaunch({ nproc: 1, nproc_assumed: true }, 0), { nproc: 1, assumed: false });
  t.same(nprocAtLaunch({ nproc: 1, nproc_assumed: true }, undefined), { nproc: 1, assumed: true }, 'nothing found');
  t.same(nprocAtLaunch({ nproc: 2 }, 8), { nproc: 2, assumed: false }, 'a known count stays');
});
