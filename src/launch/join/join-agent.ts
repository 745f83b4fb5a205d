/**
 * `dtrain agent --join host:port --secret-file F [--host NAME]`: a node agent nobody started for the
 * controller. It dials the controller's store (retrying while the controller is not up yet), registers
 * (join-contract.ts), waits for its spec, then runs its node exactly like an SSH/srun agent (runAgent),
 * with its workers' output sent through the store. Exit codes as for every agent: 0 after the controller's
 * `exit`, 1 when the controller went away mid-job, 3 when it could not join (unreachable, wrong secret,
 * refused), 2 for bad usage or a loose secret file.
 */
import { connect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { hostname } from 'node:os';
import { localGpuCount } from '../../config/local-host.js';
import { StoreAuthError, StoreClient, retryAdmission } from '../../store/index.js';
import { StartError } from '../../util/errors.js';
import { packageVersion } from '../../util/version.js';
import type { AgentSpec } from '../agent-contract.js';
import { runAgent } from '../agent-process.js';
import { getForever } from '../local-node.js';
import {
  joinContractVersion,
  joinKeys,
  openJoinSpec,
  type JoinDone,
  type JoinRefusal,
  type JoinRegistration,
  type SealedJoinSpec,
} from './join-contract.js';
import { StoreRecordWriter } from './record-relay.js';

export interface JoinAgentRequest {
  host: string;
  port: number;
  jobKey: Buffer;
  /** the name this node goes by (default: the machine's hostname) */
  nodeName?: string;
  /** how long to keep trying to reach the controller's store */
  timeoutMs: number;
  stderr?: Writable;
  env?: NodeJS.ProcessEnv;
  /** resolves when this agent is told to stop (SIGTERM, SIGHUP, SIGINT) */
  stopped?: Promise<void>;
  /** called once the node starts running (workers may exist from then on) */
  onRunning?: () => void;
}

export async function runJoinAgent(req: JoinAgentRequest): Promise<number> {
  const stderr = req.stderr ?? process.stderr;
  const where = `${req.host}:${req.port}`;
  const end = Date.now() + req.timeoutMs;
  let socket!: Socket;
  let desk: StoreClient;
  try {
    // A store busy with strangers turns a connection away before it authenticated: dial again.
    desk = await retryAdmission(req.timeoutMs, async () => {
      socket = await dialWithRetry(req.host, req.port, Math.max(1000, end - Date.now()));
      return StoreClient.overStream(socket, req.jobKey, { label: `store at ${where}` });
    });
  } catch (err) {
    if (err instanceof StoreAuthError) {
      throw new StartError(
        `the store at ${where} did not accept this agent's secret (${(err as Error).message}): use the ` +
          `secret file the controller was given`,
      );
    }
    throw err;
  }
  const deskGone = new Promise<void>((resolve) => desk.once('close', () => resolve()));
  const reg: JoinRegistration = {
    type: 'join',
    version: packageVersion(),
    contract: joinContractVersion,
    host: req.nodeName ?? hostname(),
    hostname: hostname(),
    pid: process.pid,
    local_addr: socket.localAddress ?? '',
    local_port: socket.localPort ?? 0,
    store_addr: socket.remoteAddress ?? req.host,
    gpus: visibleGpus(req.env ?? process.env),
  };
  const index = (await desk.add(joinKeys.count, 1)) - 1;
  // The wait for the answer goes out right behind the registration (a refusal can follow at once).
  const registered = desk.set(joinKeys.agent(index), JSON.stringify(reg));
  const answered = getForever(desk, joinKeys.spec(index), 5000);
  answered.catch(() => {});
  await registered;
  stderr.write(
    `dtrain agent: joined the job at ${where} as ${reg.host} (agent ${index}); waiting for the other nodes\n`,
  );

  let raw: Buffer | null;
  try {
    raw = await Promise.race([answered, deskGone.then(() => null)]);
  } catch {
    raw = null;
  }
  if (raw === null)
    throw new StartError(`the controller at ${where} went away before this node got its part of the job`);
  const answer = JSON.parse(raw.toString()) as SealedJoinSpec | JoinRefusal;
  if (answer.type === 'refused') {
    await desk.set(joinKeys.refusalRead(index), '').catch(() => {});
    await desk.close().catch(() => {});
    throw new StartError(answer.message);
  }
  // The spec comes sealed under the secret file's key and without the key itself: this node has it from
  // its file. The controller knows the store by its own address; this node reaches it where it joined.
  const spec: AgentSpec = {
    ...openJoinSpec(req.jobKey, index, answer),
    job_key: req.jobKey.toString('base64'),
    store: { kind: 'tcp', host: req.host, port: req.port },
  };
  const nodeRank = spec.node.node_rank;
  const records = new StoreRecordWriter(desk, nodeRank);
  records.on('error', () => {}); // the controller is gone: runAgent notices and ends the node
  // A controller that vanishes without closing anything (power, network) is runAgent's to notice: its
  // heartbeats go unanswered for heartbeat.timeout.
  let lost = false;
  const controllerLost = deskGone.then(() => void (lost = true));
  const controllerGone = Promise.race([controllerLost, req.stopped ?? new Promise<void>(() => {})]);
  req.onRunning?.();
  const code = await runAgent(spec, { stdout: records, stderr, controllerGone });
  // Done only when the controller let this node go: a node stopped here (a signal) just hangs up, which
  // the controller takes as the node lost, at once.
  if (!lost && code === 0) {
    // the controller relays every record it was promised before it lets this node go
    await new Promise<void>((resolve) => records.end(() => resolve()));
    const done: JoinDone = { exit_code: code, records: records.written };
    await desk.set(joinKeys.done(nodeRank), JSON.stringify(done)).catch(() => {});
  }
  await desk.close().catch(() => {});
  return code;
}

/** The node's GPUs as its workers will see them: what the scheduler gave it, else what the driver lists. */
function visibleGpus(env: NodeJS.ProcessEnv): number {
  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined) {
    const ids = cvd.split(',').filter((d) => d.trim() !== '');
    return ids.includes('-1') ? 0 : ids.length;
  }
  return localGpuCount();
}

/** The controller may start after its agents (a batch script starts both at once): keep dialling. */
async function dialWithRetry(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await dial(host, port, Math.max(1000, end - Date.now()));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
        throw new StartError(`cannot resolve ${host} (the controller's host in --join)`);
      if (Date.now() + 500 >= end) {
        throw new StartError(
          `cannot reach the controller's store at ${host}:${port} within ${Math.round(timeoutMs / 1000)}s ` +
            `(${code || (err as Error).message}): is dtrain launch --join-agents running there?`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function dial(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 10000 });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => {}); // until the store client takes the socket over (it reports errors itself)
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
