/**
 * buildPlan: from a validated config to the rank plan. Pure: no I/O; everything the config could not
 * decide (master port when auto, run id, store path...) is AUTO here and filled by the agent at launch
 * (fillAtLaunch). Which variables a worker gets, and who fills each: runtime/worker-env-table.ts.
 */
import { formatProblem, type ConfigProblem } from '../util/errors.js';
import { formatDuration } from '../config/duration.js';
import type { JobConfig, LoadedConfig } from '../config/types.js';
import { AUTO, WORKER_ENV, workerCommand } from '../runtime/worker-env-table.js';
import { coordsOf } from './grid.js';
import { canEstimateActivations, estimateMemory, gb, GB } from './memory.js';
import type { NodePlan, Plan, RankPlan } from './types.js';

export interface BuildPlanOptions {
  /** arguments after `--` on the launch command line, appended to every worker's command */
  extraArgs?: string[];
  /**
   * The launcher's environment: a local node's workers inherit it, so an OMP_NUM_THREADS set there is
   * respected (torchrun's rule). Default: process.env.
   */
  launcherEnv?: Record<string, string | undefined>;
}

export function buildPlan(input: JobConfig | LoadedConfig, opts: BuildPlanOptions = {}): Plan {
  const [config, configWarnings] =
    'config' in input && 'warnings' in input ? [input.config, input.warnings] : [input, [] as ConfigProblem[]];
  const launcherEnv = opts.launcherEnv ?? process.env;
  const par = config.parallelism;
  const world = config.nodes.reduce((n, node) => n + node.nproc, 0);
  const command = workerCommand([...config.entrypoint, ...(opts.extraArgs ?? [])], config.node_single_threaded);
  const warnings = configWarnings.map(formatProblem);

  const nodes: NodePlan[] = config.nodes.map((n, node_rank) => {
    const plan: NodePlan = { node_rank, host: n.host, nproc: n.nproc, local: n.local };
    if (n.user !== undefined) plan.user = n.user;
    if (n.port !== undefined) plan.port = n.port;
    if (n.cuda_visible_devices !== undefined) plan.cuda_visible_devices = n.cuda_visible_devices;
    if (n.slots !== undefined) plan.slots = n.slots;
    if (n.nproc_assumed) plan.nproc_assumed = true;
    if (n.from_allocation) plan.from_allocation = true;
    return plan;
  });

  const decidedAtLaunch = Object.fromEntries(
    WORKER_ENV.filter((v) => v.filledBy === 'agent' && !v.optional).map((v) => [v.name, AUTO]),
  );
  const ranks: RankPlan[] = [];
  for (const node of nodes) {
    const ompDefault =
      node.nproc > 1 && config.env.OMP_NUM_THREADS === undefined && !(node.local && launcherEnv.OMP_NUM_THREADS);
    for (let local_rank = 0; local_rank < node.nproc; local_rank++) {
      const rank = ranks.length;
      const c = coordsOf(rank, par);
      const env: Record<string, string> = {
        ...config.env,
        ...(ompDefault && { OMP_NUM_THREADS: '1' }),
        ...(node.cuda_visible_devices !== undefined && { CUDA_VISIBLE_DEVICES: node.cuda_visible_devices }),
        RANK: String(rank),
        LOCAL_RANK: String(local_rank),
        WORLD_SIZE: String(world),
        LOCAL_WORLD_SIZE: String(node.nproc),
        GROUP_RANK: String(node.node_rank),
        GROUP_WORLD_SIZE: String(nodes.length),
        ROLE_RANK: String(rank),
        ROLE_WORLD_SIZE: String(world),
        ROLE_NAME: 'default',
        MASTER_ADDR: config.master.addr,
        MASTER_PORT: String(config.master.port),
        TORCHELASTIC_MAX_RESTARTS: String(config.restarts.max),
        TORCHELASTIC_USE_AGENT_STORE: 'False',
        DTRAIN_NODE_RANK: String(node.node_rank),
        DTRAIN_DATA_RANK: String(c.data),
        DTRAIN_DATA_SIZE: String(par.data),
        DTRAIN_PIPELINE_RANK: String(c.pipeline),
        DTRAIN_PIPELINE_SIZE: String(par.pipeline),
        DTRAIN_TENSOR_RANK: String(c.tensor),
        DTRAIN_TENSOR_SIZE: String(par.tensor),
        DTRAIN_ZERO_STAGE: String(par.zero_stage),
        DTRAIN_MICROBATCHES: String(par.microbatches),
        DTRAIN_SCHEDULE: par.schedule,
        DTRAIN_VIRTUAL_STAGES: String(par.virtual_stages),
        DTRAIN_BACKEND: config.backend,
        ...(config.checkpoint?.dir !== undefined && { DTRAIN_CHECKPOINT_DIR: config.checkpoint.dir }),
        ...decidedAtLaunch,
        // config/duration.ts writes what the worker parses back exactly
        DTRAIN_COLLECTIVE_TIMEOUT: formatDuration(config.collective_timeout),
        DTRAIN_RENDEZVOUS_TIMEOUT: formatDuration(config.rendezvous.timeout),
        DTRAIN_CHECKPOINT_SIGNAL: config.checkpoint_signal,
      };
      const r: RankPlan = {
        rank,
        node_rank: node.node_rank,
        host: node.host,
        local_rank,
        ...c,
        command: [...command],
        env,
      };
      if (config.model) r.memory = estimateMemory(config.model, par, c.pipeline);
      ranks.push(r);
    }
  }

  if (config.model) warnings.push(...memoryWarnings(config, ranks));
  return { name: config.name, world_size: world, parallelism: { ...par }, nodes, ranks, warnings, config };
}

function memoryWarnings(config: JobConfig, ranks: RankPlan[]): string[] {
  const out: string[] = [];
  const model = config.model!;
  if (!canEstimateActivations(model)) {
    out.push(
      'model: activations are not estimated (give model.layers, hidden, heads and seq_len); totals count ' +
        'model states only',
    );
  }
  const limit = model.gpu_memory_gb;
  if (limit === undefined) return out;
  const over = ranks.filter((r) => r.memory!.total > limit * GB);
  if (over.length === 0) return out;
  const worst = over.reduce((a, b) => (b.memory!.total > a.memory!.total ? b : a));
  const m = worst.memory!;
  out.push(
    `model.gpu_memory_gb: does not fit in gpu_memory_gb ${limit}: ${over.length} of ${ranks.length} ranks need more; ` +
      `rank ${worst.rank} (pipeline stage ${worst.pipeline}) needs ${gb(m.total)} GB ` +
      `(params ${gb(m.params)}, grads ${gb(m.grads)}, optimizer ${gb(m.optimizer)}, activations ` +
      `${gb(m.activations)}); ` +
      'raise zero_stage, tensor or pipeline, or lower micro_batch_size',
  );
  return out;
}
