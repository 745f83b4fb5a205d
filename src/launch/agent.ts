/**
 * The node agent: runs one node's workers for each attempt the controller starts, relays their output,
 * reports every exit, and stops or kills them on request. The same class runs inside the controller
 * for its own node and inside `dtrain agent` on remote nodes; only the AgentLink differs
 * (agent-contract.ts describes the messages).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeDirsSync } from '../util/make-dirs.js';
import { readRegularFileSync } from '../util/regular-file.js';
import { StartError } from '../util/errors.js';
import {
  SAMPLE_INTERVAL_MS,
  type AgentEvent,
  type AgentSpec,
  type AttemptStart,
  type ForwardedSignal,
  type RankDiagnostics,
  type WorkerExit,
} from './agent-contract.js';
import { fillAtLaunch, nodeOptionsFor } from '../runtime/worker-env-table.js';
import { createFlightRecorderFile, readFlightRecorder, type FlightRecord } from '../runtime/flight-recorder.js';
import { ensureExecWrapper } from './exec-wrapper.js';
import { FileTarget, logFileName, sinkTarget, type OutputSink } from './line-targets.js';
import { checkFixedPort, freePort } from './ports.js';
import { processAddon, sweepDescendants } from './process-tree.js';
import { ProgressWatch } from './progress-watch.js';
import { captureNative, captureStack, prependPath, stackFileFor, writeSitecustomize } from './stacks.js';
import { RankSampler } from './rank-sampler.js';
import { Worker, type LineTarget } from './worker.js';

/** How an agent reaches its controller: direct calls in-process, the store for `dtrain agent`. */
export interface AgentLink {
  emit(event: AgentEvent): void;
  /** node 0, master.port auto: tell the other agents which port rank 0 will bind */
  publishMasterPort(attempt: number, port: number): Promise<void>;
  /** the other nodes: wait for node 0's port */
  awaitMasterPort(attempt: number): Promise<number>;
  /** DTRAIN_STORE for this attempt's workers: `unix:<path>` of the agent's proxy, switched to the attempt */
  storeAddress(attempt: number): Promise<string>;
  /** backend auto/nccl: the job's backend as the controller decided it from every node's probe (backend.ts) */
  jobBackend?(): Promise<'cpu' | 'nccl'>;
}

/** Variables the agent itself may hold that must never reach a worker. */
const privateEnv = /^DTRAIN_(JOB_KEY|SECRET)/;

interface Attempt {
  attempt: number;
  workers: Worker[];
  /** ranks whose worker has exited */
  exited: Set<number>;
  watch?: ProgressWatch;
  files: FileTarget[];
  killTimer?: NodeJS.Timeout;
  sampleTimer?: NodeJS.Timeout;
  done: Promise<void>;
}

