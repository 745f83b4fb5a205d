/**
 * The example's data: generated, never downloaded. Inputs are standard normal vectors; each label is the
 * argmax of a fixed random "teacher" network (one tanh layer), so the classes are learnable but not
 * linearly separable. The same seed gives the same bytes on every rank and every machine.
 *
 * Batch order is global: one permutation per epoch drawn from a seeded Rng that every rank advances the same
 * way, and data rank d of D takes slice d of each global batch. A run with D = 1 therefore sees exactly the
 * same samples per step as a run with D = 2, which is what makes the parallel run the same computation.
 */
import { Rng, type RngState } from './rng.js';

export interface DatasetSpec {
  seed: number;
  inputs: number;
  classes: number;
  train: number;
  eval: number;
}

export interface Samples {
  /** rows × inputs, row-major */
  x: Float32Array;
  /** one class per row */
  y: Int32Array;
  rows: number;
}

const TEACHER_HIDDEN = 24;

/** Train and eval sets from the same teacher; the eval rows come after the train rows in one stream. */
export function makeDataset(spec: DatasetSpec): { train: Samples; eval: Samples } {
  const teacher = Rng.fromSeed(spec.seed, 0x7eac);
  const w1 = Float64Array.from(
    { length: TEACHER_HIDDEN * spec.inputs },
    () => teacher.normal() / Math.sqrt(spec.inputs),
  );
  const w2 = Float64Array.from({ length: spec.classes * TEACHER_HIDDEN }, () => teacher.normal());
  const inputs = Rng.fromSeed(spec.seed, 0xda7a);
  const draw = (rows: number): Samples => {
    const x = new Float32Array(rows * spec.inputs);
    const y = new Int32Array(rows);
    const h = new Float64Array(TEACHER_HIDDEN);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * spec.inputs, (r + 1) * spec.inputs);
      for (let i = 0; i < spec.inputs; i++) row[i] = inputs.normal();
      for (let j = 0; j < TEACHER_HIDDEN; j++) {
        let acc = 0;
        for (let i = 0; i < spec.inputs; i++) acc += w1[j * spec.inputs + i] * row[i];
        h[j] = Math.tanh(acc);
      }
      let best = 0;
      let bestScore = -Infinity;
      for (let c = 0; c < spec.classes; c++) {
        let acc = 0;
        for (let j = 0; j < TEACHER_HIDDEN; j++) acc += w2[c * TEACHER_HIDDEN + j] * h[j];
        if (acc > bestScore) {
          bestScore = acc;
          best = c;
        }
      }
      y[r] = best;
    }
    return { x, y, rows };
  };
  const train = draw(spec.train);
  return { train, eval: draw(spec.eval) };
}

/**
 * Copies the given rows (by sample id) into a contiguous batch: into `into`'s arrays when it has as many rows
 * (a training loop refills its microbatches), else new ones.
 */
export function gather(set: Samples, ids: ArrayLike<number>, inputs: number, into?: Samples): Samples {
  const reuse = into?.rows === ids.length;
  const x = reuse ? into.x : new Float32Array(ids.length * inputs);
  const y = reuse ? into.y : new Int32Array(ids.length);
  // element by element: a subarray per row would be an object per sample per step for the collector
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    const from = id * inputs;
    const to = r * inputs;
    for (let i = 0; i < inputs; i++) x[to + i] = set.x[from + i];
    y[r] = set.y[id]!;
  }
  return reuse ? into : { x, y, rows: ids.length };
}

/** Where the data stream is: saved in checkpoints so a resumed run continues with the same batches. */
export interface DataPosition {
  epoch: number;
  /** next unread index into this epoch's permutation */
  cursor: number;
  /** the Rng state this epoch's permutation was drawn from */
  epochRng: RngState;
}

export class BatchOrder {
  private rng: Rng;
  private perm = new Int32Array(0);
  private pos: DataPosition;

  constructor(
    private readonly size: number,
    seed: number,
  ) {
    this.rng = Rng.fromSeed(seed, 0x0bd3);
    this.pos = { epoch: -1, cursor: size, epochRng: this.rng.state() };
  }

  /** The next `n` sample ids of the global stream (a batch never straddles two epochs: n must divide size). */
  next(n: number): Int32Array {
    if (this.size % n !== 0)
      throw new RangeError(`the global batch ${n} must divide the training set (${this.size} samples)`);
    if (this.pos.cursor >= this.size) this.newEpoch();
    const ids = this.perm.slice(this.pos.cursor, this.pos.cursor + n);
    this.pos.cursor += n;
    return ids;
  }

  position(): DataPosition {
    return { ...this.pos, epochRng: [...this.pos.epochRng] as RngState };
  }

  restore(p: DataPosition): void {
    this.rng = Rng.fromState(p.epochRng);
    this.pos = { epoch: p.epoch - 1, cursor: this.size, epochRng: p.epochRng };
    if (p.epoch >= 0) {
      this.newEpoch();
      this.pos.cursor = p.cursor;
    }
  }

  /** Fisher–Yates over all ids with the stream's Rng. */
  private newEpoch(): void {
    const epochRng = this.rng.state();
    const perm = Int32Array.from({ length: this.size }, (_, i) => i);
    for (let i = this.size - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      const t = perm[i];
      perm[i] = perm[j]!;
      perm[j] = t;
    }
    this.perm = perm;
    this.pos = { epoch: this.pos.epoch + 1, cursor: 0, epochRng };
  }
}
