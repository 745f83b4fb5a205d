/**
 * A list of typed arrays seen as one flat index space, in list order, without copying them: the model's
 * own arrays stay the ones updated in place. A single flat buffer is the one-segment case.
 */
import type { Range } from './partition.js';

export type Elements = Float32Array | Uint16Array;

export interface Piece {
  /** index of the array in the list */
  index: number;
  /** the piece inside that array */
  local: Range;
  /** the same piece in the flat space */
  flat: Range;
}

export class Segments<T extends Elements = Elements> {
  readonly offsets: number[];
  readonly numel: number;

  constructor(readonly arrays: readonly T[]) {
    this.offsets = [];
    let at = 0;
    for (const a of arrays) {
      this.offsets.push(at);
      at += a.length;
    }
    this.numel = at;
  }

  /** The pieces of the flat range [start, end), in order. */
  pieces(range: Range): Piece[] {
    const out: Piece[] = [];
    for (let i = 0; i < this.arrays.length; i++) {
      const off = this.offsets[i];
      const len = this.arrays[i].length;
      const start = Math.max(range.start, off);
      const end = Math.min(range.end, off + len);
      if (start < end) out.push({ index: i, local: { start: start - off, end: end - off }, flat: { start, end } });
    }
    return out;
  }

  /** A view of [start, end) when it lies inside one array, so it can be used without a copy. */
  contiguous(range: Range): T | undefined {
    const p = this.pieces(range);
    if (p.length !== 1 || p[0].flat.start !== range.start || p[0].flat.end !== range.end) return undefined;
    return this.arrays[p[0].index].subarray(p[0].local.start, p[0].local.end) as T;
  }

  /** Copies [range) into dst (same element type) at dstOffset. */
  copyOut(range: Range, dst: T, dstOffset: number): void {
    for (const p of this.pieces(range)) {
      dst.set(this.arrays[p.index].subarray(p.local.start, p.local.end), dstOffset + p.flat.start - range.start);
    }
  }

  /** Copies src (same element type), taken from srcOffset, into [range). */
  copyIn(range: Range, src: T, srcOffset: number): void {
    for (const p of this.pieces(range)) {
      const from = srcOffset + p.flat.start - range.start;
      this.arrays[p.index].set(src.subarray(from, from + p.flat.end - p.flat.start), p.local.start);
    }
  }
}
