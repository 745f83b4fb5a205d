/**
 * The order in which one stage runs its forwards and backwards, per schedule kind. Communication is placed
 * around these later (schedule.ts); here only the compute order is decided.
 */
import { UsageError } from '../../util/errors.js';
import { scheduleKinds, type ComputeOp, type ScheduleShape } from './types.js';

export interface CheckedShape {
  kind: ScheduleShape['kind'];
  stages: number;
  microbatches: number;
  virtualStages: number;
}

/** Rejects shapes no schedule exists for, with one line naming the field and what to do. */
export function checkShape(shape: ScheduleShape): CheckedShape {
  const { kind, stages, microbatches } = shape;
  const virtualStages = shape.virtualStages ?? 1;
  if (!scheduleKinds.includes(kind)) {
    throw new UsageError(`schedule kind "${String(kind)}" is not one of ${scheduleKinds.join(', ')}`);
  }
  positiveInteger('stages', stages);
  positiveInteger('microbatches', microbatches);
  positiveInteger('virtual stages', virtualStages);
  if (kind !== 'interleaved-1f1b' && virtualStages !== 1) {
    throw new UsageError(
      `virtual stages (${virtualStages}) need kind interleaved-1f1b; ${kind} has one chunk per stage`,
    );
  }
  if (kind === 'interleaved-1f1b' && microbatches % stages !== 0) {
    throw new UsageError(
      `interleaved-1f1b needs microbatches to be a multiple of stages: ${microbatches} microbatches over ` +
        `${stages} stages`,
    );
  }
  return { kind, stages, microbatches, virtualStages };
}

export function checkStage(stage: number, stages: number): void {
  if (!Number.isInteger(stage) || stage < 0 || stage >= stages) {
    throw new UsageError(`stage ${stage} is out of range: the pipeline has stages 0..${stages - 1}`);
  }
}

function positiveInteger(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`${name} must be a whole number >= 1, got ${String(v)}`);
}

export function computeOrder(shape: CheckedShape, stage: number): ComputeOp[] {
  switch (shape.kind) {
    case 'gpipe':
      return gpipe(shape.microbatches);
    case '1f1b':
      return oneForwardOneBackward(shape.stages, shape.microbatches, stage);
    case 'interleaved-1f1b':
      return interleaved(shape.stages, shape.microbatches, shape.virtualStages, stage);
  }
}

const F = (microbatch: number, chunk = 0): ComputeOp => ({ op: 'forward', microbatch, chunk });
const B = (microbatch: number, chunk = 0): ComputeOp => ({ op: 'backward', microbatch, chunk });

/** All forwards, then all backwards: every microbatch's activations are held at once. */
function gpipe(m: number): ComputeOp[] {
  const ops: ComputeOp[] = [];
  for (let i = 0; i < m; i++) ops.push(F(i));
  for (let i = 0; i < m; i++) ops.push(B(i));
  return ops;
}

/**
 * PipeDream-Flush (Narayanan et al., SC'21): enough warm-up forwards to fill the pipeline below this stage,
 * then alternate, then drain. At most stages - stage activations are held.
 */
function oneForwardOneBackward(p: number, m: number, s: number): ComputeOp[] {
  const warmup = Math.min(p - s - 1, m);
  const ops: ComputeOp[] = [];
  for (let i = 0; i < warmup; i++) ops.push(F(i));
  for (let i = 0; i < m - warmup; i++) ops.push(F(warmup + i), B(i));
  for (let i = m - warmup; i < m; i++) ops.push(B(i));
  return ops;
}

/**
 * Megatron-LM's interleaved order: microbatches go through the chunks in groups of `stages`; forwards walk
 * chunks upwards and backwards walk them downwards. The warm-up is longer than plain 1F1B's so the first
 * backward's inputs (which pass through every chunk of every stage) have arrived.
 */
function interleaved(p: number, m: number, v: number, s: number): ComputeOp[] {
  // One chunk per stage is plain 1F1B (Megatron runs its non-interleaved schedule then too).
  if (v === 1) return oneForwardOneBackward(p, m, s);
  const total = m * v;
  // Megatron-Core's warm-up; older Megatron also made m == p all warm-up, which only holds more activations.
  const warmup = Math.min((p - s - 1) * 2 + (v - 1) * p, total);
  // The k-th forward (or backward) of this stage: which chunk and which microbatch.
  const nth = (k: number, forward: boolean): [number, number] => {
    const inGroup = k % (p * v);
    const up = Math.floor(inGroup / p);
    const chunk = forward ? up : v - 1 - up;
    const microbatch = Math.floor(k / (p * v)) * p + (k % p);
    return [microbatch, chunk];
  };
  const ops: ComputeOp[] = [];
  for (let k = 0; k < warmup; k++) ops.push(F(...nth(k, true)));
  for (let k = 0; k < total - warmup; k++) ops.push(F(...nth(warmup + k, true)), B(...nth(k, false)));
  for (let k = total - warmup; k < total; k++) ops.push(B(...nth(k, false)));
  return ops;
}
