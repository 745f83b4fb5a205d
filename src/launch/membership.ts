/**
 * Elastic membership, the controller's side: which nodes are alive, the plan of each attempt on them
 * (plan/elastic.ts), spares started when a lost node's place needs them, and the checkpoint commits
 * opened and closed around each attempt (runtime/commits.ts). The supervisor asks it for each attempt
 * and tells it which node was lost; it knows nodes by their stable node id (the agents' control keys).
 *
 * Growing back: while an attempt runs, every `elastic.rejoin` the lost nodes that would make the world
 * larger (up to max_nodes) are tried again. One whose agent starts is taken in at the next checkpoint:
 * the controller asks for a resize (requestResize), every rank of a runtime job leaves with
 * RESIZE_EXIT_CODE right after its commit, and the next attempt runs on more nodes from that commit. A job
 * whose workers do not use the runtime is stopped when checkpoint.dir's `latest` next changes instead. A
 * node lost `max_losses_per_node` times is excluded for the rest of the job.
 *
 * Join mode: nodes whose agents come by themselves (listed spares no agent joined as yet) start `absent`:
 * not alive, never counted as lost. When one's agent comes (`arrived`), it is a spare from then on, and
 * the job grows onto it (or onto a lost node whose agent came back) through the same take-in as a rejoin.
 */
import type { JobConfig } from '../config/types.js';
import { ElasticPlanError, planAttempt, type AttemptPlan } from '../plan/elastic.js';
import {
  cancelResize,
  closeAttempt,
  latestCommit,
  openAttempt,
  requestResize,
  type CommitStore,
} from '../runtime/commits.js';
import { watchLatest, type LatestWatcher } from './latest-watcher.js';
import type { AgentSpec, AttemptStart } from './agent-contract.js';
import type { MembershipChange } from './summary.js';
import type { NodeArrivals } from './node-source.js';
import type { MembershipDriver, NodeHandle, PlannedAttempt } from './supervisor.js';

export interface MembershipOptions {
  config: JobConfig;
  /** the handles started with the job, by node id */
  handles: NodeHandle[];
  /** listed nodes whose agent could not start at launch: lost from the start, tried again every rejoin */
  notStarted?: { id: number; why: string }[];
  /** starts the agent of a node (a spare, or a lost node rejoining) while the job runs; rejects when it cannot */
  startNode: (nodeId: number) => Promise<NodeHandle>;
  /** MASTER_ADDR of an attempt whose node 0 is this host */
  masterAddrOf: (host: string) => string;
  commits: CommitStore;
  /** one line about each membership change (stderr) */
  note: (line: string) => void;
  /** node ids that have no agent yet and get one only when it comes by itself (join mode's spares) */
  absent?: number[];
  /** how long a non-runtime job's `latest` change waits for a runtime commit before it stops the attempt */
  latestSettleMs?: number;
}

/** A runtime job commits right after it replaces `latest`: a change with no commit after this is not one. */
const LATEST_SETTLE_MS = 2000;

export class ElasticMembership implements MembershipDriver, NodeArrivals {
  private readonly handles = new Map<number, NodeHandle>();
  private readonly lost = new Set<number>();
  private readonly absent: Set<number>;
  private readonly losses = new Map<number, number>();
  private readonly hosts: string[];
  readonly changes: (MembershipChange & { detected_at: number })[] = [];
  private prevWorld = 0;
  /** what changed since the last attempt was planned (several nodes may go at once) */
  private pending: { reasons: string[]; detectedAt: number; detectedAfterS: number } | null = null;
  /** the attempt whose workers all run (rejoins are tried only then), and its world size */
  private running: { attempt: number; world: number } | null = null;
  /** the attempt asked to resize at its next commit */
  private resizeFor: number | null = null;
  private rejoining = false;
  /** the last reason each node's rejoin failed (said once per reason) */
  private readonly notBack = new Map<number, string>();
  private readonly rejoinTimer: NodeJS.Timeout | undefined;
  private latest: Promise<LatestWatcher | undefined> | null = null;
  private resizer: (attempt: number, why: string) => void = () => {};

  constructor(private readonly opts: MembershipOptions) {
    for (const h of opts.handles) this.handles.set(h.nodeRank, h);
    this.absent = new Set(opts.absent);
    const c = opts.config;
    this.hosts = [...c.nodes, ...(c.elastic?.spares ?? [])].map((n) => n.host);
    for (const { id, why } of opts.notStarted ?? []) this.nodeLost(id, why, 0);
    const every = c.elastic?.rejoin ?? 0;
    if (every > 0) {
      this.rejoinTimer = setInterval(() => void this.tryRejoin(), every);
      this.rejoinTimer.unref();
    }
  }