export class NodeAgent {
  private current: Attempt | null = null;
  /** the latest attempt's rank → flight recorder file (DTRAIN_FLIGHT_RECORDER) */
  private flightRecorders: ReadonlyMap<number, string> = new Map();
  /** stop/kill requests that arrived while their attempt was still starting */
  private readonly pendingStop = new Map<number, { signal: ForwardedSignal; graceMs: number } | 'kill'>();
  /** rejects the wait for node 0's port when the attempt is stopped first (node 0 may never publish it) */
  private readonly abortStart = new Map<number, () => void>();
  private readonly wrapper: string;
  private readonly baseEnv: Record<string, string>;
  /** 0700, this agent's own: the ranks' stack files and the sitecustomize (stacks.ts) */
  private readonly privateDir: string;
  private readonly sitecustomizeDir: string;
  /** one gathering at a time: a rank's stack file answers one request */
  private gathering: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly spec: AgentSpec,
    private readonly link: AgentLink,
    private readonly console: OutputSink | null,
  ) {
    this.wrapper = ensureExecWrapper();
    // Orphans of a killed shepherd come back here, where sweepDescendants() finds them by pid. Deferred:
    // loading the addon is not on the path to the first worker, and no orphan can exist before one runs.
    setImmediate(() => processAddon()?.setChildSubreaper());
    this.baseEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !privateEnv.test(k)) this.baseEnv[k] = v;
    // named like the proxy folders, so a SIGKILLed agent's is removed by the next (removeStaleProxyDirs)
    this.privateDir = mkdtempSync(join(tmpdir(), `dtrain-${process.pid}-diag${spec.node.node_rank}-`));
    this.sitecustomizeDir = writeSitecustomize(this.privateDir);
  }

  /** A rank's log file; one that cannot be written is said once, on the console, and the rank runs on. */
  private logFile(rank: number, path: string): FileTarget {
    return new FileTarget(path, (message) => {
      const line = `dtrain: cannot write ${path} (${message}): this output goes on without its log file\n`;
      if (this.console) this.console.lines(rank, 'stderr', Buffer.from(line));
      else process.stderr.write(`[${this.spec.node.host} rank ${rank}] ${line}`);
    });
  }

  /** Removes the agent's private folder; after its last attempt. */
  dispose(): void {
    rmSync(this.privateDir, { recursive: true, force: true });
  }

  get nodeRank(): number {
    return this.spec.node.node_rank;
  }

  /** The latest attempt's flight recorder files by rank (readFlightRecorder); they outlive the workers. */
  flightRecorderFiles(): ReadonlyMap<number, string> {
    return this.flightRecorders;
  }

  /**
   * Starts attempt k; resolves once every worker runs (the `started` event is emitted then). An elastic
   * attempt's `launch.assignment` says which ranks this node runs in it (agent-contract.ts).
   */
  async start(attempt: number, launch: AttemptStart = {}): Promise<void> {
    if (this.current) await this.current.done;
    const spec = this.spec;
    const part = launch.assignment ?? {
      node_rank: spec.node.node_rank,
      ranks: spec.ranks,
      world_size: spec.world_size,
      nnodes: spec.nnodes,
      master: spec.master,
    };
    try {
      // first: logs.dir defaults under workdir, and making it would make a missing workdir too
      const badWorkdir = workdirProblem(spec.workdir);
      if (badWorkdir) throw new StartError(badWorkdir);
      const aborted = new Promise<never>((_, reject) =>
        this.abortStart.set(attempt, () => reject(new Error('stopped before its workers started'))),
      );
      aborted.catch(() => {});
      const [masterPort, backend] = await Promise.race([
        Promise.all([this.masterPort(attempt, part.node_rank, part.master.port), this.link.jobBackend?.()]),
        aborted,
      ]);
      this.abortStart.delete(attempt);
      checkSharedFolder(spec);
      const logDir = join(spec.logs.dir, spec.run_id, `attempt_${attempt}`);
      try {
        makeDirsSync(logDir);
      } catch (err) {
        throw new StartError(`logs.dir: cannot make ${logDir}: ${(err as Error).message}`);
      }
      const storeAddress = await this.link.storeAddress(attempt);
      const files: FileTarget[] = [];
      let watch: ProgressWatch | undefined;
      const exited = new Set<number>();
      // The recorders live beside the store proxy's socket: the agent's private 0700 folder.
      const privateDir = storeAddress.startsWith('unix:') ? dirname(storeAddress.slice('unix:'.length)) : undefined;
      const flightRecorders = new Map<number, string>();
      this.flightRecorders = flightRecorders;
      const samplers: RankSampler[] = [];
      const workers = part.ranks.map((r) => {
        const out = this.logFile(r.rank, join(logDir, logFileName(r.rank, 'stdout')));
        const err = this.logFile(r.rank, join(logDir, logFileName(r.rank, 'stderr')));
        files.push(out, err);
        const shown = this.console && spec.logs.tee && (spec.logs.ranks === 'all' || spec.logs.ranks.includes(r.rank));
        const seen: LineTarget = { write: () => (watch?.output(r.rank), true), onDrain: () => {} };
        const stdout: LineTarget[] = shown ? [out, sinkTarget(this.console, r.rank, 'stdout')] : [out];
        const stderr: LineTarget[] = shown ? [err, sinkTarget(this.console, r.rank, 'stderr')] : [err];
        stdout.push(seen);
        stderr.push(seen);
        const errorFile = join(logDir, `rank_${r.rank}.error.json`);
        const progressFile = join(logDir, `rank_${r.rank}.progress.jsonl`);
        const facts = {
          masterAddr: part.master.addr,
          masterPort,
          runId: spec.run_id,
          restartCount: launch.restarts ?? attempt,
          attempt,
          stackFile: stackFileFor(this.privateDir, r.rank),
          pythonPath: prependPath(this.sitecustomizeDir, r.env.PYTHONPATH ?? this.baseEnv.PYTHONPATH),
          progressFile,
          prevWorldSize: launch.prev_world_size ?? (attempt === 0 ? 0 : spec.world_size),
        };
        const nodeOptions = nodeOptionsFor(r.command, r.env.NODE_OPTIONS ?? this.baseEnv.NODE_OPTIONS);
        const flightRecorder = privateDir && createFlightRecorderFile(privateDir, attempt, r.rank);
        if (flightRecorder) flightRecorders.set(r.rank, flightRecorder);
        samplers.push(new RankSampler(r.rank, progressFile, flightRecorder || undefined));
        const env = {
          ...this.baseEnv,
          ...fillAtLaunch(r.env, { ...facts, errorFile, store: storeAddress, backend, nodeOptions, flightRecorder }),
        };
        return new Worker({
          wrapper: this.wrapper,
          rank: r.rank,
          localRank: r.local_rank,
          host: r.host,
          command: r.command,
          env,
          cwd: spec.workdir,
          stdout,
          stderr,
          errorFile,
        });
      });
      const done = Promise.all(
        workers.map(async (w) => {
          const exit = await w.done;
          exited.add(exit.rank);
          this.link.emit({ type: 'exit', node_rank: this.nodeRank, attempt, ...exit });
          return exit;
        }),
      ).then(async (exits: WorkerExit[]) => {
        clearTimeout(this.current?.killTimer);
        watch?.stop();
        clearInterval(this.current?.sampleTimer);
        await Promise.all(files.map((f) => f.end()));
        // A shepherd killed itself (not by us) leaves orphans; they came here (subreaper): end them by pid.
        // Scanning /proc costs ~20 ms, so only then.
        if (workers.some((w) => !w.cleanExit)) sweepDescendants();
        void exits;
        if (this.current?.attempt === attempt) this.current = null;
      });
      this.current = { attempt, workers, files, done, exited };
      await Promise.all(workers.map((w) => w.ready));
      if (spec.hang_timeout_ms) {
        const live = () => new Map(workers.filter((w) => !exited.has(w.rank)).map((w) => [w.rank, w.pid]));
        const report = (ranks: number[]) =>
          this.link.emit({ type: 'progress', node_rank: this.nodeRank, attempt, ranks });
        const recorders = this.flightRecorders;
        const reported = (rank: number) => samplers.find((x) => x.rank === rank)?.hasReported() ?? false;
        watch = new ProgressWatch(
          live,
          report,
          spec.hang_timeout_ms,
          (rank) => recorderProgress(recorders.get(rank)),
          reported,
        );
        this.current.watch = watch;
      }
      const pending = this.pendingStop.get(attempt);
      if (pending === 'kill') this.kill(attempt);
      else if (pending) this.stop(attempt, pending.signal, pending.graceMs);
      this.link.emit({
        type: 'started',
        node_rank: this.nodeRank,
        attempt,
        master_port: masterPort,
        workers: workers.map((w, i) => ({
          rank: part.ranks[i].rank,
          local_rank: part.ranks[i].local_rank,
          pid: w.pid,
        })),
      });
      const current = this.current;
      if (current?.attempt === attempt) {
        const emitSample = () =>
          this.link.emit({
            type: 'sample',
            node_rank: this.nodeRank,
            attempt,
            ranks: workers.map((w, i) => samplers[i].sample(w.pid, w.lastOutputAt)),
          });
        current.sampleTimer = setInterval(emitSample, SAMPLE_INTERVAL_MS);
        current.sampleTimer.unref();
      }
    } catch (err) {
      this.link.emit({ type: 'error', node_rank: this.nodeRank, attempt, message: (err as Error).message });
    }
  }

  /** Sends `signal` to every worker of the attempt; SIGKILLs what is left after `graceMs`. */
  stop(attempt: number, signal: ForwardedSignal, graceMs: number): void {
    const a = this.current;
    if (!a || a.attempt !== attempt) {
      this.pendingStop.set(attempt, { signal, graceMs });
      this.abortStart.get(attempt)?.();
      return;
    }
    for (const w of a.workers) w.signal(signal);
    // A stop while one is under way (SIGTERM as a failed job stops) signals again but keeps the first
    // deadline: shutdown_grace counts from when the stopping began.
    if (a.killTimer) return;
    a.killTimer = setTimeout(() => this.kill(attempt), graceMs);
    a.killTimer.unref();
  }

  kill(attempt?: number): void {
    const a = this.current;
    if (!a || (attempt !== undefined && a.attempt !== attempt)) {
      if (attempt !== undefined) {
        this.pendingStop.set(attempt, 'kill');
        this.abortStart.get(attempt)?.();
      } else for (const abort of this.abortStart.values()) abort();
      return;
    }
    for (const w of a.workers) w.killAll();
  }

  /**
   * Every rank's stack (signalled, answers awaited up to waitMs; gdb when `native`) and flight recorder,
   * emitted as one `gathered` event. Stops nothing.
   */
  gather(attempt: number, id: number, native: boolean, waitMs: number): Promise<void> {
    const run = this.gathering.then(async () => {
      const a = this.current?.attempt === attempt ? this.current : null;
      const ranks: RankDiagnostics[] = await Promise.all(
        (a?.workers ?? []).map(async (w) => {
          const host = this.spec.node.host;
          const gone = a!.exited.has(w.rank);
          const stack = gone
            ? { rank: w.rank, pid: w.pid, language: 'other' as const, stack: null, missing: 'the rank has exited' }
            : native
              ? await captureNative(w.rank, w.pid, waitMs)
              : await captureStack(w.rank, w.pid, stackFileFor(this.privateDir, w.rank), waitMs);
          return { ...stack, host, ...readRecorder(this.flightRecorders.get(w.rank)) };
        }),
      );
      this.link.emit({ type: 'gathered', node_rank: this.nodeRank, attempt, id, ranks });
    });
    this.gathering = run.catch(() => {});
    return run;
  }

  forward(signal: ForwardedSignal): void {
    for (const w of this.current?.workers ?? []) w.signal(signal);
  }

  /** Resolves when the current attempt's workers are all gone and reported. */
  async idle(): Promise<void> {
    while (this.current) await this.current.done;
  }

  /** The attempt's master port: node 0 of the attempt checks or picks it, the others learn it. */
  private async masterPort(attempt: number, nodeRank: number, port: number | 'auto'): Promise<number> {
    if (port !== 'auto') {
      if (nodeRank === 0) await checkFixedPort(port, 'master.port');
      return port;
    }
    if (nodeRank !== 0) return this.link.awaitMasterPort(attempt);
    const picked = await freePort();
    await this.link.publishMasterPort(attempt, picked);
    return picked;
  }
}

