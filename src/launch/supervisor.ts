/**
 * Supervision of one job across its attempts, the way torchrun's elastic agent does it: start every
 * node's workers, and at the first worker that fails (or a node that is lost) stop them all - the signal,
 * `shutdown_grace`, then SIGKILL - and either restart the whole group after a backoff or report the root
 * cause. Signals: SIGINT/SIGTERM stop the job without restart (a second SIGINT kills at once);
 * SIGUSR1/USR2/HUP are forwarded and supervision goes on, except the scheduler's warning (`warning`): then
 * every worker gets `checkpoint_signal`, the job waits up to `shutdown_grace` for a save (a new commit, or
 * every worker leaving with 0) and stops without restart: exit 0 when the save was made, else 1.
 */
import type { AgentEvent, AttemptStart, ForwardedSignal, RankDiagnostics, WorkerExit } from './agent-contract.js';
import {
  buildHangReport,
  collectiveTimeoutOf,
  HANG_GATHER_MS,
  HANG_STACK_WAIT_MS,
  type HangCause,
  type HangReport,
} from './hang-report.js';
import { failed, type LaunchSummary, type PreemptionReport, type RankOutcome, type RootCause } from './summary.js';
import { within } from '../util/within.js';
import { RESIZE_EXIT_CODE } from '../runtime/commits.js';

/** The controller's handle on one node's agent, wherever it runs. */
export interface NodeHandle {
  readonly nodeRank: number;
  readonly host: string;
  start(attempt: number, launch?: AttemptStart): void;
  stop(attempt: number, signal: ForwardedSignal, graceMs: number): void;
  kill(attempt: number): void;
  forward(signal: ForwardedSignal): void;
  /** every rank's stack and recorder; answered by a `gathered` event with this id (agent-contract.ts) */
  gather?(attempt: number, id: number, native: boolean, waitMs: number): void;
  /** after the last attempt: let the agent go */
  close(): Promise<void>;
}

/** One attempt of an elastic job: the nodes taking part (by node id) and what each one's `start` carries. */
export interface PlannedAttempt {
  handles: NodeHandle[];
  starts: Map<number, AttemptStart>;
  ranksPerNode: Map<number, number>;
  world: number;
}

/** Elastic membership as the supervisor drives it (launch/membership.ts). */
export interface MembershipDriver {
  /** every node handle started so far */
  all(): NodeHandle[];
  /** the next attempt on the nodes alive, or why none can run */
  plan(attempt: number, restarts: number): Promise<PlannedAttempt | { cannotContinue: string }>;
  nodeLost(nodeId: number, why: string, detectedAfterMs: number): void;
  /** the attempt is being stopped: its checkpoint commits are refused from now on */
  close(attempt: number): Promise<void>;
  /** every worker of the attempt runs */
  resumed(attempt: number, world: number): void;
  /** attempt k was asked to resize: its ranks leaving with RESIZE_EXIT_CODE are the resize, not a failure */
  resizePending(attempt: number): boolean;
  /** how the membership stops an attempt for a resize itself (workers that do not use the runtime) */
  onResize(resize: (attempt: number, why: string) => void): void;
  summary(): NonNullable<LaunchSummary['membership']>;
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
  /**
   * Elastic jobs: a lost node is a membership change (the next attempt runs on the nodes alive, no restart
   * counted), and worker failures within `heartbeatTimeoutMs` before a loss belong to that loss.
   */
  membership?: MembershipDriver;
  heartbeatTimeoutMs?: number;
  /** the scheduler's warning before the job ends (scheduler.signal): save, then stop */
  warning?: WarningOptions;
  /** hang_timeout in ms: no progress from any rank for this long is a hang; null/absent: off */
  hangTimeoutMs?: number | null;
  /** a hang was diagnosed (before any rank is stopped): the lines to print */
  onHang?: (report: HangReport) => void;
  /** the flight recorders' diagnosis (diagnoseHang), when the ranks have recorders */
  diagnose?: (ranks: RankDiagnostics[]) => { lines: string[]; ranks: number[] } | null;
}

