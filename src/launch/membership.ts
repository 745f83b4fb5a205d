/**
 * Elastic membership, the controller's side: which nodes are alive, the plan of each attempt on them
 * (plan/elastic.ts), spares started when a lost node's place needs them, and the checkpoint commits
 * opened and closed around each attempt (runtime/commits.ts). The supervisor asks it for each attempt
 * and tells it which node was lost; it knows nodes by their stable node id (the agents' control keys).
 */
import type { JobConfig } from '../config/types.js';
import { ElasticPlanError, planAttempt, type AttemptPlan } from '../plan/elastic.js';
import { closeAttempt, openAttempt, type CommitStore } from '../runtime/commits.js';
import type { AgentSpec, AttemptStart } from './agent-contract.js';
import type { MembershipChange } from './summary.js';
import type { MembershipDriver, NodeHandle, PlannedAttempt } from './supervisor.js';

export interface MembershipOptions {
  config: JobConfig;
  /** the handles started with the job, by node id */
  handles: NodeHandle[];
  /** starts the agent of a node (a spare) while the job runs; rejects when it cannot */
  startNode: (nodeId: number) => Promise<NodeHandle>;
  /** MASTER_ADDR of an attempt whose node 0 is this host */
  masterAddrOf: (host: string) => string;
  commits: CommitStore;
  /** one line about each membership change (stderr) */
  note: (line: string) => void;
}

export class ElasticMembership implements MembershipDriver {
  private readonly handles = new Map<number, NodeHandle>();
  private readonly lost = new Set<number>();
  private readonly losses = new Map<number, number>();
  private readonly hosts: string[];
  readonly changes: (MembershipChange & { detected_at: number })[] = [];
  private prevWorld = 0;
  private pendingChange: { reason: string; detectedAt: number; detectedAfterS: number } | null = null;

  constructor(private readonly opts: MembershipOptions) {
    for (const h of opts.handles) this.handles.set(h.nodeRank, h);
    const c = opts.config;
    this.hosts = [...c.nodes, ...(c.elastic?.spares ?? [])].map((n) => n.host);
  }

  /** Every handle started so far (the supervisor signals and closes them). */
  all(): NodeHandle[] {
    return [...this.handles.values()];
  }

  /** A node was lost (or could not start): it takes part in no attempt until it comes back. */
  nodeLost(nodeId: number, why: string, detectedAfterMs: number): void {
    if (this.lost.has(nodeId)) return;
    this.lost.add(nodeId);
    this.losses.set(nodeId, (this.losses.get(nodeId) ?? 0) + 1);
    const handle = this.handles.get(nodeId);
    this.handles.delete(nodeId);
    // Let its agent go in the background: a cut link may never answer.
    void handle?.close().catch(() => {});
    const reason = `node ${nodeId} (host ${this.hosts[nodeId]}) lost: ${why}`;
    // Nodes lost in the same attempt (two hosts cut at once) make one change that names each of them.
    const earlier = this.pendingChange;
    this.pendingChange = earlier
      ? { ...earlier, reason: `${earlier.reason}; ${reason}` }
      : { reason, detectedAt: Date.now(), detectedAfterS: detectedAfterMs / 1000 };
  }

  /** The attempt is ending: its commits are refused from now on. */
  async close(attempt: number): Promise<void> {
    await closeAttempt(this.opts.commits, attempt).catch(() => {});
  }

  /**
   * Plans attempt k on the nodes alive, starting the spares it needs, or says why none can run (the job
   * ends, exit 1). A spare that cannot start counts as lost and the attempt is planned again.
   */
  async plan(attempt: number, restarts: number): Promise<PlannedAttempt | { cannotContinue: string }> {
    const c = this.opts.config;
    const all = c.nodes.length + (c.elastic?.spares.length ?? 0);
    for (;;) {
      const alive = [...Array(all).keys()].filter(
        (id) => !this.lost.has(id) && (this.losses.get(id) ?? 0) < (c.elastic?.max_losses_per_node ?? Infinity),
      );
      let a: AttemptPlan;
      try {
        a = planAttempt(c, alive);
      } catch (err) {
        if (err instanceof ElasticPlanError) return { cannotContinue: err.message };
        throw err;
      }
      const missing = a.nodeIds.filter((id) => !this.handles.has(id));
      const started = await Promise.allSettled(missing.map((id) => this.opts.startNode(id)));
      let failedStart = false;
      started.forEach((r, i) => {
        if (r.status === 'fulfilled') this.handles.set(missing[i], r.value);
        else {
          failedStart = true;
          this.nodeLost(missing[i], `could not start: ${(r.reason as Error).message}`, 0);
        }
      });
      if (failedStart) continue;
      const master = {
        addr: this.opts.masterAddrOf(a.plan.nodes[0].host),
        port: c.master.port,
      };
      const starts = new Map<number, AttemptStart>();
      const ranksPerNode = new Map<number, number>();
      a.nodeIds.forEach((id, nodeRank) => {
        const ranks = a.plan.ranks.filter((r) => r.node_rank === nodeRank);
        ranksPerNode.set(id, ranks.length);
        starts.set(id, {
          restarts,
          prev_world_size: this.prevWorld,
          assignment: { node_rank: nodeRank, ranks, world_size: a.plan.world_size, nnodes: a.nodeIds.length, master },
        });
      });
      await openAttempt(this.opts.commits, attempt);
      const change = this.pendingChange;
      this.pendingChange = null;
      if (change) {
        const p = a.plan;
        const line =
          `${change.reason}; continuing on ${a.nodeIds.length} node${a.nodeIds.length === 1 ? '' : 's'}, ` +
          `world ${p.world_size} (data ${p.parallelism.data}), attempt ${attempt}`;
        this.opts.note(`dtrain: ${line}`);
        this.changes.push({
          attempt,
          nodes: a.nodeIds.length,
          world: p.world_size,
          reason: change.reason,
          detected_after_s: round(change.detectedAfterS),
          resumed_after_s: null,
          detected_at: change.detectedAt,
        });
      }
      this.prevWorld = a.plan.world_size;
      return {
        handles: a.nodeIds.map((id) => this.handles.get(id)!),
        starts,
        ranksPerNode,
        world: a.plan.world_size,
      };
    }
  }

  /** The changes as the --json summary lists them. */
  summary(): MembershipChange[] {
    return this.changes.map(({ detected_at: _d, ...c }) => c);
  }

  /** Every worker of the attempt runs: the membership change that led to it has resumed. */
  resumed(attempt: number): void {
    const c = this.changes.find((x) => x.attempt === attempt);
    if (c && c.resumed_after_s === null) c.resumed_after_s = round((Date.now() - c.detected_at) / 1000);
  }
}

const round = (s: number) => Math.round(s * 10) / 10;

/** The spec of a node started while the job runs (a spare): its ranks come with each attempt's start. */
export function specForNode(template: AgentSpec, nodeId: number, node: AgentSpec['node']): AgentSpec {
  return { ...template, node: { ...node, node_rank: nodeId }, ranks: [] };
}