/** Why `workdir` cannot be the workers' folder on this node; undefined when it can. */
export function workdirProblem(workdir: string): string | undefined {
  try {
    if (statSync(workdir).isDirectory()) return undefined;
    return `workdir ${workdir} is not a folder`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `workdir ${workdir} does not exist`;
    return `workdir ${workdir}: ${(err as Error).message}`;
  }
}

/** checkpoint.dir is the controller's folder on this node too (agent-contract.ts `checkpoint_marker`). */
function checkSharedFolder(spec: AgentSpec): void {
  const m = spec.checkpoint_marker;
  if (!m) return;
  let found: string | undefined;
  try {
    found = readRegularFileSync(m.path, 1024).toString('utf8');
  } catch {
    found = undefined;
  }
  if (found !== m.token)
    throw new Error(
      `checkpoint.dir ${dirname(m.path)} is not the folder the controller wrote to (${m.path} ` +
        `${found === undefined ? 'is missing' : 'holds another job'}): it must be shared by every node`,
    );
}

/** The rank's flight recorder (DTRAIN_FLIGHT_RECORDER), read even after the rank has exited. */
function readRecorder(path: string | undefined): { recorder: FlightRecord | null; recorder_missing: string | null } {
  if (!path) return { recorder: null, recorder_missing: 'the agent made it no recorder file' };
  try {
    const recorder = readFlightRecorder(path);
    if (recorder) return { recorder, recorder_missing: null };
    return { recorder: null, recorder_missing: 'it never started the dtrain runtime (not a dtrain Node worker)' };
  } catch (err) {
    return { recorder: null, recorder_missing: (err as Error).message };
  }
}

/** For hang_timeout: ops completed so far (all groups), and whether the rank is inside one now. */
function recorderProgress(path: string | undefined): { completed: number; waiting: boolean } | null {
  let rec: FlightRecord | undefined;
  try {
    rec = path ? readFlightRecorder(path) : undefined;
  } catch {
    return null;
  }
  if (!rec) return null;
  let completed = 0;
  let waiting = false;
  for (const g of rec.groups) {
    let newest = 0;
    for (const e of g.entries) {
      if (e.state === 'completed' && !e.failed) newest = Math.max(newest, e.seq);
      else if (!e.failed) waiting = true;
    }
    completed += newest;
  }
  return { completed, waiting };
}
