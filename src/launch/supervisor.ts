/**
 * Supervision of one job across its attempts, the way torchrun's elastic agent does it: start every
 * node's workers, and at the first worker that fails (or a node that is lost) stop them all - the signal,
 * `shutdown_grace`, then SIGKILL - and either restart the whole group after a backoff or report the root
 * cause. Signals: SIGINT/SIGTERM stop the job without restart (a second SIGINT kills at once);
 * SIGUSR1/USR2/HUP are forwarded and supervision goes on.
 */
import type { AgentEvent, ForwardedSignal, RankDiagnostics, WorkerExit } from './agent-contract.js';
import {
  buildHangReport,
  collectiveTimeoutOf,
  HANG_GATHER_MS,
  HANG_STACK_WAIT_MS,
  type HangCause,
  type HangReport,
} from './hang-report.js';
import { failed, type LaunchSummary, type RankOutcome, type RootCause } from './summary.js';
import { within } from '../util/within.js';

/** The controller's handle on one node's agent, wherever it runs. */
export interface NodeHandle {
  readonly nodeRank: number;
  readonly host: string;
  start(attempt: number): void;
  stop(attempt: number, signal: ForwardedSignal, graceMs: number): void;
  kill(attempt: number): void;
  forward(signal: ForwardedSignal): void;
  /** every rank's stack and recorder; answered by a `gathered` event with this id (agent-contract.ts) */
  gather?(attempt: number, id: number, native: boolean, waitMs: number): void;
  /** after the last attempt: let the agent go */
  close(): Promise<void>;
}

export interface SupervisorOptions {
  runId: string;
  worldSize: number;
  restartsMax: number;
  backoffMs: number;
  shutdownGraceMs: number;
  logDir: string;
  nodes: NodeHandle[];
  /** how many ranks each node runs, by node rank (an attempt ends when each node reported them all or is gone) */
  ranksPerNode: number[];
  /** progress: how many workers run in this attempt */
  onRunning?: (running: number, world: number, attempt: number) => void;
  onRestart?: (attempt: number, cause: RootCause, backoffMs: number) => void;
  onStopping?: (why: string) => void;
  /** hang_timeout in ms: no progress from any rank for this long is a hang; null/absent: off */
  hangTimeoutMs?: number | null;
  /** a hang was diagnosed (before any rank is stopped): the lines to print */
  onHang?: (report: HangReport) => void;
  /** the flight recorders' diagnosis (diagnoseHang), when the ranks have recorders */
  diagnose?: (ranks: RankDiagnostics[]) => { lines: string[]; ranks: number[] } | null;
}

/** What `gather` brought back from every node that answered in time. */
export interface Gathered {
  ranks: RankDiagnostics[];
  /** hosts that did not answer in time */
  unanswered: string[];
}

/**
 * After a second SIGINT: how long the launcher still waits for exit reports and for agents to let go.
 * An agent that cannot answer (hung link, stopped process) must not keep the launcher.
 */
export const KILL_WAIT_MS = 2000;

export type Outcome =
  | { kind: 'ok' }
  | { kind: 'failed' }
  /** no worker of the first attempt could be started: exit 3 */
  | { kind: 'cannot-start'; message: string }
  | { kind: 'interrupted'; signal: 'SIGINT' | 'SIGTERM' };

interface AttemptState {
  attempt: number;
  exits: Map<number, WorkerExit>;
  running: number;
  started: number;
  rootCause: RootCause | null;
  stopping: boolean;
  exitsByNode: Map<number, number>;
  goneNodes: Set<number>;
  errors: string[];
  finished: () => void;
  /** the job hung in this attempt: what was gathered and diagnosed */
  hang: HangReport | null;
  /** when a rank last made progress (hang_timeout) */
  lastProgress: number;
  /** the last step each rank reported */
  steps: Map<number, number>;
  hangTimer?: NodeJS.Timeout;
  /** a hang being diagnosed: the attempt ends after it, whatever exits first */
  diagnosing: Promise<void> | null;
}

