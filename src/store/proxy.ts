/**
 * The agent's store proxy: serves its workers on a Unix socket in a 0700 folder (the file system is
 * the authentication on this leg) and forwards their requests over the agent's single authenticated
 * upstream connection. Worker keys get the attempt prefix `a<attempt>/`, so a restarted group never
 * sees an earlier attempt's barriers; request ids are remapped because many workers share one
 * upstream connection. JOB_KEY and WHOAMI are answered here and never reach the store. Keys under
 * `job/` are the job's own, shared by every attempt (the checkpoint commit record): they pass without
 * the prefix, and only to the ops that read them or change them by compare-and-set.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { makeDirs } from '../util/make-dirs.js';
import { StartError } from '../util/errors.js';
import type { PendingRequest, StoreClient } from './client.js';
import { StoreRequestError, StoreTimeoutError } from './errors.js';
import {
  FrameReader,
  Op,
  Status,
  decodeBody,
  encodeFrame,
  maxBodyBytes,
  maxKeyBytes,
  parseBoundedUint,
  type Message,
} from './frame.js';
import { jobKeyPrefix } from './job-keys.js';
import { maxBlockedPerConnection } from './state.js';

/** Requests one worker connection may have in flight through the proxy (its share may be smaller). */
export const maxInFlightPerWorker = 4096;
/** All workers of a node together: what the store lets the agent's one upstream connection hold. */
export const maxInFlightPerNode = maxBlockedPerConnection;

export interface StoreProxyOptions {
  upstream: StoreClient;
  /** folder for the socket; created 0700 when absent, and must belong to this user */
  dir: string;
  attempt: number;
  jobKey: Buffer;
}

/** sockaddr_un.sun_path holds 108 bytes including the terminating zero. */
const maxSocketPath = 107;

// A worker reads `job/` keys (GET, WAIT, CHECK) and changes them only by CAS, so it can never reset one.
const jobKeyPrefixBytes = Buffer.from(jobKeyPrefix);
const jobKeyOps: ReadonlySet<number> = new Set([Op.get, Op.cas, Op.wait, Op.check]);

function isJobKey(key: Buffer): boolean {
  return key.length > jobKeyPrefixBytes.length && key.subarray(0, jobKeyPrefixBytes.length).equals(jobKeyPrefixBytes);
}

/** What a worker's key `k` is called upstream during attempt `attempt`: `a<attempt>/k`. */
export function attemptPrefix(attempt: number): string {
  return `a${attempt}/`;
}

export class StoreProxy {
  readonly socketPath: string;
  private attempt: number;
  private readonly workers = new Set<WorkerConnection>();
  private closing: Promise<void> | undefined;
  /** forwarded requests not yet answered upstream, all workers together */
  private inFlight = 0;

  private constructor(
    private readonly server: net.Server,
    socketPath: string,
    readonly upstream: StoreClient,
    readonly jobKey: Buffer,
    attempt: number,
  ) {
    this.socketPath = socketPath;
    this.attempt = attempt;
  }

