/**
 * What a batch submission needs, derived once from the loaded config: the scheduler settings checked
 * beyond the schema (folders that land in `#SBATCH`/`#PBS` lines must hold no spaces), the node count,
 * and where the script, its output and the in-job controller's result file go (next to the logs).
 * Renderers and the submitter work from this, never from the YAML.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { JobConfig, SchedulerConfig } from '../config/types.js';
import { ConfigError, type ConfigProblem } from '../util/errors.js';

export type SchedulerKind = SchedulerConfig['kind'];

export interface BatchJob {
  kind: SchedulerKind;
  name: string;
  /** the config file, absolute: the job runs `dtrain launch` on it */
  configFile: string;
  workdir: string;
  logsDir: string;
  nodes: number;
  /** processes per node when the config fixes it (PBS's ncpus default, a GPU-count warning) */
  nprocPerNode: number | 'auto';
  scheduler: SchedulerConfig;
  shutdownGraceMs: number;
  /** argv that runs dtrain on the compute nodes (absolute paths: clusters share the file system) */
  dtrain: string[];
  /** the store port agents join in PBS join mode (a fixed port: they cannot be told one picked later) */
  joinPort: number;
  /** the config is elastic: the allocation must outlive a failed node (the script asks Slurm for that) */
  elastic: boolean;
  /** `--set key=value` overrides the in-job `dtrain launch` gets (e.g. a shutdown_grace that fits KillWait) */
  launchSets: string[];
  /** `<logsDir>/<name>-<stamp>`: + .sbatch/.pbs (script), .out (job output), .result.json (controller's result) */
  base: string;
  warnings: string[];
}

/** torchrun's default rendezvous port, used for join mode when rendezvous.port is auto. */
export const DEFAULT_JOIN_PORT = 29400;

export interface BatchJobOptions {
  /** --scheduler on the command line: overrides scheduler.kind, or stands in for a missing section */
  kind?: SchedulerKind;
  dtrain: string[];
  /** for tests: a fixed stamp instead of time + random */
  stamp?: string;
  now?: Date;
}

export function batchJobFromConfig(config: JobConfig, configFile: string, opts: BatchJobOptions): BatchJob {
  const file = path.resolve(configFile);
  const problems: ConfigProblem[] = [];
  const problem = (p: string, message: string) => problems.push({ file, line: 0, col: 0, path: p, message });

  if (!config.scheduler && !opts.kind) {
    problem('scheduler', 'dtrain submit needs a scheduler section (kind: slurm or pbs) or --scheduler');
    throw new ConfigError(problems);
  }
  const scheduler: SchedulerConfig = {
    ...(config.scheduler ?? { kind: opts.kind! }),
    ...(opts.kind ? { kind: opts.kind } : {}),
  };
  // `extra` lines are written for one scheduler's directives (`--exclusive` means nothing to qsub): when
  // --scheduler switches kind, they stay behind, and the user hears about it.
  const switchedFrom = config.scheduler && config.scheduler.kind !== scheduler.kind ? config.scheduler.kind : undefined;
  const droppedExtra = switchedFrom && scheduler.extra?.length ? scheduler.extra : undefined;
  if (droppedExtra) delete scheduler.extra;

  const logsDir = path.resolve(config.workdir, config.logs.dir);
  // these land in directive lines (--chdir, --output) too
  if (/\s/.test(config.workdir)) problem('workdir', `a batch job's workdir must not contain spaces: ${config.workdir}`);
  else if (/\s/.test(logsDir)) problem('logs.dir', `a batch job's logs folder must not contain spaces: ${logsDir}`);
  if (problems.length) throw new ConfigError(problems);

  const warnings: string[] = [];
  if (droppedExtra) {
    warnings.push(
      `scheduler.extra (${droppedExtra.join(' ')}) is for ${switchedFrom}, not ${scheduler.kind}: left out ` +
        `of the script`,
    );
  }
  const listed = config.nodes.filter((n) => !n.from_allocation);
  const nodes = scheduler.nodes ?? (listed.length > 0 ? listed.length : 1);
  const gpus = scheduler.gpus_per_node;
  if (typeof config.nproc_per_node === 'number' && gpus && config.nproc_per_node > gpus) {
    warnings.push(
      `nproc_per_node is ${config.nproc_per_node} but scheduler.gpus_per_node is ${gpus}: ranks will share GPUs`,
    );
  }

  const stamp = opts.stamp ?? makeStamp(opts.now ?? new Date());
  return {
    kind: scheduler.kind,
    name: config.name,
    configFile: file,
    workdir: config.workdir,
    logsDir,
    nodes,
    nprocPerNode: config.nproc_per_node,
    scheduler,
    shutdownGraceMs: config.shutdown_grace,
    dtrain: opts.dtrain,
    joinPort: config.rendezvous.port === 'auto' ? DEFAULT_JOIN_PORT : config.rendezvous.port,
    elastic: config.elastic !== undefined,
    launchSets: [],
    base: path.join(logsDir, `${config.name}-${stamp}`),
    warnings,
  };
}

/** Sortable and unique enough for sweeps submitting many jobs in the same second. */
function makeStamp(now: Date): string {
  const iso = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${iso}-${randomBytes(2).toString('hex')}`;
}

export function scriptPath(job: BatchJob): string {
  return `${job.base}.${job.kind === 'slurm' ? 'sbatch' : 'pbs'}`;
}
export function outputPath(job: BatchJob): string {
  return `${job.base}.out`;
}
export function resultPath(job: BatchJob): string {
  return `${job.base}.result.json`;
}
