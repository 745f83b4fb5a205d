// The end-to-end example through the real CLI: `dtrain launch configs/quickstart.yaml` (4 workers, data 2 ×
// pipeline 2, ZeRO-1, 1F1B × 4) against the same config squeezed into one process, and a failure injected
// mid-run that the launcher's restart recovers from the last checkpoint, bit for bit.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, tempDir } from '../../helpers/launch.js';

interface RankReport {
  rank: number;
  stage: number;
  dataRank: number;
  layers: number[];
  samples: Record<string, number[]>;
  traffic: {
    p2pSentBytes: number;
    p2pRecvBytes: number;
    collectiveBytes: number;
    byGroup: Record<string, Array<{ op: string; bytes: number }>>;
  };
  paramsSha256: string;
  evalLoss: number | null;
  firstStep: number;
  resumedFrom: number | null;
}

const quickstart = join(root, 'configs/quickstart.yaml');
const oneProcess = [
  '--set',
  'nproc_per_node=1',
  '--set',
  'nodes.0.slots=1',
  '--set',
  'parallelism.pipeline=1',
  '--set',
  'parallelism.data=1',
];

function reports(dir: string, world: number): RankReport[] {
  return Array.from(
    { length: world },
    (_, r) => JSON.parse(readFileSync(join(dir, `rank-${r}.json`), 'utf8')) as RankReport,
  );
}

function evalLoss(stdout: string): number {
  const m = /\[rank \d+\] eval_loss (\S+)/.exec(stdout);
  if (!m) throw new Error(`no eval_loss line in:\n${stdout}`);
  return Number(m[1]);
}

