/**
 * pipelineSchedule: one stage's program of computes, sends and receives.
 *
 * Placement of communication: the timeline simulation (timeline.ts) gives every compute a start and end.
 * A message gets the key (end of its producer, tag) and a compute the key (start, after messages at the same
 * time); each stage's program is its own ops sorted by key, and both ends of a message share one key. So at any
 * moment the pending op with the smallest key in the whole pipeline can run: a compute has its inputs (they have
 * smaller keys on its own stage), and a send or receive finds its partner at the head of the peer's program.
 * That is why the programs cannot deadlock even with rendezvous (synchronous) sends, and, a fortiori, with
 * buffered sends or non-blocking sends and pre-posted receives.
 */
import { checkShape, checkStage, computeOrder, type CheckedShape } from './compute-order.js';
import { chunkOfVirtual, simulateTimeline, stageOfVirtual, virtualStage, type Timeline } from './timeline.js';
import {
  isCompute,
  type CommOp,
  type ComputeOp,
  type Instruction,
  type ScheduleShape,
  type ScheduleSpec,
  type StageSchedule,
} from './types.js';

export interface PipelinePlan {
  shape: CheckedShape;
  schedules: StageSchedule[];
  timeline: Timeline;
}

/** Same tag at both ends of a message; distinct for every message of one step. */
export function messageTag(
  virtualStages: number,
  stages: number,
  microbatch: number,
  producerVs: number,
  gradient: boolean,
): number {
  return (microbatch * stages * virtualStages + producerVs) * 2 + (gradient ? 1 : 0);
}

export function pipelineSchedule(spec: ScheduleSpec): StageSchedule {
  const plan = planPipeline(spec);
  checkStage(spec.stage, plan.shape.stages);
  return plan.schedules[spec.stage];
}

/** Every stage's program and the simulated timeline they come from. */
export function planPipeline(shapeIn: ScheduleShape): PipelinePlan {
  const shape = checkShape(shapeIn);
  const p = shape.stages;
  const V = p * shape.virtualStages;
  const orders = Array.from({ length: p }, (_, s) => computeOrder(shape, s));
  const timeline = simulateTimeline(shape, orders);

  type Keyed = { time: number; rank: number; tag: number; instr: Instruction };
  const programs: Keyed[][] = orders.map(() => []);
  for (let s = 0; s < p; s++) {
    for (const t of timeline.perStage[s]) {
      const { op, microbatch, chunk } = t;
      programs[s].push({ time: t.start, rank: 1, tag: 0, instr: { op, microbatch, chunk } });
      const vs = virtualStage(p, s, chunk);
      const forward = op === 'forward';
      const consumerVs = forward ? vs + 1 : vs - 1;
      if (consumerVs < 0 || consumerVs >= V) continue;
      const peer = stageOfVirtual(p, consumerVs);
      if (peer === s) continue; // the next chunk lives on this rank: handed over in memory
      const tag = messageTag(shape.virtualStages, p, microbatch, vs, !forward);
      const send: CommOp = { op: forward ? 'sendActivation' : 'sendGradient', microbatch, chunk, peer, tag };
      const recv: CommOp = {
        op: forward ? 'recvActivation' : 'recvGradient',
        microbatch,
        chunk: chunkOfVirtual(p, consumerVs),
        peer: s,
        tag,
      };
      programs[s].push({ time: t.end, rank: 0, tag, instr: send });
      programs[peer].push({ time: t.end, rank: 0, tag, instr: recv });
    }
  }
  const schedules = programs.map((keyed, s): StageSchedule => {
    keyed.sort((a, b) => a.time - b.time || a.rank - b.rank || a.tag - b.tag);
    return {
      kind: shape.kind,
      stages: p,
      microbatches: shape.microbatches,
      virtualStages: shape.virtualStages,
      stage: s,
      instructions: keyed.map((k) => k.instr),
      peakInFlight: peakInFlight(orders[s]),
    };
  });
  return { shape, schedules, timeline };
}

export function peakInFlight(order: readonly ComputeOp[]): number {
  let held = 0;
  let peak = 0;
  for (const o of order) {
    held += o.op === 'forward' ? 1 : -1;
    peak = Math.max(peak, held);
  }
  return peak;
}

/** "F3" / "B0"; with chunks (interleaved) "F3.1" = microbatch 3, chunk 1. */
export function opLabel(o: ComputeOp, withChunk: boolean): string {
  const letter = o.op === 'forward' ? 'F' : 'B';
  return withChunk ? `${letter}${o.microbatch}.${o.chunk}` : `${letter}${o.microbatch}`;
}

export function computeOps(s: StageSchedule): ComputeOp[] {
  return s.instructions.filter(isCompute);
}
