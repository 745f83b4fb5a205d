/**
 * The launch summary: the `--json` document and the human root-cause report.
 */
import { join } from 'node:path';
import type { WorkerExit } from './agent-contract.js';
import type { HangReport } from './hang-report.js';
import { logFileName } from './line-targets.js';

export interface RankOutcome {
  rank: number;
  host: string;
  exit_code: number | null;
  signal: string | null;
}

export interface RootCause extends WorkerExit {
  attempt: number;
  /** set when the failure was not a worker's exit (spawn failure, node lost) */
  message?: string;
}

/** One membership change of an elastic job (launch/membership.ts): the attempt it led to. */
export interface MembershipChange {
  attempt: number;
  /** nodes and world size of that attempt */
  nodes: number;
  world: number;
  /** e.g. "node 2 (host c) lost: no heartbeat for 5s" */
  reason: string;
  /** from the node's last sign of life to its loss being declared */
  detected_after_s: number;
  /** from the loss being declared to every worker of the new attempt running (null: never) */
  resumed_after_s: number | null;
}

export interface LaunchSummary {
  run_id: string;
  exit_code: number;
  attempts: { ranks: RankOutcome[] }[];
  root_cause: RootCause | null;
  /** other failures of the last attempt, after the root cause */
  other_failures: RankOutcome[];
  log_dir: string;
  /** ranks last seen as stragglers while every rank ran (run-status.ts); absent when none */
  stragglers?: number[];
  /** the scheduler's warning arrived: what dtrain did about it (launch/preemption.ts) */
  preemption?: PreemptionReport;
  /** this run is a requeued batch job's: Slurm's restart count (SLURM_RESTART_COUNT) */
  resumed?: { slurm_restart_count: number };
  /** elastic jobs: each membership change, in order */
  membership?: MembershipChange[];
  /** the job hung (collective_timeout, or hang_timeout passed with no progress): the diagnosis */
  hung?: HangReport;
}

/** The warning signal's sequence as it went: warned, saving, saved or not, requeued. */
export interface PreemptionReport {
  /** the scheduler's warning (scheduler.signal) */
  signal: string;
  warned_at: string;
  /** what every worker was sent (checkpoint_signal) */
  checkpoint_signal: string;
  /** a save completed: a new commit, or every worker exited 0 after the signal */
  saved: boolean;
  /** the committed step (null: no commit record seen, or none made) */
  saved_step: number | null;
  saved_by: 'commit' | 'workers-exited' | null;
  /** when the workers were stopped (after the save, or when shutdown_grace ran out) */
  stopped_at: string | null;
  /** scheduler.requeue: `scontrol requeue` after the save */
  requeued?: { job_id: string; at: string } | { job_id: string; error: string };
}

export function failed(e: { exit_code: number | null; signal: string | null }): boolean {
  return e.signal !== null || (e.exit_code !== null && e.exit_code !== 0);
}

export function howEnded(e: { exit_code: number | null; signal: string | null }): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.exit_code}`;
}

export interface RenderOptions {
  restartsMax: number;
  /** logs.tee: false keeps workers' output off the terminal, the stderr tail included (the log has it) */
  tee: boolean;
}

/** The human report of a failed job (printed on stderr; the JSON document carries the same facts). */
export function renderFailure(s: LaunchSummary, opts: RenderOptions): string {
  const rc = s.root_cause;
  const lines: string[] = [];
  if (s.hung) {
    const why =
      s.hung.cause === 'collective_timeout'
        ? `rank ${rc?.rank} timed out in a collective after ${s.hung.after_ms / 1000}s (collective_timeout)`
        : `no rank made progress for ${(s.hung.after_ms / 1000).toFixed(1)}s (hang_timeout)`;
    const attempts = s.attempts.length;
    lines.push(
      `job ${s.run_id} hung: ${why}` +
        (opts.restartsMax > 0 ? ` (attempt ${attempts} of ${opts.restartsMax + 1}, restarts exhausted)` : ''),
    );
    for (const d of s.hung.diagnosis) lines.push(`  ${d}`);
    lines.push('  (the stacks of the ranks named are printed above)');
  } else if (!rc) {
    lines.push(`job ${s.run_id} failed`);
  } else if (rc.message) {
    lines.push(`job ${s.run_id} failed${rc.host ? ` on ${rc.host}` : ''}: ${rc.message}`);
  } else {
    const attempts = s.attempts.length;
    lines.push(
      `job ${s.run_id} failed: rank ${rc.rank} (host ${rc.host}, local rank ${rc.local_rank}, pid ${rc.pid}) ` +
        `${howEnded(rc)} at ${rc.time}` +
        (opts.restartsMax > 0 ? ` (attempt ${attempts} of ${opts.restartsMax + 1}, restarts exhausted)` : ''),
    );
    if (rc.error_file !== null && rc.error_file !== undefined) lines.push(...renderErrorFile(rc.error_file));
    if (!opts.tee) {
      lines.push(`  its stderr: ${join(s.log_dir, `attempt_${rc.attempt}`, logFileName(rc.rank, 'stderr'))}`);
    } else if (rc.stderr_tail.length) {
      lines.push(`  last lines of its stderr:`);
      for (const l of rc.stderr_tail) lines.push(`    | ${l}`);
    }
  }
  if (s.other_failures.length) {
    lines.push(
      `  then: ${s.other_failures.map((o) => `rank ${o.rank} ${o.signal ?? `exit ${o.exit_code}`}`).join(', ')}`,
    );
  }
  lines.push(`  logs: ${s.log_dir}`);
  return lines.join('\n');
}

/** Longest error-file text shown; the agent reads at most 64 KiB of the file anyway. */
const ERROR_FILE_SHOWN_CHARS = 8000;

/**
 * A TORCHELASTIC_ERROR_FILE as torchrun shows it: the message, then the traceback (PyTorch's @record
 * writes {message: {message, extraInfo: {py_callstack, timestamp}}}; a plain {message: "..."} or any
 * other text is shown as it is).
 */
export function renderErrorFile(content: unknown): string[] {
  const outer = typeof content === 'object' && content !== null ? (content as Record<string, unknown>) : undefined;
  const inner = outer?.message;
  const record = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : undefined;
  const message = record ? record.message : inner;
  const extra = record?.extraInfo as Record<string, unknown> | undefined;
  const callstack = typeof extra?.py_callstack === 'string' ? extra.py_callstack : undefined;
  if (typeof message !== 'string') {
    const text = typeof content === 'string' ? content : JSON.stringify(content);
    return [`  error file: ${text.slice(0, ERROR_FILE_SHOWN_CHARS)}`];
  }
  const seconds = Number(extra?.timestamp);
  const when = Number.isFinite(seconds) && seconds > 0 ? ` (at ${new Date(seconds * 1000).toISOString()})` : '';
  const out = [`  error: ${message.slice(0, ERROR_FILE_SHOWN_CHARS)}${when}`];
  if (callstack) {
    out.push('  traceback:');
    for (const l of callstack.slice(0, ERROR_FILE_SHOWN_CHARS).trimEnd().split('\n')) out.push(`    | ${l}`);
  }
  return out;
}
