#!/usr/bin/env node
// Scaling of the end-to-end example (scripts/examples/train.js) with world size: the quickstart config run
// through the real launcher at world 1 (one process), 2 (data 2; and pipeline 2) and 4 (data 2 × pipeline 2;
// and data 4), same global batch, same model, same steps. Prints samples/s (the training loop only, timed by
// the program between a barrier before step 1 and one after the last step) and two efficiencies:
//   efficiency      = samples/s at world N / (N × samples/s at world 1)         (the usual definition)
//   vs cores        = samples/s at world N / (min(N, cores) × samples/s at world 1)
// The second one is the honest figure on a small machine: with 2 cores, 4 processes cannot go faster than 2.
// Wall-clock rates also depend on whatever else the machine runs (a busy machine gives 4 processes a larger
// share of it than 1), so the program also reports the CPU seconds all ranks spent in the loop; from it:
//   cpu ms/step     = summed CPU time per training step, all ranks together
//   work efficiency = cpu ms/step at world 1 / cpu ms/step at world N: the share of the CPU spent on the
//                     model's arithmetic rather than on communication, copies and waiting; on an idle machine
//                     samples/s ≈ min(N, cores) × samples/s at world 1 × work efficiency.
//
//   node scripts/bench/scaling.js [--steps 100] [--repeat 3] [--hidden 96] [--json]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '100' },
    repeat: { type: 'string', default: '3' },
    hidden: { type: 'string', default: '96' },
    json: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const repeat = Number(values.repeat);
if (!(steps >= 1) || !(repeat >= 1)) {
  console.error('scaling: --steps and --repeat must be positive');
  process.exit(2);
}

const shapes = [
  { world: 1, data: 1, pipeline: 1 },
  { world: 2, data: 2, pipeline: 1 },
  { world: 2, data: 1, pipeline: 2 },
  { world: 4, data: 2, pipeline: 2 },
  { world: 4, data: 4, pipeline: 1 },
];

const logs = mkdtempSync(join(tmpdir(), 'dtrain-bench-scaling-'));
function runOnce(s) {
  const args = [
    join(root, 'bin/dtrain'),
    'launch',
    join(root, 'configs/quickstart.yaml'),
    '--set',
    `nproc_per_node=${s.world}`,
    '--set',
    `nodes.0.slots=${s.world}`,
    '--set',
    `parallelism.data=${s.data}`,
    '--set',
    `parallelism.pipeline=${s.pipeline}`,
    '--set',
    `logs.dir=${logs}`,
    '--',
    '--steps',
    String(steps),
    '--hidden',
    values.hidden,
    '--log-every',
    String(steps),
  ];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const wall = (performance.now() - t0) / 1000;
  const out = `${r.stdout}${r.stderr}`;
  const m = /samples_per_second (\S+) cpu_seconds_all_ranks (\S+)/.exec(out);
  if (r.status !== 0 || !m) {
    console.error(
      `scaling: world ${s.world} (data ${s.data} × pipeline ${s.pipeline}) failed (exit ` +
        `${r.status}):\n${out.slice(-1500)}`,
    );
    rmSync(logs, { recursive: true, force: true });
    process.exit(1);
  }
  return { samplesPerSecond: Number(m[1]), cpuMsPerStep: (1000 * Number(m[2])) / steps, wallSeconds: wall };
}

const cores = cpus().length;
const results = [];
for (const s of shapes) {
  const runs = Array.from({ length: repeat }, () => runOnce(s));
  // the median run is the headline (what a user sees); every run is listed beside it
  const byRate = [...runs].sort((a, b) => a.samplesPerSecond - b.samplesPerSecond);
  const mid = byRate[Math.floor((byRate.length - 1) / 2)];
  results.push({
    ...s,
    samplesPerSecond: mid.samplesPerSecond,
    samplesPerSecondMean: runs.reduce((a, r) => a + r.samplesPerSecond, 0) / runs.length,
    cpuMsPerStep: mid.cpuMsPerStep,
    wallSeconds: mid.wallSeconds,
    runs: runs.map((r) => r.samplesPerSecond),
  });
}
rmSync(logs, { recursive: true, force: true });
const base = results[0].samplesPerSecond;
for (const r of results) {
  r.speedup = r.samplesPerSecond / base;
  r.efficiency = r.speedup / r.world;
  r.efficiencyVsCores = r.speedup / Math.min(r.world, cores);
  r.workEfficiency = results[0].cpuMsPerStep / r.cpuMsPerStep;
}

const meta = {
  cores,
  loadavg1: loadavg()[0],
  steps,
  repeat,
  hidden: Number(values.hidden),
  globalBatch: 128,
  microbatches: 4,
};
if (values.json) {
  console.log(JSON.stringify({ ...meta, results }, null, 2));
} else {
  console.log(
    `example MLP (6 layers, hidden ${meta.hidden}), global batch 128, 4 microbatches (1F1B), ZeRO-1, ` +
      `${steps} steps, the median of ${repeat} runs (mean and every run listed)`,
  );
  console.log(`machine: ${cores} cores, load average ${meta.loadavg1.toFixed(1)} at the end`);
  console.log(
    'world  data×pipe  samples/s  speedup  efficiency  vs cores  cpu ms/step  work eff.  launch wall s' +
      '  mean samples/s  runs',
  );
  for (const r of results) {
    console.log(
      `${String(r.world).padStart(5)}  ${`${r.data}×${r.pipeline}`.padStart(9)}  ` +
        `${r.samplesPerSecond.toFixed(0).padStart(9)}  ` +
        `${r.speedup.toFixed(2).padStart(7)}  ${(100 * r.efficiency).toFixed(0).padStart(9)}%  ` +
        `${(100 * r.efficiencyVsCores).toFixed(0).padStart(7)}%  ` +
        `${r.cpuMsPerStep.toFixed(1).padStart(11)}  ${(100 * r.workEfficiency).toFixed(0).padStart(8)}%  ` +
        `${r.wallSeconds.toFixed(1).padStart(13)}  ${r.samplesPerSecondMean.toFixed(0).padStart(14)}  ` +
        r.runs.map((x) => x.toFixed(0)).join(' '),
    );
  }
}
