/**
 * Elastic re-planning, pure: from the config and the nodes alive, the plan of the next attempt.
 *
 * Nodes are named by a stable **node id** that never changes while the job runs: the listed nodes that are
 * not spares are 0..n-1 (their node rank at full strength), the spares follow as n, n+1, ... in list order.
 * An attempt's node ranks are positions in that attempt only; `AttemptPlan.nodeIds` maps them back.
 *
 * The rules: a free spare takes a lost node's place (world unchanged); otherwise the job shrinks with
 * tensor × pipeline fixed and data the largest size ≤ the alive slots / (tensor × pipeline), no more than
 * parallelism.data (the size at full strength), dividing elastic.data_divides when given. Ranks are
 * numbered in node order as at full strength (plan/build.ts); node 0 (MASTER_ADDR) is the first node kept.
 */
import type { JobConfig, NodeConfig } from '../config/types.js';
import { DtrainError, ExitCode } from '../util/errors.js';
import { buildPlan, type BuildPlanOptions } from './build.js';
import type { Plan } from './types.js';

/** No attempt can be planned on the nodes alive (fewer than min_nodes, no data size fits): exit 1. */
export class ElasticPlanError extends DtrainError {
  constructor(message: string) {
    super(message, ExitCode.jobFailed);
  }
}

export interface AttemptPlan {
  plan: Plan;
  /** node id of each of the attempt's node ranks */
  nodeIds: number[];
  /** alive nodes this attempt leaves idle (free spares, or slots the data size cannot use) */
  idle: number[];
}

/** Every node the job may run on, by node id: the listed non-spares, then the spares. */
export function nodesById(config: JobConfig): NodeConfig[] {
  return [...config.nodes, ...(config.elastic?.spares ?? [])];
}

/** The data size the nodes' slots allow, or undefined when none fits. */
export function fittingDataSize(config: JobConfig, slots: number): number | undefined {
  const par = config.parallelism;
  const divides = config.elastic?.data_divides;
  for (let d = Math.min(par.data, Math.floor(slots / (par.tensor * par.pipeline))); d >= 1; d--) {
    if (divides === undefined || divides % d === 0) return d;
  }
  return undefined;
}

/**
 * The attempt's plan on the alive nodes (node ids). Throws ElasticPlanError saying why when none can run.
 * Without `elastic` every listed node must be alive and the plan is buildPlan's.
 */
export function planAttempt(config: JobConfig, alive: Iterable<number>, opts: BuildPlanOptions = {}): AttemptPlan {
  const all = nodesById(config);
  const up = new Set([...alive].filter((id) => id >= 0 && id < all.length));
  const elastic = config.elastic;
  const minNodes = elastic?.min_nodes ?? config.nodes.length;
  const maxNodes = elastic?.max_nodes ?? config.nodes.length;
  const listedAlive = up.size;
  if (listedAlive < minNodes)
    throw new ElasticPlanError(
      `${listedAlive} node${listedAlive === 1 ? '' : 's'} alive, fewer than elastic.min_nodes (${minNodes})`,
    );

  // The listed nodes in order; each lost one's place goes to the next free spare.
  const spares = all.map((_, id) => id).filter((id) => id >= config.nodes.length && up.has(id));
  const members: number[] = [];
  for (let id = 0; id < config.nodes.length; id++) {
    if (up.has(id)) members.push(id);
    else if (spares.length) members.push(spares.shift()!);
  }
  // Beyond the listed nodes' count (max_nodes above it): more spares, in order.
  while (spares.length && members.length < maxNodes) members.push(spares.shift()!);
  members.splice(maxNodes);

  const par = config.parallelism;
  const tp = par.tensor * par.pipeline;
  const slots = members.reduce((n, id) => n + all[id].nproc, 0);
  const data = fittingDataSize(config, slots);
  if (data === undefined) {
    const divides =
      elastic?.data_divides !== undefined ? ` dividing elastic.data_divides (${elastic.data_divides})` : '';
    throw new ElasticPlanError(
      `no data size fits ${slots} slot${slots === 1 ? '' : 's'} on ${members.length} node` +
        `${members.length === 1 ? '' : 's'} with tensor × pipeline = ${tp}${divides}`,
    );
  }

  // Fill the members' slots in order; a node left without a rank waits idle.
  let left = data * tp;
  const used: { id: number; node: NodeConfig }[] = [];
  for (const id of members) {
    if (left === 0) break;
    const nproc = Math.min(all[id].nproc, left);
    left -= nproc;
    const node: NodeConfig = { ...all[id], nproc };
    delete node.spare;
    if (nproc < all[id].nproc && node.cuda_visible_devices !== undefined)
      node.cuda_visible_devices = node.cuda_visible_devices.split(',').slice(0, nproc).join(',');
    used.push({ id, node });
  }
  const nodeIds = used.map((u) => u.id);
  const idle = [...up].filter((id) => !nodeIds.includes(id)).sort((a, b) => a - b);
  const attemptConfig: JobConfig = {
    ...config,
    nodes: used.map((u) => u.node),
    parallelism: { ...par, data },
  };
  const plan = buildPlan(attemptConfig, opts);
  // The plan keeps the job's config (spares, full-strength data): what the next re-planning starts from.
  plan.config = config;
  return { plan, nodeIds, idle };
}

export interface ReachableWorld {
  /** nodes alive */
  alive: number;
  /** nodes the attempt runs on */
  nodes: number;
  world: number;
  data: number;
}

/**
 * The worlds an elastic config can reach, from every node alive (spares included) down to min_nodes, with
 * the nodes lost from the end of the list. Where nothing fits, the count says why instead.
 */
export function reachableWorlds(config: JobConfig): (ReachableWorld | { alive: number; error: string })[] {
  const all = nodesById(config);
  const out: (ReachableWorld | { alive: number; error: string })[] = [];
  const min = config.elastic?.min_nodes ?? config.nodes.length;
  for (let alive = all.length; alive >= min; alive--) {
    try {
      const a = planAttempt(config, all.map((_, id) => id).slice(0, alive), { launcherEnv: {} });
      out.push({ alive, nodes: a.nodeIds.length, world: a.plan.world_size, data: a.plan.parallelism.data });
    } catch (err) {
      if (!(err instanceof ElasticPlanError)) throw err;
      out.push({ alive, error: err.message });
    }
  }
  return out;
}

/** reachableWorlds as lines for `dtrain validate` / `--dry-run`. */
export function renderReachableWorlds(config: JobConfig): string[] {
  const e = config.elastic;
  if (!e) return [];
  const spares = e.spares.length;
  const lines = [
    `elastic: ${e.min_nodes}-${e.max_nodes} nodes` +
      `${spares ? `, ${spares} spare${spares === 1 ? '' : 's'}` : ''}; worlds it can reach:`,
  ];
  for (const w of reachableWorlds(config)) {
    const head = `  ${w.alive} node${w.alive === 1 ? '' : 's'} alive: `;
    lines.push(
      'error' in w
        ? `${head}cannot run (${w.error})`
        : `${head}world ${w.world} (data ${w.data}) on ${w.nodes} node${w.nodes === 1 ? '' : 's'}`,
    );
  }
  lines.push(`  fewer than ${e.min_nodes}: the job ends (exit 1)`);
  return lines;
}