  /** How the supervisor stops an attempt to resize it (a non-runtime job's `latest` changed). */
  onResize(resize: (attempt: number, why: string) => void): void {
    this.resizer = resize;
  }

  /** Whether attempt k was asked to resize: its ranks leaving with RESIZE_EXIT_CODE are no failure. */
  resizePending(attempt: number): boolean {
    return this.resizeFor === attempt;
  }

  /** After the job: no more rejoins. */
  dispose(): void {
    clearInterval(this.rejoinTimer);
    this.stopWatchingLatest();
  }

  /** Every handle started so far (the supervisor signals and closes them). */
  all(): NodeHandle[] {
    return [...this.handles.values()];
  }

  /**
   * Node `id`'s agent came by itself (join mode): a spare from now on, and a rejoin round runs at once so a
   * job it would make larger takes it in at its next commit. Why the job will not take it, when it will not.
   */
  arrived(id: number): string | undefined {
    if (this.excluded(id))
      return `${this.name(id)} was lost ${this.losses.get(id)} times and is excluded (elastic.max_losses_per_node)`;
    if (this.handles.has(id)) return `${this.name(id)} already runs on an agent`;
    this.absent.delete(id);
    const run = this.running;
    if (run && !this.lost.has(id) && !this.grows(run.world))
      this.opts.note(`dtrain: ${this.name(id)} joined: it waits as a spare (the job cannot grow onto it now)`);
    void this.tryRejoin();
    return undefined;
  }

  private excluded(id: number): boolean {
    return (this.losses.get(id) ?? 0) >= (this.opts.config.elastic?.max_losses_per_node ?? Infinity);
  }

  /** A node was lost (or could not start): it takes part in no attempt until it comes back. */
  nodeLost(nodeId: number, why: string, detectedAfterMs: number): void {
    if (this.lost.has(nodeId)) return;
    this.lost.add(nodeId);
    const losses = (this.losses.get(nodeId) ?? 0) + 1;
    this.losses.set(nodeId, losses);
    const handle = this.handles.get(nodeId);
    this.handles.delete(nodeId);
    // Let its agent go in the background: a cut link may never answer.
    void handle?.close().catch(() => {});
    this.change(`${this.name(nodeId)} lost: ${why}`, detectedAfterMs);
    if (losses === this.opts.config.elastic?.max_losses_per_node)
      this.opts.note(
        `dtrain: ${this.name(nodeId)} excluded for the rest of the job: lost ${losses} times ` +
          '(elastic.max_losses_per_node)',
      );
    // A node taken in for a resize that has not happened yet: the resize is off unless another still grows.
    if (this.resizeFor !== null && this.running && !this.grows(this.running.world)) {
      this.resizeFor = null;
      this.stopWatchingLatest();
      void cancelResize(this.opts.commits).catch(() => {});
    }
  }

  /** The attempt is ending: its commits are refused from now on, and no rejoin is tried until the next. */
  async close(attempt: number): Promise<void> {
    if (this.running?.attempt === attempt) this.running = null;
    this.stopWatchingLatest();
    await closeAttempt(this.opts.commits, attempt).catch(() => {});
  }

  private name(nodeId: number): string {
    return `node ${nodeId} (host ${this.hosts[nodeId]})`;
  }

  private change(reason: string, detectedAfterMs: number): void {
    if (this.pending) this.pending.reasons.push(reason);
    else this.pending = { reasons: [reason], detectedAt: Date.now(), detectedAfterS: detectedAfterMs / 1000 };
  }

  /** Node ids that may take part: not lost, not excluded, not absent. */
  private alive(): number[] {
    const c = this.opts.config;
    const all = c.nodes.length + (c.elastic?.spares.length ?? 0);
    return [...Array(all).keys()].filter((id) => !this.lost.has(id) && !this.absent.has(id) && !this.excluded(id));
  }

  /** Whether the nodes alive now make a larger world than `world`. */
  private grows(world: number, extra?: number): boolean {
    try {
      const ids = this.alive();
      if (extra !== undefined) ids.push(extra);
      return planAttempt(this.opts.config, ids).plan.world_size > world;
    } catch {
      return false;
    }
  }

