/**
 * `dtrain submit --wait`: follow a Slurm job to its end and decide what it means. Polling starts at
 * `initialMs` and backs off to `maxMs` so a long job costs the controller one cheap squeue RPC every few
 * seconds at most. The in-job controller's result file (its launch summary) says which rank failed;
 * Slurm's state says whether the job was cancelled, timed out, lost a node or was preempted. A job that may
 * be requeued is polled with scontrol, whose Restarts= count tells each requeue, however briefly the job
 * stayed pending in between.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PreemptionReport } from '../launch/summary.js';
import { scontrolJobState, squeueJobState, TERMINAL_STATES, type SlurmQuery } from './slurm-state.js';

export interface RankOutcome {
  rank: number;
  host: string;
  exit_code: number | null;
  signal: string | null;
}

/**
 * The launch summary (src/launch/summary.ts), as the in-job controller writes it to
 * DTRAIN_RESULT_FILE; or `{exit_code, error}` when the launch stopped before it had one (exit 3).
 */
export interface LaunchSummary {
  run_id?: string;
  exit_code: number;
  attempts?: { ranks: RankOutcome[] }[];
  root_cause?: (RankOutcome & { message?: string }) | null;
  error?: string;
  preemption?: PreemptionReport;
  resumed?: { slurm_restart_count: number };
}

export interface JobOutcome {
  state: string;
  reason?: string;
  /** the batch script's exit status, when Slurm still knows it */
  exitCode?: number;
  result?: LaunchSummary;
}

export interface WaitOptions extends SlurmQuery {
  resultFile: string;
  initialMs?: number;
  maxMs?: number;
  onState?: (state: string) => void;
  /** follow requeues: called once per restart with the ended run's result file, when it left one */
  onRequeue?: (restarts: number, result: LaunchSummary | undefined) => void;
  signal?: AbortSignal;
}

export async function waitForSlurmJob(jobId: string, opts: WaitOptions): Promise<JobOutcome> {
  let delay = opts.initialMs ?? 1000;
  const maxMs = opts.maxMs ?? 10_000;
  let last: string | undefined;
  let restarts = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    let state: string | undefined;
    if (opts.onRequeue) {
      const full = await scontrolJobState(jobId, opts);
      state = full?.state;
      if ((full?.restarts ?? 0) > restarts) {
        restarts = full!.restarts!;
        opts.onRequeue(restarts, await readResult(opts.resultFile, false));
        delay = opts.initialMs ?? 1000;
      }
    } else state = await squeueJobState(jobId, opts);
    if (state !== undefined && state !== last) opts.onState?.(state);
    last = state ?? last;
    if (state === undefined || TERMINAL_STATES.has(state)) break;
    await sleep(delay, undefined, { signal: opts.signal });
    delay = Math.min(maxMs, Math.round(delay * 1.5));
  }
  const final = await scontrolJobState(jobId, opts);
  const outcome: JobOutcome = { state: final?.state ?? last ?? 'UNKNOWN' };
  if (final?.reason) outcome.reason = final.reason;
  if (final?.exitCode !== undefined) outcome.exitCode = final.exitCode;
  const result = await readResult(opts.resultFile, outcome.state === 'COMPLETED' || outcome.state === 'FAILED');
  if (result) outcome.result = result;
  return outcome;
}

/** The controller writes the file before it exits; on a shared file system it may show up a moment later. */
async function readResult(file: string, expected: boolean): Promise<LaunchSummary | undefined> {
  for (let tries = expected ? 10 : 1; tries > 0; tries--) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as LaunchSummary;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    if (tries > 1) await sleep(500);
  }
  return undefined;
}

export interface Verdict {
  ok: boolean;
  /** one line for the user */
  message: string;
  /** the job's own exit code: the controller's when it reported, else the batch script's */
  exitCode: number | null;
}

/** Ranks that failed in the last attempt: "rank 1 (vm) exited with 3, rank 2 (vm) killed by SIGKILL". */
export function failedRanks(result: LaunchSummary): string {
  const last = result.attempts?.at(-1);
  const bad = (last?.ranks ?? []).filter((r) => r.exit_code !== 0 || r.signal);
  return bad
    .slice(0, 4)
    .map(describeRank)
    .concat(bad.length > 4 ? [`${bad.length - 4} more`] : [])
    .join(', ');
}

function describeRank(r: RankOutcome): string {
  return `rank ${r.rank} (${r.host}) ${r.signal ? `killed by ${r.signal}` : `exited with ${r.exit_code}`}`;
}

/**
 * The root cause in one line: the controller's message when it has one (node lost, spawn failed), else the rank's exit.
 */
function rootCause(result: LaunchSummary): string | undefined {
  if (result.error) return result.error;
  const c = result.root_cause;
  if (!c) return undefined;
  return c.message ?? describeRank(c);
}

export function judgeOutcome(jobId: string, o: JobOutcome, output: string): Verdict {
  const exitCode = o.result?.exit_code ?? o.exitCode ?? null;
  if (o.state === 'COMPLETED' && (o.result === undefined || o.result.exit_code === 0)) {
    return { ok: true, message: `job ${jobId} COMPLETED`, exitCode: exitCode ?? 0 };
  }
  if (o.state === 'FAILED' || o.state === 'COMPLETED') {
    if (o.result) {
      const ranks = failedRanks(o.result);
      const root = rootCause(o.result);
      const cause = root ? `: ${root}` : ranks ? `: ${ranks}` : '';
      const more = root && ranks && ranks !== root ? ` (failed: ${ranks})` : '';
      return { ok: false, message: `job ${jobId} failed${cause}${more}; output: ${output}`, exitCode };
    }
    return {
      ok: false,
      message:
        `job ${jobId} FAILED with exit code ${o.exitCode ?? '?'} before dtrain reported a result; ` +
        `output: ${output}`,
      exitCode,
    };
  }
  if (o.state === 'UNKNOWN') {
    return {
      ok: false,
      message: `job ${jobId} is no longer known to Slurm and left no result; output: ${output}`,
      exitCode,
    };
  }
  const why = o.reason ? ` (${o.reason})` : '';
  return { ok: false, message: `job ${jobId} ended ${o.state}${why}; output: ${output}`, exitCode };
}
