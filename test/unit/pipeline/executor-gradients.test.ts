import t from 'tap';
import { Pipeline, type ScheduleKind } from '../../../src/runtime/pipeline/index.js';
import { LoopbackFabric } from '../../helpers/pipeline-loopback-group.js';

// Each chunk's gradients are final after its last backward of the step: `last` marks that backward, and the
// executor hands chunk c to the step's gradient reduction right after it, once per step.
for (const [kind, virtualStages] of [
  ['1f1b', 1],
  ['gpipe', 1],
  ['interleaved-1f1b', 2],
] as Array<[ScheduleKind, number]>) {
  t.test(`${kind}: last marks each chunk's final backward, and ready(chunk) follows it`, async (t) => {
    const stages = 2;
    const microbatches = 4;
    const fabric = new LoopbackFabric(stages, 'buffered');
    const events: string[][] = fabric.groups.map(() => []);
    const pipes = fabric.groups.map(
      (group, stage) =>
        new Pipeline({
          group,
          schedule: { kind, stages, microbatches, virtualStages },
          activationSize: 2,
          forward: (input, mb, chunk) => {
            const last = chunk === virtualStages - 1 && stage === stages - 1;
            return last ? { loss: mb } : { output: Float32Array.of(mb, chunk) };
          },
          backward: (_g, mb, s) => {
            events[stage].push(`B${mb}.${s.chunk}${s.last ? ' last' : ''}`);
            return Float32Array.of(mb, s.chunk);
          },
        }),
    );
    for (let step = 0; step < 2; step++) {
      for (const e of events) e.length = 0;
      await Promise.all(
        pipes.map((pipe, stage) =>
          pipe.step({ gradients: { ready: (array) => events[stage].push(`ready ${array}`) } }),
        ),
      );
      for (const [stage, e] of events.entries()) {
        for (let c = 0; c < virtualStages; c++) {
          const mine = e.filter((x) => x.endsWith(`.${c}`) || x.endsWith(`.${c} last`));
          const lastOnes = mine.filter((x) => x.endsWith(' last'));
          t.equal(lastOnes.length, 1, `step ${step} stage ${stage} chunk ${c}: one last backward`);
          t.equal(mine[mine.length - 1], lastOnes[0], 'it is the chunk’s final backward');
          t.equal(e.indexOf(`ready ${c}`), e.indexOf(lastOnes[0]) + 1, 'ready(chunk) right after it');
          t.equal(e.filter((x) => x === `ready ${c}`).length, 1, 'once');
        }
      }
    }
    // without gradients the step runs as before
    await Promise.all(pipes.map((pipe) => pipe.step()));
  });
}
