/**
 * The one definition of what a benchmark reports, used by the bench worker, `dtrain bench` and every
 * driver under scripts/bench (their C and Python references hand over raw per-op samples, summarised
 * here): mean, p50 and p99 over all timed ops, and CPU seconds per op. The fastest chunk is kept for
 * information only; a headline or a ratio never uses it.
 *
 * Samples are per-op latencies in nanoseconds. On disk (the references' files) they are little-endian
 * float64, one per op, in the order they ran.
 */
import { readFileSync } from 'node:fs';

export interface LatencySummary {
  ops: number;
  mean_us: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  /** the fastest of 10 consecutive chunks (information only: what a quiet moment gives) */
  best_chunk_us: number;
}

/** Timed ops per size for one run: at least 100k for small messages, about 4 GB moved for large ones. */
export function opsFor(bytes: number): number {
  return Math.max(100, Math.min(100_000, Math.floor(4e9 / Math.max(bytes, 1))));
}

/**
 * Untimed ops before the timed ones: page faults, lazy mappings, caches, V8's optimising compiler (some
 * thousands of calls before it compiles the loop) and the rest of a process's start-up work, which goes on
 * for a few hundred milliseconds after its first op. Twice the timed ops, at most 20,000: a fraction of a
 * second for small messages, two runs' worth for large ones.
 */
export function warmupFor(ops: number): number {
  return Math.max(5, Math.min(20_000, 2 * ops));
}

/** Nearest-rank percentile (the ceil(q·n)-th smallest), of sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[k - 1];
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function summarize(samplesNs: Float64Array): LatencySummary {
  const n = samplesNs.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += samplesNs[i];
  const chunks = Math.min(10, n);
  const per = Math.floor(n / Math.max(1, chunks));
  let best = Infinity;
  for (let c = 0; c < chunks; c++) {
    let s = 0;
    for (let i = c * per; i < (c + 1) * per; i++) s += samplesNs[i];
    best = Math.min(best, s / per);
  }
  const sorted = Float64Array.from(samplesNs).sort();
  return {
    ops: n,
    mean_us: sum / n / 1e3,
    p50_us: percentile(sorted, 0.5) / 1e3,
    p99_us: percentile(sorted, 0.99) / 1e3,
    max_us: sorted[n - 1] / 1e3,
    best_chunk_us: best / 1e3,
  };
}

export function concatSamples(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A samples file as the references write it (little-endian float64 nanoseconds). */
export function readSamples(file: string): Float64Array {
  const b = readFileSync(file);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Float64Array(Math.floor(b.byteLength / 8));
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

export function samplesBytes(samplesNs: Float64Array): Buffer {
  const b = Buffer.alloc(samplesNs.length * 8);
  for (let i = 0; i < samplesNs.length; i++) b.writeDoubleLE(samplesNs[i], i * 8);
  return b;
}
