/**
 * The flight recorder's reader and the hang diagnosis drawn from every rank's recorder. The addon writes
 * the file (addon/src/collectives/flight_recorder.h); this module never loads the addon, so the agent reads
 * a rank's recorder after the rank exited or was killed.
 *
 * The file (one per rank; the agent creates it empty and names it in DTRAIN_FLIGHT_RECORDER, the addon
 * sizes and maps it MAP_SHARED). Little-endian; version 1. Offsets in bytes.
 *
 *   header (64):  0 magic u32 = 0x52465444 ("DTFR"), 4 version u32, 8 headerBytes u32, 12 groupBytes u32,
 *                 16 groupCapacity u32, 20 entriesPerGroup u32, 24 entryBytes u32, 28 groupsClaimed u32
 *                 (may exceed groupCapacity: groups beyond it are not recorded), 32 rank i32, 36 pid i32,
 *                 40 monotonicAnchorNs u64, 48 realtimeAnchorNs u64 (both read at the same moment), 56 reserved.
 *                 The magic is written last: a file without it was never initialised.
 *   group slot i (at headerBytes + i * groupBytes):
 *                 0 name (64 bytes, UTF-8, NUL-padded), 64 members (256 bytes, ASCII global ranks as
 *                 "0-3,8,10", NUL-padded; truncated when longer: 320 membersTruncated u8), 321..323 pad,
 *                 324 size u32, 328 groupRank u32, 332 pad u32, 336 lastSeq u64 (the newest seq claimed),
 *                 344..383 reserved, then entriesPerGroup entries from 384.
 *   entry (64, seq s lives at index (s - 1) % entriesPerGroup):
 *                 0 version u32 (odd while written: a reader that sees it odd, or changing, skips the entry),
 *                 4 state u8 (0 empty, 1 enqueued, 2 started, 3 completed), 5 op u8 (1 allReduce,
 *                 2 reduceScatter, 3 allGather, 4 broadcast, 5 barrier), 6 dtype u8 (0 float32, 1 float64,
 *                 2 int32, 3 int64, 4 bfloat16, 5 float16), 7 flags u8 (1: failed; the state stays where the
 *                 op stopped), 8 root i32 (broadcast), 12 pad, 16 seq u64, 24 count u64, 32 bytes u64,
 *                 40 enqueuedNs u64, 48 startedNs u64, 56 endedNs u64 (CLOCK_MONOTONIC_COARSE; 0: not yet).
 */
import { closeSync, fstatSync, readSync, writeFileSync } from 'node:fs';
import { openRegularFileSync } from '../util/regular-file.js';
import { join } from 'node:path';

export const FLIGHT_RECORDER_MAGIC = 0x52465444;
export const FLIGHT_RECORDER_VERSION = 1;
const HEADER_BYTES = 64;
const GROUP_HEADER_BYTES = 384;
const ENTRY_BYTES = 64;

export type FlightOp = 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast' | 'barrier';
export type FlightState = 'enqueued' | 'started' | 'completed';
const OPS: readonly FlightOp[] = ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'barrier'];
const STATES: readonly FlightState[] = ['enqueued', 'started', 'completed'];
const DTYPES = ['float32', 'float64', 'int32', 'int64', 'bfloat16', 'float16'] as const;

export interface FlightEntry {
  seq: number;
  op: FlightOp;
  dtype: string;
  count: number;
  bytes: number;
  root: number;
  state: FlightState;
  /** the op ended with an error (a timeout, a peer gone): state says how far it got */
  failed: boolean;
  /** Unix epoch milliseconds (from the rank's realtime anchor); undefined: not reached */
  enqueuedAtMs: number;
  startedAtMs?: number;
  endedAtMs?: number;
}

export interface FlightGroup {
  name: string;
  /** global ranks of the members; undefined when the list did not fit the file */
  members?: number[];
  size: number;
  /** this rank's place in the group */
  groupRank: number;
  /** the newest seq this rank claimed in the group (0: none yet) */
  lastSeq: number;
  /** the readable entries, oldest first (at most the last 256) */
  entries: FlightEntry[];
}

