/**
 * dist.report(): a worker's progress for `dtrain status`, `top`, the monitor and straggler detection. Each
 * call appends one JSON line (launch/agent-contract.ts, ProgressRecord) to DTRAIN_PROGRESS_FILE, which the
 * agent follows. The time spent in collectives since the previous report goes with it (`wait_s`): the
 * groups' ops are timed here, so compute time (step time minus that) can be told from waiting on a peer.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Group, GroupOpStats, ProgressReport } from './types.js';

/** Totals per op name since the process started: how often, and seconds spent awaiting it. */
export interface OpTiming {
  count: number;
  seconds: number;
}

const timedOps = ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'send', 'recv', 'barrier'] as const;
const timings = new Map<string, OpTiming>();
let collectiveSeconds = 0;
/** how often a report also carries the per-op totals (for /metrics); every line would be wasteful */
const TOTALS_EVERY_MS = 1000;

/** Times every op of `group` (its own methods are replaced on this instance). */
export function timeCollectives<G extends Group>(group: G): G {
  const g = group as unknown as Record<string, (...args: unknown[]) => Promise<void>>;
  for (const op of timedOps) {
    const original = g[op].bind(group);
    g[op] = async (...args: unknown[]) => {
      const t0 = performance.now();
      try {
        await original(...args);
      } finally {
        const s = (performance.now() - t0) / 1000;
        collectiveSeconds += s;
        const t = timings.get(op) ?? { count: 0, seconds: 0 };
        t.count++;
        t.seconds += s;
        timings.set(op, t);
      }
    };
  }
  return group;
}

/**
 * dist.report for a worker whose progress file is `file` (no file: started by hand, reports go nowhere).
 * `opStats`: every group's dist.stats() rows, for the bytes per op.
 */
export function progressReporter(file: string | undefined, opStats: () => GroupOpStats[]): (p: ProgressReport) => void {
  let fd: number | undefined;
  let lastWait = collectiveSeconds;
  let lastTotals = 0;
  return (p) => {
    if (!file) return;
    if (!Number.isFinite(p?.step)) throw new TypeError('dist.report: step must be a number');
    const now = Date.now();
    const rec: Record<string, unknown> = { step: p.step, time: now / 1000 };
    for (const k of ['loss', 'samples', 'tokens'] as const) if (typeof p[k] === 'number') rec[k] = p[k];
    rec.wait_s = collectiveSeconds - lastWait;
    lastWait = collectiveSeconds;
    if (now - lastTotals >= TOTALS_EVERY_MS && timings.size) {
      lastTotals = now;
      rec.collectives = collectiveTotals(opStats());
    }
    try {
      fd ??= openSync(file, 'a', 0o644);
      writeSync(fd, JSON.stringify(rec) + '\n');
    } catch {
      // the log folder went away (the job is ending): progress is best effort, training is not
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      file = undefined;
    }
  };
}

/** Per op: count and seconds (timed here) and bytes (the groups' own stats). */
function collectiveTotals(rows: GroupOpStats[]): Record<string, { count: number; bytes: number; seconds: number }> {
  const out: Record<string, { count: number; bytes: number; seconds: number }> = {};
  for (const [op, t] of timings) out[op] = { count: t.count, bytes: 0, seconds: t.seconds };
  for (const r of rows) if (out[r.op]) out[r.op].bytes += r.bytes;
  return out;
}
