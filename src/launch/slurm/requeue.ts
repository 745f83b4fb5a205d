/**
 * Requeue at the scheduler's warning (scheduler.requeue): once the workers saved and stopped, the controller
 * puts its own batch job back in the queue (`scontrol requeue $SLURM_JOB_ID`), and the next run resumes from
 * the checkpoint. Slurm ends the running job with SIGTERM when it requeues it, so the result file says
 * "requeued" before the request goes out, and that SIGTERM is expected from then on.
 */
import { execaLazy } from '../../util/execa-lazy.js';
import type { JobConfig } from '../../config/types.js';
import { writeResultFile } from '../result-file.js';
import type { LaunchSummary } from '../summary.js';

/** A requeued run: Slurm's count of this job's restarts (SLURM_RESTART_COUNT, set from the first requeue on). */
export function slurmResumed(env: NodeJS.ProcessEnv): { slurm_restart_count: number } | undefined {
  const n = Number(env.SLURM_RESTART_COUNT ?? '');
  return env.SLURM_JOB_ID && Number.isInteger(n) && n > 0 ? { slurm_restart_count: n } : undefined;
}

export async function requeueAfterSave(
  summary: LaunchSummary,
  config: JobConfig,
  log: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const p = summary.preemption;
  const jobId = env.SLURM_JOB_ID;
  if (!p?.saved || !config.scheduler?.requeue || !jobId) return;
  p.requeued = { job_id: jobId, at: new Date().toISOString() };
  writeResultFile(summary, env);
  process.on('SIGTERM', () => {});
  const execa = await execaLazy();
  const r = await execa('scontrol', ['requeue', jobId], { env, reject: false, stdin: 'ignore', timeout: 30_000 });
  if (r.exitCode === 0) {
    log(`requeued: job ${jobId} goes back to the queue and resumes from the checkpoint`);
    return;
  }
  const why = String(r.stderr || r.stdout || r.shortMessage)
    .trim()
    .split('\n')
    .join('; ');
  p.requeued = { job_id: jobId, error: `scontrol requeue ${jobId}: ${why}` };
  writeResultFile(summary, env);
  log(`not requeued: scontrol requeue ${jobId}: ${why}`);
}
