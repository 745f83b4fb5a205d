/**
 * What the controller says when a job hangs: the diagnosis lines (from the ranks' flight recorders where
 * they have one, else from the timed-out rank's error and the ranks' stacks), then the stacks of the
 * ranks they name. Pure functions of what the agents gathered (RankDiagnostics), so they are unit-tested.
 */
import { hangFindings, type FlightRecord } from '../runtime/flight-recorder.js';
import type { RankDiagnostics, WorkerExit } from './agent-contract.js';

/** The whole gathering (every node's stacks and recorders) before any rank is signalled to stop. */
export const HANG_GATHER_MS = 5000;
/** How long each agent waits for its ranks' stacks, inside HANG_GATHER_MS. */
export const HANG_STACK_WAIT_MS = 3000;
/** `dtrain stacks --native`: gdb per rank (in parallel), and the bound on every node's answer. */
export const NATIVE_STACK_WAIT_MS = 15_000;
export const NATIVE_GATHER_MS = 20_000;

export type HangCause = 'collective_timeout' | 'no_progress';

export interface HangReport {
  cause: HangCause;
  /** collective_timeout: the op's timeout; no_progress: how long no rank made progress */
  after_ms: number;
  /** `dtrain: hang: ...` lines, one per finding */
  diagnosis: string[];
  /** the ranks the diagnosis names */
  culprits: number[];
  /** every rank's stack and recorder, by rank */
  ranks: RankDiagnostics[];
  /** nodes that did not answer within HANG_GATHER_MS */
  unanswered: string[];
}

/**
 * The addon's timeout errors (addon/src/collectives: team.cc, transfer.cc, engine.cc) as they reach the
 * rank's stderr when the program lets the rejection end it: "timed out after <ms> ms [on group <g>]
 * waiting for rank(s) <list> ..." naming collective_timeout, or a point-to-point "... to send|receive".
 */
