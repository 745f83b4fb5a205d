/**
 * The srun spawner: inside a Slurm allocation, one `srun` job step per node runs `dtrain agent --stdio`
 * on that node (no SSH). One step per node, rather than one step with a task per node, because the
 * controller talks to each agent over its own stdin/stdout (newline-delimited JSON) and a multi-task
 * step would interleave them; steps also fail and end independently, as SSH channels do.
 *
 * Each agent then behaves exactly as an SSH-started one: the same version exchange (documented in
 * ../ssh/agent-channel.ts), then the controller's first message on stdin carries the plan and the job
 * secret, which therefore never appears in argv, the batch script or an environment. srun exports the
 * controller's environment to the step (--export=ALL), so the agent sees the CUDA_VISIBLE_DEVICES and
 * SLURM_* variables Slurm sets for its step.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { StartError } from '../../util/errors.js';
import { controllerHelloLine, type AgentExit, type AgentHello } from '../agent-contract.js';
import { keepStderrTail, readAgentHello } from '../agent-hello.js';
import { KeyExchange, seal, type SealedKey, type SealingKey } from '../job-key-seal.js';
import { supervisedPids } from '../process-tree.js';
import { packageVersion } from '../../util/version.js';

export interface SrunNode {
  node_rank: number;
  host: string;
}

export interface SrunLaunchRequest {
  nodes: SrunNode[];
  /** the job's working directory (the step's --chdir) */
  workdir: string;
  /** argv that runs dtrain on the nodes, e.g. [process.execPath, '/shared/dtrain/bin/dtrain'] */
  dtrain: string[];
  /** how long each agent has to say hello (covers srun's step creation) */
  helloTimeoutMs: number;
  /** the allocation's --cpus-per-task: srun 22.05+ does not inherit it, so it is passed explicitly */
  cpusPerTask?: number;
  /** an elastic job: a failed node must not take the step down with it (srunArgs) */
  elastic?: boolean;
  /** environment for srun and so for the agent (default: this process's) */
  env?: NodeJS.ProcessEnv;
  version?: string;
  /** the srun command (default: srun on PATH) */
  srun?: string;
}

export interface SrunAgent {
  node: SrunNode;
  hello: AgentHello;
  /** controller → agent messages; ending it tells the agent the controller is gone */
  stdin: Writable;
  /** agent → controller messages, from the line after the hello */
  stdout: Readable;
  /** srun's and the agent's diagnostics */
  stderr: Readable;
  exited: Promise<AgentExit>;
  /** bytes sealed for this agent alone (srun's stdin is not encrypted): the spec's `sealed_spec` line */
  seal(plain: Buffer): SealedKey;
  /** resolves with a one-line reason when the step ends before close() was called (node lost, step killed) */
  lost: Promise<string>;
  /** ends stdin; the step is signalled if it has not ended after `graceMs` */
  close(graceMs?: number): void;
}

/** srun's arguments for one node's agent step. */
export function srunArgs(
  req: Pick<SrunLaunchRequest, 'workdir' | 'dtrain' | 'cpusPerTask' | 'elastic'>,
  node: SrunNode,
): string[] {
  const args = [
    '--nodes=1',
    '--ntasks=1',
    `--nodelist=${node.host}`,
    // the batch step and earlier attempts' steps may still hold the node's CPUs
    '--overlap',
    `--chdir=${req.workdir}`,
    `--job-name=dtrain-agent-${node.node_rank}`,
    // the protocol is line-based: pass bytes on as they come
    '--unbuffered',
    '--quiet',
  ];
  if (req.cpusPerTask !== undefined) args.push(`--cpus-per-task=${req.cpusPerTask}`);
  // Elastic: the controller drops a lost node and goes on, so Slurm must not end the step when one of its
  // nodes fails (--no-kill) or when a task exits badly (--kill-on-bad-exit=0, against a cluster default).
  if (req.elastic) args.push('--no-kill', '--kill-on-bad-exit=0');
  return [...args, '--', ...req.dtrain, 'agent', '--stdio'];
}

/**
 * Starts every node's agent, or none: on any failure the started steps are ended and one StartError lists the hosts.
 */
export async function startSrunAgents(req: SrunLaunchRequest): Promise<SrunAgent[]> {
  const results = await Promise.allSettled(req.nodes.map((n) => startOne(req, n)));
  const failures = results.flatMap((r, i) =>
    r.status === 'rejected' ? [{ node: req.nodes[i], err: r.reason as unknown }] : [],
  );
  if (failures.length === 0) return results.map((r) => (r as PromiseFulfilledResult<SrunAgent>).value);
  for (const r of results) if (r.status === 'fulfilled') r.value.close(0);
  const lines = failures.map(({ node, err }) =>
    err instanceof StartError ? err.message : `${node.host}: ${String(err)}`,
  );
  if (lines.length === 1) throw new StartError(lines[0]);
  throw new StartError(
    `could not start agents on ${lines.length} of ${req.nodes.length} nodes:\n  ${lines.join('\n  ')}`,
  );
}

