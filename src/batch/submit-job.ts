/**
 * `dtrain submit`: render the batch script, write it next to the logs, hand it to the scheduler and,
 * with --wait, follow the job to its end. Returns the document `--json` prints:
 * `{job_id, script, output, state, exit_code}` (+ `result`, the in-job controller's launch summary).
 */
import { chmod, writeFile } from 'node:fs/promises';
import { makeDirs } from '../util/make-dirs.js';
import type { JobConfig } from '../config/types.js';
import { JobFailedError, StartError, UsageError } from '../util/errors.js';
import {
  batchJobFromConfig,
  outputPath,
  resultPath,
  scriptPath,
  type BatchJob,
  type SchedulerKind,
} from './batch-job.js';
import { fitGrace } from './kill-wait.js';
import { formatDuration } from '../config/duration.js';
import { renderBatchScript } from './render.js';
import { DEFAULT_KILL_WAIT_MS, slurmKillWaitMs, squeueJobState } from './slurm-state.js';
import { submitScript } from './submit-script.js';
import { judgeOutcome, waitForSlurmJob, type LaunchSummary } from './wait-job.js';

export interface SubmitRequest {
  config: JobConfig;
  configFile: string;
  /** the config set shutdown_grace itself (rather than taking the default) */
  graceExplicit: boolean;
  kind?: SchedulerKind;
  dryRun: boolean;
  wait: boolean;
  /** argv that runs dtrain on the compute nodes */
  dtrain: string[];
  /** human progress lines (stderr) */
  log: (line: string) => void;
  /** called as soon as the scheduler accepted the job */
  onSubmitted?: (jobId: string) => void;
  env?: NodeJS.ProcessEnv;
  /** polling of --wait, for tests */
  poll?: { initialMs: number; maxMs: number };
  signal?: AbortSignal;
}

export interface SubmitDocument {
  job_id: string | null;
  script: string;
  output: string;
  state: string;
  exit_code: number | null;
  result?: LaunchSummary;
  /** each requeue --wait saw: Slurm's restart count and the result the ended run left */
  requeues?: { restart: number; result?: LaunchSummary }[];
}

export interface Prepared {
  job: BatchJob;
  text: string;
  warnings: string[];
}

/** Everything short of touching the scheduler: what --dry-run shows. */
export async function prepareSubmission(
  req: Pick<SubmitRequest, 'config' | 'configFile' | 'graceExplicit' | 'kind' | 'dtrain' | 'wait' | 'dryRun' | 'env'>,
): Promise<Prepared> {
  const job = batchJobFromConfig(req.config, req.configFile, { kind: req.kind, dtrain: req.dtrain });
  if (req.wait && job.kind !== 'slurm')
    throw new UsageError('--wait follows Slurm jobs only (PBS support is experimental): poll qstat instead');
  let graceWarning: string | undefined;
  if (job.kind === 'slurm') {
    // --dry-run connects nowhere: compare with Slurm's default instead of asking the cluster
    const asked = req.dryRun ? undefined : await slurmKillWaitMs({ env: req.env });
    const fit = fitGrace(job.shutdownGraceMs, req.graceExplicit, asked ?? DEFAULT_KILL_WAIT_MS, asked === undefined);
    if (fit.overrideMs !== undefined) job.launchSets.push(`shutdown_grace=${formatDuration(fit.overrideMs)}`);
    graceWarning = fit.warning;
  }
  const { text, warnings } = renderBatchScript(job);
  if (graceWarning) warnings.push(graceWarning);
  return { job, text, warnings };
}

export async function submitJob(req: SubmitRequest, prepared: Prepared): Promise<SubmitDocument> {
  const { job, text } = prepared;
  const script = scriptPath(job);
  const output = outputPath(job);
  // the scheduler opens the output file before the script runs: its folder must exist
  await makeDirs(job.logsDir).catch((err: Error) => {
    throw new StartError(`logs.dir: cannot make ${job.logsDir}: ${err.message}`);
  });
  await writeFile(script, text, { mode: 0o755 });
  await chmod(script, 0o755);
  const jobId = await submitScript(job.kind, script, { cwd: job.workdir, env: req.env });
  req.onSubmitted?.(jobId);
  req.log(`submitted ${job.kind} job ${jobId}: script ${script}, output ${output}`);

  const doc: SubmitDocument = { job_id: jobId, script, output, state: 'SUBMITTED', exit_code: null };
  if (job.kind === 'slurm' && !req.wait) {
    doc.state = (await squeueJobState(jobId, { env: req.env }).catch(() => undefined)) ?? doc.state;
  }
  if (!req.wait) return doc;

  let lastState: string | undefined;
  const outcome = await waitForSlurmJob(jobId, {
    env: req.env,
    resultFile: resultPath(job),
    initialMs: req.poll?.initialMs,
    maxMs: req.poll?.maxMs,
    signal: req.signal,
    onState: (s) => {
      lastState = s;
      req.log(`job ${jobId} ${s}`);
    },
    ...(job.scheduler.requeue && {
      onRequeue: (restart: number, result: LaunchSummary | undefined) => {
        const saved = result?.preemption?.saved_step ?? null;
        req.log(
          `job ${jobId} requeued (restart ${restart})` +
            (result?.preemption?.saved ? `: saved${saved !== null ? ` at step ${saved}` : ''} first` : ''),
        );
        (doc.requeues ??= []).push({ restart, ...(result && { result }) });
      },
    }),
  });
  const verdict = judgeOutcome(jobId, outcome, output);
  doc.state = outcome.state;
  doc.exit_code = verdict.exitCode;
  if (outcome.result) doc.result = outcome.result;
  if (!verdict.ok) throw new JobFailedError(verdict.message, doc);
  // success says only `job N COMPLETED`: not twice when the state line just said it
  if (lastState !== outcome.state) req.log(verdict.message);
  return doc;
}
