/**
 * One worker process: started under dtrain-exec (its own process group, subreaper, dies with the agent),
 * its stdout and stderr relayed as whole lines to any number of targets with backpressure: when a target
 * is full the worker's pipe is no longer read, so the worker blocks in write() instead of the agent
 * buffering without bound.
 *
 * Workers are started with node:child_process rather than execa: importing execa 9 alone costs more than
 * mpirun's whole launch on this machine (scripts/bench/launch.sh measures both), and nothing here needs
 * its conveniences (no shell, no buffering, exit status read directly).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { MAX_ENV_STRING_BYTES } from '../config/env-rules.js';
import { readRegularFile } from '../util/regular-file.js';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import {
  COLLECTIVE_TIMEOUT_MARK,
  STDERR_TAIL_LINE_BYTES,
  STDERR_TAIL_LINES,
  type WorkerExit,
} from './agent-contract.js';
import { killAllSignal } from './exec-wrapper.js';
import { lastLines, lastLineWith, LineSplitter } from './line-split.js';
import { descendantsOf, isStopped, supervisedPids, sweepDescendants } from './process-tree.js';

/** Where whole lines go. `write` returning false means: call nothing more until `onDrain` fires. */
export interface LineTarget {
  write(lines: Buffer): boolean;
  onDrain(resume: () => void): void;
}

export interface WorkerOptions {
  wrapper: string;
  rank: number;
  localRank: number;
  host: string;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  stdout: LineTarget[];
  stderr: LineTarget[];
  /** TORCHELASTIC_ERROR_FILE, read when the worker fails */
  errorFile?: string;
}

/**
 * Why exec refused a worker (E2BIG), in numbers: a config's own variables are held to MAX_ENV_STRING_BYTES
 * when it loads, so this is the total, or a variable the agent inherited. Names only: values may be secrets.
 */
function execTooLarge(argv: string[], env: Record<string, string>): string {
  const kib = (n: number) => `${Math.ceil(n / 1024)} KiB`;
  const vars = Object.entries(env).map(([k, v]) => [k, Buffer.byteLength(k) + Buffer.byteLength(v) + 2] as const);
  const [bigName, bigBytes] = vars.reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0] as const);
  const strings = [...argv.map((a) => Buffer.byteLength(a) + 1), ...vars.map(([, n]) => n)];
  const total = strings.reduce((a, b) => a + b, 0) + 8 * (strings.length + 2);
  return (
    `cannot start: its command line and environment are too large for exec (E2BIG): ${kib(total)} in ` +
    `${argv.length} arguments and ${vars.length} variables, the largest ${bigName} (${kib(bigBytes)}); Linux ` +
    `takes at most ${kib(MAX_ENV_STRING_BYTES)} per string and \`getconf ARG_MAX\` (a quarter of the stack ` +
    'limit) in all'
  );
}

/** How often a worker's shepherd is checked for having been stopped (one /proc read). */
const STOPPED_SHEPHERD_CHECK_MS = 1000;

