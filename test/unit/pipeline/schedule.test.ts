import t from 'tap';
import {
  computeOps,
  opLabel,
  pipelineSchedule,
  planPipeline,
  type ScheduleKind,
  type ScheduleShape,
} from '../../../src/runtime/pipeline/index.js';
import { UsageError } from '../../../src/util/errors.js';
import { simulatePrograms } from '../../helpers/pipeline-program-sim.js';
import { peakInFlight as planPeakInFlight } from '../../../src/plan/memory.js';

const labels = (shape: ScheduleShape, stage: number) =>
  computeOps(pipelineSchedule({ ...shape, stage })).map((o) => opLabel(o, shape.kind === 'interleaved-1f1b'));

/** Every shape the exhaustive checks cover: small enough to run in a second, wide enough for every corner. */
function* shapes(): Generator<ScheduleShape> {
  for (let p = 1; p <= 8; p++) {
    for (let m = 1; m <= 3 * p + 2; m++) {
      yield { kind: '1f1b', stages: p, microbatches: m };
      yield { kind: 'gpipe', stages: p, microbatches: m };
    }
    for (let v = 1; v <= 4; v++) {
      for (let m = p; m <= 4 * p; m += p)
        yield { kind: 'interleaved-1f1b', stages: p, microbatches: m, virtualStages: v };
    }
  }
}

t.test('1f1b: warm-up, one-forward-one-backward, cool-down', async (t) => {
  const shape: ScheduleShape = { kind: '1f1b', stages: 4, microbatches: 6 };
  t.same(labels(shape, 0), ['F0', 'F1', 'F2', 'F3', 'B0', 'F4', 'B1', 'F5', 'B2', 'B3', 'B4', 'B5']);
  t.same(labels(shape, 2), ['F0', 'F1', 'B0', 'F2', 'B1', 'F3', 'B2', 'F4', 'B3', 'F5', 'B4', 'B5']);
  t.same(labels(shape, 3), ['F0', 'B0', 'F1', 'B1', 'F2', 'B2', 'F3', 'B3', 'F4', 'B4', 'F5', 'B5']);
  // fewer microbatches than the pipeline is deep: warm-up is capped at m
  t.same(labels({ kind: '1f1b', stages: 4, microbatches: 2 }, 0), ['F0', 'F1', 'B0', 'B1']);
});

t.test('gpipe: all forwards, then all backwards', async (t) => {
  t.same(labels({ kind: 'gpipe', stages: 2, microbatches: 3 }, 1), ['F0', 'F1', 'F2', 'B0', 'B1', 'B2']);
});

t.test("interleaved: Megatron's order (groups of `stages` microbatches per chunk)", async (t) => {
  const shape: ScheduleShape = { kind: 'interleaved-1f1b', stages: 2, microbatches: 4, virtualStages: 2 };
  // stage 0 warm-up = (p - s - 1)·2 + (v - 1)·p = 4 forwards
  t.same(labels(shape, 0), [
    'F0.0',
    'F1.0',
    'F0.1',
    'F1.1',
    'F2.0',
    'B0.1',
    'F3.0',
    'B1.1',
    'F2.1',
    'B0.0',
    'F3.1',
    'B1.0',
    'B2.1',
    'B3.1',
    'B2.0',
    'B3.0',
  ]);
  t.same(labels(shape, 1), [
    'F0.0',
    'F1.0',
    'F0.1',
    'B0.1',
    'F1.1',
    'B1.1',
    'F2.0',
    'B0.0',
    'F3.0',
    'B1.0',
    'F2.1',
    'B2.1',
    'F3.1',
    'B3.1',
    'B2.0',
    'B3.0',
  ]);
  // microbatches == stages: the last stage starts its backwards as soon as chunk 1 has run
  t.same(labels({ kind: 'interleaved-1f1b', stages: 2, microbatches: 2, virtualStages: 2 }, 1), [
    'F0.0',
    'F1.0',
    'F0.1',
    'B0.1',
    'F1.1',
    'B1.1',
    'B0.0',
    'B1.0',
  ]);
  // one chunk per stage is plain 1F1B
  t.same(labels({ kind: 'interleaved-1f1b', stages: 4, microbatches: 4, virtualStages: 1 }, 1), [
    'F0.0',
    'F1.0',
    'F2.0',
    'B0.0',
    'F3.0',
    'B1.0',
    'B2.0',
    'B3.0',
  ]);
});

