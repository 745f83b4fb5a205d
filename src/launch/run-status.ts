/**
 * The controller's live view of its run: fed with the agents' events and the supervisor's transitions,
 * it answers `GET /api/status` (the document `dtrain status --json` prints), status.json, /metrics and the
 * dashboard. Stragglers are judged here, where every rank's figures meet (stragglers.ts).
 */
import { hostname } from 'node:os';
import type { AgentEvent, CollectiveTotals, RankSample } from './agent-contract.js';
import type { Plan } from '../plan/types.js';
import { findStragglers, stragglerGroup } from './stragglers.js';

export type RunState = 'starting' | 'running' | 'restarting' | 'stopping' | 'succeeded' | 'failed' | 'hung';

/** How often a live controller rewrites `<log_dir>/status.json`. */
export const STATUS_FILE_INTERVAL_MS = 2000;
/** A status.json of a run not ended that is older than this has lost its writer, most likely. */
export const STATUS_FILE_STALE_MS = 15 * STATUS_FILE_INTERVAL_MS;
/** The states a run ends in: its controller writes no more after one. */
export const FINAL_RUN_STATES: readonly RunState[] = ['succeeded', 'failed'];
export type RankState = 'starting' | 'running' | 'stopping' | 'exited' | 'failed';

/** What the agent's samples say of a rank (agent-contract.ts RankSample), as the status shows it. */
type SampledFigures = Pick<
  RankSample,
  | 'cpu_percent'
  | 'rss_bytes'
  | 'last_output_age_s'
  | 'step'
  | 'loss'
  | 'step_s'
  | 'samples_per_s'
  | 'tokens_per_s'
  | 'compute_s'
  | 'collective'
>;

export interface RankStatus extends SampledFigures {
  rank: number;
  node_rank: number;
  host: string;
  local_rank: number;
  /** the worker's own pid (0 before it started) */
  pid: number;
  state: RankState;
  /** whole-group restarts so far (the attempt this rank runs in) */
  restarts: number;
  /** its data-parallel group: the ranks straggler detection compares it with */
  group: string;
  straggler?: boolean;
}

export interface NodeStatus {
  node_rank: number;
  host: string;
  state: 'starting' | 'running' | 'lost' | 'done';
}

export interface RunStatusDoc {
  run_id: string;
  state: RunState;
  attempt: number;
  started_at: string;
  updated_at: string;
  log_dir: string;
  world_size: number;
  monitor_url?: string;
  membership_changes: number;
  /** the process that writes this document (status.json's reader checks it is still there) */
  controller?: { host: string; pid: number };
  /**
   * Set by the reader of a status.json, never by a controller: why the document is not the run's present
   * state (its controller is gone, or it has not been rewritten for a while).
   */
  stale?: string;
  /** ranks whose compute time exceeds their group's median by more than STRAGGLER_RATIO */
  stragglers: number[];
  nodes: NodeStatus[];
  ranks: RankStatus[];
}

/**
 * Why `v` is not a status document `dtrain status` and `dtrain top` can show (undefined: it is one): the
 * fields they read, with their types. A file or a reply is checked once, where run-query.ts reads it;
 * the other fields are not required, so an older run's status.json still shows.
 */
export function statusDocProblem(v: unknown): string | undefined {
  return shapeProblem(v, DOC_SHAPE, '');
}

type Check = (v: unknown, at: string) => string | undefined;
/** Keyed by the interface's own fields, so a renamed field fails to compile here. */
type Shape<T> = { [K in keyof T]?: Check };

const is =
  (type: 'string' | 'number' | 'boolean'): Check =>
  (v, at) =>
    typeof v === type ? undefined : v === undefined ? `no ${at}` : `${at} is not a ${type}`;
const optional =
  (check: Check): Check =>
  (v, at) =>
    v === undefined ? undefined : check(v, at);
