/**
 * dist.report(): a worker's progress for `dtrain status`, `top`, the monitor and straggler detection. Each
 * call appends one JSON line (launch/agent-contract.ts, ProgressRecord) to DTRAIN_PROGRESS_FILE, which the
 * agent follows. The time spent in collectives since the previous report goes with it (`wait_s`), so compute
 * time (step time minus that) can be told from waiting on a peer. Each backend times its own ops (OpTiming);
 * this module only reads the totals, once per report.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { GroupOpStats, OpTiming, ProgressReport } from './types.js';

/** A group as dist.report reads it: its per-op timing and its transport rows (for the bytes). */
export interface TimedGroup {
  opTimes(): OpTiming[];
  stats(): GroupOpStats[];
}

/** how often a report also carries the per-op totals (for /metrics); every line would be wasteful */
const TOTALS_EVERY_MS = 1000;

/** dist.report for a worker whose progress file is `file` (no file: started by hand, reports go nowhere). */
export function progressReporter(
  file: string | undefined,
  groups: () => readonly TimedGroup[],
): (p: ProgressReport) => void {
  let fd: number | undefined;
  let lastWait = file ? waitedSeconds(groups().map((g) => g.opTimes())) : 0;
  let lastTotals = 0;
  return (p) => {
    if (!file) return;
    if (!Number.isFinite(p?.step)) throw new TypeError('dist.report: step must be a number');
    const now = Date.now();
    const rec: Record<string, unknown> = { step: p.step, time: now / 1000 };
    for (const k of ['loss', 'samples', 'tokens'] as const) if (typeof p[k] === 'number') rec[k] = p[k];
    const made = groups();
    const times = made.map((g) => g.opTimes());
    const waited = waitedSeconds(times);
    rec.wait_s = waited - lastWait;
    lastWait = waited;
    if (now - lastTotals >= TOTALS_EVERY_MS && times.some((t) => t.length)) {
      lastTotals = now;
      rec.collectives = collectiveTotals(times, made);
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

/** Seconds every group's ops took so far, summed. */
function waitedSeconds(times: OpTiming[][]): number {
  let s = 0;
  for (const group of times) for (const t of group) s += t.seconds;
  return s;
}

/** Per op over every group: count and seconds (the groups' timing) and bytes (their stats rows). */
function collectiveTotals(
  times: OpTiming[][],
  groups: readonly TimedGroup[],
): Record<string, { count: number; bytes: number; seconds: number }> {
  const out: Record<string, { count: number; bytes: number; seconds: number }> = {};
  for (const group of times)
    for (const t of group) {
      const o = (out[t.op] ??= { count: 0, bytes: 0, seconds: 0 });
      o.count += t.count;
      o.seconds += t.seconds;
    }
  for (const g of groups) for (const r of g.stats()) if (out[r.op]) out[r.op].bytes += r.bytes;
  return out;
}