export interface WarningOptions {
  /** the signal the scheduler sends the controller (USR1 in `USR1@90`) */
  signal: NodeJS.Signals;
  /** what every worker is sent (checkpoint_signal) */
  checkpointSignal: ForwardedSignal;
  /**
   * the step of the next commit (commit-watch.ts), rejecting once `signal` aborted and a last look found none;
   * absent: only workers leaving with 0 count as a save
   */
  nextCommit?: (signal: AbortSignal) => Promise<number>;
  /** one line per state change: warned, saving, saved / not saved */
  onState?: (line: string) => void;
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
  /** the nodes taking part, and their rank counts by node rank (node id in elastic jobs) */
  nodes: NodeHandle[];
  ranksPerNode: (nodeRank: number) => number;
  world: number;
  /** elastic: when a node of this attempt was declared lost */
  lossAt: number | null;
  /** elastic: the attempt ends to resize (a node rejoined); its ranks' exits are no failure */
  resizing: boolean;
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
  /** the failure the attempt was already stopping for when the first SIGINT/SIGTERM came, if any */
  private rootCauseAtSignal: RootCause | null = null;
  /** a second SIGINT: every worker killed, nothing more waited for than KILL_WAIT_MS */
  private killed = false;
  private wakeBackoff: (() => void) | null = null;
  /** events and lost nodes from before the first attempt (a slow start-up): they belong to attempt 0 */
  private readonly beforeStart: (() => void)[] = [];
  readonly attempts: { ranks: RankOutcome[] }[] = [];
  /** set when the scheduler's warning arrived */
  private preemption: {
    report: PreemptionReport;
    stopSent: boolean;
    done: AbortController;
    /** the new commit's step; null when none came */
    commit: Promise<number | null>;
  } | null = null;
  private gatherSeq = 0;
  private readonly gatherings = new Map<number, { answers: Map<number, RankDiagnostics[]>; check: () => void }>();