// the agent keeps the last line holding COLLECTIVE_TIMEOUT_MARK (agent-contract.ts) as WorkerExit.timeout_line
const timeoutLine =
  /(?:(\w+) on group \S+ \(rank \d+\): )?timed out after (\d+) ms (?:on group (\S+) )?waiting for rank(?:\(s\))? ([\d, ]+?)(?: \(collective_timeout| to (?:send|receive))/;

export function collectiveTimeoutOf(
  exit: Pick<WorkerExit, 'stderr_tail' | 'timeout_line'>,
): { ms: number; op: string | null; group: string | null; waitingFor: number[] } | null {
  for (const line of [...(exit.timeout_line !== undefined ? [exit.timeout_line] : []), ...exit.stderr_tail]) {
    const m = timeoutLine.exec(line);
    if (m)
      return {
        ms: Number(m[2]),
        op: m[1] ?? null,
        group: m[3] ?? null,
        waitingFor: m[4].split(',').map((r) => Number(r.trim())),
      };
  }
  return null;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function list(ranks: number[]): string {
  return ranks.join(', ');
}

/** A Python stack (faulthandler): the main thread's frames, innermost first ("File ..., line N in f"). */
function pythonMainFrames(stack: string): { file: string; fn: string }[] {
  const blocks = stack.split(/\n(?=(?:Current thread|Thread) 0x)/);
  const main = blocks.find((b) => /in <module>\s*$/m.test(b)) ?? blocks[blocks.length - 1] ?? '';
  const frames: { file: string; fn: string }[] = [];
  for (const m of main.matchAll(/File "([^"]+)", line \d+ in (\S+)/g)) frames.push({ file: m[1], fn: m[2] });
  return frames;
}

/** Where a rank stands, read from its stack: waiting in a collective (which), elsewhere (where), or unknown. */
export function whereFromStack(r: RankDiagnostics): { waitingIn: string } | { busyIn: string } | null {
  if (!r.stack) return null;
  if (r.language === 'python') {
    const frames = pythonMainFrames(r.stack);
    if (!frames.length) return null;
    const collective = frames.find((f) => /\/torch\/distributed\//.test(f.file) && f.fn !== 'wrapper');
    if (collective) return { waitingIn: collective.fn };
    return { busyIn: frames[0].fn };
  }
  if (r.language === 'node') {
    if (r.stack.startsWith('main thread idle')) return { waitingIn: 'the event loop' };
    const top = /^\s+at (\S+)/m.exec(r.stack);
    return { busyIn: top ? top[1] : 'JavaScript' };
  }
  return null;
}

export interface HangInput {
  cause: HangCause;
  afterMs: number;
  ranks: RankDiagnostics[];
  unanswered: string[];
  /** collective_timeout: the rank whose op timed out */
  timedOut?: WorkerExit;
  /** diagnosis from the flight recorders (diagnoseHang), when they gave one */
  fromRecorders?: { lines: string[]; ranks: number[] };
}

export function buildHangReport(input: HangInput): HangReport {
  const { cause, afterMs, ranks, unanswered } = input;
  const report = (diagnosis: string[], culprits: number[]): HangReport => ({
    cause,
    after_ms: afterMs,
    diagnosis,
    culprits: [...new Set(culprits)].sort((a, b) => a - b),
    ranks,
    unanswered,
  });
  if (input.fromRecorders?.lines.length) return report(input.fromRecorders.lines, input.fromRecorders.ranks);
  const timeout = input.timedOut && collectiveTimeoutOf(input.timedOut);
  if (input.timedOut && timeout) {
    const group = timeout.group ? ` of group ${timeout.group}` : '';
    const lines = timeout.waitingFor.map((r) => {
      const where = ranks.find((x) => x.rank === r);
      const at = where && whereFromStack(where);
      const doing = at && 'busyIn' in at ? ` (it is in ${at.busyIn})` : '';
      const op = timeout.op ?? `the op rank ${input.timedOut!.rank} waited in`;
      return (
        `dtrain: hang: rank ${r} never entered ${op}${group} (rank ${input.timedOut!.rank} waiting ` +
        `${seconds(timeout.ms)})${doing}`
      );
    });
    return report(lines, timeout.waitingFor);
  }
  const busy: { rank: number; where: string }[] = [];
  const waiting = new Map<string, number[]>();
  for (const r of ranks) {
    const at = whereFromStack(r);
    if (!at) continue;
    if ('busyIn' in at) busy.push({ rank: r.rank, where: at.busyIn });
    else waiting.set(at.waitingIn, [...(waiting.get(at.waitingIn) ?? []), r.rank]);
  }
  const waits = [...waiting].map(
    ([op, rs]) => `rank${rs.length > 1 ? 's' : ''} ${list(rs)} wait${rs.length > 1 ? '' : 's'} in ${op}`,
  );
  if (busy.length) {
    const lines = busy.map(
      (b) =>
        `dtrain: hang: rank ${b.rank} is in ${b.where}, outside any collective` +
        (waits.length ? `, while ${waits.join('; ')}` : '') +
        ` (no progress for ${seconds(afterMs)})`,
    );
    return report(
      lines,
      busy.map((b) => b.rank),
    );
  }
  const all = ranks.map((r) => r.rank);
  return report(
    [`dtrain: hang: no rank made progress for ${seconds(afterMs)}` + (waits.length ? ` (${waits.join('; ')})` : '')],
    all,
  );
}

/** The diagnosis lines, then the stacks of the ranks they name (and what could not be had, and why). */
export function renderHang(h: HangReport): string[] {
  const out = [...h.diagnosis];
  for (const rank of h.culprits) {
    const r = h.ranks.find((x) => x.rank === rank);
    if (!r) {
      out.push(`dtrain: stack of rank ${rank}: not gathered (its node did not answer)`);
      continue;
    }
    out.push(...renderRankStack(r));
  }
  if (h.unanswered.length)
    out.push(`dtrain: no answer within ${seconds(HANG_GATHER_MS)} from ${h.unanswered.join(', ')}`);
  return out;
}

export function renderRankStack(r: RankDiagnostics): string[] {
  const head = `dtrain: stack of rank ${r.rank} (host ${r.host}, pid ${r.pid}, ${r.language})`;
  if (!r.stack) return [`${head}: not captured: ${r.missing ?? 'unknown reason'}`];
  return [`${head}:`, ...r.stack.split('\n').map((l) => `  | ${l}`)];
}

/**
 * The flight recorders' diagnosis (diagnoseHang's findings): null when no recorder finds anything (Python
 * ranks have none: the stacks speak for them). Lines about ranks without a recorder are kept, not blamed.
 */
export function diagnoseFromRecorders(ranks: RankDiagnostics[]): { lines: string[]; ranks: number[] } | null {
  const findings = hangFindings(
    ranks.map((r) => ({
      rank: r.rank,
      recorder: (r.recorder as FlightRecord | null) ?? undefined,
      noRecorderReason: r.recorder_missing ?? undefined,
    })),
  );
  const blamed = findings.filter((f) => f.kind !== 'no-recorder');
  if (!blamed.length) return null;
  return { lines: findings.map((f) => f.line), ranks: blamed.flatMap((f) => f.ranks) };
}