  static async start(opts: StoreProxyOptions): Promise<StoreProxy> {
    const socketPath = path.join(opts.dir, 'store.sock');
    if (Buffer.byteLength(socketPath) > maxSocketPath) {
      throw new StartError(
        `store proxy: socket path ${socketPath} is longer than ${maxSocketPath} bytes; use a shorter folder`,
      );
    }
    await privateFolder(opts.dir);
    await unlink(socketPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new StartError(`store proxy: cannot remove stale ${socketPath}: ${err.message}`);
    });
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new StartError(`store proxy: cannot listen on ${socketPath}: ${err.message}`)),
      );
      server.listen(socketPath, () => resolve());
    });
    // The folder is already 0700; the socket's own mode is a second lock should the folder be opened up.
    await chmod(socketPath, 0o600);
    server.removeAllListeners('error');
    server.on('error', () => {});
    const proxy = new StoreProxy(server, socketPath, opts.upstream, Buffer.from(opts.jobKey), opts.attempt);
    server.on('connection', (socket) => proxy.accept(socket));
    // Without the store there is nothing to serve: workers see their store socket close at once.
    opts.upstream.once('close', () => {
      server.close();
      for (const w of proxy.workers) w.destroy();
    });
    return proxy;
  }

  /** The key prefix new requests get. */
  get prefix(): string {
    return attemptPrefix(this.attempt);
  }

  get currentAttempt(): number {
    return this.attempt;
  }

  /**
   * Switches to a new attempt. Workers still connected from an earlier attempt are disconnected: they
   * are being stopped, and must not read or write the new attempt's keys meanwhile.
   */
  setAttempt(attempt: number): void {
    this.attempt = attempt;
    for (const w of this.workers) if (w.attempt !== attempt) w.destroy();
  }

  /** Stops serving and removes the socket file; the upstream connection stays open (the agent owns it). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const w of this.workers) w.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      await unlink(this.socketPath).catch(() => {});
    })();
    return this.closing;
  }

  /**
   * Forwards a worker's request unless that worker is over its fair share of the upstream connection:
   * then the reason, for that worker alone (the store would otherwise refuse the next request of
   * whichever worker came next).
   */
  forward(sender: number, op: number, args: Buffer[]): PendingRequest | string {
    const share = Math.min(maxInFlightPerWorker, Math.floor(maxInFlightPerNode / Math.max(1, this.workers.size)));
    if (sender >= share) {
      return (
        `this process has ${sender} store requests in flight through its agent, its limit ` +
        `(${maxInFlightPerWorker} per process, fewer when more than ${maxInFlightPerNode / maxInFlightPerWorker} ` +
        `share the node); wait for answers before sending more`
      );
    }
    if (this.inFlight >= maxInFlightPerNode) {
      return `this node's processes have ${this.inFlight} store requests in flight, the node's limit`;
    }
    const forwarded = this.upstream.send(op, args);
    this.inFlight++;
    const settled = () => void this.inFlight--;
    forwarded.response.then(settled, settled);
    return forwarded;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || !this.upstream.isOpen) {
      socket.destroy();
      return;
    }
    const worker = new WorkerConnection(this, socket, this.attempt);
    this.workers.add(worker);
    socket.once('close', () => this.workers.delete(worker));
  }
}

/** Ops whose arguments name keys, and which arguments those are. */
function keyArgIndexes(op: number, argc: number): number[] | undefined {
  switch (op) {
    case Op.set:
    case Op.get:
    case Op.add:
    case Op.cas:
    case Op.delete:
    case Op.barrier:
      return argc > 0 ? [0] : [];
    case Op.wait:
      return Array.from({ length: Math.max(0, argc - 1) }, (_, i) => i + 1);
    case Op.check:
      return Array.from({ length: argc }, (_, i) => i);
    case Op.ping:
      return [];
    default:
      return undefined; // not forwarded
  }
}

class WorkerConnection {
  private readonly reader = new FrameReader(maxBodyBytes);
  /** worker's request id → upstream request id, for requests in flight */
  private readonly inFlight = new Map<number, number>();
  /** requests of this worker forwarded and not yet answered upstream (cancelled ones until the store answers) */
  private pending = 0;
  private closed = false;

  constructor(
    private readonly proxy: StoreProxy,
    private readonly socket: net.Socket,
    readonly attempt: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('end', () => this.destroy());
    socket.on('close', () => this.destroy());
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    // Blocked requests of a worker that went away must not keep counting at a barrier upstream.
    for (const upstreamId of this.inFlight.values()) {
      this.proxy.upstream.cancel(upstreamId).catch(() => {});
    }
    this.inFlight.clear();
  }

  private onData(chunk: Buffer): void {
    try {
      for (const body of this.reader.push(chunk)) {
        if (this.closed) return;
        this.onRequest(decodeBody(body));
      }
    } catch {
      this.destroy(); // malformed framing: this worker's connection only
    }
  }