/** One rank's recorder as read: plain data (JSON-safe), so it may travel from the agent to the controller. */
export interface FlightRecord {
  version: number;
  rank: number;
  pid: number;
  /** when the file was read (epoch ms, the reading host's clock): ages are measured against it */
  readAtMs: number;
  groups: FlightGroup[];
  /** groups the rank made beyond the file's capacity (not recorded) */
  groupsDropped: number;
}

export class FlightRecorderError extends Error {}

/**
 * Creates (or empties) a rank's recorder file, 0600, in `dir` (the agent's private 0700 folder) and
 * returns its path, for DTRAIN_FLIGHT_RECORDER. The addon sizes and fills it.
 */
export function createFlightRecorderFile(dir: string, attempt: number, rank: number): string {
  const path = join(dir, `flight-a${attempt}-r${rank}.bin`);
  writeFileSync(path, '', { mode: 0o600, flag: 'w' });
  return path;
}

/**
 * Reads a recorder file. Undefined when the file is missing or was never initialised (the rank never
 * called init(): not a dtrain Node worker, or it died first). Throws FlightRecorderError for a file that
 * is not a recorder or has another version.
 */
export function readFlightRecorder(path: string, nowMs = Date.now()): FlightRecord | undefined {
  let fd: number;
  try {
    // beside the agent's other files, but the rank knows its path: a FIFO there must not stop a reader
    fd = openRegularFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FlightRecorderError(`flight recorder ${path}: ${(err as Error).message}`);
  }
  try {
    const fileBytes = fstatSync(fd).size;
    const head = readAt(fd, Math.min(fileBytes, HEADER_BYTES));
    if (head.length < HEADER_BYTES || head.readUInt32LE(0) === 0) return undefined;
    // Only the groups in use (the status view reads every rank's recorder each second; the file is ~1 MiB).
    const used = Math.min(head.readUInt32LE(28), head.readUInt32LE(16));
    const bytes = Math.min(fileBytes, head.readUInt32LE(8) + used * head.readUInt32LE(12));
    const first = readAt(fd, bytes);
    // A live rank may be writing: an entry counts only when it reads the same twice with an even version.
    const second = readAt(fd, bytes);
    return parseFlightRecorder(first, second.length === first.length ? second : first, nowMs, path, fileBytes);
  } catch (err) {
    if (err instanceof FlightRecorderError) throw err;
    throw new FlightRecorderError(`flight recorder ${path}: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  let got = 0;
  while (got < bytes) {
    const n = readSync(fd, buf, got, bytes - got, got);
    if (n === 0) break;
    got += n;
  }
  return got === bytes ? buf : buf.subarray(0, got);
}

/**
 * Parses a recorder image; `again` is a second read of the same bytes (entries that differ are skipped).
 * The image may stop after the groups in use; `fileBytes` is the whole file's size.
 */
export function parseFlightRecorder(
  buf: Buffer,
  again: Buffer,
  nowMs: number,
  what = 'flight recorder',
  fileBytes = buf.length,
): FlightRecord {
  const magic = buf.readUInt32LE(0);
  if (magic !== FLIGHT_RECORDER_MAGIC) throw new FlightRecorderError(`${what}: not a dtrain flight recorder`);
  const version = buf.readUInt32LE(4);
  if (version !== FLIGHT_RECORDER_VERSION)
    throw new FlightRecorderError(`${what}: version ${version}, this dtrain reads ${FLIGHT_RECORDER_VERSION}`);
  const headerBytes = buf.readUInt32LE(8);
  const groupBytes = buf.readUInt32LE(12);
  const capacity = buf.readUInt32LE(16);
  const perGroup = buf.readUInt32LE(20);
  const entryBytes = buf.readUInt32LE(24);
  const claimed = buf.readUInt32LE(28);
  if (entryBytes < ENTRY_BYTES || groupBytes < GROUP_HEADER_BYTES + perGroup * entryBytes)
    throw new FlightRecorderError(`${what}: inconsistent layout`);
  const used = Math.min(claimed, capacity);
  if (fileBytes < headerBytes + capacity * groupBytes || buf.length < headerBytes + used * groupBytes)
    throw new FlightRecorderError(`${what}: truncated`);
  const mono = buf.readBigUInt64LE(40);
  const real = buf.readBigUInt64LE(48);
  const epochMs = (ns: bigint): number | undefined =>
    ns === 0n ? undefined : Number(real / 1000n) / 1000 + Number(ns - mono) / 1e6;
  const groups: FlightGroup[] = [];
  for (let g = 0; g < used; g++) {
    const base = headerBytes + g * groupBytes;
    const name = cString(buf, base, 64);
    const truncated = buf[base + 320] !== 0;
    const members = truncated ? undefined : parseRankList(cString(buf, base + 64, 256));
    const entries: FlightEntry[] = [];
    for (let i = 0; i < perGroup; i++) {
      const at = base + GROUP_HEADER_BYTES + i * entryBytes;
      const ver = buf.readUInt32LE(at);
      if (ver % 2 === 1 || buf.compare(again, at, at + entryBytes, at, at + entryBytes) !== 0) continue;
      const state = buf[at + 4];
      const op = OPS[buf[at + 5] - 1];
      if (state === 0 || state > STATES.length || !op) continue;
      entries.push({
        seq: Number(buf.readBigUInt64LE(at + 16)),
        op,
        dtype: DTYPES[buf[at + 6]] ?? `dtype ${buf[at + 6]}`,
        count: Number(buf.readBigUInt64LE(at + 24)),
        bytes: Number(buf.readBigUInt64LE(at + 32)),
        root: buf.readInt32LE(at + 8),
        state: STATES[state - 1],
        failed: (buf[at + 7] & 1) !== 0,
        enqueuedAtMs: epochMs(buf.readBigUInt64LE(at + 40)) ?? 0,
        startedAtMs: epochMs(buf.readBigUInt64LE(at + 48)),
        endedAtMs: epochMs(buf.readBigUInt64LE(at + 56)),
      });
    }
    entries.sort((a, b) => a.seq - b.seq);
    groups.push({
      name,
      members,
      size: buf.readUInt32LE(base + 324),
      groupRank: buf.readUInt32LE(base + 328),
      lastSeq: Number(buf.readBigUInt64LE(base + 336)),
      entries,
    });
  }
  return {
    version,
    rank: buf.readInt32LE(32),
    pid: buf.readInt32LE(36),
    readAtMs: nowMs,
    groups,
    groupsDropped: Math.max(0, claimed - capacity),
  };
}

function cString(buf: Buffer, at: number, max: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('utf8', at, end < 0 || end > at + max ? at + max : end);
}

/** "0-3,8" → [0, 1, 2, 3, 8] (the addon writes runs of consecutive ranks as ranges). */
export function parseRankList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    if (!part) continue;
    const [a, b] = part.split('-').map(Number);
    for (let r = a; r <= (b ?? a); r++) out.push(r);
  }
  return out;
}

// ---- diagnosis ----

/** One rank's state at the moment of the hang: its recorder, or why there is none. */
export interface RankSnapshot {
  rank: number;
  recorder?: FlightRecord;
  /** why there is no recorder (defaults to: not a dtrain Node worker) */
  noRecorderReason?: string;
}

export interface HangFinding {
  kind: 'never-entered' | 'mismatch' | 'no-recorder';
  /** the ranks the finding blames (their stacks should follow the line) */
  ranks: number[];
  line: string;
}

export interface DiagnoseOptions {
  /** the prefix of every line (default `dtrain: hang: `) */
  prefix?: string;
}

/** The diagnosis lines, one per finding, in the documented shapes. */
export function diagnoseHang(snapshots: readonly RankSnapshot[], opts: DiagnoseOptions = {}): string[] {
  return hangFindings(snapshots, opts).map((f) => f.line);
}

/** The ranks the findings blame, ascending: whose stacks to print after the lines. */
export function ranksNamedByDiagnosis(snapshots: readonly RankSnapshot[], opts: DiagnoseOptions = {}): number[] {
  return [...new Set(hangFindings(snapshots, opts).flatMap((f) => f.ranks))].sort((a, b) => a - b);
}

interface Member {
  rank: number;
  readAtMs: number;
  group: FlightGroup;
  bySeq: Map<number, FlightEntry>;
}

/** The findings: per group, the first op some rank waits in, who never entered it, who entered another op. */
export function hangFindings(snapshots: readonly RankSnapshot[], opts: DiagnoseOptions = {}): HangFinding[] {
  const prefix = opts.prefix ?? 'dtrain: hang: ';
  const findings: HangFinding[] = [];
  // A group is its name and members: two "data" groups of different members are different groups.
  const groups = new Map<string, { name: string; members: Member[] }>();
  for (const s of snapshots) {
    for (const group of s.recorder?.groups ?? []) {
      const key = `${group.name}\0${group.members?.join(',') ?? `?${group.size}`}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { name: group.name, members: [] }));
      const bySeq = new Map(group.entries.map((e) => [e.seq, e]));
      g.members.push({ rank: s.rank, readAtMs: s.recorder!.readAtMs, group, bySeq });
    }
  }
  for (const { name, members } of groups.values()) {
    members.sort((a, b) => a.rank - b.rank);
    // the oldest op some member is inside and has not finished
    let seq = Infinity;
    for (const m of members)
      for (const e of m.group.entries) if (e.state !== 'completed' || e.failed) seq = Math.min(seq, e.seq);
    if (seq === Infinity) continue;
    const entered = members.filter((m) => m.bySeq.has(seq));
    const never = members.filter((m) => !m.bySeq.has(seq) && m.group.lastSeq < seq);
    // the op most members entered is the expected one; ties go to the lowest rank's op
    const byOp = new Map<FlightOp, Member[]>();
    for (const m of entered) {
      const op = m.bySeq.get(seq)!.op;
      byOp.set(op, [...(byOp.get(op) ?? []), m]);
    }
    const ranked = [...byOp.entries()].sort((a, b) => b[1].length - a[1].length || a[1][0].rank - b[1][0].rank);
    const [expectedOp, expected] = ranked[0];
    for (const [op, odd] of ranked.slice(1)) {
      const ranks = odd.map((m) => m.rank);
      findings.push({
        kind: 'mismatch',
        ranks,
        line:
          `${prefix}${rankWord(ranks)} ${formatRanks(ranks)} entered ${op} seq ${seq} where ` +
          `${rankWord(expected.map((m) => m.rank))} ${formatRanks(expected.map((m) => m.rank))} ` +
          `entered ${expectedOp} seq ${seq} of group ${name}`,
      });
    }
    if (never.length > 0) {
      const waiting = entered.filter((m) => m.bySeq.get(seq)!.state !== 'completed' || m.bySeq.get(seq)!.failed);
      const waitedMs = Math.max(
        0,
        ...waiting.map((m) => {
          const e = m.bySeq.get(seq)!;
          return (e.endedAtMs ?? m.readAtMs) - (e.startedAtMs ?? e.enqueuedAtMs);
        }),
      );
      const ranks = never.map((m) => m.rank);
      const waitingRanks = waiting.map((m) => m.rank);
      findings.push({
        kind: 'never-entered',
        ranks,
        line:
          `${prefix}${rankWord(ranks)} ${formatRanks(ranks)} never entered ${expectedOp} seq ${seq} of group ${name} ` +
          `(${rankWord(waitingRanks)} ${formatRanks(waitingRanks)} waiting ${(waitedMs / 1000).toFixed(1)}s)`,
      });
    }
  }
  const missing = snapshots.filter((s) => !s.recorder);
  const reasons = new Map<string, number[]>();
  for (const s of missing) {
    const why = s.noRecorderReason ?? 'not a dtrain Node worker';
    reasons.set(why, [...(reasons.get(why) ?? []), s.rank]);
  }
  for (const [why, ranks] of reasons) {
    ranks.sort((a, b) => a - b);
    const have = ranks.length === 1 ? 'has' : 'have';
    findings.push({
      kind: 'no-recorder',
      ranks,
      line: `${prefix}${rankWord(ranks)} ${formatRanks(ranks)} ${have} no flight recorder (${why})`,
    });
  }
  return findings;
}

function rankWord(ranks: readonly number[]): string {
  return ranks.length === 1 ? 'rank' : 'ranks';
}

/** "0, 2" for a few ranks; runs of three or more as "4-9". */
export function formatRanks(ranks: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ranks.length;) {
    let j = i;
    while (j + 1 < ranks.length && ranks[j + 1] === ranks[j] + 1) j++;
    if (j - i >= 2) out.push(`${ranks[i]}-${ranks[j]}`);
    else for (let k = i; k <= j; k++) out.push(String(ranks[k]));
    i = j + 1;
  }
  return out.join(', ');
}