  constructor(private readonly opts: SupervisorOptions) {
    opts.membership?.onResize((attempt, why) => this.resize(attempt, why));
  }

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
      this.opts.onRunning?.(s.running, s.world, s.attempt);
      if (s.started === s.world) this.opts.membership?.resumed(s.attempt, s.world);
    } else if (ev.type === 'exit') {
      const { type: _t, node_rank: _n, attempt: _a, ...exit } = ev;
      s.exits.set(exit.rank, exit);
      s.exitsByNode.set(ev.node_rank, (s.exitsByNode.get(ev.node_rank) ?? 0) + 1);
      s.running = Math.max(0, s.running - 1);
      if (exit.exit_code === RESIZE_EXIT_CODE && this.opts.membership?.resizePending(s.attempt))
        this.resize(s.attempt, `rank ${exit.rank} left at the checkpoint commit: the job grows`);
      if (
        failed(exit) &&
        !s.rootCause &&
        !s.resizing &&
        !this.interrupted &&
        !this.preemption?.stopSent &&
        s.lossAt === null
      ) {
        s.rootCause = { ...exit, attempt: s.attempt };
        const timeout = collectiveTimeoutOf(exit);
        if (timeout) this.hung(s, 'collective_timeout', timeout.ms, exit);
        else this.stopAll(s, 'SIGTERM', `rank ${exit.rank} failed`);
      }
      this.maybeFinished(s);
    } else {
      const host = this.nodes().find((n) => n.nodeRank === ev.node_rank)?.host ?? `node ${ev.node_rank}`;
      s.errors.push(`${host}: ${ev.message}`);
      if (!s.rootCause && !this.interrupted && !this.preemption?.stopSent) {
        s.rootCause = {
          ...noExit(),
          host,
          attempt: s.attempt,
          message: ev.message,
        };
      }
      // A node that cannot run its workers reports none of them: count them as gone. The note names the node
      // only: its message is the job's last line (or in its summary) already.
      this.stopAll(s, 'SIGTERM', `${host} could not run its workers`);
      this.nodeGone(s, ev.node_rank);
    }
  }

  /**
   * A node's agent vanished (connection lost, heartbeats missed): its ranks count as failed, or, in an
   * elastic job, the attempt ends as a membership change.
   */
  nodeLost(nodeRank: number, why: string, silentMs = 0): void {
    const s = this.state;
    if (!s) return void this.beforeStart.push(() => this.nodeLost(nodeRank, why, silentMs));
    const m = this.opts.membership;
    if (m) {
      const window = this.opts.heartbeatTimeoutMs ?? 0;
      m.nodeLost(nodeRank, why, silentMs);
      if (!s.nodes.some((n) => n.nodeRank === nodeRank) || this.interrupted) return this.nodeGone(s, nodeRank);
      s.lossAt ??= Date.now();
      // Survivors' collectives fail before the loss is declared: those failures belong to the loss.
      if (s.rootCause && s.rootCause.message === undefined && Date.parse(s.rootCause.time) >= s.lossAt - 2 * window)
        s.rootCause = null;
      if (!s.rootCause) this.stopAll(s, 'SIGTERM', `node ${nodeRank} lost: ${why}`);
      return this.nodeGone(s, nodeRank);
    }
    this.onEvent({ type: 'error', node_rank: nodeRank, attempt: s.attempt, message: `node lost: ${why}` });
  }

  /** Elastic: attempt k ends to run again on more nodes (no failure, no restart counted). */
  resize(attempt: number, why: string): void {
    const s = this.state;
    if (!s || s.attempt !== attempt || s.stopping || s.rootCause || s.lossAt !== null || this.interrupted) return;
    s.resizing = true;
    this.stopAll(s, 'SIGTERM', why);
  }

  /** SIGINT, SIGTERM (stop), SIGUSR1, SIGUSR2, SIGHUP (forward). */
  signal(sig: NodeJS.Signals): void {
    // once: a second one (SIGTERM as the warning, then Slurm's own at the limit) is handled as usual
    if (this.opts.warning?.signal === sig && !this.interrupted && !this.preemption)
      return this.warned(this.opts.warning);
    if (sig === 'SIGINT' || sig === 'SIGTERM') {
      this.interruptCount++;
      if (!this.interrupted) this.rootCauseAtSignal = this.state?.rootCause ?? null;
      this.interrupted ??= sig;
      this.wakeBackoff?.();
      const s = this.state;
      if (!s) return;
      if (this.interruptCount > 1 && sig === 'SIGINT') {
        this.killed = true;
        this.opts.onStopping?.('second SIGINT: killing all workers now');
        for (const n of this.nodes()) n.kill(s.attempt);
        setTimeout(() => s.finished(), KILL_WAIT_MS).unref();
      } else {
        this.stopAll(s, sig, `${sig} received`, true);
      }
      return;
    }
    if (sig === 'SIGUSR1' || sig === 'SIGUSR2' || sig === 'SIGHUP') for (const n of this.nodes()) n.forward(sig);
  }

  /** Every node handle of the job (elastic: all started so far, spares included). */
  private nodes(): NodeHandle[] {
    return this.opts.membership?.all() ?? this.opts.nodes;
  }

  /**
   * Every rank's stack and flight recorder from every node, waiting at most boundMs for the nodes' answers
   * (each node waits waitMs for its ranks). Stops nothing.
   */
  async gather(native: boolean, waitMs: number, boundMs: number): Promise<Gathered> {
    const s = this.state;
    const nodes = (s?.nodes ?? this.nodes()).filter((n) => n.gather && !s?.goneNodes.has(n.nodeRank));
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
          ...noExit(),
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
    /** failure restarts (TORCHELASTIC_RESTART_COUNT); membership changes do not count */
    let restarts = 0;
    let last: AttemptState | null = null;
    const m = this.opts.membership;
    for (;;) {
      let planned: PlannedAttempt | undefined;
      if (m) {
        const next = await m.plan(attempt, restarts);
        if ('cannotContinue' in next) {
          const message = `cannot continue: ${next.cannotContinue}`;
          if (!last) {
            // the nodes that did start are let go: nothing runs on them
            await Promise.all(this.nodes().map((n) => n.close()));
            return { outcome: { kind: 'cannot-start', message }, summary: this.emptySummary(message) };
          }
          last.rootCause = { ...noExit(), attempt: last.attempt, message };
          break;
        }
        planned = next;
      }
      last = await this.runAttempt(attempt, planned);
      this.attempts.push({ ranks: this.outcomes(last) });
      if (this.interrupted || this.preemption) break;
      if (m && (last.lossAt !== null || last.resizing) && !last.rootCause) {
        attempt++;
        continue;
      }
      if (!last.rootCause) break;
      if (attempt === 0 && last.started === 0 && last.errors.length) {
        return { outcome: { kind: 'cannot-start', message: last.errors.join('\n') }, summary: this.summary(last, 3) };
      }
      if (restarts >= this.opts.restartsMax) break;
      this.opts.onRestart?.(restarts + 1, last.rootCause, this.opts.backoffMs);
      await this.backoff();
      if (this.interrupted || this.preemption) break;
      attempt++;
      restarts++;
    }
    this.preemption?.done.abort();
    if (this.preemption && !this.preemption.stopSent) await this.savedOrNot(last);
    const closed = Promise.all(this.nodes().map((n) => n.close()));
    await (this.killed ? within(closed, KILL_WAIT_MS) : closed);
    // A job already ending for a failure (no restart left) when the signal came ends as failed: the signal only
    // hurried the stop, and the exit code and last line still name the rank that failed.
    const failedFirst =
      last.rootCause !== null && last.rootCause === this.rootCauseAtSignal && restarts >= this.opts.restartsMax;
    if (this.interrupted && !failedFirst) {
      const code = this.interrupted === 'SIGINT' ? 130 : 143;
      return { outcome: { kind: 'interrupted', signal: this.interrupted }, summary: this.summary(last, code) };
    }
    if (this.preemption && !this.preemption.report.saved && !last.rootCause) {
      last.rootCause = this.unsaved(last.attempt);
    }
    if (last.rootCause) return { outcome: { kind: 'failed' }, summary: this.summary(last, 1) };
    return { outcome: { kind: 'ok' }, summary: this.summary(last, 0) };
  }

  /** The scheduler's warning: every worker is asked to save; the job stops at the save or after the grace. */
  private warned(w: WarningOptions): void {
    const now = () => new Date().toISOString();
    const report: PreemptionReport = {
      signal: w.signal,
      warned_at: now(),
      checkpoint_signal: w.checkpointSignal,
      saved: false,
      saved_step: null,
      saved_by: null,
      stopped_at: null,
    };
    const done = new AbortController();
    const commit = w.nextCommit?.(done.signal).catch(() => null) ?? Promise.resolve(null);
    this.preemption = { report, stopSent: false, done, commit };
    const p = this.preemption;
    this.wakeBackoff?.();
    const grace = this.opts.shutdownGraceMs;
    w.onState?.(`warned: ${w.signal} from the scheduler: the job ends soon`);
    const s = this.state;
    if (!s) return;
    for (const n of this.nodes()) n.forward(w.checkpointSignal);
    w.onState?.(`saving: ${w.checkpointSignal} sent to every worker; waiting up to ${grace / 1000}s for a checkpoint`);
    const stop = (why: string) => {
      if (p.stopSent) return;
      p.stopSent = true;
      p.done.abort();
      report.stopped_at = now();
      this.stopAll(s, 'SIGTERM', why, true);
    };
    const timer = setTimeout(() => {
      if (p.stopSent) return;
      w.onState?.(`not saved: no checkpoint within shutdown_grace (${grace / 1000}s); stopping the job`);
      stop(`no checkpoint within ${grace / 1000}s of the warning`);
    }, grace);
    p.done.signal.addEventListener('abort', () => clearTimeout(timer));
    void commit.then((step) => {
      // after the abort the attempt is over: run() reads this answer itself (savedOrNot)
      if (step === null || p.stopSent || p.done.signal.aborted) return;
      this.committed(step);
      stop(`checkpoint at step ${step} committed`);
    });
  }

  private committed(step: number): void {
    Object.assign(this.preemption!.report, { saved: true, saved_step: step, saved_by: 'commit' });
    this.opts.warning?.onState?.(`saved: step ${step} committed; stopping the job`);
  }

  /**
   * The attempt ended before a commit was seen or the grace ran out: saved if a commit came meanwhile, else
   * if every worker left with 0.
   */
  private async savedOrNot(s: AttemptState): Promise<void> {
    const p = this.preemption!;
    const all = [...s.exits.values()];
    const clean = all.length >= this.opts.worldSize && all.every((e) => !failed(e));
    p.report.stopped_at ??= new Date().toISOString();
    // the watcher's last read is one store request: a store that does not answer must not keep the job
    const step = ((await within(p.commit, KILL_WAIT_MS)) as number | null | undefined) ?? null;
    if (step !== null && !s.rootCause) this.committed(step);
    else if (clean) {
      Object.assign(p.report, { saved: true, saved_by: 'workers-exited' });
      this.opts.warning?.onState?.('saved: every worker exited cleanly after the checkpoint signal');
    } else if (!s.rootCause) {
      this.opts.warning?.onState?.('not saved: the workers ended without a checkpoint');
    }
  }

  private unsaved(attempt: number): RootCause {
    return {
      ...noExit(),
      attempt,
      message:
        `the scheduler's warning (${this.preemption!.report.signal}) came and no checkpoint was saved ` +
        `within shutdown_grace`,
    };
  }

  private runAttempt(attempt: number, planned?: PlannedAttempt): Promise<AttemptState> {
    return new Promise((resolve) => {
      const s: AttemptState = {
        attempt,
        nodes: planned?.handles ?? this.opts.nodes,
        ranksPerNode: (n) => (planned ? planned.ranksPerNode.get(n) : this.opts.ranksPerNode[n]) ?? 0,
        world: planned?.world ?? this.opts.worldSize,
        lossAt: null,
        resizing: false,
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
      for (const n of s.nodes) n.start(attempt, planned?.starts.get(n.nodeRank));
      for (const replay of this.beforeStart.splice(0)) replay();
      // A signal that arrived during the backoff stops this attempt before it runs.
      if (this.interrupted) this.stopAll(s, this.interrupted, `${this.interrupted} received`, true);
    });
  }

  private stopAll(s: AttemptState, sig: ForwardedSignal, why: string, force = false): void {
    if (s.stopping && !force) return;
    s.stopping = true;
    void this.opts.membership?.close(s.attempt);
    this.opts.onStopping?.(why);
    for (const n of s.nodes) n.stop(s.attempt, sig, this.opts.shutdownGraceMs);
  }

  private nodeGone(s: AttemptState, nodeRank: number): void {
    s.goneNodes.add(nodeRank);
    this.maybeFinished(s);
  }

  /** Done when every node either reported all its ranks or is gone (lost, or could not start them). */
  private maybeFinished(s: AttemptState): void {
    const done = s.nodes.every(
      (n) => s.goneNodes.has(n.nodeRank) || (s.exitsByNode.get(n.nodeRank) ?? 0) >= s.ranksPerNode(n.nodeRank),
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

  /** No attempt ran (an elastic job that could not plan its first): exit 3. */
  private emptySummary(message: string): LaunchSummary {
    return {
      run_id: this.opts.runId,
      exit_code: 3,
      attempts: [],
      root_cause: { ...noExit(), attempt: 0, message },
      other_failures: [],
      log_dir: this.opts.logDir,
      ...(this.opts.membership && { membership: this.opts.membership.summary() }),
    };
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
      ...(this.preemption && { preemption: this.preemption.report }),
      ...(this.opts.membership && { membership: this.opts.membership.summary() }),
      ...(s.hang && exitCode !== 0 && { hung: s.hang }),
    };
  }
}

/** A root cause that is no worker's exit (its `message` says what happened). */
function noExit(): WorkerExit {
  return {
    rank: -1,
    local_rank: -1,
    host: '',
    pid: 0,
    exit_code: null,
    signal: null,
    time: new Date().toISOString(),
    stderr_tail: [],
    error_file: null,
  };
}