async function startOne(req: SrunLaunchRequest, node: SrunNode): Promise<SrunAgent> {
  const srun = req.srun ?? 'srun';
  const version = req.version ?? packageVersion();
  const child = spawn(srun, srunArgs(req, node), { env: req.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  // A sweep for a killed shepherd's orphans (worker.ts) must spare the srun steps of the other nodes.
  const pid = child.pid;
  if (pid) {
    supervisedPids.add(pid);
    child.once('exit', () => supervisedPids.delete(pid));
  }
  const exited = new Promise<AgentExit>((resolve) => {
    child.on('error', () => resolve({ code: null, signal: null }));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = new Promise<NodeJS.ErrnoException>((resolve) => child.on('error', resolve));
  const tail = keepStderrTail(child.stderr);
  child.stdin.on('error', () => {}); // EPIPE when the step dies first: reported through `exited`
  const exchange = new KeyExchange();
  child.stdin.write(controllerHelloLine(version, req.helloTimeoutMs, exchange.publicKey));

  let hello: AgentHello;
  try {
    hello = await readHello(child, req.helloTimeoutMs, exited, spawnError, tail.lines, srun);
  } catch (err) {
    kill(child, 'SIGKILL');
    throw err instanceof StartError ? new StartError(err.message, node.host) : err;
  }
  if (hello.version !== version) {
    kill(child, 'SIGKILL');
    throw new StartError(
      `dtrain version mismatch: the controller runs ${version}, the agent there runs ${hello.version}; ` +
        `install the same version on every node`,
      node.host,
    );
  }
  if (typeof hello.kx !== 'string') {
    kill(child, 'SIGKILL');
    throw new StartError(
      'the agent answered without its key exchange (the job key is never sent in clear over srun)',
      node.host,
    );
  }
  let sealing: SealingKey;
  try {
    sealing = exchange.keyForAgent(hello.kx);
  } catch (err) {
    kill(child, 'SIGKILL');
    throw new StartError(`the agent's key exchange failed: ${(err as Error).message}`, node.host);
  }
  tail.stop();

  let closing = false;
  // after the hello the agent's stderr belongs to the controller's relay: keep only srun's own complaints
  const srunTail: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => {
    srunTail.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l.startsWith('srun: ')),
    );
    srunTail.splice(0, Math.max(0, srunTail.length - 3));
  });
  const lost = exited.then((e) =>
    closing
      ? new Promise<string>(() => {})
      : `srun step ended (${describeExit(e)})${srunTail.length ? `: ${srunTail.at(-1)}` : ''}`,
  );
  return {
    node,
    hello,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    lost,
    seal: (plain) => seal(sealing, plain),
    close(graceMs = 10_000) {
      closing = true;
      child.stdin.end();
      if (child.exitCode !== null || child.signalCode !== null) return;
      // srun forwards SIGTERM to the step's task, then SIGKILL after KillWait
      const timer = setTimeout(() => kill(child, 'SIGTERM'), graceMs);
      timer.unref();
      void exited.then(() => clearTimeout(timer));
    },
  };
}

function readHello(
  child: ChildProcess,
  timeoutMs: number,
  exited: Promise<AgentExit>,
  spawnError: Promise<NodeJS.ErrnoException>,
  stderrTail: string[],
  srun: string,
): Promise<AgentHello> {
  return readAgentHello(child.stdout!, {
    timeoutMs,
    late: () => {
      const words = lastWords(stderrTail);
      return `the agent did not answer within ${timeoutMs / 1000}s${words ? ` (${words})` : ''}`;
    },
    ended: async () => {
      const e = await exited;
      const words = lastWords(stderrTail);
      return `the agent step ended before the version exchange (${describeExit(e)})${words ? `: ${words}` : ''}`;
    },
    failed: spawnError.then((err) =>
      err.code === 'ENOENT'
        ? `${srun} not found on PATH: the Slurm client commands must be installed on the node running ` +
          `the controller`
        : `${srun}: ${err.message}`,
    ),
    error: (message) => new StartError(message),
  });
}

/**
 * The line that explains a failure: the agent's own last words, not srun's summary of them
 * ("srun: error: n1: task 0: Exited with exit code 4"), unless srun's is all there is (no such node...).
 */
function lastWords(tail: string[]): string | undefined {
  const own = tail.filter(
    (l) => !/^srun: (error: \S+: task \d+: |Job step aborted|Terminating|launch\/slurm: )/.test(l),
  );
  return own.at(-1) ?? tail.at(-1);
}

function describeExit(e: AgentExit): string {
  return e.code !== null ? `exit code ${e.code}` : e.signal ? `killed by ${e.signal}` : 'could not run';
}

function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}
