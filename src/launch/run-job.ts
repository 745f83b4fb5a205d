/**
 * runJob: one path from a loaded config to a finished job, for every command that runs one (`dtrain
 * launch`, `dtrain bench`). It picks where the nodes come from (node-source.ts), lets the source resolve
 * them, builds the plan and hands over to launchJob (controller.ts). Modules load as they are needed,
 * so a launch on this machine never loads SSH, Slurm or join code, and SSH nodes are dialled
 * (ssh/pre-dial.ts) before the controller's modules load.
 */
import type { Writable } from 'node:stream';
import type { JobConfig, LoadedConfig } from '../config/types.js';
import type { Plan } from '../plan/types.js';
import type { StoreAccess } from './local-node.js';
import type { NodeSource, ResolvedNodes } from './node-source.js';
import type { LaunchSummary } from './summary.js';

export interface JobRequest {
  loaded: LoadedConfig;
  /** arguments after `--`, appended to every worker's command */
  extraArgs: string[];
  json: boolean;
  /** resolve the nodes and build the plan, start nothing */
  dryRun?: boolean;
  /** join mode: wait for this many `dtrain agent --join` agents holding this key */
  join?: { agents: number; jobKey: Buffer };
  out?: Writable & { isTTY?: boolean };
  err?: Writable & { isTTY?: boolean };
  /** adjusts the config once its nodes are known (bench: the bench worker becomes the entrypoint) */
  shape?(config: JobConfig, source: NodeSource): JobConfig;
  /** checks the plan before anything starts (throws a UsageError to refuse it) */
  checkPlan?(plan: Plan): void;
  /** after a successful run, while the store still listens (controller.ts LaunchRequest.onFinished) */
  onFinished?: (store: StoreAccess) => Promise<void>;
}

export interface JobResult {
  config: JobConfig;
  plan: Plan;
  source: NodeSource;
  /** absent for a dry run */
  summary?: LaunchSummary;
}

export async function runJob(req: JobRequest): Promise<JobResult> {
  const err = req.err ?? process.stderr;
  const dryRun = Boolean(req.dryRun);
  const { source, resolved } = await resolveNodes(req, dryRun);
  try {
    const config = req.shape ? req.shape(resolved.config, source) : resolved.config;
    const { buildPlan } = await import('../plan/build.js');
    const plan = buildPlan({ ...req.loaded, config }, { extraArgs: req.extraArgs });
    req.checkPlan?.(plan);
    if (dryRun) {
      await source.close();
      return { config, plan, source };
    }
    for (const w of [...plan.warnings, ...resolved.warnings]) err.write(`warning: ${w}\n`);
    await source.prepare?.(plan, config);
    const { launchJob } = await import('./controller.js');
    const summary = await launchJob({
      config,
      plan,
      json: req.json,
      ...(req.out ? { out: req.out } : {}),
      err,
      source,
      ...(req.onFinished ? { onFinished: req.onFinished } : {}),
    });
    await source.close();
    return { config, plan, source, summary };
  } catch (e) {
    await source.close(e as Error);
    throw e;
  }
}

/**
 * Join mode when asked for (not for a dry run: that shows the plan of the config as written); inside a
 * Slurm allocation, or for a config whose nodes come from one, the allocation's hosts; otherwise the
 * config's nodes: SSH when any is not this machine.
 */
async function resolveNodes(
  req: JobRequest,
  dryRun: boolean,
): Promise<{ source: NodeSource; resolved: ResolvedNodes }> {
  const opts = { dryRun };
  const resolveWith = async (source: NodeSource) => {
    try {
      return { source, resolved: await source.resolve(req.loaded, opts) };
    } catch (e) {
      await source.close(e as Error);
      throw e;
    }
  };
  if (req.join && !dryRun) {
    const { joinNodeSource } = await import('./join/node-source.js');
    return resolveWith(joinNodeSource({ ...req.join, ...(req.err ? { err: req.err } : {}) }));
  }
  const config = req.loaded.config;
  if (config.nodes.some((n) => n.from_allocation) || process.env.SLURM_JOB_ID !== undefined) {
    const { slurmNodeSource } = await import('./slurm/node-source.js');
    const slurm = slurmNodeSource(process.env, req.err ?? process.stderr);
    const found = await resolveWith(slurm);
    if (slurm.allocation) return found;
    // a config that lists its own nodes: reached as outside Slurm, with the config as resolved
    return { source: await sourceFor(found.resolved.config, req), resolved: found.resolved };
  }
  return resolveWith(await sourceFor(config, req));
}

async function sourceFor(config: JobConfig, req: JobRequest): Promise<NodeSource> {
  if (config.nodes.every((n) => n.local)) return (await import('./local-node.js')).localNodeSource;
  return (await import('./ssh/node-source.js')).sshNodeSource(req.err ?? process.stderr);
}
