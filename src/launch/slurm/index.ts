/**
 * What `dtrain launch` does differently inside a Slurm allocation (a `dtrain submit` batch script, or
 * launch typed inside salloc), in two calls the launch command makes:
 *   - `applySlurmAllocation(config)` before the plan: the placeholder nodes of a config with a
 *     `scheduler` section (and no nodes/hostfile) become the allocation's hosts, node 0 first, the one this
 *     controller runs on marked local. Explicitly listed nodes are left alone.
 *   - `writeResultFile(summaryOrError)` after the run: the launch summary goes to DTRAIN_RESULT_FILE (set
 *     by the batch script), which `dtrain submit --wait` reads to name the failed rank.
 * Agents on the other nodes are started with srun (srun-spawner.ts), one step per node.
 */
import { renameSync, writeFileSync } from 'node:fs';
import type { JobConfig, NodeConfig } from '../../config/types.js';
import { UsageError } from '../../util/errors.js';
import { allocationHosts, detectSlurmAllocation, thisSlurmNode, type SlurmAllocation } from './allocation.js';

export {
  detectSlurmAllocation,
  allocationHosts,
  expandHostlist,
  thisSlurmNode,
  type SlurmAllocation,
} from './allocation.js';
export { startSrunAgents, srunArgs, type SrunAgent, type SrunLaunchRequest, type SrunNode } from './srun-spawner.js';
export { slurmRemoteSpawner, localDtrainArgv } from './remote-spawner.js';

export interface AllocationApplied {
  config: JobConfig;
  allocation?: SlurmAllocation;
  warnings: string[];
}

/**
 * `dryRun`: outside an allocation, keep the placeholders (the plan shows `<slurm node i>`) instead of
 * failing: only running the job needs real hosts.
 */
export async function applySlurmAllocation(
  config: JobConfig,
  env: NodeJS.ProcessEnv = process.env,
  opts: { dryRun?: boolean } = {},
): Promise<AllocationApplied> {
  const allocation = detectSlurmAllocation(env);
  const placeholders = config.nodes.length > 0 && config.nodes.every((n) => n.from_allocation);
  if (!allocation && placeholders && !opts.dryRun) {
    const kind = config.scheduler?.kind ?? 'slurm';
    throw new UsageError(
      `${config.name}: the nodes come from a ${kind} allocation: run dtrain ` +
        `submit${kind === 'slurm' ? ', or dtrain launch inside one (salloc)' : ''}, or list nodes in the config`,
    );
  }
  if (!allocation || !placeholders) return { config, warnings: [] };
  const warnings: string[] = [];
  if (allocation.inStep) {
    warnings.push(
      `running inside Slurm step ${env.SLURM_JOB_ID}.${env.SLURM_STEP_ID}: the agents' srun steps will nest ` +
        `in it; run dtrain launch from the batch script or salloc shell instead`,
    );
  }
  const hosts = await allocationHosts(allocation, env);
  const template = config.nodes[0];
  if (hosts.length !== config.nodes.length) {
    warnings.push(
      `scheduler.nodes is ${config.nodes.length} but Slurm job ${allocation.jobId} has ${hosts.length} ` +
        `node(s): using the allocation`,
    );
  }
  const me = thisSlurmNode(env);
  // nproc_per_node auto without gpus_per_node was a guess; the GPUs Slurm gave this node settle it
  const gpus = template.nproc_assumed ? allocatedGpus(env) : undefined;
  const nodes: NodeConfig[] = hosts.map((host) => {
    const node: NodeConfig = { host, nproc: gpus ?? template.nproc, local: host === me };
    if (template.nproc_assumed && gpus === undefined) node.nproc_assumed = true;
    return node;
  });
  if (!nodes.some((n) => n.local)) {
    warnings.push(
      `this machine (${me}) is not one of Slurm job ${allocation.jobId}'s nodes (${allocation.nodelist}): ` +
        `every agent starts with srun`,
    );
  }
  return { config: { ...config, nodes }, allocation, warnings };
}

/** GPUs Slurm allocated on this node: SLURM_GPUS_ON_NODE, else the CUDA_VISIBLE_DEVICES it set. */
export function allocatedGpus(env: NodeJS.ProcessEnv): number | undefined {
  const n = Number(env.SLURM_GPUS_ON_NODE);
  if (Number.isInteger(n) && n > 0) return n;
  const cvd = env.CUDA_VISIBLE_DEVICES?.split(',').filter((d) => d.trim() !== '');
  return cvd && cvd.length > 0 && !cvd.includes('-1') ? cvd.length : undefined;
}

/**
 * What the result file holds: the launch summary, or `{exit_code, error}` when the launch stopped before it had one.
 */
export interface ResultDocument {
  exit_code: number;
  error?: string;
}

/** Written whole and renamed into place, so --wait (maybe on another machine over NFS) never reads half of it. */
export function writeResultFile(doc: ResultDocument, env: NodeJS.ProcessEnv = process.env): void {
  const file = env.DTRAIN_RESULT_FILE;
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n');
  renameSync(tmp, file);
}
