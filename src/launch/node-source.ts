/**
 * Where a job's nodes come from, as one interface: this machine (local-node.ts), a list or hostfile over
 * SSH (ssh/node-source.ts), a Slurm allocation (slurm/node-source.ts), or agents that join (join/node-source.ts).
 * Each source resolves the job's nodes, then starts agents on whichever of them it is handed. run-job.ts
 * picks the source; controller.ts (launchJob) calls `start`.
 *
 * Nothing here assumes the node set is fixed once the job runs: `start` may be called again with more
 * specs (a spare replacing a lost node, the job growing back), and every NodeHandle it returns is
 * released on its own (`NodeHandle.close`), so one node can go while the others keep running.
 */
import type { JobConfig, LoadedConfig } from '../config/types.js';
import type { Plan } from '../plan/types.js';
import type { StoreServer } from '../store/index.js';
import type { AgentEvent, AgentSpec } from './agent-contract.js';
import type { OutputSink } from './line-targets.js';
import type { StoreControl } from './store-node.js';
import type { NodeHandle } from './supervisor.js';

export type NodeSourceKind = 'local' | 'ssh' | 'slurm' | 'join';

/** The job's nodes as the source found them, with what the user should hear about it. */
export interface ResolvedNodes {
  config: JobConfig;
  warnings: string[];
}

/** What the controller lends a source to start agents: the store, the console and where events go. */
export interface StartContext {
  /** the job's config as the plan was built from it */
  config: JobConfig;
  store: StoreServer;
  jobKey: Buffer;
  /** the controller's store side of store-driven agents; null when every node so far runs in-process */
  control: StoreControl | null;
  console: OutputSink;
  /** events of agents driven by direct calls (in-process); store-driven agents report through `control` */
  onEvent: (ev: AgentEvent) => void;
  /**
   * a node is gone (connection dropped, agent died); `why` in one line; `silentMs`: how long it had been
   * silent when the loss was noticed (heartbeats, keepalives), absent when noticed at once (a process exit)
   */
  onLost: (nodeRank: number, why: string, silentMs?: number) => void;
}

export interface NodeSource {
  readonly kind: NodeSourceKind;
  /**
   * The job's nodes: the config's own (local, SSH), the allocation's hosts (Slurm), or the agents that
   * joined (join). `dryRun`: only the plan will be shown; nothing is waited for or reserved.
   */
  resolve(loaded: LoadedConfig, opts: { dryRun: boolean }): Promise<ResolvedNodes>;
  /** Once the plan exists and before the launch's heavier modules load (SSH: dial the first nodes). */
  prepare?(plan: Plan, config: JobConfig): Promise<void>;
  /**
   * Starts agents for these nodes and hands back one handle each. Callable again while the job runs,
   * for other nodes; fails as a whole (StartError) without leaving any of this call's agents running.
   */
  start(specs: AgentSpec[], ctx: StartContext): Promise<NodeHandle[]>;
  /**
   * Join mode: node ids with no agent yet (listed spares nobody joined as), and where the agents that come
   * while the job runs are reported (an elastic job's membership connects itself once it exists).
   */
  readonly arrivals?: { absent: number[]; connect(membership: NodeArrivals): void };
  /** A store already listening, with its job key (join: the agents registered with it before the plan). */
  readonly store?: { server: StoreServer; jobKey: Buffer };
  /** After the job (or a failed start: `failure`). Handles are closed by then; this releases the rest. */
  close(failure?: Error): Promise<void>;
}

/** Elastic membership as a source whose agents come by themselves sees it (membership.ts implements it). */
export interface NodeArrivals {
  /** node `id`'s agent came: undefined when the job takes it (now, or as a spare), else why it will not */
  arrived(id: number): string | undefined;
}

/** The store side of store-driven agents: the controller opens it before it starts any node elsewhere. */
export function controlOf(ctx: StartContext): StoreControl {
  if (!ctx.control) throw new Error('no StoreControl: the controller opens one before it starts remote nodes');
  return ctx.control;
}
