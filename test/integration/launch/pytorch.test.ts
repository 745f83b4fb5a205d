// A PyTorch program that knows nothing about dtrain runs unchanged: env:// rendezvous, gloo, all_reduce,
// a DDP step, on 4 workers with Debian's torch (/usr/bin/python3 only).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { built, fixtures, runDtrain, tempDir } from '../../helpers/launch.js';

const python = '/usr/bin/python3';
const hasTorch = spawnSync(python, ['-c', 'import torch.distributed'], { stdio: 'ignore' }).status === 0;

t.test(
  'gloo DDP with 4 workers',
  { skip: (!built() && 'run npx tsc -p . first') || (!hasTorch && `${python} has no torch`) },
  async (t) => {
    const dir = tempDir(t);
    const r = await runDtrain(
      ['launch', '--nproc-per-node', '4', '--set', `logs.dir=${dir}/logs`, '--', python, join(fixtures, 'ddp.py')],
      { cwd: dir },
    );
    t.equal(r.code, 0, r.stderr.slice(-3000));
    for (const rank of [0, 1, 2, 3])
      t.match(r.stdout, `[rank ${rank}] ddp ok rank=${rank} world=4 sum=10 local=${rank}`);
  },
);
