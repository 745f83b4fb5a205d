// The example trainer resumed on another world size through the real CLI: a 2-worker run stops after
// step 15 with step 10 checkpointed and committed; new jobs on 1 and on 3 workers resume from step 10
// (the ZeRO shards resharded, each data rank taking global batch / data size rows) and end with the
// eval_loss of an uninterrupted run.
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, tempDir } from '../../helpers/launch.js';

const quickstart = join(root, 'configs/quickstart.yaml');

function world(n: number): string[] {
  return [
    '--set',
    `nproc_per_node=${n}`,
    '--set',
    `nodes.0.slots=${n}`,
    '--set',
    'parallelism.pipeline=1',
    '--set',
    `parallelism.data=${n}`,
  ];
}

function evalLoss(stdout: string): number {
  const m = /\[rank \d+\] eval_loss (\S+)/.exec(stdout);
  if (!m) throw new Error(`no eval_loss line in:\n${stdout}`);
  return Number(m[1]);
}

if (!built() || !existsSync(join(root, 'dist/examples/train/main.js'))) {
  t.fail('build first: npm run build');
} else {
  t.test('a run stopped at world 2 resumes at world 1 and 3 from its step 10 commit, same eval_loss', async (t) => {
    const dir = tempDir(t, 'e2e-resume-world');
    // 96 rows split into 1, 2 or 3 data ranks × 4 microbatches; 128 batches an epoch
    const train = (ckpt: string) => [
      '--',
      '--steps',
      '20',
      '--global-batch',
      '96',
      '--train-samples',
      '12288',
      '--log-every',
      '5',
      '--checkpoint-dir',
      ckpt,
      '--checkpoint-every',
      '10',
    ];
    const launch = (n: number, ckpt: string, env: Record<string, string> = {}) =>
      runDtrain(['launch', quickstart, ...world(n), '--set', `logs.dir=${dir}/logs`, ...train(ckpt)], {
        cwd: root,
        env,
      });

    const clean = await launch(2, `${dir}/clean`);
    t.equal(clean.code, 0, clean.stderr.slice(-2000));
    const reference = evalLoss(clean.stdout + clean.stderr);

    const stopped = await launch(2, `${dir}/stopped`, { TRAIN_FAIL_AT_STEP: '15', TRAIN_FAIL_RANK: '1' });
    t.equal(stopped.code, 1, 'the first job fails after step 15');
    t.match(stopped.stdout + stopped.stderr, /rank 1: injected failure after step 15/);
    cpSync(`${dir}/stopped`, `${dir}/stopped-copy`, { recursive: true });

    for (const [n, ckpt] of [
      [1, `${dir}/stopped`],
      [3, `${dir}/stopped-copy`],
    ] as const) {
      const resumed = await launch(n, ckpt);
      t.equal(resumed.code, 0, resumed.stderr.slice(-2000));
      const out = resumed.stdout + resumed.stderr;
      t.match(out, new RegExp(`\\[rank 0\\] resumed from step 10 \\(.*, world ${n}\\)`), `world ${n} resumed`);
      t.notMatch(out, /\] step (1|5|10) loss/, `world ${n} did not train steps 1-10 again`);
      const loss = evalLoss(out);
      t.ok(Math.abs(loss - reference) / reference <= 1e-3, `world ${n}: eval_loss ${loss}, uninterrupted ${reference}`);
    }
  });
}
