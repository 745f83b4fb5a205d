/**
 * The executor against the timeline simulation, measured: stage functions that sleep (so four stages on two
 * busy cores measure the schedule, not the OS scheduler), forward one unit and backward two.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  computeOps,
  opLabel,
  Pipeline,
  planPipeline,
  type ScheduleShape,
} from '../../../src/runtime/pipeline/index.js';
import { LoopbackFabric } from '../../helpers/pipeline-loopback-group.js';

const UNIT_MS = Number(process.env.DTRAIN_PIPELINE_UNIT_MS ?? 40);

interface Logged {
  stage: number;
  op: 'F' | 'B';
  microbatch: number;
  chunk: number;
  start: number;
  end: number;
}

async function measure(shape: ScheduleShape) {
  const p = shape.stages;
  const v = shape.virtualStages ?? 1;
  const lastVs = p * v - 1;
  const fabric = new LoopbackFabric(p, 'rendezvous');
  let log: Logged[] = [];
  const held = new Array<number>(p).fill(0);
  let peakHeld = new Array<number>(p).fill(0);
  // a first, short step warms up the JIT and the timers so the measured one times the schedule only
  let unit = 1;
  const pipes = fabric.groups.map(
    (group, s) =>
      new Pipeline({
        group,
        schedule: shape,
        activationSize: 16,
        async forward(_input, microbatch, chunk) {
          const start = performance.now();
          held[s]++;
          peakHeld[s] = Math.max(peakHeld[s], held[s]);
          await sleep(unit);
          log.push({ stage: s, op: 'F', microbatch, chunk, start, end: performance.now() });
          return chunk * p + s === lastVs ? { loss: microbatch } : { output: new Float32Array(16) };
        },
        async backward(_grad, microbatch, stashed) {
          const start = performance.now();
          await sleep(2 * unit);
          held[s]--;
          log.push({ stage: s, op: 'B', microbatch, chunk: stashed.chunk, start, end: performance.now() });
          return new Float32Array(16);
        },
      }),
  );
  await Promise.all(pipes.map((pipe) => pipe.step()));
  log = [];
  peakHeld = new Array<number>(p).fill(0);
  unit = UNIT_MS;
  const results = await Promise.all(pipes.map((pipe) => pipe.step()));
  const t0 = Math.min(...log.map((l) => l.start));
  const t1 = Math.max(...log.map((l) => l.end));
  const busy = log.reduce((sum, l) => sum + (l.end - l.start), 0);
  const idleShare = 1 - busy / (p * (t1 - t0));
  // most stages computing at the same instant
  const edges = log
    .flatMap((l) => [[l.start, 1] as const, [l.end, -1] as const])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let mostConcurrent = 0;
  for (const [, d] of edges) mostConcurrent = Math.max(mostConcurrent, (now += d));
  return { log, results, pipes, idleShare, makespanMs: t1 - t0, peakHeld, mostConcurrent, fabric };
}

const cases: ScheduleShape[] = [
  { kind: '1f1b', stages: 4, microbatches: 8 },
  { kind: '1f1b', stages: 4, microbatches: 4 },
  { kind: 'gpipe', stages: 4, microbatches: 8 },
  { kind: 'interleaved-1f1b', stages: 4, microbatches: 8, virtualStages: 2 },
  { kind: '1f1b', stages: 2, microbatches: 5 },
];

for (const shape of cases) {
  const name = `${shape.kind} p=${shape.stages} m=${shape.microbatches} v=${shape.virtualStages ?? 1}`;
  t.test(`measured against simulated: ${name}`, async (t) => {
    const plan = planPipeline(shape);
    const simulated = plan.timeline.bubbleFraction;
    const m = await measure(shape);
    const relative = Math.abs(m.idleShare - simulated) / simulated;
    t.comment(
      `${name}: measured idle share ${m.idleShare.toFixed(4)}, simulated bubble_fraction ${simulated.toFixed(4)} ` +
        `(relative difference ${(100 * relative).toFixed(1)}%), makespan ${m.makespanMs.toFixed(0)} ms vs ideal ` +
        `${(plan.timeline.makespan * UNIT_MS).toFixed(0)} ms, peak stashed ` +
        `${m.results.map((r) => r.peakStashed).join('/')}, ` +
        `most stages busy at once ${m.mostConcurrent}`,
    );
    t.ok(relative <= 0.1, `idle share within 10% of the simulation (${(100 * relative).toFixed(1)}%)`);
    const chunked = shape.kind === 'interleaved-1f1b';
    for (let s = 0; s < shape.stages; s++) {
      const ran = m.log
        .filter((l) => l.stage === s)
        .sort((a, b) => a.start - b.start)
        .map((l) => (chunked ? `${l.op}${l.microbatch}.${l.chunk}` : `${l.op}${l.microbatch}`));
      const planned = computeOps(plan.schedules[s]).map((o) => opLabel(o, chunked));
      t.same(ran, planned, `stage ${s} ran in the schedule's order`);
      t.same(m.results[s].executed, planned, `stage ${s}: the executor reports the same order`);
      t.equal(
        m.peakHeld[s],
        plan.schedules[s].peakInFlight,
        `stage ${s}: at most ${plan.schedules[s].peakInFlight} activations alive`,
      );
      t.equal(
        m.results[s].peakStashed,
        plan.schedules[s].peakInFlight,
        `stage ${s}: executor's stash peaked at peak_in_flight`,
      );
    }
    t.equal(m.mostConcurrent, shape.stages, 'every stage computes at once at some moment: the stages overlap');
    t.ok(
      m.makespanMs < 0.75 * shape.stages * plan.timeline.makespan * UNIT_MS,
      'far shorter than running the stages one after another',
    );
    t.same(m.fabric.unmatched(), { sends: 0, recvs: 0 });
  });
}