  private onRequest(req: Message): void {
    const reply = (code: number, args: (Buffer | string)[] = []) =>
      this.reply({ code, id: req.id, args: args.map(toBuffer) });
    if (req.code === Op.jobKey)
      return req.args.length === 0 ? reply(Status.ok, [this.proxy.jobKey]) : reply(Status.badRequest);
    if (req.code === Op.whoami) {
      return req.args.length === 0
        ? reply(Status.ok, [String(this.attempt), attemptPrefix(this.attempt)])
        : reply(Status.badRequest);
    }
    if (req.code === Op.cancel) return this.cancel(req, reply);
    const keyArgs = keyArgIndexes(req.code, req.args.length);
    if (!keyArgs || this.inFlight.has(req.id)) return reply(Status.badRequest);
    const prefix = Buffer.from(attemptPrefix(this.attempt));
    const jobKeys = keyArgs.filter((i) => isJobKey(req.args[i]));
    if (jobKeys.length > 0 && !jobKeyOps.has(req.code)) return reply(Status.notAuthorized);
    const upstreamKey = (i: number) => (jobKeys.includes(i) ? req.args[i] : Buffer.concat([prefix, req.args[i]]));
    // Checked here, not upstream: the prefix would make an empty key look valid there.
    if (keyArgs.some((i) => req.args[i].length === 0 || upstreamKey(i).length > maxKeyBytes)) {
      return reply(Status.badRequest);
    }
    const args = req.args.map((a, i) => (keyArgs.includes(i) ? upstreamKey(i) : a));
    const forwarded = this.proxy.forward(this.pending, req.code, args);
    if (typeof forwarded === 'string') return reply(Status.overLimit, [forwarded]);
    this.pending++;
    this.inFlight.set(req.id, forwarded.id);
    forwarded.response.then(
      (res) => {
        this.pending--;
        if (this.inFlight.get(req.id) !== forwarded.id) return;
        this.inFlight.delete(req.id);
        this.reply({ code: res.code, id: req.id, args: res.args });
      },
      (err) => {
        this.pending--;
        if (this.inFlight.get(req.id) !== forwarded.id) return;
        this.inFlight.delete(req.id);
        // No answer in time: say so. Too big to forward: refuse. The upstream connection is gone: so is
        // this worker's store.
        if (err instanceof StoreTimeoutError && this.proxy.upstream.isOpen) reply(Status.timeout);
        else if (err instanceof StoreRequestError) reply(Status.badRequest);
        else this.destroy();
      },
    );
  }

  /** CANCEL names the worker's own id; the store knows the upstream one. */
  private cancel(req: Message, reply: (code: number, args?: (Buffer | string)[]) => void): void {
    const target = req.args.length === 1 ? parseBoundedUint(req.args[0], 0xffffffff) : undefined;
    if (target === undefined) return reply(Status.badRequest);
    const upstreamId = this.inFlight.get(target);
    if (upstreamId === undefined) return reply(Status.ok, ['0']);
    this.proxy.upstream.cancel(upstreamId).then(
      (found) => reply(Status.ok, [found ? '1' : '0']),
      () => reply(Status.ok, ['0']),
    );
  }

  private reply(res: Message): void {
    if (this.closed) return;
    const ok = this.socket.write(encodeFrame(res.code, res.id, res.args));
    // A worker that stops reading its answers must not make the agent buffer without bound.
    if (!ok && !this.socket.isPaused()) {
      this.socket.pause();
      this.socket.once('drain', () => !this.closed && this.socket.resume());
    }
  }
}

function toBuffer(a: Buffer | string): Buffer {
  return typeof a === 'string' ? Buffer.from(a) : a;
}

/** Creates the folder 0700, or checks an existing one is a real folder of ours and tightens it to 0700. */
async function privateFolder(dir: string): Promise<void> {
  try {
    await makeDirs(dir, 0o700);
    const st = await lstat(dir);
    if (!st.isDirectory()) throw new Error('not a folder (or a symbolic link)');
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new Error('owned by another user');
    if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  } catch (err) {
    throw new StartError(`store proxy: cannot use ${dir} for the worker socket: ${(err as Error).message}`);
  }
}
