import t from 'tap';
import {
  Pipeline,
  PipelineError,
  scheduleShapeFromEnv,
  type PipelineOpRecord,
  type ScheduleKind,
  type StepResult,
} from '../../../src/runtime/pipeline/index.js';
import { LoopbackFabric, type LoopbackSemantics } from '../../helpers/pipeline-loopback-group.js';
import {
  makeProblem,
  mlpStageFunctions,
  referenceGradients,
  worstRelative,
  zeroGrads,
  type FloatCtor,
  type Grads,
  type MlpProblem,
} from '../../helpers/pipeline-mlp.js';

const WIDTHS = [6, 8, 8, 8, 8, 8, 8, 8, 4]; // 8 layers: enough for 4 stages × 2 chunks
const PER_MICROBATCH = 3;

interface Case {
  kind: ScheduleKind;
  stages: number;
  microbatches: number;
  virtualStages?: number;
  F: FloatCtor;
  semantics: LoopbackSemantics;
}

/** Splits the MLP's layers into stages·chunks contiguous slices and runs `steps` pipeline steps. */
async function runPipelined(c: Case, problem: MlpProblem, steps = 1, onOp?: (r: PipelineOpRecord) => void) {
  const p = c.stages;
  const v = c.virtualStages ?? 1;
  const fabric = new LoopbackFabric(p, c.semantics);
  const grads = zeroGrads(problem.layers, c.F);
  const pipes = fabric.groups.map(
    (group, stage) =>
      new Pipeline({
        group,
        schedule: { kind: c.kind, stages: p, microbatches: c.microbatches, virtualStages: v },
        dtype: c.F === Float64Array ? 'float64' : 'float32',
        onOp,
        ...mlpStageFunctions(
          problem,
          { stages: p, virtualStages: v, microbatches: c.microbatches, stage, F: c.F, grads },
          WIDTHS,
        ),
      }),
  );
  const results: StepResult[][] = [];
  for (let i = 0; i < steps; i++) results.push(await Promise.all(pipes.map((pipe) => pipe.step())));
  return { grads, results, fabric, pipes };
}

function normRelative(got: Grads[], want: Grads[]): number {
  let num = 0;
  let den = 0;
  got.forEach((g, l) => {
    for (const k of ['weight', 'bias'] as const) {
      for (let i = 0; i < g[k].length; i++) {
        num += (g[k][i] - want[l][k][i]) ** 2;
        den += want[l][k][i] ** 2;
      }
    }
  });
  return Math.sqrt(num / den);
}

t.test('split MLP gives the unsplit gradients: 1, 2, 4 stages × 1, p, 2p+1 microbatches', async (t) => {
  for (const kind of ['1f1b', 'gpipe'] as const) {
    for (const p of [1, 2, 4]) {
      for (const m of new Set([1, p, 2 * p + 1])) {
        for (const semantics of ['buffered', 'rendezvous'] as const) {
          const problem = makeProblem(WIDTHS, m * PER_MICROBATCH, Float64Array);
          const ref = referenceGradients(problem, Float64Array);
          const { grads, results, fabric } = await runPipelined(
            { kind, stages: p, microbatches: m, F: Float64Array, semantics },
            problem,
          );
          const name = `${kind} p=${p} m=${m} ${semantics}`;
          const worst = worstRelative(grads, ref.grads);
          t.ok(worst <= 1e-6, `${name}: worst relative gradient error ${worst.toExponential(2)}`);
          const last = results[0][p - 1];
          t.ok(
            Math.abs(last.loss! - ref.loss) <= 1e-12 * Math.abs(ref.loss),
            `${name}: loss ${last.loss} = ${ref.loss}`,
          );
          t.equal(last.losses.length, m);
          results[0].slice(0, -1).forEach((r) => t.equal(r.loss, undefined, 'only the last stage has the loss'));
          t.same(fabric.unmatched(), { sends: 0, recvs: 0 }, `${name}: no message left over`);
          t.equal(
            fabric.messages,
            2 * m * (p - 1),
            `${name}: one activation and one gradient per boundary and microbatch`,
          );
        }
      }
    }
  }
});

