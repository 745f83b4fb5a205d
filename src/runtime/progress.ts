/**
 * dist.report(): a worker's progress for `dtrain status`, `top`, the monitor and straggler detection. Each
 * call appends one JSON line (launch/agent-contract.ts, ProgressRecord) to DTRAIN_PROGRESS_FILE, which the
 * agent follows. The time spent waiting on collectives since the previous report goes with it (`wait_s`): the
 * groups' ops are timed here, so compute time (step time minus that) can be told from waiting on a peer. An op
 * in flight while the rank computes (gradient buckets during the backward, pipeline sends) is not waiting:
 * only the main thread's idle time while ops are in flight counts, once however many overlap.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { completedInline } from './native.js';
import type { Group, GroupOpStats, ProgressReport } from './types.js';

/** Totals per op name since the process started: how often, and seconds spent awaiting it. */
export interface OpTiming {
  count: number;
  seconds: number;
}

const timedOps = ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'send', 'recv', 'barrier'] as const;
const timings = new Map<string, OpTiming>();
/** seconds waited on collectives: inline ops' own time, and the main thread's idle time while an op is in flight */
let collectiveSeconds = 0;
/** ops in flight, and the event loop's idle milliseconds when the first of them was posted */
let inFlight = 0;
let idleMsAtPost = 0;
const idleMs = () => performance.eventLoopUtilization().idle;
/** collectiveSeconds with the idle time of ops still in flight taken in (the wait is counted once, however
 * many ops overlap, and compute done while they run is not wait) */
function waitedSeconds(): number {
  if (inFlight > 0) {
    const now = idleMs();
    collectiveSeconds += (now - idleMsAtPost) / 1000;
    idleMsAtPost = now;
  }
  return collectiveSeconds;
}
/** how often a report also carries the per-op totals (for /metrics); every line would be wasteful */
const TOTALS_EVERY_MS = 1000;

/**
 * Times every op of `group` (its own methods are replaced on this instance). Not async: an op that completed
 * inline hands back its settled promise untouched, as the group does, so timing costs two clock reads and no
 * promise or closure of its own; an op in flight is timed when it settles.
 */
export function timeCollectives<G extends Group>(group: G): G {
  type Op = (a?: unknown, b?: unknown, c?: unknown) => Promise<void>;
  const g = group as unknown as Record<string, Op>;
  for (const op of timedOps) {
    const original = g[op].bind(group);
    let timing: OpTiming | undefined;
    const done = (t0: number, inline: boolean) => {
      const s = (performance.now() - t0) / 1000;
      if (inline) collectiveSeconds += s;
      else if (--inFlight === 0) collectiveSeconds += (idleMs() - idleMsAtPost) / 1000;
      if (!timing) timings.set(op, (timing = { count: 0, seconds: 0 }));
      timing.count++;
      timing.seconds += s;
    };
    // every op takes at most three arguments (reduceScatter and allGather: input, output, options)
    g[op] = (a, b, c) => {
      const t0 = performance.now();
      let pending: Promise<void>;
      try {
        pending = original(a, b, c);
      } catch (err) {
        done(t0, true);
        return Promise.reject(err);
      }
      if (pending === completedInline) {
        done(t0, true);
        return pending;
      }
      if (inFlight++ === 0) idleMsAtPost = idleMs();
      return pending.finally(() => done(t0, false));
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
  let lastWait = waitedSeconds();
  let lastTotals = 0;
  return (p) => {
    if (!file) return;
    if (!Number.isFinite(p?.step)) throw new TypeError('dist.report: step must be a number');
    const now = Date.now();
    const rec: Record<string, unknown> = { step: p.step, time: now / 1000 };
    for (const k of ['loss', 'samples', 'tokens'] as const) if (typeof p[k] === 'number') rec[k] = p[k];
    const waited = waitedSeconds();
    rec.wait_s = waited - lastWait;
    lastWait = waited;
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
