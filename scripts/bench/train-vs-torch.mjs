#!/usr/bin/env node
// Training throughput of the example (src/examples/train, launched with `dtrain launch`) against the same
// model in PyTorch DDP (scripts/bench/train_torch_ddp.py: gloo, CPU), at world 1, 2 and 4, in one run.
// Both get the same data (the example's generated sets, written once for PyTorch), the same global batch
// split over the ranks as one microbatch, AdamW with the same settings, and one thread per rank. Rounds
// alternate the two (dtrain first in even rounds) so that a change in the machine's load falls on both.
//
// Per world: samples/s (training loop only, between barriers, as each program times it, after --warmup
// steps that both run untimed: V8 compiles the step's code during the first few hundred)
// as mean and p50 over the rounds, the ratio as the median of the per-round ratios, CPU seconds per wall
// second per rank (the benchmark must not win by using more cores) and CPU ms per 1,000 samples (all
// ranks), and both final losses (they must agree in trend; the batch order differs, so not to the digit).
//
//   node scripts/bench/train-vs-torch.mjs [--worlds 1,2,4] [--rounds 3] [--steps 3000] [--warmup 300] [--json]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    worlds: { type: 'string', default: '1,2,4' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '3000' },
    warmup: { type: 'string', default: '300' },
    json: { type: 'boolean', default: false },
  },
});
const worlds = values.worlds.split(',').map(Number);
const rounds = Number(values.rounds);
const steps = Number(values.steps);
const warmup = Number(values.warmup);
if (
  !worlds.every((w) => w >= 1 && 128 % w === 0) ||
  !(rounds >= 1) ||
  !(steps >= 1) ||
  !(warmup >= 0 && warmup < steps)
) {
  console.error('train-vs-torch: --worlds must divide 128; --rounds and --steps positive; --warmup below --steps');
  process.exit(2);
}
const model = { hidden: 96, layers: 6, inputs: 32, classes: 8, seed: 1234, trainSamples: 16384, evalSamples: 1024 };

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-bench-torch-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const { makeDataset } = await import(join(root, 'dist/examples/train/data.js'));
const data = makeDataset({
  seed: model.seed,
  inputs: model.inputs,
  classes: model.classes,
  train: model.trainSamples,
  eval: model.evalSamples,
});
for (const [name, set] of Object.entries(data)) {
  writeFileSync(join(tmp, `${name}.x`), Buffer.from(set.x.buffer, set.x.byteOffset, set.x.byteLength));
  writeFileSync(join(tmp, `${name}.y`), Buffer.from(set.y.buffer, set.y.byteOffset, set.y.byteLength));
}

const common = [
  ...['--steps', String(steps), '--warmup-steps', String(warmup)],
  ...['--log-every', String(steps), '--hidden', String(model.hidden)],
];

function parse(what, world, r) {
  const out = `${r.stdout}${r.stderr}`;
  const m = /samples_per_second (\S+) cpu_seconds_all_ranks (\S+)/.exec(out);
  const secs = /train_seconds (\S+)/.exec(out);
  if (r.status !== 0 || !m || !secs) {
    console.error(`train-vs-torch: ${what} at world ${world} failed (exit ${r.status}):\n${out.slice(-1500)}`);
    process.exit(1);
  }
  const losses = [...out.matchAll(/step \d+ loss (\S+)/g)].map((x) => Number(x[1]));
  return {
    samplesPerSecond: Number(m[1]),
    cpuPerWallPerRank: Number(m[2]) / (Number(secs[1]) * world),
    cpuMsPer1kSamples: (Number(m[2]) * 1e6) / (Number(m[1]) * Number(secs[1])),
    loss: losses.at(-1),
    evalLoss: Number(/eval_loss (\S+)/.exec(out)?.[1]),
  };
}

function dtrain(world) {
  const args = [join(root, 'bin/dtrain'), 'launch', join(root, 'configs/quickstart.yaml')];
  for (const s of [
    `nproc_per_node=${world}`,
    `nodes.0.slots=${world}`,
    `parallelism.data=${world}`,
    'parallelism.pipeline=1',
    'parallelism.microbatches=1',
    `logs.dir=${join(tmp, 'logs')}`,
  ])
    args.push('--set', s);
  const r = spawnSync(process.execPath, [...args, '--', ...common], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return parse('dtrain', world, r);
}

function torch(world) {
  const script = join(root, 'scripts/bench/train_torch_ddp.py');
  const r = spawnSync('/usr/bin/python3', [script, '--world', String(world), '--data', tmp, ...common], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return parse('PyTorch DDP', world, r);
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (const world of worlds) {
  const d = [];
  const p = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      d.push(dtrain(world));
      p.push(torch(world));
    } else {
      p.push(torch(world));
      d.push(dtrain(world));
    }
  }
  const summary = (runs) => ({
    samplesPerSecondMean: mean(runs.map((r) => r.samplesPerSecond)),
    samplesPerSecondP50: median(runs.map((r) => r.samplesPerSecond)),
    cpuPerWallPerRank: mean(runs.map((r) => r.cpuPerWallPerRank)),
    cpuMsPer1kSamples: mean(runs.map((r) => r.cpuMsPer1kSamples)),
    loss: runs.at(-1).loss,
    evalLoss: runs.at(-1).evalLoss,
    runs: runs.map((r) => r.samplesPerSecond),
  });
  results.push({
    world,
    dtrain: summary(d),
    torch: summary(p),
    ratio: median(d.map((x, i) => x.samplesPerSecond / p[i].samplesPerSecond)),
  });
}

const meta = { cores: cpus().length, loadavg1: loadavg()[0], rounds, steps, warmup, ...model, globalBatch: 128 };
if (values.json) {
  console.log(JSON.stringify({ ...meta, results }, null, 2));
} else {
  console.log(
    `example MLP (${model.layers} layers, hidden ${model.hidden}), global batch 128 as one microbatch, AdamW, ` +
      `${steps} steps (${warmup} untimed), ${rounds} alternating rounds; ` +
      `PyTorch ${torchVersion()} DDP (gloo), one thread per rank`,
  );
  console.log(`machine: ${meta.cores} cores, load average ${meta.loadavg1.toFixed(1)} at the end`);
  console.log(
    'world  dtrain samples/s mean / p50   PyTorch mean / p50   ratio (median)  CPU/wall per rank d / pt' +
      '  CPU ms/1k samples d / pt   final loss d / pt   eval_loss d / pt',
  );
  for (const r of results) {
    const rate = (x) => `${x.samplesPerSecondMean.toFixed(0)} / ${x.samplesPerSecondP50.toFixed(0)}`;
    console.log(
      `${String(r.world).padStart(5)}  ${rate(r.dtrain).padStart(26)}  ${rate(r.torch).padStart(19)}  ` +
        `${r.ratio.toFixed(2).padStart(13)}×  ` +
        `${`${r.dtrain.cpuPerWallPerRank.toFixed(2)} / ${r.torch.cpuPerWallPerRank.toFixed(2)}`.padStart(24)}  ` +
        `${`${r.dtrain.cpuMsPer1kSamples.toFixed(1)} / ${r.torch.cpuMsPer1kSamples.toFixed(1)}`.padStart(24)}  ` +
        `${`${r.dtrain.loss?.toFixed(3)} / ${r.torch.loss?.toFixed(3)}`.padStart(18)}  ` +
        `${`${r.dtrain.evalLoss.toFixed(3)} / ${r.torch.evalLoss.toFixed(3)}`.padStart(16)}`,
    );
  }
}

function torchVersion() {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.stdout.trim() || '?';
}