t.test('exhaustive: every compute once, programs run together without deadlock under both p2p semantics', async (t) => {
  let cases = 0;
  let messages = 0;
  for (const shape of shapes()) {
    const { schedules } = planPipeline(shape);
    const v = shape.virtualStages ?? 1;
    const name = `${shape.kind} p=${shape.stages} m=${shape.microbatches} v=${v}`;
    for (const s of schedules) {
      const seen = computeOps(s).map((o) => opLabel(o, true));
      const want: string[] = [];
      for (let c = 0; c < v; c++) for (let i = 0; i < shape.microbatches; i++) want.push(`F${i}.${c}`, `B${i}.${c}`);
      if (seen.length !== want.length || [...seen].sort().join() !== [...want].sort().join()) {
        t.fail(`${name} stage ${s.stage}: compute ops are not each microbatch and chunk exactly once`);
      }
    }
    for (const semantics of ['rendezvous', 'buffered'] as const) {
      try {
        const sim = simulatePrograms(schedules, semantics);
        messages += sim.messages;
        sim.executed.forEach((order, stage) => {
          const planned = computeOps(schedules[stage]).map((o) => opLabel(o, true));
          if (order.join() !== planned.join()) t.fail(`${name} stage ${stage}: ran in a different order`);
          if (sim.peakStashed[stage] !== schedules[stage].peakInFlight) {
            t.fail(
              `${name} stage ${stage}: stashed ${sim.peakStashed[stage]} at most, schedule says ` +
                `${schedules[stage].peakInFlight}`,
            );
          }
        });
      } catch (err) {
        t.fail(`${name}: ${(err as Error).message}`);
      }
    }
    cases++;
  }
  t.ok(cases > 350, `${cases} shapes checked`);
  t.ok(messages > 10000, `${messages} messages matched`);
});

t.test('the simulation catches a program that deadlocks with blocking sends', async (t) => {
  const { schedules } = planPipeline({ kind: '1f1b', stages: 2, microbatches: 2 });
  const last = schedules[1].instructions;
  // The naive order: receive the next activation only after sending this gradient. Stage 0 is then blocked
  // sending activation 1 while stage 1 is blocked sending gradient 0.
  const recvNext = last.findIndex((i) => i.op === 'recvActivation' && i.microbatch === 1);
  const [moved] = last.splice(recvNext, 1);
  last.splice(last.findIndex((i) => i.op === 'sendGradient') + 1, 0, moved);
  t.throws(() => simulatePrograms(schedules, 'rendezvous'), /deadlock \(rendezvous\)/);
  t.doesNotThrow(() => simulatePrograms(schedules, 'buffered'));
  // and one that computes before its input is there
  const early = planPipeline({ kind: '1f1b', stages: 2, microbatches: 2 }).schedules;
  const [recv0, f0] = early[1].instructions;
  t.equal(recv0.op, 'recvActivation');
  early[1].instructions.splice(0, 2, f0, recv0);
  t.throws(() => simulatePrograms(early, 'buffered'), /before its/);
});

t.test('peak in-flight: 1f1b holds at most stages - stage, gpipe holds all', async (t) => {
  for (let p = 1; p <= 8; p++) {
    for (let m = 1; m <= 3 * p; m++) {
      const plan = planPipeline({ kind: '1f1b', stages: p, microbatches: m });
      const gpipe = planPipeline({ kind: 'gpipe', stages: p, microbatches: m });
      for (let s = 0; s < p; s++) {
        const peak = plan.schedules[s].peakInFlight;
        if (peak > p - s || peak !== Math.min(p - s, m)) t.fail(`1f1b p=${p} m=${m} stage ${s}: peak ${peak}`);
        if (gpipe.schedules[s].peakInFlight !== m) t.fail(`gpipe p=${p} m=${m} stage ${s}`);
      }
    }
  }
  // interleaved holds more chunks (each 1/v of the stage), Megatron's warm-up + 1
  const inter = planPipeline({ kind: 'interleaved-1f1b', stages: 4, microbatches: 8, virtualStages: 2 });
  t.same(
    inter.schedules.map((s) => s.peakInFlight),
    [11, 9, 7, 5],
  );
});