export class Supervisor {
  private state: AttemptState | null = null;
  private interrupted: 'SIGINT' | 'SIGTERM' | null = null;
  private interruptCount = 0;
  /** a second SIGINT: every worker killed, nothing more waited for than KILL_WAIT_MS */
  private killed = false;
  private wakeBackoff: (() => void) | null = null;
  /** events and lost nodes from before the first attempt (a slow start-up): they belong to attempt 0 */
  private readonly beforeStart: (() => void)[] = [];
  readonly attempts: { ranks: RankOutcome[] }[] = [];
  private gatherSeq = 0;
  private readonly gatherings = new Map<number, { answers: Map<number, RankDiagnostics[]>; check: () => void }>();

  constructor(private readonly opts: SupervisorOptions) {}

  /** Feed every agent event here (from any link). */
  onEvent(ev: AgentEvent): void {
    if (ev.type === 'gathered') {
      const g = this.gatherings.get(ev.id);
      g?.answers.set(ev.node_rank, ev.ranks);
      return g?.check();
    }
    const s = this.state;
    if (!s) return void this.beforeStart.push(() => this.onEvent(ev));
    if (ev.attempt !== s.attempt) return;
    if (ev.type === 'sample') {
      // a reported step (dist.report, DTRAIN_PROGRESS_FILE) is progress; the rest is the status view's
      for (const r of ev.ranks) {
        if (r.step === undefined || r.step === s.steps.get(r.rank)) continue;
        s.steps.set(r.rank, r.step);
        s.lastProgress = Date.now();
      }
    } else if (ev.type === 'progress') {
      s.lastProgress = Date.now();
    } else if (ev.type === 'started') {
      s.lastProgress = Date.now();
      s.running += ev.workers.length;
      s.started += ev.workers.length;
      this.opts.onRunning?.(s.running, this.opts.worldSize, s.attempt);
    } else if (ev.type === 'exit') {
      const { type: _t, node_rank: _n, attempt: _a, ...exit } = ev;
      s.exits.set(exit.rank, exit);
      s.exitsByNode.set(ev.node_rank, (s.exitsByNode.get(ev.node_rank) ?? 0) + 1);
      s.running = Math.max(0, s.running - 1);
      if (failed(exit) && !s.rootCause && !this.interrupted) {
        s.rootCause = { ...exit, attempt: s.attempt };
        const timeout = collectiveTimeoutOf(exit);
        if (timeout) this.hung(s, 'collective_timeout', timeout.ms, exit);
        else this.stopAll(s, 'SIGTERM', `rank ${exit.rank} failed`);
      }
      this.maybeFinished(s);
    } else {
      const host = this.opts.nodes.find((n) => n.nodeRank === ev.node_rank)?.host ?? `node ${ev.node_rank}`;
      s.errors.push(`${host}: ${ev.message}`);
      if (!s.rootCause && !this.interrupted) {
        s.rootCause = {
          rank: -1,
          local_rank: -1,
          host,
          pid: 0,
          exit_code: null,
          signal: null,
          time: new Date().toISOString(),
          stderr_tail: [],
          error_file: null,
          attempt: s.attempt,
          message: ev.message,
        };
      }
      // A node that cannot run its workers reports none of them: count them as gone.
      this.stopAll(s, 'SIGTERM', ev.message);
      this.nodeGone(s, ev.node_rank);
    }
  }

  /** A node's agent vanished (connection lost, heartbeats missed): its ranks count as failed. */
  nodeLost(nodeRank: number, why: string): void {
    const s = this.state;
    if (!s) return void this.beforeStart.push(() => this.nodeLost(nodeRank, why));
    this.onEvent({ type: 'error', node_rank: nodeRank, attempt: s.attempt, message: `node lost: ${why}` });
  }

