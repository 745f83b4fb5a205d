/**
 * What `dtrain launch` does differently inside a Slurm allocation (a `dtrain submit` batch script, or
 * launch typed inside salloc), through the Slurm NodeSource (node-source.ts):
 *   - `applySlurmAllocation(config)` before the plan: the placeholder nodes of a config with a
 *     `scheduler` section (and no nodes/hostfile) become the allocation's hosts, node 0 first, the one this
 *     controller runs on marked local. Explicitly listed nodes are left alone.
 *   - agents on the other nodes are started with srun (srun-spawner.ts), one step per node.
 * After the run the launch writes its summary to DTRAIN_RESULT_FILE (../result-file.ts).
 */
import { nprocAtLaunch } from '../../config/nproc-auto.js';
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
export { startSrunNodes, localDtrainArgv } from './remote-spawner.js';
export { writeResultFile, type ResultDocument } from '../result-file.js';

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
  const { nproc, assumed } = nprocAtLaunch(template, template.nproc_assumed ? allocatedGpus(env) : undefined);
  const nodes: NodeConfig[] = hosts.map((host) => {
    const node: NodeConfig = { host, nproc, local: host === me };
    if (assumed) node.nproc_assumed = true;
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
