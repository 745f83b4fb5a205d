/** One entry point for both schedulers' scripts and the settings each one cannot honour. */
import type { BatchJob } from './batch-job.js';
import { pbsWarnings, renderPbsScript } from './pbs-script.js';
import { renderSlurmScript } from './slurm-script.js';

export function renderBatchScript(job: BatchJob): { text: string; warnings: string[] } {
  if (job.kind === 'slurm') return { text: renderSlurmScript(job), warnings: [...job.warnings] };
  return { text: renderPbsScript(job), warnings: [...job.warnings, ...pbsWarnings(job)] };
}
