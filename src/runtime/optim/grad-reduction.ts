/**
 * GradReduction: one step's gradient averaging, started while the backward still runs (PyTorch DDP's reducer).
 * The program marks gradients final with ready() as its backward produces them, last layer first; each bucket's
 * collective is posted as soon as all of its elements are final, and the addon runs it on its progress thread
 * while JavaScript computes the next layer. Buckets are posted in one fixed order, the same on every rank (the
 * ranks' collectives must match), so a ready bucket waits for those before it. The buckets are the optimizer's
 * own, so the averaged values, the shards and the checkpoint layout are those of the step without overlap.
 */
import { completedInline } from '../native.js';
import type { Range } from './partition.js';
import type { Segments } from './segments.js';

/** One bucket: the flat gradient ranges it carries and how to start its collective. */
export interface ReductionBucket {
  needs: Range[];
  bytes: number;
  post(): Promise<void>;
}

/**
 * When a bucket's collective was posted and when JavaScript saw it settle (performance.now(); JavaScript sees a
 * completion when it next yields, so settledAt may be later than the transfer's end). An op that completed
 * inline settles when it was posted.
 */
export interface BucketTiming {
  /** index in posting order */
  bucket: number;
  bytes: number;
  postedAt: number;
  settledAt: number;
}

/** What a reduction overlapped, in milliseconds of wall time. */
export interface OverlapSummary {
  buckets: number;
  bytes: number;
  /** some bucket's collective was posted and not yet seen settled */
  inFlightMs: number;
  /** the part of inFlightMs before the program waited for the reduction (finish()): it ran beside compute */
  overlappedMs: number;
  /** how long finish() waited: the communication the step did not hide */
  exposedMs: number;
}

/** Who wants each finished reduction's summary (the group's stats). */
export type OverlapSink = (summary: OverlapSummary) => void;

export class GradReduction {
  /** the buckets posted so far, in posting order */
  readonly timeline: BucketTiming[] = [];
  private readonly marked: Range[] = [];
  private readonly missing: number[];
  private next = 0;
  private readonly inFlight: Promise<void>[] = [];
  private failure: { err: unknown } | undefined;
  private finishing: Promise<OverlapSummary> | undefined;

  constructor(
    private readonly segments: Segments,
    /** in posting order */
    private readonly buckets: readonly ReductionBucket[],
    private readonly sink?: OverlapSink,
  ) {
    this.missing = buckets.map((b) => b.needs.reduce((n, r) => n + r.end - r.start, 0));
  }

  /** Buckets whose collective has started. */
  get posted(): number {
    return this.next;
  }

  /** Marks grads[array][start, end) final for this step; a range marked twice counts once. */
  ready(array: number, start = 0, end?: number): void {
    const arr = this.segments.arrays[array];
    if (!arr) throw new RangeError(`ready(): no gradient array ${array} (${this.segments.arrays.length} given)`);
    const stop = end ?? arr.length;
    if (!(Number.isInteger(start) && Number.isInteger(stop) && 0 <= start && start <= stop && stop <= arr.length))
      throw new RangeError(`ready(${array}, ${start}, ${end}): outside the array's ${arr.length} elements`);
    if (this.buckets.length === 0) return; // nothing to communicate (a group of one): nothing to track
    const off = this.segments.offsets[array];
    for (const fresh of this.addMarked({ start: off + start, end: off + stop })) {
      this.buckets.forEach((b, i) => {
        for (const r of b.needs) {
          const lo = Math.max(r.start, fresh.start);
          const hi = Math.min(r.end, fresh.end);
          if (lo < hi) this.missing[i] -= hi - lo;
        }
      });
    }
    this.pump();
  }

  /** Marks everything final, waits for every bucket; rejects with the first failure. */
  finish(): Promise<OverlapSummary> {
    this.finishing ??= this.settle();
    return this.finishing;
  }

  private async settle(): Promise<OverlapSummary> {
    const waitFrom = performance.now();
    this.segments.arrays.forEach((_, i) => this.ready(i));
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure.err;
    const summary = summarise(this.timeline, waitFrom, performance.now());
    this.sink?.(summary);
    return summary;
  }

  /** Posts the ready buckets at the head of the order. */
  private pump(): void {
    while (this.next < this.buckets.length && this.missing[this.next] <= 0 && !this.failure) {
      const index = this.next++;
      const b = this.buckets[index];
      const timing: BucketTiming = { bucket: index, bytes: b.bytes, postedAt: performance.now(), settledAt: NaN };
      this.timeline.push(timing);
      let started: Promise<void>;
      try {
        started = b.post();
      } catch (err) {
        started = Promise.reject(err);
      }
      if (started === completedInline) {
        // a small op with nothing queued ran on this thread before post() returned: nothing was in flight
        timing.settledAt = timing.postedAt;
        continue;
      }
      this.inFlight.push(
        started.then(
          () => {
            timing.settledAt = performance.now();
          },
          (err) => {
            timing.settledAt = performance.now();
            this.failure ??= { err };
          },
        ),
      );
    }
  }

  /** Adds `r` to the marked ranges (kept sorted and disjoint); returns the parts of it that were new. */
  private addMarked(r: Range): Range[] {
    const fresh: Range[] = [];
    let at = r.start;
    for (const m of this.marked) {
      if (m.end <= at) continue;
      if (m.start >= r.end) break;
      if (m.start > at) fresh.push({ start: at, end: m.start });
      at = Math.max(at, m.end);
    }
    if (at < r.end) fresh.push({ start: at, end: r.end });
    if (fresh.length > 0) {
      this.marked.push(...fresh);
      this.marked.sort((a, b) => a.start - b.start);
      // merge neighbours so the list stays as short as the marked regions
      const merged: Range[] = [];
      for (const m of this.marked) {
        const last = merged[merged.length - 1];
        if (last && last.end >= m.start) last.end = Math.max(last.end, m.end);
        else merged.push({ ...m });
      }
      this.marked.splice(0, this.marked.length, ...merged);
    }
    return fresh;
  }
}

/** Measure of the union of the buckets' in-flight intervals, in all and before `waitFrom`. */
export function summarise(timeline: readonly BucketTiming[], waitFrom: number, waitEnd: number): OverlapSummary {
  const spans = timeline.map((t) => ({ start: t.postedAt, end: t.settledAt })).sort((a, b) => a.start - b.start);
  let inFlight = 0;
  let overlapped = 0;
  let cur: Range | undefined;
  const close = (s: Range) => {
    inFlight += s.end - s.start;
    overlapped += Math.max(0, Math.min(s.end, waitFrom) - s.start);
  };
  for (const s of spans) {
    if (cur && s.start <= cur.end) cur.end = Math.max(cur.end, s.end);
    else {
      if (cur) close(cur);
      cur = { ...s };
    }
  }
  if (cur) close(cur);
  return {
    buckets: timeline.length,
    bytes: timeline.reduce((n, t) => n + t.bytes, 0),
    inFlightMs: inFlight,
    overlappedMs: overlapped,
    exposedMs: timeline.length === 0 ? 0 : Math.max(0, waitEnd - waitFrom),
  };
}
