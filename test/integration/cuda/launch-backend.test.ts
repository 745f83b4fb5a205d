// `dtrain launch` with backend nccl / auto on a machine without a GPU: the real controller, agents
// (in-process and child), store and probe child processes. nccl stops before any worker starts (exit 3,
// naming the node and reason); auto runs the job on cpu and says why.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, runDtrain, tempDir } from '../../helpers/launch.js';
import { cudaBuildInfo } from '../../../src/runtime/device/cuda-part.js';

const skip = !built() && 'run npx tsc -p . first';
// Without nvcc the part is not built and that is the reason; with it, the missing driver is.
const reason = cudaBuildInfo().built ? /no NVIDIA driver \(libcuda\.so\.1 not found\)/ : /CUDA part not built/;

function job(dir: string, backend: string): string {
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    [
      'name: backend-check',
      `entrypoint: [sh, -c, 'echo "backend=$DTRAIN_BACKEND"; touch ${dir}/ran.$RANK']`,
      'nproc_per_node: 2',
      `backend: ${backend}`,
      `logs: {dir: ${dir}/logs}`,
    ].join('\n') + '\n',
  );
  return file;
}

t.test('backend nccl without a GPU: exit 3 naming node 0 and the reason, no worker started', { skip }, async (t) => {
  const dir = tempDir(t, 'cuda');
  const r = await runDtrain(['launch', job(dir, 'nccl')], { cwd: dir });
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, /backend nccl: node 0 \(\S+\): /);
  t.match(r.stderr, reason);
  t.notOk(existsSync(join(dir, 'ran.0')) || existsSync(join(dir, 'ran.1')), 'no worker ran');
});

t.test('backend auto without a GPU: cpu, the line says why, workers get DTRAIN_BACKEND=cpu', { skip }, async (t) => {
  for (const agent of ['in-process', 'child']) {
    const dir = tempDir(t, 'cuda');
    const env = agent === 'child' ? { DTRAIN_LOCAL_AGENT: 'child' } : undefined;
    const r = await runDtrain(['launch', job(dir, 'auto')], { cwd: dir, env });
    t.equal(r.code, 0, `${agent}: ${r.stderr}`);
    t.match(r.stderr, /dtrain: backend auto → cpu: node 0 \(\S+\): /, agent);
    t.match(r.stderr, reason, agent);
    t.equal(r.stdout.match(/backend=cpu/g)?.length, 2, `${agent}: ${r.stdout}`);
  }
});

t.test('backend cpu: no probe, no backend line', { skip }, async (t) => {
  const dir = tempDir(t, 'cuda');
  const r = await runDtrain(['launch', job(dir, 'cpu')], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /backend/);
  t.equal(r.stdout.match(/backend=cpu/g)?.length, 2);
});