t.test('interleaved: chunks on every stage, same gradients', async (t) => {
  for (const p of [1, 2, 4]) {
    for (const m of [p, 2 * p]) {
      const problem = makeProblem(WIDTHS, m * PER_MICROBATCH, Float64Array);
      const ref = referenceGradients(problem, Float64Array);
      const c: Case = {
        kind: 'interleaved-1f1b',
        stages: p,
        microbatches: m,
        virtualStages: 2,
        F: Float64Array,
        semantics: 'rendezvous',
      };
      const { grads, results, fabric } = await runPipelined(c, problem);
      const worst = worstRelative(grads, ref.grads);
      t.ok(worst <= 1e-6, `interleaved p=${p} m=${m} v=2: worst relative error ${worst.toExponential(2)}`);
      t.ok(Math.abs(results[0][p - 1].loss! - ref.loss) <= 1e-12 * ref.loss);
      t.same(fabric.unmatched(), { sends: 0, recvs: 0 });
      t.equal(results[0][0].executed[0], 'F0.0', 'interleaved ops are labelled with their chunk');
    }
  }
});

t.test('float32 on the wire and in the model: still within 1e-6 (norm-wise)', async (t) => {
  for (const p of [2, 4]) {
    const m = 2 * p + 1;
    const problem = makeProblem(WIDTHS, m * PER_MICROBATCH, Float32Array);
    const ref = referenceGradients(problem, Float32Array);
    const { grads } = await runPipelined(
      { kind: '1f1b', stages: p, microbatches: m, F: Float32Array, semantics: 'buffered' },
      problem,
    );
    const err = normRelative(grads, ref.grads);
    t.ok(err <= 1e-6, `1f1b p=${p} m=${m} float32: relative error ${err.toExponential(2)}`);
  }
});

t.test('gradients accumulate across steps (the executor never zeroes them)', async (t) => {
  const problem = makeProblem(WIDTHS, 5 * PER_MICROBATCH, Float64Array);
  const ref = referenceGradients(problem, Float64Array);
  const { grads, results } = await runPipelined(
    { kind: '1f1b', stages: 4, microbatches: 5, F: Float64Array, semantics: 'buffered' },
    problem,
    2,
  );
  t.ok(worstRelative(grads, ref.grads, undefined, 2) <= 1e-6);
  t.equal(results.length, 2);
  t.same(results[1][3].executed, results[0][3].executed, 'the same program every step');
});

t.test('the executor follows the schedule and frees activations', async (t) => {
  const problem = makeProblem(WIDTHS, 6 * PER_MICROBATCH, Float64Array);
  const records: PipelineOpRecord[] = [];
  const { results, pipes } = await runPipelined(
    { kind: '1f1b', stages: 4, microbatches: 6, F: Float64Array, semantics: 'rendezvous' },
    problem,
    1,
    (r) => records.push(r),
  );
  pipes.forEach((pipe, s) => {
    const mine = records.filter((r) => r.stage === s);
    const want = pipe.schedule.instructions.map((i) => `${i.op}:${i.microbatch}.${i.chunk}`).sort();
    t.same(
      mine.map((r) => `${r.op}:${r.microbatch}.${r.chunk}`).sort(),
      want,
      `stage ${s}: one timing record per instruction`,
    );
    t.ok(mine.every((r) => r.end >= r.start));
  });
  results[0].forEach((r, s) => {
    const planned = pipes[s].schedule.instructions
      .filter((i) => i.op === 'forward' || i.op === 'backward')
      .map((i) => `${i.op === 'forward' ? 'F' : 'B'}${i.microbatch}`);
    t.same(r.executed, planned, `stage ${s} ran its program`);
    t.equal(r.peakStashed, pipes[s].schedule.peakInFlight, `stage ${s} held at most ${pipes[s].schedule.peakInFlight}`);
    t.equal(r.peakStashed, Math.min(4 - s, 6));
  });
});