  /**
   * One round of rejoins: each lost node (not excluded) or spare not started that would make the world
   * larger is started; the first that starts asks the running attempt to resize at its next commit.
   */
  private async tryRejoin(): Promise<void> {
    const run = this.running;
    if (!run || this.rejoining || this.resizeFor === run.attempt) return;
    const waiting = this.alive().filter((id) => !this.handles.has(id));
    const candidates = [...new Set([...this.lost, ...waiting])]
      .filter((id) => !this.excluded(id) && !this.absent.has(id))
      .sort((a, b) => a - b);
    this.rejoining = true;
    try {
      for (const id of candidates) {
        if (!this.grows(run.world, id)) continue;
        let handle: NodeHandle;
        try {
          handle = await this.opts.startNode(id);
        } catch (err) {
          // still unreachable: tried again next round; each new reason is said once
          const why = (err as Error).message.split('\n')[0];
          if (this.notBack.get(id) !== why) this.opts.note(`dtrain: ${this.name(id)} not back yet: ${why}`);
          this.notBack.set(id, why);
          continue;
        }
        this.notBack.delete(id);
        if (this.running !== run) {
          // the attempt ended meanwhile: the node is back all the same, for the next plan
          this.takeIn(id, handle);
          return;
        }
        const back = this.losses.has(id) ? 'is back' : 'joined';
        this.takeIn(id, handle);
        this.resizeFor = run.attempt;
        await requestResize(this.opts.commits, run.attempt).catch(() => {});
        this.opts.note(`dtrain: ${this.name(id)} ${back}: the job grows at its next checkpoint commit`);
        this.watchLatestForResize(run.attempt);
        return;
      }
    } finally {
      this.rejoining = false;
    }
  }

  private takeIn(id: number, handle: NodeHandle): void {
    this.change(`${this.name(id)} ${this.losses.has(id) ? 'rejoined' : 'joined'}`, 0);
    this.lost.delete(id);
    this.handles.set(id, handle);
  }

  /**
   * Workers that do not use the runtime never leave with RESIZE_EXIT_CODE: when checkpoint.dir's `latest`
   * changes and no runtime commit of this attempt follows, the attempt is stopped for the resize.
   */
  private watchLatestForResize(attempt: number): void {
    const dir = this.opts.config.checkpoint?.dir;
    if (dir === undefined) return;
    const settle = this.opts.latestSettleMs ?? LATEST_SETTLE_MS;
    this.latest = watchLatest(dir, (seen) => {
      setTimeout(() => {
        void latestCommit(this.opts.commits).then(
          (record) => {
            if (this.resizeFor !== attempt || record.attempt === attempt) return; // the runtime's own exit 75
            this.resizer(attempt, `checkpoint ${seen.name} saved: the job grows`);
          },
          () => {},
        );
      }, settle).unref();
    }).catch(() => undefined);
  }

  private stopWatchingLatest(): void {
    void this.latest?.then((w) => w?.close());
    this.latest = null;
  }

  /**
   * Plans attempt k on the nodes alive, starting the spares it needs, or says why none can run (the job
   * ends, exit 1). A spare that cannot start counts as lost and the attempt is planned again.
   */
  async plan(attempt: number, restarts: number): Promise<PlannedAttempt | { cannotContinue: string }> {
    const c = this.opts.config;
    this.resizeFor = null;
    for (;;) {
      let a: AttemptPlan;
      try {
        a = planAttempt(c, this.alive());
      } catch (err) {
        if (!(err instanceof ElasticPlanError)) throw err;
        // before the first attempt, say why the nodes missing are missing
        const why = attempt === 0 && this.pending ? ` (${this.pending.reasons.join('; ')})` : '';
        return { cannotContinue: err.message + why };
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
      const change = this.pending;
      this.pending = null;
      if (change) {
        const p = a.plan;
        const reason = change.reasons.join('; ');
        const line =
          `${reason}; continuing on ${a.nodeIds.length} node${a.nodeIds.length === 1 ? '' : 's'}, ` +
          `world ${p.world_size} (data ${p.parallelism.data}), attempt ${attempt}`;
        this.opts.note(`dtrain: ${line}`);
        this.changes.push({
          attempt,
          nodes: a.nodeIds.length,
          world: p.world_size,
          reason,
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
  resumed(attempt: number, world: number): void {
    const c = this.changes.find((x) => x.attempt === attempt);
    if (c && c.resumed_after_s === null) c.resumed_after_s = round((Date.now() - c.detected_at) / 1000);
    this.running = { attempt, world };
  }
}

const round = (s: number) => Math.round(s * 10) / 10;

/** The spec of a node started while the job runs (a spare, a rejoin): its ranks come with each attempt's start. */
export function specForNode(
  template: AgentSpec,
  nodeId: number,
  node: AgentSpec['node'],
  incarnation: number,
): AgentSpec {
  return { ...template, node: { ...node, node_rank: nodeId }, ranks: [], ...(incarnation && { incarnation }) };
}