const listOf =
  (check: Check): Check =>
  (v, at) => {
    if (!Array.isArray(v)) return v === undefined ? `no ${at}` : `${at} is not a list`;
    for (let i = 0; i < v.length; i++) {
      const problem = check(v[i], `${at}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  };
const object =
  <T>(shape: Shape<T>): Check =>
  (v, at) =>
    shapeProblem(v, shape, at);

function shapeProblem<T>(v: unknown, shape: Shape<T>, at: string): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${at || 'the document'} is not an object`;
  for (const [key, check] of Object.entries(shape) as [string, Check][]) {
    const problem = check((v as Record<string, unknown>)[key], at ? `${at}.${key}` : key);
    if (problem) return problem;
  }
  return undefined;
}

const num = is('number');
const str = is('string');
const RANK_SHAPE: Shape<RankStatus> = {
  rank: num,
  node_rank: num,
  host: str,
  pid: num,
  state: str,
  step: optional(num),
  step_s: optional(num),
  compute_s: optional(num),
  samples_per_s: optional(num),
  cpu_percent: num,
  rss_bytes: num,
  restarts: num,
  last_output_age_s: num,
  straggler: optional(is('boolean')),
};
const DOC_SHAPE: Shape<RunStatusDoc> = {
  run_id: str,
  state: str,
  attempt: num,
  world_size: num,
  started_at: str,
  monitor_url: optional(str),
  updated_at: optional(str),
  controller: optional(object<{ host: string; pid: number }>({ host: str, pid: num })),
  stragglers: listOf(num),
  nodes: listOf(object<NodeStatus>({ node_rank: num, host: str, state: str })),
  ranks: listOf(object(RANK_SHAPE)),
};

/** One point of the step-time chart: the ranks' median and slowest step time at a moment. */
export interface StepTimePoint {
  t: string;
  median_s: number;
  max_s: number;
}

const HISTORY_POINTS = 600;

interface RankSlot {
  status: RankStatus;
  /** Date.now() when the last sample arrived (its output age grows from there) */
  sampledAt: number;
  /** per op totals, for /metrics (not in the status document: it would multiply its size) */
  collectives?: Record<string, CollectiveTotals>;
}

export class RunStatus {
  private state: RunState = 'starting';
  private attempt = 0;
  private membershipChanges = 0;
  private readonly ranks: RankSlot[];
  private readonly nodes: NodeStatus[];
  private readonly startedAtMs = Date.now();
  monitorUrl: string | undefined;
  readonly history: StepTimePoint[] = [];
  /** the stragglers at the last sample that found every rank running: what the final summary names */
  lastStragglers: number[] = [];
  private lastHistoryAt = 0;

  constructor(
    readonly runId: string,
    readonly logDir: string,
    private readonly plan: Pick<Plan, 'world_size' | 'nodes' | 'ranks'>,
  ) {
    this.nodes = plan.nodes.map((n) => ({ node_rank: n.node_rank, host: n.host, state: 'starting' }));
    this.ranks = plan.ranks.map((r) => ({
      sampledAt: Date.now(),
      status: {
        rank: r.rank,
        node_rank: r.node_rank,
        host: r.host,
        local_rank: r.local_rank,
        pid: 0,
        state: 'starting',
        cpu_percent: 0,
        rss_bytes: 0,
        restarts: 0,
        last_output_age_s: 0,
        group: stragglerGroup(r),
      },
    }));
  }

  get startedAt(): string {
    return new Date(this.startedAtMs).toISOString();
  }

  get currentState(): RunState {
    return this.state;
  }

  onEvent(ev: AgentEvent): void {
    if (ev.attempt < this.attempt) return;
    if (ev.type === 'started') {
      const node = this.nodes.find((n) => n.node_rank === ev.node_rank);
      if (node) node.state = 'running';
      for (const w of ev.workers) {
        const slot = this.ranks[w.rank];
        if (!slot) continue;
        slot.status.pid = w.pid;
        slot.status.state = 'running';
        slot.sampledAt = Date.now();
      }
    } else if (ev.type === 'exit') {
      const slot = this.ranks[ev.rank];
      if (slot) slot.status.state = ev.exit_code === 0 ? 'exited' : 'failed';
    } else if (ev.type === 'sample') {
      const now = Date.now();
      for (const s of ev.ranks) this.applySample(s, now);
      this.recordHistory(now);
      if (this.ranks.every((r) => r.status.state === 'running'))
        this.lastStragglers = [...findStragglers(this.ranks.map((r) => r.status))].sort((a, b) => a - b);
    }
  }

  nodeLost(nodeRank: number): void {
    const node = this.nodes.find((n) => n.node_rank === nodeRank);
    if (node && node.state !== 'lost') {
      node.state = 'lost';
      this.membershipChanges++;
    }
  }

  running(attempt: number): void {
    this.attempt = Math.max(this.attempt, attempt);
    if (this.state === 'starting' || this.state === 'restarting') this.state = 'running';
  }

  restarting(attempt: number): void {
    this.attempt = attempt;
    this.state = 'restarting';
    for (const slot of this.ranks) {
      slot.status.restarts = attempt;
      slot.status.state = 'starting';
      delete slot.status.step_s;
      delete slot.status.compute_s;
      delete slot.status.samples_per_s;
      delete slot.status.tokens_per_s;
      delete slot.status.collective;
    }
    this.lastStragglers = [];
  }

  /** A hang was diagnosed: the run says so until it restarts or ends (its stopping included). */
  hung(): void {
    if (this.state !== 'succeeded' && this.state !== 'failed') this.state = 'hung';
  }

  stopping(): void {
    if (this.state !== 'succeeded' && this.state !== 'failed' && this.state !== 'hung') this.state = 'stopping';
    for (const slot of this.ranks) if (slot.status.state === 'running') slot.status.state = 'stopping';
  }

  finished(ok: boolean): void {
    this.state = ok ? 'succeeded' : 'failed';
    for (const n of this.nodes) if (n.state !== 'lost') n.state = 'done';
  }

  /** The document; cheap (256 ranks: well under a millisecond). */
  doc(): RunStatusDoc {
    const now = Date.now();
    const ranks = this.ranks.map((slot) => {
      const r = { ...slot.status };
      if (r.state === 'running' || r.state === 'stopping') {
        const age = (s: number) => Math.round((s + (now - slot.sampledAt) / 1000) * 10) / 10;
        r.last_output_age_s = age(r.last_output_age_s);
        if (r.collective) r.collective = { ...r.collective, since_s: age(r.collective.since_s) };
      }
      return r;
    });
    const stragglers = findStragglers(ranks);
    for (const r of ranks) if (stragglers.has(r.rank)) r.straggler = true;
    return {
      run_id: this.runId,
      state: this.state,
      attempt: this.attempt,
      started_at: this.startedAt,
      updated_at: new Date(now).toISOString(),
      log_dir: this.logDir,
      world_size: this.plan.world_size,
      ...(this.monitorUrl ? { monitor_url: this.monitorUrl } : {}),
      membership_changes: this.membershipChanges,
      controller: { host: hostname(), pid: process.pid },
      stragglers: [...stragglers].sort((a, b) => a - b),
      nodes: this.nodes.map((n) => ({ ...n })),
      ranks,
    };
  }

  /** Per rank, the collective totals its worker last reported. */
  collectiveTotals(): { rank: number; ops: Record<string, CollectiveTotals> }[] {
    return this.ranks.filter((s) => s.collectives).map((s) => ({ rank: s.status.rank, ops: s.collectives! }));
  }

  private applySample(s: RankSample, now: number): void {
    const slot = this.ranks[s.rank];
    if (!slot) return;
    const { rank: _rank, collectives, ...figures } = s;
    if (collectives) slot.collectives = collectives;
    const st = slot.status;
    for (const k of ['step', 'loss', 'step_s', 'samples_per_s', 'tokens_per_s', 'compute_s', 'collective'] as const)
      if (figures[k] === undefined) delete st[k];
    Object.assign(st, figures);
    slot.sampledAt = now;
  }

  private recordHistory(now: number): void {
    if (now - this.lastHistoryAt < 900) return; // one point a second, whatever the number of nodes
    const times = this.ranks.map((s) => s.status.step_s).filter((x): x is number => x !== undefined);
    if (!times.length) return;
    this.lastHistoryAt = now;
    times.sort((a, b) => a - b);
    this.history.push({
      t: new Date(now).toISOString(),
      median_s: times[Math.floor((times.length - 1) / 2)],
      max_s: times[times.length - 1],
    });
    if (this.history.length > HISTORY_POINTS) this.history.shift();
  }
}