t.test('wrong use fails with a clear message', async (t) => {
  const fabric = new LoopbackFabric(2);
  t.throws(
    () =>
      new Pipeline({
        group: fabric.groups[1],
        schedule: {
          kind: '1f1b',
          stages: 2,
          microbatches: 2,
          virtualStages: 1,
          stage: 0,
          instructions: [],
          peakInFlight: 0,
        },
        activationSize: 4,
        forward: () => ({}),
        backward: () => null,
      }),
    PipelineError,
  );
  t.throws(
    () =>
      new Pipeline({
        group: fabric.groups[0],
        schedule: { kind: '1f1b', stages: 3, microbatches: 2 },
        activationSize: 4,
        forward: () => ({}),
        backward: () => null,
      }),
    /stage 0 of 3, but this rank is 0 of 2/,
  );
  // a forward returning the wrong size
  const pipes = fabric.groups.map(
    (group) =>
      new Pipeline({
        group,
        schedule: { kind: '1f1b', stages: 2, microbatches: 2 },
        activationSize: 4,
        timeoutMs: 1000,
        forward: () => (group.rank === 0 ? { output: new Float32Array(3) } : { loss: 1 }),
        backward: () => new Float32Array(4),
      }),
  );
  await t.rejects(pipes[0].step(), /must return \{ output \} with 4 elements, got 3/);
});

t.test('a failing transport fails the step instead of hanging', async (t) => {
  const fabric = new LoopbackFabric(2);
  const broken = fabric.groups[0];
  broken.send = () => Promise.reject(new Error('connection reset by peer'));
  const pipe = new Pipeline({
    group: broken,
    schedule: { kind: 'gpipe', stages: 2, microbatches: 2 },
    activationSize: 2,
    forward: () => ({ output: new Float32Array(2) }),
    backward: () => null,
  });
  await t.rejects(
    pipe.step(),
    /stage 0: sendActivation of microbatch 0 chunk 0 with stage 1 failed: connection reset by peer/,
  );
});

t.test('the schedule defaults to the launcher environment', async (t) => {
  const env = { DTRAIN_SCHEDULE: 'interleaved-1f1b', DTRAIN_MICROBATCHES: '4', DTRAIN_VIRTUAL_STAGES: '2' };
  t.same(scheduleShapeFromEnv(2, env), { kind: 'interleaved-1f1b', stages: 2, microbatches: 4, virtualStages: 2 });
  t.same(scheduleShapeFromEnv(3, { DTRAIN_SCHEDULE: '1f1b' }), {
    kind: '1f1b',
    stages: 3,
    microbatches: 1,
    virtualStages: 1,
  });
  t.same(
    scheduleShapeFromEnv(2, {}),
    { kind: '1f1b', stages: 2, microbatches: 1, virtualStages: 1 },
    "unset: the config's defaults",
  );
  t.throws(() => scheduleShapeFromEnv(2, { DTRAIN_SCHEDULE: '1f1b', DTRAIN_MICROBATCHES: 'x' }), {
    name: 'InitError',
    message: /DTRAIN_MICROBATCHES=x is not a non-negative integer/,
  });
  t.throws(() => scheduleShapeFromEnv(2, { DTRAIN_SCHEDULE: 'zigzag' }), /DTRAIN_SCHEDULE=zigzag is not one of 1f1b/);
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of Object.keys(env)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  Object.assign(process.env, env);
  const fabric = new LoopbackFabric(2);
  const pipe = new Pipeline({ group: fabric.groups[1], activationSize: 1, forward: () => ({}), backward: () => null });
  t.equal(pipe.schedule.kind, 'interleaved-1f1b');
  t.equal(pipe.schedule.stage, 1);
  t.equal(pipe.schedule.microbatches, 4);
});

t.test('the loopback group matches like the addon: in posting order, then the tag and size are checked', async (t) => {
  const fabric = new LoopbackFabric(2, 'rendezvous');
  const [a, b] = fabric.groups;
  const got = new Float32Array(2);
  const sent = a.send(Float32Array.of(1, 2), { peer: 1, tag: 5 });
  await b.recv(got, { peer: 0, tag: 5 });
  await sent;
  t.same([...got], [1, 2]);
  const wrongOrder = a.send(Float32Array.of(1, 2), { peer: 1, tag: 6 });
  await t.rejects(b.recv(new Float32Array(2), { peer: 0, tag: 7 }), /tag mismatch/);
  await t.rejects(wrongOrder, /tag mismatch/);
  const short = a.send(Float32Array.of(1, 2), { peer: 1, tag: 8 });
  await t.rejects(b.recv(new Float32Array(3), { peer: 0, tag: 8 }), /size mismatch/);
  await t.rejects(short);
  await t.rejects(a.allReduce(), /not available in the loopback pipeline group/);
  t.same(fabric.unmatched(), { sends: 0, recvs: 0 });
});