if (
  !built() ||
  !existsSync(join(root, 'dist/examples/train/main.js')) ||
  !existsSync(join(root, 'build/Release/dtrain_native.node'))
) {
  t.fail('build first: npx tsc -p . && npm run build:addon');
} else {
  t.test('quickstart: 4 workers train, the work is split, and one process reaches the same eval_loss', async (t) => {
    const dir = tempDir(t, 'e2e');
    const parallel = await runDtrain(
      ['launch', quickstart, '--set', `logs.dir=${dir}/logs`, '--', '--report-dir', `${dir}/p`],
      { cwd: root },
    );
    t.equal(parallel.code, 0, parallel.stderr.slice(-2000));
    const single = await runDtrain(
      ['launch', quickstart, ...oneProcess, '--set', `logs.dir=${dir}/logs`, '--', '--report-dir', `${dir}/s`],
      { cwd: root },
    );
    t.equal(single.code, 0, single.stderr.slice(-2000));
    const out = parallel.stdout + parallel.stderr;

    // progress comes from the last stage of data rank 0 only: rank = (pipeline 1)·(data 2) + 0 = 2
    const steps = [...out.matchAll(/^\[rank (\d+)\] step (\d+) loss (\S+)$/gm)];
    t.ok(steps.length >= 10, `${steps.length} progress lines`);
    t.same([...new Set(steps.map((m) => m[1]))], ['2'], 'only rank 2 prints progress');
    const first = Number(steps[0][3]);
    const p = evalLoss(out);
    const s = evalLoss(single.stdout + single.stderr);
    t.ok(p <= first / 2, `eval_loss ${p} is at most half the first step's loss ${first}`);
    t.ok(Math.abs(p - s) / s <= 1e-3, `4 workers: eval_loss ${p}; one process: ${s}`);

    const ranks = reports(`${dir}/p`, 4);
    const [whole] = reports(`${dir}/s`, 1);
    // layers: each stage holds a distinct contiguous run, replicas hold the same one, together all of them
    t.same(
      ranks.map((r) => [r.stage, r.dataRank]),
      [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ],
      'Megatron rank order',
    );
    t.same(ranks[0].layers, ranks[1].layers);
    t.same(ranks[2].layers, ranks[3].layers);
    t.same([...ranks[0].layers, ...ranks[2].layers], whole.layers, 'stages partition the layers in order');
    t.ok(ranks[0].layers.length > 0 && ranks[2].layers.length > 0);
    // samples: per step the two data ranks take disjoint halves of the one-process run's global batch
    const stepsRun = Object.keys(whole.samples);
    t.equal(stepsRun.length, 300);
    for (const step of stepsRun) {
      const d0 = ranks[0].samples[step];
      const d1 = ranks[1].samples[step];
      if (new Set([...d0, ...d1]).size !== d0.length + d1.length) t.fail(`step ${step}: data ranks share samples`);
      if (JSON.stringify([...d0, ...d1]) !== JSON.stringify(whole.samples[step]))
        t.fail(`step ${step}: not the global batch`);
      if (JSON.stringify(ranks[2].samples[step]) !== JSON.stringify(d0))
        t.fail(`step ${step}: stage 1 of data rank 0 saw other samples`);
    }
    // traffic: activations forward and gradients back, exactly 300 steps × 4 microbatches × 16 rows × 96
    // floats each way, plus the evaluation's 512 rows of activations
    const perStepWay = 300 * 4 * 16 * 96 * 4;
    for (const r of ranks) {
      t.equal(
        r.traffic.p2pSentBytes,
        r.stage === 0 ? perStepWay + 512 * 96 * 4 : perStepWay,
        `rank ${r.rank} p2p bytes sent`,
      );
      t.ok(r.traffic.collectiveBytes > 0, `rank ${r.rank} collectives ${r.traffic.collectiveBytes} B`);
      t.ok(
        r.traffic.byGroup.data.some((o) => o.op !== 'send' && o.bytes > 0),
        'the data group reduced gradients',
      );
    }
    t.equal(whole.traffic.p2pSentBytes, 0, 'one process sends nothing');
    t.equal(ranks[0].paramsSha256, ranks[1].paramsSha256, 'data replicas end with the same parameters');
  });

  t.test('gpipe, interleaved 1F1B and ZeRO-2 compute the same model as one process', async (t) => {
    const dir = tempDir(t, 'e2e-variants');
    const short = ['--', '--steps', '30', '--log-every', '30'];
    const run = async (set: string[]) => {
      const r = await runDtrain(['launch', quickstart, '--set', `logs.dir=${dir}/logs`, ...set, ...short], {
        cwd: root,
      });
      t.equal(r.code, 0, `${set.join(' ')}: ${r.stderr.slice(-1500)}`);
      return r.stdout + r.stderr;
    };
    const reference = evalLoss(await run(oneProcess));
    for (const set of [
      ['--set', 'parallelism.schedule=gpipe'],
      ['--set', 'parallelism.schedule=interleaved-1f1b', '--set', 'parallelism.virtual_stages=2'],
      ['--set', 'parallelism.zero_stage=2'],
    ]) {
      const out = await run(set);
      const loss = evalLoss(out);
      t.ok(
        Math.abs(loss - reference) / reference <= 1e-3,
        `${set.filter((a) => a !== '--set').join(' ')}: eval_loss ${loss}, one process ${reference}`,
      );
      if (set.includes('parallelism.virtual_stages=2'))
        t.match(out, /\[rank 0\] rank 0 stage 0 data 0: layers 0,1,4,/, 'rank 0 holds slices 0 and 2');
    }
  });

  // The addon used to call std::terminate here instead of rejecting (fixed in the progress thread).
  t.test('a p2p peer dying rejects the pending receive instead of aborting the process', async (t) => {
    const dir = tempDir(t, 'e2e-peer');
    const cfg = join(dir, 'peer.yaml');
    writeFileSync(
      cfg,
      [
        `name: peer-dies`,
        `entrypoint: node ${join(root, 'test/fixtures/e2e/peer-dies.mjs')}`,
        `workdir: ${root}`,
        'nodes: [{host: localhost, slots: 2}]',
        'nproc_per_node: 2',
        'backend: cpu',
        `logs: {dir: ${dir}/logs}`,
      ].join('\n'),
    );
    const r = await runDtrain(['launch', cfg], { cwd: root, env: { PEER_DIES_MODE: 'recv', PEER_DIES_FLOATS: '16' } });
    const out = r.stdout + r.stderr;
    t.notMatch(out, /terminate called|SIGABRT/, 'no abort');
    t.match(out, /\[rank 0\] \["recv rejected: .*rank 1 died/, 'the receive rejects with the peer named');
  });

  t.test(
    'a failure mid-run restarts from the last checkpoint and ends bit for bit like an uninterrupted run',
    async (t) => {
      const dir = tempDir(t, 'e2e-resume');
      const args = (tag: string) => [
        '--',
        '--steps',
        '40',
        '--checkpoint-dir',
        `${dir}/ckpt-${tag}`,
        '--checkpoint-every',
        '10',
        '--report-dir',
        `${dir}/${tag}`,
      ];
      const clean = await runDtrain(['launch', quickstart, '--set', `logs.dir=${dir}/logs`, ...args('clean')], {
        cwd: root,
      });
      t.equal(clean.code, 0, clean.stderr.slice(-2000));
      const failed = await runDtrain(
        [
          'launch',
          quickstart,
          '--set',
          `logs.dir=${dir}/logs`,
          '--set',
          'restarts.max=1',
          '--set',
          'restarts.backoff=0s',
          ...args('failed'),
        ],
        { cwd: root, env: { TRAIN_FAIL_AT_STEP: '25' } },
      );
      t.equal(failed.code, 0, failed.stderr.slice(-2000));
      const out = failed.stdout + failed.stderr;
      t.match(out, /rank 3: injected failure after step 25/);
      t.match(out, /restarting the group \(restart 1 of 1\)/);
      t.match(
        out,
        /\[rank 2\] resumed from step 20 \(the job's last commit, world 4\)/,
        'from the commit in the store',
      );
      const a = reports(`${dir}/clean`, 4);
      const b = reports(`${dir}/failed`, 4);
      for (let r = 0; r < 4; r++) {
        t.equal(b[r].resumedFrom, 20, `rank ${r} resumed from step 20`);
        t.equal(b[r].paramsSha256, a[r].paramsSha256, `rank ${r}: final parameters identical`);
      }
      t.equal(evalLoss(out), evalLoss(clean.stdout + clean.stderr));

      // the model file beside the optimizer shards is checked on resume: a flipped byte stops the job
      const model = join(dir, 'ckpt-failed/stage_1/model_step_40.bin');
      const bytes = readFileSync(model);
      bytes[100] = bytes[100] ^ 0xff;
      writeFileSync(model, bytes);
      const corrupt = await runDtrain(
        [
          'launch',
          quickstart,
          '--set',
          `logs.dir=${dir}/logs`,
          '--',
          '--steps',
          '50',
          '--checkpoint-dir',
          `${dir}/ckpt-failed`,
        ],
        { cwd: root },
      );
      t.equal(corrupt.code, 1);
      t.match(
        corrupt.stdout + corrupt.stderr,
        /train: .*model_step_40\.bin differs from the parameters in .*step_40: the checkpoint is inconsistent/,
      );
    },
  );
}