t.test("the plan's memory estimate counts the same peak in-flight activations", async (t) => {
  for (const shape of shapes()) {
    const { schedules } = planPipeline(shape);
    const par = {
      schedule: shape.kind,
      pipeline: shape.stages,
      microbatches: shape.microbatches,
      virtual_stages: shape.virtualStages ?? 1,
    };
    for (const s of schedules) {
      const estimated = planPeakInFlight(par, s.stage);
      if (estimated !== s.peakInFlight)
        t.fail(
          `${shape.kind} p=${shape.stages} m=${shape.microbatches} v=${par.virtual_stages} stage ` +
            `${s.stage}: plan says ${estimated}, schedule ${s.peakInFlight}`,
        );
    }
  }
  t.pass('checked every shape');
});

t.test('bubble fraction: (p-1)/(m+p-1) for 1f1b and gpipe, (p-1)/(v·m+p-1) interleaved', async (t) => {
  for (const shape of shapes()) {
    const { stages: p, microbatches: m } = shape;
    const v = shape.virtualStages ?? 1;
    const got = planPipeline(shape).timeline.bubbleFraction;
    const want = (p - 1) / (v * m + p - 1);
    if (Math.abs(got - want) > 1e-12) t.fail(`${shape.kind} p=${p} m=${m} v=${v}: bubble ${got}, expected ${want}`);
  }
  t.equal(planPipeline({ kind: '1f1b', stages: 4, microbatches: 8 }).timeline.bubbleFraction, 3 / 11);
  t.equal(planPipeline({ kind: '1f1b', stages: 4, microbatches: 8 }).timeline.makespan, 33);
});

t.test('sends and receives pair up with the same tag and point at each other', async (t) => {
  const { schedules } = planPipeline({ kind: 'interleaved-1f1b', stages: 3, microbatches: 6, virtualStages: 2 });
  const sends = new Map<number, number>();
  const recvs = new Map<number, number>();
  schedules.forEach((s) =>
    s.instructions.forEach((i) => {
      if (!('peer' in i)) return;
      const book = i.op.startsWith('send') ? sends : recvs;
      t.notOk(book.has(i.tag), 'tags are distinct within one step');
      book.set(i.tag, s.stage * 100 + i.peer);
    }),
  );
  t.equal(sends.size, recvs.size);
  for (const [tag, route] of sends) t.equal(recvs.get(tag), (route % 100) * 100 + Math.floor(route / 100));
  // one stage alone never communicates
  t.notOk(
    pipelineSchedule({ kind: '1f1b', stages: 1, microbatches: 3, stage: 0 }).instructions.some((i) => 'peer' in i),
  );
});

t.test('bad shapes are usage errors with one line', async (t) => {
  const bad: [Parameters<typeof pipelineSchedule>[0], RegExp][] = [
    [{ kind: '1f1b', stages: 0, microbatches: 4, stage: 0 }, /stages must be a whole number >= 1/],
    [{ kind: '1f1b', stages: 2, microbatches: 2.5, stage: 0 }, /microbatches must be a whole number/],
    [{ kind: '1f1b', stages: 2, microbatches: 4, stage: 2 }, /stage 2 is out of range: the pipeline has stages 0..1/],
    [{ kind: '1f1b', stages: 2, microbatches: 4, stage: 0, virtualStages: 2 }, /need kind interleaved-1f1b/],
    [{ kind: 'interleaved-1f1b', stages: 4, microbatches: 6, stage: 0, virtualStages: 2 }, /multiple of stages/],
    [
      { kind: 'zigzag' as ScheduleKind, stages: 2, microbatches: 4, stage: 0 },
      /not one of 1f1b, gpipe, interleaved-1f1b/,
    ],
  ];
  for (const [spec, msg] of bad) {
    t.throws(() => pipelineSchedule(spec), msg);
    try {
      pipelineSchedule(spec);
    } catch (err) {
      t.ok(err instanceof UsageError && !err.message.includes('\n'));
    }
  }
});
