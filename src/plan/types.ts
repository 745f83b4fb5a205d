import type { JobConfig } from '../config/types.js';

/**
 * The rank plan: everything downstream of the config (controller, agents, workers) works from this,
 * never from the YAML. Its JSON form is the `--dry-run --json` document (src/plan/render.ts), and it is
 * what the controller serializes to each agent.
 */
export interface ParallelismPlan {
  data: number;
  tensor: number;
  pipeline: number;
  zero_stage: 0 | 1 | 2;
  microbatches: number;
  schedule: '1f1b' | 'gpipe' | 'interleaved-1f1b';
  virtual_stages: number;
}

export interface NodePlan {
  node_rank: number;
  host: string;
  nproc: number;
  /** ssh settings resolved for this node (per-host overrides applied); absent for local nodes */
  user?: string;
  port?: number;
  /** DeepSpeed include/exclude slot list → CUDA_VISIBLE_DEVICES for this node */
  cuda_visible_devices?: string;
  /** true when this node is the machine the controller runs on (no SSH needed) */
  local: boolean;
  /** slots after include/exclude, when known */
  slots?: number;
  /** nproc is a guess (nproc_per_node auto, slots unknown): the launch learns the node's GPU count */
  nproc_assumed?: boolean;
  /** a placeholder for a node the batch scheduler allocates; host is "<slurm node N>" until the job starts */
  from_allocation?: boolean;
}

export interface MemoryEstimate {
  params: number;
  grads: number;
  optimizer: number;
  activations: number;
  total: number;
}

export interface RankPlan {
  rank: number;
  node_rank: number;
  host: string;
  local_rank: number;
  data: number;
  pipeline: number;
  tensor: number;
  /** argv of the worker, entrypoint split like a shell (never run through one) + extra args */
  command: string[];
  /** the worker's complete environment (src/runtime/worker-env-table.ts); secrets masked when printed */
  env: Record<string, string>;
  memory?: MemoryEstimate;
}

export interface Plan {
  name: string;
  world_size: number;
  parallelism: ParallelismPlan;
  nodes: NodePlan[];
  ranks: RankPlan[];
  warnings: string[];
  /**
   * The normalised config the plan was built from (timeouts, restarts, logs, ssh, scheduler...): what
   * agents and the controller need beyond the ranks, so nothing downstream re-reads the YAML. Always set
   * by buildPlan; not part of the printed --json document.
   */
  config?: JobConfig;
}
