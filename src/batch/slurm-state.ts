/**
 * Reading Slurm's view of a job without slurmdbd: `squeue` while it is queued or running, `scontrol show
 * job` for the final state and exit code (Slurm keeps finished jobs for MinJobAge, 300 s by default).
 * sacct is not used: it needs accounting storage, which small clusters (and the testbed) lack.
 */
import { execaLazy } from '../util/execa-lazy.js';

/** States after which a job never runs again. Everything else (PENDING, RUNNING, COMPLETING, ...) is in progress. */
export const TERMINAL_STATES = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'PREEMPTED',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
]);

export interface SlurmJobState {
  state: string;
  reason?: string;
  /** the batch script's exit status (ExitCode=status:signal) */
  exitCode?: number;
  signal?: number;
  /** how often Slurm requeued the job (Restarts=) */
  restarts?: number;
}

/**
 * `scontrol show job -o` prints one line of Key=Value pairs. Values may contain spaces (Command=, WorkDir=
 * paths), so a value runs up to the next ` Key=`.
 */
export function parseScontrolJob(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const keys = [...line.matchAll(/(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=/g)];
  keys.forEach((m, i) => {
    const start = m.index + m[0].length;
    const end = i + 1 < keys.length ? keys[i + 1].index : line.length;
    fields[m[1]] = line.slice(start, end).trim();
  });
  return fields;
}

export function stateFromScontrol(fields: Record<string, string>): SlurmJobState | undefined {
  if (!fields.JobState) return undefined;
  // "CANCELLED by 0" in some versions: the first word is the state
  const state = fields.JobState.split(/\s/)[0];
  const out: SlurmJobState = { state };
  if (fields.Reason && fields.Reason !== 'None') out.reason = fields.Reason;
  const ec = /^([0-9]+):([0-9]+)$/.exec(fields.ExitCode ?? '');
  if (ec) {
    out.exitCode = Number(ec[1]);
    out.signal = Number(ec[2]);
  }
  if (/^[0-9]+$/.test(fields.Restarts ?? '')) out.restarts = Number(fields.Restarts);
  return out;
}

export interface SlurmQuery {
  env?: NodeJS.ProcessEnv;
}

/** undefined when Slurm no longer knows the job (purged after MinJobAge, or never existed). */
export async function scontrolJobState(jobId: string, q: SlurmQuery = {}): Promise<SlurmJobState | undefined> {
  const execa = await execaLazy();
  const r = await execa('scontrol', ['show', 'job', '-o', jobId], { env: q.env, reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    if (/invalid job id/i.test(String(r.stderr))) return undefined;
    throw new Error(`scontrol show job ${jobId}: ${String(r.stderr || r.shortMessage).trim()}`);
  }
  return stateFromScontrol(parseScontrolJob(String(r.stdout).trim()));
}

/** The cheap poll: one squeue line. undefined when squeue no longer lists the job. */
export async function squeueJobState(jobId: string, q: SlurmQuery = {}): Promise<string | undefined> {
  const execa = await execaLazy();
  const r = await execa('squeue', ['-h', '-t', 'all', '-j', jobId, '-o', '%T'], {
    env: q.env,
    reject: false,
    stdin: 'ignore',
  });
  if (r.exitCode !== 0) {
    if (/invalid job id/i.test(String(r.stderr))) return undefined;
    throw new Error(`squeue -j ${jobId}: ${String(r.stderr || r.shortMessage).trim()}`);
  }
  const state = String(r.stdout).trim().split('\n')[0]?.trim();
  return state || undefined;
}

/** KillWait in milliseconds from `scontrol show config`, or undefined when Slurm cannot be asked. */
export async function slurmKillWaitMs(q: SlurmQuery = {}): Promise<number | undefined> {
  const execa = await execaLazy();
  const r = await execa('scontrol', ['show', 'config'], {
    env: q.env,
    reject: false,
    stdin: 'ignore',
    timeout: 10_000,
  });
  if (r.exitCode !== 0) return undefined;
  const m = /^KillWait\s*=\s*([0-9]+)\s*sec/m.exec(String(r.stdout));
  return m ? Number(m[1]) * 1000 : undefined;
}

/** Slurm's default KillWait (slurm.conf(5)), assumed when the cluster cannot be asked (--dry-run). */
export const DEFAULT_KILL_WAIT_MS = 30_000;
