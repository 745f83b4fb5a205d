/**
 * What an agent samples of its workers for `dtrain status` (agent-contract.ts, Samples): CPU and memory
 * from /proc/<pid>/stat and statm, the worker's progress from the new lines of its DTRAIN_PROGRESS_FILE,
 * and the collective it is in from its flight recorder. Cheap on purpose: two small reads per rank, the
 * bytes appended since the last sample, and the recorder (a file in memory the rank maps).
 */
import { closeSync, readFileSync, readSync } from 'node:fs';
import { openRegularFileSync } from '../util/regular-file.js';
import { readFlightRecorder, type FlightEntry, type FlightRecord } from '../runtime/flight-recorder.js';
import {
  PROGRESS_WINDOW,
  type CollectiveTotals,
  type ProgressRecord,
  type RankCollective,
  type RankSample,
} from './agent-contract.js';

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux ABI Node runs on
const PAGE_SIZE = 4096;
/** a reader far behind a chatty worker reads at most this much per sample (the newest lines matter) */
const MAX_READ = 1 << 20;

/** utime + stime in seconds and resident bytes of one process, or undefined when it is gone. */
export function readProcStat(pid: number): { cpu_s: number; rss_bytes: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // the command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return { cpu_s: ticks / CLOCK_TICKS, rss_bytes: Number(statm[1]) * PAGE_SIZE };
  } catch {
    return undefined;
  }
}

/** Follows one progress file: the bytes appended since the last read, whole lines only. */
export class ProgressReader {
  private offset = 0;
  private partial = '';
  /** the last PROGRESS_WINDOW + 1 records (window + 1 points give window step times) */
  readonly recent: ProgressRecord[] = [];
  collectives: Record<string, CollectiveTotals> | undefined;
  /** a record was read: the rank reports its steps */
  reported = false;

  constructor(private readonly file: string) {}

  poll(): void {
    let fd: number;
    try {
      // the worker's file: a FIFO or a device there must not stop the agent (regular-file.ts)
      fd = openRegularFileSync(this.file);
    } catch {
      return; // not written yet, or not a file to read
    }
    try {
      const buf = Buffer.alloc(MAX_READ);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        const text = this.partial + buf.toString('utf8', 0, n);
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) this.add(line);
        if (n < buf.length) break;
      }
    } finally {
      closeSync(fd);
    }
  }

  private add(line: string): void {
    let rec: ProgressRecord;
    try {
      rec = JSON.parse(line) as ProgressRecord;
    } catch {
      return; // not ours to judge: a bad line is skipped
    }
    if (typeof rec !== 'object' || rec === null || !Number.isFinite(rec.step)) return;
    if (!Number.isFinite(rec.time)) rec.time = Date.now() / 1000;
    if (rec.collectives && typeof rec.collectives === 'object') this.collectives = rec.collectives;
    this.reported = true;
    this.recent.push(rec);
    if (this.recent.length > PROGRESS_WINDOW + 1) this.recent.shift();
  }

  /** step, loss and the window's means (step time, compute time, throughput) */
  figures(): Omit<RankSample, 'rank' | 'pid' | 'cpu_percent' | 'rss_bytes' | 'last_output_age_s' | 'collective'> {
    const r = this.recent;
    if (!r.length) return {};
    const last = r[r.length - 1];
    const out: ReturnType<ProgressReader['figures']> = { step: last.step };
    if (this.collectives) out.collectives = this.collectives;
    if (typeof last.loss === 'number') out.loss = last.loss;
    if (r.length < 2) return out;
    const span = last.time - r[0].time;
    const steps = r.length - 1;
    if (span <= 0) return out;
    out.step_s = span / steps;
    let samples = 0;
    let tokens = 0;
    let wait = 0;
    for (const rec of r.slice(1)) {
      samples += rec.samples ?? 0;
      tokens += rec.tokens ?? 0;
      wait += rec.wait_s ?? 0;
    }
    if (samples > 0) out.samples_per_s = samples / span;
    if (tokens > 0) out.tokens_per_s = tokens / span;
    out.compute_s = Math.max(0, span - wait) / steps;
    return out;
  }
}

/** One worker's sampler: the CPU delta between polls, its progress file, its output age. */
export class RankSampler {
  private prevCpu: { cpu_s: number; at: number } | undefined;
  private readonly progress: ProgressReader;

  constructor(
    readonly rank: number,
    progressFile: string,
    /** its DTRAIN_FLIGHT_RECORDER (absent: the agent made none) */
    private readonly recorderFile?: string,
  ) {
    this.progress = new ProgressReader(progressFile);
  }

  /** Whether the rank has reported a step (reads what was appended since the last look). */
  hasReported(): boolean {
    if (!this.progress.reported) this.progress.poll();
    return this.progress.reported;
  }

  sample(pid: number, lastOutputAt: number, now = Date.now()): RankSample {
    const proc = readProcStat(pid);
    let cpu = 0;
    if (proc && this.prevCpu && now > this.prevCpu.at)
      cpu = ((proc.cpu_s - this.prevCpu.cpu_s) / ((now - this.prevCpu.at) / 1000)) * 100;
    if (proc) this.prevCpu = { cpu_s: proc.cpu_s, at: now };
    this.progress.poll();
    const collective = this.recorderFile ? recorderCollective(this.recorderFile, now) : undefined;
    return {
      rank: this.rank,
      pid,
      cpu_percent: Math.max(0, Math.round(cpu * 10) / 10),
      rss_bytes: proc?.rss_bytes ?? 0,
      last_output_age_s: Math.max(0, Math.round((now - lastOutputAt) / 100) / 10),
      ...this.progress.figures(),
      ...(collective ? { collective } : {}),
    };
  }
}

function recorderCollective(file: string, now: number): RankCollective | undefined {
  try {
    const rec = readFlightRecorder(file, now);
    return rec && currentCollective(rec);
  } catch {
    return undefined; // not a recorder (the hang diagnosis says so): status shows no collective
  }
}

/**
 * The collective a recorder shows its rank in (RankCollective): the oldest op entered and not left, across
 * its groups; else the op it left last.
 */
export function currentCollective(rec: FlightRecord): RankCollective | undefined {
  let inside: { group: string; e: FlightEntry } | undefined;
  let left: { group: string; e: FlightEntry; at: number } | undefined;
  for (const g of rec.groups)
    for (const e of g.entries) {
      if (e.state !== 'completed' && !e.failed) {
        if (!inside || e.enqueuedAtMs < inside.e.enqueuedAtMs) inside = { group: g.name, e };
      } else {
        const at = e.endedAtMs ?? e.startedAtMs ?? e.enqueuedAtMs;
        if (!left || at > left.at) left = { group: g.name, e, at };
      }
    }
  if (inside) {
    const { e } = inside;
    const since = e.state === 'started' ? (e.startedAtMs ?? e.enqueuedAtMs) : e.enqueuedAtMs;
    return described(inside.group, e, e.state, rec.readAtMs - since);
  }
  if (left) return described(left.group, left.e, left.e.failed ? 'failed' : 'completed', rec.readAtMs - left.at);
  return undefined;
}

function described(group: string, e: FlightEntry, state: RankCollective['state'], ms: number): RankCollective {
  return { group, op: e.op, seq: e.seq, state, since_s: Math.max(0, Math.round(ms / 100) / 10) };
}
