/**
 * `dtrain agent --stdio` (and `runAgent` for in-process use): a NodeAgent driven through the store, as
 * agent-contract.ts describes. Reads the hello and spec from stdin, writes output records to stdout,
 * heartbeats, executes the controller's commands in order, and kills everything when stdin ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { StoreClient } from '../store/client.js';
import { StoreProxy } from '../store/proxy.js';
import { formatDuration } from '../config/duration.js';
import { StartError } from '../util/errors.js';
import { packageVersion } from '../util/version.js';
import {
  agentId,
  controlKeys,
  type AgentEvent,
  type AgentSpec,
  type ControllerCommand,
  type ControllerHello,
} from './agent-contract.js';
import { NodeAgent, type AgentLink } from './agent.js';
import { backendLink } from './backend.js';
import { KeyExchange, open, type SealedKey } from './job-key-seal.js';
import { RecordSink } from './line-targets.js';
import { removeStaleProxyDirs } from './local-node.js';
import { getForever } from './store-wait.js';

export interface AgentIo {
  stdout: Writable;
  stderr: Writable;
  /** for `store.kind: "stream"`: an already connected, authenticated client */
  store?: StoreClient;
  /** resolves when the controller is gone (stdin EOF) */
  controllerGone: Promise<void>;
}

/**
 * Reports the first of a run of failures and stays quiet until something succeeds again: a cut-off agent
 * fails every event the same way, and one line says it.
 */
export function oncePerOutage(report: (message: string) => void): {
  failed(message: string): void;
  recovered(): void;
} {
  let failing = false;
  return {
    failed(message) {
      if (failing) return;
      failing = true;
      report(message);
    },
    recovered() {
      failing = false;
    },
  };
}

/** Runs the agent until the controller says `exit` (0) or vanishes (1). */
export async function runAgent(spec: AgentSpec, io: AgentIo): Promise<number> {
  const jobKey = Buffer.from(spec.job_key, 'base64');
  const store = await connectStore(spec, jobKey, io.store);
  removeStaleProxyDirs();
  const proxyDir = mkdtempSync(join(tmpdir(), `dtrain-agent-${process.pid}-`));
  const proxy = await StoreProxy.start({ upstream: store, dir: proxyDir, attempt: 0, jobKey });
  const self = agentId(spec.node.node_rank, spec.incarnation);
  let emitting: Promise<unknown> = Promise.resolve();
  let eventSeq = 0;
  const reportFailure = oncePerOutage((message) =>
    io.stderr.write(`dtrain agent: cannot report to the controller: ${message}\n`),
  );
  const link: AgentLink = {
    // Events keep their order: each is written after the previous one, in this node's own sequence.
    emit: (ev: AgentEvent) => {
      const seq = eventSeq++;
      emitting = emitting
        .then(() => store.set(controlKeys.event(self, seq), JSON.stringify(ev)))
        .then(
          () => reportFailure.recovered(),
          (err: Error) => reportFailure.failed(err.message),
        );
    },
    publishMasterPort: (attempt, port) => store.set(controlKeys.masterPort(attempt), String(port)),
    awaitMasterPort: async (attempt) => Number((await getForever(store, controlKeys.masterPort(attempt))).toString()),
    storeAddress: async (attempt) => {
      proxy.setAttempt(attempt);
      return `unix:${proxy.socketPath}`;
    },
    ...backendLink(store, spec),
  };
  const agent = new NodeAgent(spec, link, new RecordSink(io.stdout));
  // The heartbeats' answers are how this node knows the controller is still there when nothing closes (a
  // network cut leaves the SSH channel and the store connection open on this side for as long as TCP waits).
  const silentMs = spec.heartbeat_timeout_ms ?? Math.max(10_000, 6 * spec.heartbeat_interval_ms);
  let lastAnswer = Date.now();
  let silenced: () => void = () => {};
  const silent = new Promise<void>((resolve) => (silenced = resolve));
  const heartbeat = setInterval(() => {
    if (Date.now() - lastAnswer > silentMs) silenced();
    else
      void store.add(controlKeys.heartbeat(self), 1).then(
        () => void (lastAnswer = Date.now()),
        () => {},
      );
  }, spec.heartbeat_interval_ms);
  heartbeat.unref();

  let gone = false;
  const where = spec.store.kind === 'tcp' ? ` (its store at ${spec.store.host}:${spec.store.port})` : '';
  const controllerGone = Promise.race([
    io.controllerGone,
    silent.then(
      () =>
        void io.stderr.write(
          `dtrain agent: the controller${where} has not answered for ${formatDuration(silentMs)}: stopping this node\n`,
        ),
    ),
  ]).then(() => {
    gone = true;
    agent.kill();
  });
  const commands = (async () => {
    for (let seq = 0; !gone; seq++) {
      const raw = await Promise.race([
        getForever(store, controlKeys.command(self, seq)),
        controllerGone.then(() => null),
      ]);
      if (raw === null) return;
      const cmd = JSON.parse(raw.toString()) as ControllerCommand;
      if (cmd.type === 'start') void agent.start(cmd.attempt, cmd);
      else if (cmd.type === 'stop') agent.stop(cmd.attempt, cmd.signal, cmd.grace_ms);
      else if (cmd.type === 'kill') agent.kill(cmd.attempt);
      else if (cmd.type === 'signal') agent.forward(cmd.signal);
      else if (cmd.type === 'gather') void agent.gather(cmd.attempt, cmd.id, cmd.native, cmd.wait_ms);
      else if (cmd.type === 'exit') return;
    }
  })();
  let code = 0;
  try {
    await commands;
  } catch (err) {
    io.stderr.write(`dtrain agent: lost the store: ${(err as Error).message}\n`);
    agent.kill();
    code = 1;
  }
  if (gone) code = 1;
  await agent.idle();
  agent.dispose();
  // With the controller gone nobody reads events, and the store may be gone too: do not wait on them.
  if (!gone) await emitting;
  clearInterval(heartbeat);
  await proxy.close();
  await store.close().catch(() => {});
  rmSync(proxyDir, { recursive: true, force: true });
  return code;
}

