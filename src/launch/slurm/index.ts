/**
 * What `dtrain launch` does differently inside a Slurm allocation (a `dtrain submit` batch script, or
 * launch typed inside salloc), through the Slurm NodeSource (node-source.ts):
 *   - `applySlurmAllocation(config)` before the plan: the placeholder nodes of a config with a
 *     `scheduler` section (and no nodes/hostfile) become the allocation's hosts, node 0 first, the one this
 *     controller runs on marked local. Explicitly listed nodes are left alone. An elastic job's hosts beyond
 *     scheduler.nodes are its spares.
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
  const allocated = await allocationHosts(allocation, env);
  const template = config.nodes[0];
  // An elastic job keeps the hosts beyond scheduler.nodes as its spares (the last ones, in Slurm's order):
  // started only to take a lost node's place. Any other job runs on every host of the allocation.
  const spareCount = config.elastic ? Math.max(0, allocated.length - config.nodes.length) : 0;
  const hosts = allocated.slice(0, allocated.length - spareCount);
  if (spareCount) {
    warnings.push(
      `Slurm job ${allocation.jobId} has ${allocated.length} nodes and scheduler.nodes is ${config.nodes.length}: ` +
        `the last ${spareCount} ${spareCount === 1 ? 'is a spare' : 'are spares'} of the elastic job`,
    );
  } else if (hosts.length !== config.nodes.length) {
    warnings.push(
      `scheduler.nodes is ${config.nodes.length} but Slurm job ${allocation.jobId} has ${hosts.length} ` +
        `node(s): using the allocation`,
    );
  }
  const me = thisSlurmNode(env);
  // nproc_per_node auto without gpus_per_node was a guess; the GPUs Slurm gave this node settle it
  const { nproc, assumed } = nprocAtLaunch(template, template.nproc_assumed ? allocatedGpus(env) : undefined);
  const toNode = (host: string): NodeConfig => {
    const node: NodeConfig = { host, nproc, local: host === me };
    if (assumed) node.nproc_assumed = true;
    return node;
  };
  const nodes = hosts.map(toNode);
  const spares = allocated.slice(hosts.length).map((host) => ({ ...toNode(host), spare: true }));
  if (![...nodes, ...spares].some((n) => n.local)) {
    warnings.push(
      `this machine (${me}) is not one of Slurm job ${allocation.jobId}'s nodes (${allocation.nodelist}): ` +
        `every agent starts with srun`,
    );
  }
  const elastic = config.elastic && { ...config.elastic, spares };
  return { config: { ...config, nodes, ...(elastic && { elastic }) }, allocation, warnings };
}

/** GPUs Slurm allocated on this node: SLURM_GPUS_ON_NODE, else the CUDA_VISIBLE_DEVICES it set. */
export function allocatedGpus(env: NodeJS.ProcessEnv): number | undefined {
  const n = Number(env.SLURM_GPUS_ON_NODE);
  if (Number.isInteger(n) && n > 0) return n;
  const cvd = env.CUDA_VISIBLE_DEVICES?.split(',').filter((d) => d.trim() !== '');
  return cvd && cvd.length > 0 && !cvd.includes('-1') ? cvd.length : undefined;
}