  /** SIGINT, SIGTERM (stop), SIGUSR1, SIGUSR2, SIGHUP (forward). */
  signal(sig: NodeJS.Signals): void {
    if (sig === 'SIGINT' || sig === 'SIGTERM') {
      this.interruptCount++;
      this.interrupted ??= sig;
      this.wakeBackoff?.();
      const s = this.state;
      if (!s) return;
      if (this.interruptCount > 1 && sig === 'SIGINT') {
        this.killed = true;
        this.opts.onStopping?.('second SIGINT: killing all workers now');
        for (const n of this.opts.nodes) n.kill(s.attempt);
        setTimeout(() => s.finished(), KILL_WAIT_MS).unref();
      } else {
        this.stopAll(s, sig, `${sig} received`, true);
      }
      return;
    }
    if (sig === 'SIGUSR1' || sig === 'SIGUSR2' || sig === 'SIGHUP') for (const n of this.opts.nodes) n.forward(sig);
  }

  /**
   * Every rank's stack and flight recorder from every node, waiting at most boundMs for the nodes' answers
   * (each node waits waitMs for its ranks). Stops nothing.
   */
  async gather(native: boolean, waitMs: number, boundMs: number): Promise<Gathered> {
    const s = this.state;
    const nodes = this.opts.nodes.filter((n) => n.gather && !s?.goneNodes.has(n.nodeRank));
    if (!s || !nodes.length) return { ranks: [], unanswered: [] };
    const id = this.gatherSeq++;
    const answers = new Map<number, RankDiagnostics[]>();
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (nodes.every((n) => answers.has(n.nodeRank))) resolve();
      };
      this.gatherings.set(id, { answers, check });
      timer = setTimeout(resolve, boundMs);
      for (const n of nodes) n.gather!(s.attempt, id, native, waitMs);
    });
    clearTimeout(timer);
    this.gatherings.delete(id);
    return {
      ranks: [...answers.values()].flat().sort((a, b) => a.rank - b.rank),
      unanswered: nodes.filter((n) => !answers.has(n.nodeRank)).map((n) => n.host),
    };
  }

  /**
   * The job hung: gather every rank's stack and recorder before any rank is signalled, diagnose, then stop
   * the attempt like a failure (a restart follows per `restarts`).
   */
  private hung(s: AttemptState, cause: HangCause, afterMs: number, timedOut?: WorkerExit): void {
    clearInterval(s.hangTimer);
    s.stopping = true; // nothing else stops the ranks before the gathering is done
    s.diagnosing = this.gather(false, HANG_STACK_WAIT_MS, HANG_GATHER_MS)
      .catch((): Gathered => ({ ranks: [], unanswered: [] }))
      .then(({ ranks, unanswered }) => {
        let fromRecorders: { lines: string[]; ranks: number[] } | undefined;
        try {
          fromRecorders = this.opts.diagnose?.(ranks) ?? undefined;
        } catch {
          // a recorder that cannot be read is no diagnosis: the stacks still speak
        }
        s.hang = buildHangReport({ cause, afterMs, ranks, unanswered, timedOut, fromRecorders });
        this.opts.onHang?.(s.hang);
        s.stopping = false;
        this.stopAll(s, 'SIGTERM', 'the job hung');
        s.diagnosing = null;
      });
  }

  private watchProgress(s: AttemptState): void {
    const limit = this.opts.hangTimeoutMs;
    if (!limit) return;
    s.hangTimer = setInterval(
      () => {
        if (s.stopping || s.rootCause || this.interrupted || s.started === 0) return;
        const idle = Date.now() - s.lastProgress;
        if (idle < limit) return;
        s.rootCause = {
          rank: -1,
          local_rank: -1,
          host: '',
          pid: 0,
          exit_code: null,
          signal: null,
          time: new Date().toISOString(),
          stderr_tail: [],
          error_file: null,
          attempt: s.attempt,
          message: `no rank made progress for ${(idle / 1000).toFixed(1)}s (hang_timeout)`,
        };
        this.hung(s, 'no_progress', idle);
      },
      Math.min(1000, Math.max(100, limit / 8)),
    );
    s.hangTimer.unref();
  }

  async run(): Promise<{ outcome: Outcome; summary: LaunchSummary }> {
    let attempt = 0;
    let last: AttemptState;
    for (;;) {
      last = await this.runAttempt(attempt);
      this.attempts.push({ ranks: this.outcomes(last) });
      if (this.interrupted || !last.rootCause) break;
      if (attempt === 0 && last.started === 0 && last.errors.length) {
        return { outcome: { kind: 'cannot-start', message: last.errors.join('\n') }, summary: this.summary(last, 3) };
      }
      if (attempt >= this.opts.restartsMax) break;
      this.opts.onRestart?.(attempt + 1, last.rootCause, this.opts.backoffMs);
      await this.backoff();
      if (this.interrupted) break;
      attempt++;
    }
    const closed = Promise.all(this.opts.nodes.map((n) => n.close()));
    await (this.killed ? within(closed, KILL_WAIT_MS) : closed);
    if (this.interrupted) {
      const code = this.interrupted === 'SIGINT' ? 130 : 143;
      return { outcome: { kind: 'interrupted', signal: this.interrupted }, summary: this.summary(last, code) };
    }
    if (last.rootCause) return { outcome: { kind: 'failed' }, summary: this.summary(last, 1) };
    return { outcome: { kind: 'ok' }, summary: this.summary(last, 0) };
  }

  private runAttempt(attempt: number): Promise<AttemptState> {
    return new Promise((resolve) => {
      const s: AttemptState = {
        attempt,
        exits: new Map(),
        running: 0,
        started: 0,
        rootCause: null,
        stopping: false,
        errors: [],
        exitsByNode: new Map(),
        goneNodes: new Set(),
        hang: null,
        diagnosing: null,
        lastProgress: Date.now(),
        steps: new Map(),
        finished: () => {
          clearInterval(s.hangTimer);
          resolve(s);
        },
      };
      this.state = s;
      this.watchProgress(s);
      for (const n of this.opts.nodes) n.start(attempt);
      for (const replay of this.beforeStart.splice(0)) replay();
      // A signal that arrived during the backoff stops this attempt before it runs.
      if (this.interrupted) this.stopAll(s, this.interrupted, `${this.interrupted} received`, true);
    });
  }

  private stopAll(s: AttemptState, sig: ForwardedSignal, why: string, force = false): void {
    if (s.stopping && !force) return;
    s.stopping = true;
    this.opts.onStopping?.(why);
    for (const n of this.opts.nodes) n.stop(s.attempt, sig, this.opts.shutdownGraceMs);
  }

  private nodeGone(s: AttemptState, nodeRank: number): void {
    s.goneNodes.add(nodeRank);
    this.maybeFinished(s);
  }

  /** Done when every node either reported all its ranks or is gone (lost, or could not start them). */
  private maybeFinished(s: AttemptState): void {
    const done = this.opts.nodes.every(
      (n) =>
        s.goneNodes.has(n.nodeRank) ||
        (s.exitsByNode.get(n.nodeRank) ?? 0) >= (this.opts.ranksPerNode[n.nodeRank] ?? 0),
    );
    if (!done) return;
    const diagnosing = s.diagnosing;
    if (diagnosing) void diagnosing.then(() => s.finished());
    else s.finished();
  }

  private backoff(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.opts.backoffMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeBackoff = done;
    }).then(() => {
      this.wakeBackoff = null;
    });
  }

  private outcomes(s: AttemptState): RankOutcome[] {
    return [...s.exits.values()]
      .sort((a, b) => a.rank - b.rank)
      .map((e) => ({ rank: e.rank, host: e.host, exit_code: e.exit_code, signal: e.signal }));
  }

  private summary(s: AttemptState, exitCode: number): LaunchSummary {
    const rc = s.rootCause;
    return {
      run_id: this.opts.runId,
      exit_code: exitCode,
      attempts: this.attempts,
      root_cause: rc,
      other_failures: this.outcomes(s).filter((o) => failed(o) && o.rank !== rc?.rank),
      log_dir: this.opts.logDir,
      ...(s.hang && exitCode !== 0 && { hung: s.hang }),
    };
  }
}