const signalNames = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export class Worker {
  readonly child: ChildProcess;
  /** the worker's own pid (its process group id); the shepherd's pid until the shepherd reports it */
  pid: number;
  readonly done: Promise<WorkerExit>;
  /** resolves once the worker's pid is known (or it could not start) */
  readonly ready: Promise<void>;
  /** the shepherd reported that the worker and all it left behind are gone (else it was killed itself) */
  cleanExit = false;
  /** when it last wrote a line (Date.now()); its start until it writes one */
  lastOutputAt = Date.now();
  private readonly stderrTail: string[] = [];
  /** the last stderr line naming a collective timeout (WorkerExit.timeout_line) */
  private timeoutLine: string | undefined;
  private ended = false;

  constructor(private readonly opts: WorkerOptions) {
    const argv = [String(process.pid), ...opts.command];
    try {
      this.child = spawn(opts.wrapper, argv, {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'E2BIG') throw err;
      throw new Error(`rank ${opts.rank}: ${execTooLarge([opts.wrapper, ...argv], opts.env)}`);
    }
    this.pid = this.child.pid ?? 0;
    const shepherd = this.pid;
    if (shepherd) supervisedPids.add(shepherd);
    const pidPipe = this.child.stdio[3] as Readable | null;
    this.ready = new Promise((resolve) => {
      let status = '';
      pidPipe?.on('data', (b: Buffer) => {
        status += b.toString();
        const reported = Number.parseInt(status, 10);
        if (reported > 0) this.pid = reported;
        if (status.endsWith('done\n')) this.cleanExit = true;
        resolve();
      });
      pidPipe?.on('close', () => resolve());
      pidPipe?.on('error', () => resolve());
      this.child.on('error', () => resolve());
      if (!pidPipe) resolve();
    });
    this.child.on('exit', (_code, signal) => {
      // The shepherd ends by itself only after its worker and all it started are gone. Killed (SIGKILL, a
      // crash), it leaves them running, now hanging off this process (a subreaper) and holding the output
      // pipes, so 'close' would never come and the job would hang: end them, then stop waiting on the pipes.
      if (signal === null) return;
      supervisedPids.delete(shepherd);
      if (this.pid !== shepherd) killTree(this.pid);
      sweepDescendants();
      setTimeout(() => {
        for (const s of this.child.stdio) s?.destroy();
      }, 1000).unref();
    });
    // Its worker can SIGSTOP the shepherd, even before it reports the worker's pid: stopped, it reports nothing
    // and reaps nothing, so the start or the job would wait on it forever. Continue it whenever it is found so.
    const watchStop = setInterval(() => {
      if (isStopped(shepherd)) this.send('SIGCONT');
    }, STOPPED_SHEPHERD_CHECK_MS);
    watchStop.unref();
    this.relay(this.child.stdout!, opts.stdout, false);
    this.relay(this.child.stderr!, opts.stderr, true);
    this.done = new Promise((resolve) => {
      let spawnError: Error | undefined;
      this.child.on('error', (err) => (spawnError = err));
      this.child.on('close', (code, signal) => {
        this.ended = true;
        clearInterval(watchStop);
        supervisedPids.delete(shepherd);
        if (spawnError && code === null && signal === null) {
          this.stderrTail.push(`dtrain: cannot start ${opts.wrapper}: ${spawnError.message}`);
          code = 127;
        }
        void this.exitRecord(code, signal).then(resolve);
      });
    });
  }

  get rank(): number {
    return this.opts.rank;
  }

  /** the environment it was started with */
  get env(): Readonly<Record<string, string>> {
    return this.opts.env;
  }

  /** Sends a signal to the worker's process group (the shepherd forwards it). */
  signal(sig: NodeJS.Signals): void {
    this.send(sig);
  }

  /** SIGKILL for the worker and every descendant, including those that left its process group. */
  killAll(): void {
    this.send(killAllSignal);
  }

  private send(sig: NodeJS.Signals | number): void {
    if (this.ended || !this.child.pid) return;
    try {
      process.kill(this.child.pid, sig);
      // A stopped shepherd (its worker can SIGSTOP it) acts on nothing, reaps nothing and holds the output
      // pipes: the job would wait on it forever, and it would outlive the launcher. Continue it.
      process.kill(this.child.pid, 'SIGCONT');
    } catch {
      // already gone: its exit is on its way
    }
  }

  private relay(src: Readable, targets: LineTarget[], keepTail: boolean): void {
    const splitter = new LineSplitter();
    const deliver = (lines: Buffer) => {
      if (keepTail) {
        this.stderrTail.push(...lastLines(lines, STDERR_TAIL_LINES, STDERR_TAIL_LINE_BYTES));
        this.timeoutLine = lastLineWith(lines, timeoutMark, STDERR_TAIL_LINE_BYTES) ?? this.timeoutLine;
        if (this.stderrTail.length > STDERR_TAIL_LINES)
          this.stderrTail.splice(0, this.stderrTail.length - STDERR_TAIL_LINES);
      }
      let waiting = 0;
      for (const t of targets) {
        if (t.write(lines)) continue;
        waiting++;
        t.onDrain(() => {
          if (--waiting === 0) src.resume();
        });
      }
      if (waiting > 0) src.pause();
    };
    src.on('data', (chunk: Buffer) => {
      this.lastOutputAt = Date.now();
      const lines = splitter.push(chunk);
      if (lines) deliver(lines);
    });
    src.on('end', () => {
      const rest = splitter.flush();
      if (rest) deliver(rest);
    });
    src.on('error', () => {});
  }

  /** The shepherd ended by a signal without its "done": it was killed itself, not the worker it ran. */
  private shepherdKilledLine(signal: NodeJS.Signals): string {
    const worker = this.pid !== this.child.pid ? ` (the agent ended its worker, pid ${this.pid})` : '';
    return `dtrain: the worker's shepherd dtrain-exec (pid ${this.child.pid}) was killed by ${signal}${worker}`;
  }

  private async exitRecord(code: number | null, signal: NodeJS.Signals | null): Promise<WorkerExit> {
    let errorFile: unknown = null;
    if (this.opts.errorFile && (code !== 0 || signal)) {
      try {
        // the worker's file: at most 64 KiB of a regular file (a FIFO or /dev/urandom there hung the exit)
        const text = (await readRegularFile(this.opts.errorFile, 65536)).toString('utf8');
        try {
          errorFile = JSON.parse(text);
        } catch {
          errorFile = text;
        }
      } catch {
        // the worker wrote none: the usual case
      }
    }
    return {
      rank: this.opts.rank,
      local_rank: this.opts.localRank,
      host: this.opts.host,
      pid: this.pid,
      exit_code: signal ? null : code,
      signal: signal ?? null,
      time: new Date().toISOString(),
      stderr_tail:
        signal && !this.cleanExit ? [...this.stderrTail, this.shepherdKilledLine(signal)] : [...this.stderrTail],
      ...(this.timeoutLine !== undefined && { timeout_line: this.timeoutLine }),
      error_file: errorFile,
    };
  }
}

const timeoutMark = Buffer.from(COLLECTIVE_TIMEOUT_MARK);

export function signalName(n: number): string | undefined {
  return signalNames.get(n);
}

/** SIGKILL for a process, its process group and its descendants (a shepherd's orphaned worker). */
function killTree(pid: number): void {
  for (const target of [-pid, pid, ...descendantsOf(pid)]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