async function connectStore(spec: AgentSpec, jobKey: Buffer, given?: StoreClient): Promise<StoreClient> {
  const s = spec.store;
  if (s.kind === 'tcp') {
    return StoreClient.connectTcp({ host: s.host, port: s.port, jobKey, retryForMs: spec.rendezvous_timeout_ms });
  }
  if (s.kind === 'unix') return StoreClient.connectUnix(s.path);
  if (!given) throw new StartError('store.kind "stream" needs a connected store client (in-process agents only)');
  return given;
}

const isMessage = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the optional hello and the spec from stdin; answers the hello (with a key exchange when asked). */
export async function readSpec(
  stdin: Readable,
  stdout: Writable,
): Promise<{ spec: AgentSpec; controllerGone: Promise<void> }> {
  const lines = createInterface({ input: stdin, crlfDelay: Infinity });
  const controllerGone = new Promise<void>((resolve) =>
    stdin.once('end', () => resolve()).once('close', () => resolve()),
  );
  let exchange: { mine: KeyExchange; controller: string } | undefined;
  // The hello's spec_within_ms: a controller gone or cut off before the spec must not leave us waiting.
  let deadline: NodeJS.Timeout | undefined;
  let lateAfterMs = 0;
  try {
    for await (const line of lines) {
      const spec = readLine(line);
      if (spec) return { spec, controllerGone };
    }
  } finally {
    clearTimeout(deadline);
  }
  if (lateAfterMs > 0)
    throw new StartError(
      `dtrain agent: no spec within ${lateAfterMs / 1000}s of the controller's hello (the controller is gone or ` +
        'cut off)',
    );
  throw new StartError('dtrain agent: stdin closed before the spec arrived');

  /** One stdin line: the hello (answered), or the spec (returned). */
  function readLine(line: string): AgentSpec | undefined {
    if (!line.trim()) return undefined;
    let msg: Omit<Partial<ControllerHello>, 'type'> & { type?: string; sealed?: SealedKey };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      throw new StartError(`dtrain agent: stdin line is not JSON: ${JSON.stringify(line.slice(0, 60))}`);
    }
    if (!isMessage(msg)) throw new StartError('dtrain agent: stdin line is not a message (a JSON object)');
    if (msg.type === 'hello') {
      if (typeof msg.kx === 'string') exchange = { mine: new KeyExchange(), controller: msg.kx };
      const kx = exchange ? { kx: exchange.mine.publicKey } : {};
      stdout.write(
        JSON.stringify({ type: 'hello', version: packageVersion(), hostname: hostname(), pid: process.pid, ...kx }) +
          '\n',
      );
      // The controller refuses us and says so; a spec sent right behind the hello (SSH) is not ours to run.
      if (typeof msg.version === 'string' && msg.version !== packageVersion())
        throw new StartError(
          `dtrain agent: the controller runs ${msg.version}, this agent ${packageVersion()}: not starting`,
        );
      const within = msg.spec_within_ms;
      if (typeof within === 'number' && within > 0 && !deadline) {
        deadline = setTimeout(
          () => {
            lateAfterMs = within;
            lines.close();
          },
          Math.min(within, 2 ** 31 - 1),
        );
      }
      return undefined;
    }
    if (msg.type === 'sealed_spec') {
      if (!exchange) throw new StartError('dtrain agent: the spec is sealed but the hello had no key exchange');
      const plain = open(
        exchange.mine.keyForController(exchange.controller),
        msg.sealed ?? { iv: '', tag: '', data: '' },
      );
      try {
        msg = JSON.parse(plain.toString()) as typeof msg;
      } catch {
        throw new StartError('dtrain agent: the sealed spec is not JSON');
      }
      if (!isMessage(msg)) throw new StartError('dtrain agent: the sealed spec is not a message (a JSON object)');
    }
    if (msg.type !== 'spec')
      throw new StartError(`dtrain agent: expected a spec message, got ${JSON.stringify(msg.type)}`);
    // Stop the line reader but keep watching stdin for EOF (the controller-gone signal).
    lines.close();
    stdin.resume();
    return msg as unknown as AgentSpec;
  }
}
