// The job-wide backend decision from every node's probe (src/launch/backend.ts): pure logic.
import t from 'tap';
import { decideBackend, describeDecision, type NodeProbe } from '../../../src/launch/backend.js';

const gpuNode = (n: number, gpus = 8, nccl_version = '2.21.5'): NodeProbe => ({
  node_rank: n,
  host: `gpu-${n}`,
  backend: 'nccl',
  reason: `${gpus} GPU(s) and NCCL ${nccl_version}`,
  gpus,
  nccl_version,
});
const cpuNode = (n: number, reason = 'no NVIDIA driver (libcuda.so.1 not found)'): NodeProbe => ({
  node_rank: n,
  host: `cpu-${n}`,
  backend: 'cpu',
  reason,
  gpus: 0,
});

t.test('auto: nccl only when every node can', async (t) => {
  const all = decideBackend('auto', [gpuNode(1), gpuNode(0)]);
  t.equal(all.backend, 'nccl');
  t.equal(all.reason, 'every node has GPUs and NCCL (2 nodes, 16 GPUs, NCCL 2.21.5)');
  t.equal(decideBackend('auto', [gpuNode(0, 1)]).reason, 'every node has GPUs and NCCL (1 node, 1 GPU, NCCL 2.21.5)');
  t.match(decideBackend('auto', [gpuNode(0), gpuNode(1, 8, '2.18.3')]).reason, /NCCL 2\.21\.5 \/ 2\.18\.3\)$/);
  const one = decideBackend('auto', [gpuNode(0), cpuNode(1)]);
  t.same(one, { backend: 'cpu', reason: 'node 1 (cpu-1): no NVIDIA driver (libcuda.so.1 not found)' });
  const many = decideBackend('auto', [cpuNode(2, 'NCCL not usable: x'), gpuNode(0), cpuNode(1), cpuNode(3)]);
  t.equal(many.backend, 'cpu');
  t.equal(
    many.reason,
    'node 1 (cpu-1): no NVIDIA driver (libcuda.so.1 not found) (and 2 more nodes)',
    'the lowest node rank is named',
  );
  t.equal(
    describeDecision('auto', one),
    'backend auto → cpu: node 1 (cpu-1): no NVIDIA driver (libcuda.so.1 not found)',
  );
});

t.test('nccl: every node that cannot is named, exit 3', async (t) => {
  t.equal(decideBackend('nccl', [gpuNode(0), gpuNode(1)]).backend, 'nccl');
  const err = t.throws(() =>
    decideBackend('nccl', [gpuNode(0), cpuNode(2, 'NCCL not usable: libnccl.so.2 not found'), cpuNode(1)]),
  ) as Error & { exitCode: number };
  t.equal(err.exitCode, 3);
  t.equal(
    err.message,
    'backend nccl: node 1 (cpu-1): no NVIDIA driver (libcuda.so.1 not found); node 2 (cpu-2): NCCL not ' +
      'usable: libnccl.so.2 not found',
  );
});

t.test('a node with fewer GPUs than workers cannot run nccl (probeNode marks it cpu)', async (t) => {
  const short = {
    ...gpuNode(0, 2),
    backend: 'cpu' as const,
    reason: '4 workers but 2 GPU(s) visible (one GPU per worker)',
  };
  t.match(decideBackend('auto', [short]).reason, /4 workers but 2 GPU/);
});
