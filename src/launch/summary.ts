/**
 * The launch summary: the `--json` document of shared/design.md and the human root-cause report.
 */
import type { WorkerExit } from './agent-contract.js';

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

export interface LaunchSummary {
  run_id: string;
  exit_code: number;
  attempts: { ranks: RankOutcome[] }[];
  root_cause: RootCause | null;
  /** other failures of the last attempt, after the root cause */
  other_failures: RankOutcome[];
  log_dir: string;
}

export function failed(e: { exit_code: number | null; signal: string | null }): boolean {
  return e.signal !== null || (e.exit_code !== null && e.exit_code !== 0);
}

export function howEnded(e: { exit_code: number | null; signal: string | null }): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.exit_code}`;
}

/** The human report of a failed job (printed on stderr; the JSON document carries the same facts). */
export function renderFailure(s: LaunchSummary, restartsMax: number): string {
  const rc = s.root_cause;
  const lines: string[] = [];
  if (!rc) {
    lines.push(`job ${s.run_id} failed`);
  } else if (rc.message) {
    lines.push(`job ${s.run_id} failed on ${rc.host}: ${rc.message}`);
  } else {
    const attempts = s.attempts.length;
    lines.push(
      `job ${s.run_id} failed: rank ${rc.rank} (host ${rc.host}, local rank ${rc.local_rank}, pid ` +
        `${rc.pid}) ${howEnded(rc)} at ${rc.time}` +
        (restartsMax > 0 ? ` (attempt ${attempts} of ${restartsMax + 1}, restarts exhausted)` : ''),
    );
    if (rc.error_file !== null && rc.error_file !== undefined) {
      const text = typeof rc.error_file === 'string' ? rc.error_file : JSON.stringify(rc.error_file);
      lines.push(`  error file: ${text.slice(0, 2000)}`);
    }
    if (rc.stderr_tail.length) {
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
