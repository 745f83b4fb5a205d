/**
 * Runs every stage's compute order as soon as its inputs exist (free communication) and reports when each op
 * ran. This is the picture `dtrain schedule` draws and the source of the bubble fraction; schedule.ts also uses
 * its times as the global order that places sends and receives.
 */
import type { CheckedShape } from './compute-order.js';
import type { ComputeOp } from './types.js';

export interface OpDurations {
  forward: number;
  backward: number;
}
/** A backward costs about twice a forward (two matmuls per forward matmul). */
export const defaultDurations: OpDurations = { forward: 1, backward: 2 };

export interface TimedOp extends ComputeOp {
  stage: number;
  start: number;
  end: number;
}

export interface Timeline {
  perStage: TimedOp[][];
  makespan: number;
  /** idle share of stages × makespan */
  bubbleFraction: number;
}

/** Virtual stages number the model's slices in forward order: chunk c of stage s is slice c·stages + s. */
export const virtualStage = (stages: number, stage: number, chunk: number): number => chunk * stages + stage;
export const stageOfVirtual = (stages: number, vs: number): number => vs % stages;
export const chunkOfVirtual = (stages: number, vs: number): number => Math.floor(vs / stages);

export function simulateTimeline(
  shape: CheckedShape,
  orders: ComputeOp[][],
  durations: OpDurations = defaultDurations,
): Timeline {
  const p = shape.stages;
  const V = p * shape.virtualStages;
  const m = shape.microbatches;
  const slot = (op: ComputeOp['op'], mb: number, vs: number) => ((op === 'forward' ? 0 : 1) * m + mb) * V + vs;
  const ends = new Float64Array(2 * m * V).fill(NaN);
  const readyAt = (op: ComputeOp['op'], mb: number, vs: number): number => ends[slot(op, mb, vs)];

  // When an op's inputs exist, or NaN while they do not.
  const inputsAt = (o: ComputeOp, vs: number): number => {
    if (o.op === 'forward') return vs === 0 ? 0 : readyAt('forward', o.microbatch, vs - 1);
    const own = readyAt('forward', o.microbatch, vs);
    const upstream = vs === V - 1 ? own : readyAt('backward', o.microbatch, vs + 1);
    return Math.max(own, upstream);
  };

  const perStage: TimedOp[][] = orders.map(() => []);
  const next = new Array<number>(p).fill(0);
  const free = new Array<number>(p).fill(0);
  let remaining = orders.reduce((n, o) => n + o.length, 0);
  // Stages that may be able to run their next op: at first all, then the ones an op just fed. A stage is
  // looked at again only after a neighbour made its input, so the whole run is linear in the ops (sweeping
  // every stage until none moves was stages × ops: minutes for a large pipeline). The times do not depend
  // on this order: an op starts when its inputs and its stage are free, whenever that is found out.
  const queue: number[] = Array.from({ length: p }, (_, s) => s);
  const queued = new Uint8Array(p).fill(1);
  const wake = (vs: number) => {
    if (vs < 0 || vs >= V) return;
    const s = stageOfVirtual(p, vs);
    if (!queued[s]) {
      queued[s] = 1;
      queue.push(s);
    }
  };
  for (let head = 0; head < queue.length; head++) {
    const s = queue[head];
    queued[s] = 0;
    while (next[s] < orders[s].length) {
      const o = orders[s][next[s]];
      const vs = virtualStage(p, s, o.chunk);
      const ready = inputsAt(o, vs);
      if (Number.isNaN(ready)) break;
      const start = Math.max(free[s], ready);
      const end = start + (o.op === 'forward' ? durations.forward : durations.backward);
      ends[slot(o.op, o.microbatch, vs)] = end;
      perStage[s].push({ op: o.op, microbatch: o.microbatch, chunk: o.chunk, stage: s, start, end });
      free[s] = end;
      next[s]++;
      remaining--;
      wake(o.op === 'forward' ? vs + 1 : vs - 1);
    }
  }
  if (remaining > 0) {
    const stuck = next.map((i, s) => (i < orders[s].length ? `stage ${s} at op ${i}` : '')).filter(Boolean);
    throw new Error(
      `pipeline schedule cannot make progress (${stuck.join(', ')}): its compute orders wait on each other`,
    );
  }
  const makespan = free.reduce((a, b) => Math.max(a, b), 0); // no spread: a million stages overflow the stack
  const busy = perStage.reduce((sum, ops) => sum + ops.reduce((t, o) => t + (o.end - o.start), 0), 0);
  // idle / whole rather than 1 - busy / whole: exact for whole-unit durations
  const bubbleFraction = makespan === 0 ? 0 : (p * makespan - busy) / (p * makespan);
  return { perStage, makespan, bubbleFraction };
}
