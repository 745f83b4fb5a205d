/**
 * The TypeScript store client: agents use it over TCP (or an SSH-forwarded channel) with
 * authentication; workers' TS code may use it over the agent's Unix proxy without. Requests are
 * pipelined: each gets a fresh id and answers are matched by id, in whatever order they come.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { retryDelayMs, retryFirstDelayMs } from './admission.js';
import {
  AuthError,
  BusyRejectError,
  ClientHandshake,
  checkJobKey,
  envelopeOverhead,
  rejectOf,
  type Session,
} from './auth.js';
import { StoreAdmissionError, StoreConnectionError, StoreRequestError, StoreTimeoutError } from './errors.js';
import { StartError } from '../util/errors.js';
import {
  FrameReader,
  Op,
  Status,
  decodeBody,
  encodeBody,
  encodeFrame,
  frame,
  maxBodyBytes,
  maxPreAuthBodyBytes,
  maxTimeoutMs,
  opNames,
  serverHoldMs,
  type Message,
} from './frame.js';

export interface StoreClientOptions {
  /**
   * Connect + authenticate budget, the default wait of blocking calls, and the extra time any request
   * may take beyond its own timeout before the connection is presumed dead. Default 10000.
   */
  timeoutMs?: number;
  /** names the store in error messages; default derived from the address */
  label?: string;
}

export interface TcpConnectOptions extends StoreClientOptions {
  host: string;
  port: number;
  jobKey: Buffer;
  /**
   * Keep trying for this long, with backoff, while the store turns the connection away before it
   * authenticated (busy with strangers, reset, handshake deadline). Never retried: a wrong key or
   * version. Default 0: one try.
   */
  retryForMs?: number;
}

/** One request in flight: the id it travels with (CANCEL takes it) and its answer. */
export interface PendingRequest {
  id: number;
  response: Promise<Message>;
}

interface Waiting {
  resolve(m: Message): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * challenge: HELLO sent; welcome: PROOF sent, the welcome (or a REJECT) not yet seen, requests already
 * flowing; redialing: turned away after the PROOF, dialling again (requests wait to be replayed).
 */
type Phase = 'challenge' | 'welcome' | 'ready' | 'redialing' | 'closed';

/** One handshake in progress: settles once the PROOF is sent (early) or the welcome came. */
interface Authenticating {
  handshake: ClientHandshake;
  early: boolean;
  resolve(): void;
  reject(e: Error): void;
}

interface Redial {
  dial(): Promise<Duplex>;
  handshake(): ClientHandshake;
  until: number;
}

/** Authentication with the store failed: wrong key, not a dtrain store, version mismatch (exit 3). */
export class StoreAuthError extends StartError {}

export class StoreClient extends EventEmitter<{ close: [error: Error | undefined] }> {
  private phase: Phase;
  private stream!: Duplex;
  private reader!: FrameReader;
  private session: Session | undefined;
  private readonly pending = new Map<number, Waiting>();
  private nextId = 1;
  private auth: Authenticating | undefined;
  /**
   * Request bodies sent after the PROOF and before the welcome. The store executes nothing before it
   * accepts the proof, so when it turns the connection away instead these are replayed, in order, on
   * the next connection.
   */
  private unconfirmed: Buffer[] = [];
  /** How to dial and authenticate again (TCP only), and until when a turned-away client may. */
  private redial: Redial | undefined;
  private closedByUs = false;
  readonly timeoutMs: number;

  private constructor(
    stream: Duplex,
    readonly label: string,
    timeoutMs: number,
    authenticated: boolean,
  ) {
    super();
    this.timeoutMs = timeoutMs;
    this.phase = 'ready';
    this.attach(stream, authenticated);
  }

  /** Makes `stream` the connection; events of a connection it replaced are ignored. */
  private attach(stream: Duplex, authenticated: boolean): void {
    this.stream = stream;
    if (authenticated) this.phase = 'challenge';
    this.reader = new FrameReader(authenticated ? maxPreAuthBodyBytes : maxBodyBytes);
    stream.on('data', (chunk: Buffer) => stream === this.stream && this.onData(chunk));
    stream.on('error', (err) => stream === this.stream && this.lost(err));
    stream.on('end', () => stream === this.stream && this.lost(undefined));
    stream.on('close', () => stream === this.stream && this.lost(undefined));
  }

  /**
   * Connects to the store's TCP port and authenticates with the job key, each try within timeoutMs;
   * tries again while the store turns it away, for up to retryForMs. Resolves as soon as the proof is
   * sent: the first requests travel with it instead of a round trip later (PROTOCOL.md).
   */
  static async connectTcp(opts: TcpConnectOptions): Promise<StoreClient> {
    const timeoutMs = opts.timeoutMs ?? 10000;
    const label = opts.label ?? `store at ${opts.host}:${opts.port}`;
    try {
      checkJobKey(opts.jobKey);
    } catch (err) {
      throw new StoreAuthError(`${label}: ${(err as Error).message}`);
    }
    const redial: Redial = {
      until: Date.now() + (opts.retryForMs ?? 0),
      handshake: () => new ClientHandshake(opts.jobKey),
      dial: () =>
        // Keepalive: a controller host that vanishes without a FIN is noticed even on an idle connection.
        connectSocket(
          net.connect({
            host: opts.host,
            port: opts.port,
            noDelay: true,
            keepAlive: true,
            keepAliveInitialDelay: 10000,
          }),
          label,
          timeoutMs,
        ),
    };
    let client: StoreClient | undefined;
    try {
      await retryAdmission(opts.retryForMs ?? 0, async () => {
        const started = Date.now();
        const socket = await redial.dial();
        if (client) client.attach(socket, true);
        else client = new StoreClient(socket, label, timeoutMs, true);
        client.redial = redial;
        await client.handshake(redial.handshake(), true, timeoutMs - (Date.now() - started));
      });
    } catch (err) {
      client?.destroy();
      throw err;
    }
    return client!;
  }

  /** Connects to an agent's store proxy (`unix:/path` or `/path`); no authentication on this leg. */
  static async connectUnix(path: string, opts: StoreClientOptions = {}): Promise<StoreClient> {
    const file = path.startsWith('unix:') ? path.slice(5) : path;
    const timeoutMs = opts.timeoutMs ?? 10000;
    const label = opts.label ?? `store proxy at ${file}`;
    const socket = await connectSocket(net.connect({ path: file }), label, timeoutMs);
    return new StoreClient(socket, label, timeoutMs, false);
  }

  /**
   * Authenticates over an already-open stream (an SSH-forwarded channel to the store's port). Resolves
   * once the store welcomed it: with no way to dial again, the caller retries a turned-away stream.
   */
  static async overStream(stream: Duplex, jobKey: Buffer, opts: StoreClientOptions = {}): Promise<StoreClient> {
    const timeoutMs = opts.timeoutMs ?? 10000;
    const label = opts.label ?? 'store';
    let handshake: ClientHandshake;
    try {
      handshake = new ClientHandshake(jobKey);
    } catch (err) {
      stream.destroy();
      throw new StoreAuthError(`${label}: ${(err as Error).message}`);
    }
    const client = new StoreClient(stream, label, timeoutMs, true);
    await client.handshake(handshake, false, timeoutMs);
    return client;
  }

  /** Runs one handshake on the current stream; a failure destroys that stream and throws. */
  private async handshake(handshake: ClientHandshake, early: boolean, budgetMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.auth = { handshake, early, resolve, reject };
        timer = setTimeout(
          () =>
            reject(new StoreAdmissionError(`${this.label}: authentication did not finish within ${this.timeoutMs} ms`)),
          Math.max(1, budgetMs),
        );
        this.stream.write(frame(handshake.hello()));
      });
    } catch (err) {
      this.auth = undefined;
      const stream = this.stream;
      if (this.redial && this.phase !== 'closed') this.phase = 'redialing';
      else this.shutdown(undefined);
      stream.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Turned away after the proof was sent (REJECT busy, or closed before the welcome): nothing sent since
   * was executed, so dial again with backoff and replay it, or fail every request once time is up.
   */
  private async recover(reason: Error): Promise<void> {
    const redial = this.redial!;
    this.phase = 'redialing';
    this.session = undefined;
    this.stream.destroy(); // its events are ignored from here on: `lost` sees the phase
    try {
      await new Promise((r) => setTimeout(r, Math.min(retryDelayMs(0), redial.until - Date.now())));
      await retryAdmission(redial.until - Date.now(), async () => {
        const started = Date.now();
        const socket = await redial.dial();
        if (this.phase !== 'redialing') {
          socket.destroy();
          throw reason;
        }
        this.attach(socket, true);
        await this.handshake(redial.handshake(), true, this.timeoutMs - (Date.now() - started));
      });
    } catch (err) {
      this.shutdown(err instanceof Error ? err : reason);
    }
  }

  /** Sends a raw request; the answer comes back whatever its status. Used by the proxy to forward. */
  send(op: number, args: readonly (Buffer | string)[]): PendingRequest {
    const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
    if (this.phase === 'closed') {
      return { id: 0, response: Promise.reject(new StoreConnectionError(`${this.label}: connection is closed`)) };
    }
    let size = 6;
    for (const b of bufs) size += 4 + b.length;
    if (size > maxBodyBytes) {
      // Sending it would make the store close this whole connection (shared by every worker of a node).
      const refused = new StoreRequestError(
        `${this.label}: ${opNames[op] ?? `op ${op}`}${describeKeys(op, bufs)} is ${size} bytes, over the ` +
          `store's limit of ${maxBodyBytes}`,
        Status.badRequest,
      );
      return { id: 0, response: Promise.reject(refused) };
    }
    const id = this.allocateId();
    const waitMs = Math.min(maxTimeoutMs, serverHoldMs(op, bufs) + this.timeoutMs);
    const response = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new StoreTimeoutError(
            `${this.label}: no answer to ${opNames[op] ?? `op ${op}`}${describeKeys(op, bufs)} within ` +
              `${waitMs} ms (connection lost?)`,
            opNames[op] ?? String(op),
            keysOf(op, bufs),
            waitMs,
          ),
        );
      }, waitMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    if (this.phase === 'ready') {
      this.stream.write(this.session ? this.session.sealMessage(op, id, bufs) : encodeFrame(op, id, bufs));
    } else {
      // Not yet welcomed: kept for a replay should the store turn this connection away.
      const body = encodeBody(op, id, bufs);
      this.unconfirmed.push(body);
      if (this.phase === 'welcome') this.stream.write(this.session!.seal(body));
    }
    return { id, response };
  }

  async set(key: string, value: Buffer | string): Promise<void> {
    await this.call(Op.set, [key, value]);
  }

  /** Waits up to timeoutMs for the key to exist and returns its value. */
  async get(key: string, timeoutMs = this.timeoutMs): Promise<Buffer> {
    const res = await this.call(Op.get, [key, wireTimeout(timeoutMs)]);
    if (res.code === Status.notFound) throw this.timeoutError('GET', [key], timeoutMs);
    return res.args[0];
  }

  /** The value if the key exists now, else undefined; never waits. */
  async tryGet(key: string): Promise<Buffer | undefined> {
    const res = await this.call(Op.get, [key, '0']);
    return res.code === Status.ok ? res.args[0] : undefined;
  }

  /** Adds delta to the decimal counter at key (missing counts as 0) and returns the new value. */
  async add(key: string, delta: number | bigint = 1): Promise<number> {
    const res = await this.call(Op.add, [key, BigInt(delta).toString()]);
    return Number(res.args[0].toString());
  }

  /**
   * Sets key to desired if it currently holds expected (null: if it is absent). Returns the value after
   * the operation, or undefined when the key is absent.
   */
  async cas(key: string, expected: Buffer | string | null, desired: Buffer | string): Promise<Buffer | undefined> {
    const res = await this.call(Op.cas, [key, expected ?? '', desired]);
    return res.code === Status.ok ? res.args[0] : undefined;
  }

  /** Waits until every key exists. */
  async wait(keys: string[], timeoutMs = this.timeoutMs): Promise<void> {
    const res = await this.call(Op.wait, [wireTimeout(timeoutMs), ...keys]);
    if (res.code === Status.notFound) throw this.timeoutError('WAIT', keys, timeoutMs);
  }

  /** Deletes the key; true when it existed. */
  async delete(key: string): Promise<boolean> {
    const res = await this.call(Op.delete, [key]);
    return res.args[0]?.toString() === '1';
  }

  /** Returns once `count` callers (over all connections) reached the barrier `name`. */
  async barrier(name: string, count: number, timeoutMs = this.timeoutMs): Promise<void> {
    await this.call(Op.barrier, [name, String(count), wireTimeout(timeoutMs)]);
  }

  /** Whether each key exists now. */
  async check(keys: string[]): Promise<boolean[]> {
    const res = await this.call(Op.check, keys);
    return res.args.map((a) => a.toString() === '1');
  }

  async ping(): Promise<void> {
    await this.call(Op.ping, []);
  }

  /** The job key for worker-to-worker authentication (only the Unix proxy answers this). */
  async jobKey(): Promise<Buffer> {
    return (await this.call(Op.jobKey, [])).args[0];
  }

  /** The attempt and key prefix the proxy applies (only the Unix proxy answers this). */
  async whoami(): Promise<{ attempt: number; prefix: string }> {
    const res = await this.call(Op.whoami, []);
    return { attempt: Number(res.args[0].toString()), prefix: res.args[1].toString() };
  }

  /** Asks the store to answer a blocked request of this connection now, with status "cancelled". */
  async cancel(id: number): Promise<boolean> {
    const res = await this.call(Op.cancel, [String(id)]);
    return res.args[0]?.toString() === '1';
  }

  /** Requests not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  get isOpen(): boolean {
    return this.phase !== 'closed';
  }

  /** Closes the connection; requests in flight fail. Resolves once the stream is closed. */
  async close(): Promise<void> {
    this.closedByUs = true;
    const stream = this.stream;
    stream.end();
    this.shutdown(undefined);
    const grace = setTimeout(() => stream.destroy(), 1000);
    await new Promise<void>((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
    clearTimeout(grace);
  }

  private destroy(): void {
    this.closedByUs = true;
    this.stream.destroy();
    this.shutdown(undefined);
  }

  private async call(op: number, args: (Buffer | string)[]): Promise<Message> {
    const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
    const res = await this.send(op, bufs).response;
    const name = opNames[op] ?? `op ${op}`;
    switch (res.code) {
      case Status.ok:
      case Status.notFound:
        return res;
      case Status.timeout:
        throw this.timeoutError(name, keysOf(op, bufs), serverHoldMs(op, bufs));
      case Status.badRequest:
        throw new StoreRequestError(
          `${this.label}: ${name}${describeKeys(op, bufs)} refused as a bad request`,
          res.code,
        );
      case Status.notAuthorized:
        throw new StoreRequestError(`${this.label}: ${name} is not allowed on this connection`, res.code);
      case Status.cancelled:
        throw new StoreRequestError(`${this.label}: ${name}${describeKeys(op, bufs)} was cancelled`, res.code);
      case Status.overLimit:
        throw new StoreRequestError(
          `${this.label}: ${name}${describeKeys(op, bufs)} refused: ${res.args[0]?.toString() ?? 'over the limit'}`,
          res.code,
        );
      default:
        throw new StoreRequestError(`${this.label}: ${name} answered with unknown status ${res.code}`, res.code);
    }
  }

  private timeoutError(op: string, keys: string[], ms: number): StoreTimeoutError {
    const what =
      op === 'BARRIER'
        ? `at barrier "${keys[0]}"`
        : `waiting for key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`;
    return new StoreTimeoutError(`${this.label}: timed out after ${ms} ms ${what}`, op, keys, ms);
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.add(chunk);
      for (let body = this.reader.next(); body !== undefined; body = this.reader.next()) {
        if (this.phase === 'closed' || this.phase === 'redialing') return;
        this.onBody(body);
      }
    } catch (err) {
      const message = `${this.label}: ${(err as Error).message}`;
      this.failed(
        err instanceof BusyRejectError
          ? new StoreAdmissionError(message)
          : this.auth || this.phase === 'welcome' || err instanceof AuthError
            ? new StoreAuthError(message)
            : new StoreConnectionError(message),
      );
    }
  }

  /** The connection ended or broke. Before the welcome that is an admission failure (worth a retry). */
  private lost(error: Error | undefined): void {
    if (this.phase === 'closed' || this.phase === 'redialing') return;
    if (this.phase === 'welcome' && !this.auth && !this.mayRedial()) {
      // Already handed to the caller, and no time to dial again: an ordinary lost connection.
      this.shutdown(error);
      return;
    }
    if (this.phase === 'challenge' || this.phase === 'welcome') {
      this.failed(
        new StoreAdmissionError(
          `${this.label}: the store closed the connection during authentication` + (error ? ` (${error.message})` : ''),
        ),
      );
      return;
    }
    this.shutdown(error);
  }

  /** Routes a failure: to the handshake in progress, to a redial after an early proof, else closes. */
  private failed(error: Error): void {
    if (this.auth) {
      this.auth.reject(error);
      return;
    }
    if (this.phase === 'welcome' && error instanceof StoreAdmissionError && this.mayRedial()) {
      void this.recover(error);
      return;
    }
    this.shutdown(error);
  }

  /** Whether a connection turned away after an early proof will be dialled again. */
  private mayRedial(): boolean {
    return !!this.redial && !this.closedByUs && Date.now() + retryFirstDelayMs < this.redial.until;
  }

  private onBody(body: Buffer): void {
    switch (this.phase) {
      case 'challenge': {
        const auth = this.auth!;
        const proof = frame(auth.handshake.answerChallenge(body));
        this.session = auth.handshake.session();
        this.phase = 'welcome';
        if (!auth.early) {
          this.stream.write(proof);
          return;
        }
        // The server has proved itself: requests may follow the proof without waiting for the welcome.
        // Corked until the check phase, so the caller's first requests leave in the same segment.
        this.stream.cork();
        this.stream.write(proof);
        for (const request of this.unconfirmed) this.stream.write(this.session.seal(request));
        const stream = this.stream;
        setImmediate(() => stream.uncork());
        this.auth = undefined;
        auth.resolve();
        return;
      }
      case 'welcome': {
        const rejected = rejectOf(body);
        if (rejected) throw rejected;
        const welcome = decodeBody(this.session!.open(body));
        if (welcome.code !== Status.ok || welcome.id !== 0) throw new AuthError('unexpected welcome from the store');
        this.phase = 'ready';
        this.unconfirmed = [];
        this.reader.maxBody = maxBodyBytes + envelopeOverhead;
        const auth = this.auth;
        this.auth = undefined;
        auth?.resolve();
        return;
      }
      case 'ready': {
        const res = decodeBody(this.session ? this.session.open(body) : body);
        const waiting = this.pending.get(res.id);
        if (!waiting) return; // answered after we gave up on it
        this.pending.delete(res.id);
        clearTimeout(waiting.timer);
        waiting.resolve(res);
      }
    }
  }

  private shutdown(error: Error | undefined): void {
    if (this.phase === 'closed') return;
    const wasAuthenticating = this.phase !== 'ready';
    this.phase = 'closed';
    const reason =
      error instanceof StartError
        ? error
        : new StoreConnectionError(`${this.label}: connection closed${error ? `: ${error.message}` : ''}`);
    if (this.auth && wasAuthenticating) {
      this.auth.reject(
        reason instanceof StoreAuthError || reason instanceof StoreAdmissionError
          ? reason
          : new StoreAdmissionError(
              `${this.label}: the store closed the connection during authentication` +
                (error ? ` (${error.message})` : ''),
            ),
      );
    }
    for (const w of this.pending.values()) {
      clearTimeout(w.timer);
      w.reject(reason);
    }
    this.pending.clear();
    this.stream.destroy();
    this.emit('close', this.closedByUs ? undefined : reason);
  }
}

/**
 * Runs `attempt` until it succeeds, fails for a reason other than admission, or `forMs` has passed,
 * pausing with backoff (admission.ts) between tries.
 */
export async function retryAdmission<T>(forMs: number, attempt: () => Promise<T>): Promise<T> {
  const end = Date.now() + forMs;
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      const pause = retryDelayMs(tries);
      if (!(err instanceof StoreAdmissionError) || Date.now() + pause >= end) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function connectSocket(socket: net.Socket, label: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new StoreConnectionError(`cannot reach the ${label} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        err.code === 'ECONNREFUSED'
          ? 'connection refused (is the launcher still running?)'
          : err.code === 'ENOENT'
            ? 'no such socket'
            : err.code === 'ENOTFOUND'
              ? 'host name not found'
              : err.message;
      reject(new StoreConnectionError(`cannot connect to the ${label}: ${why}`));
    });
  });
}

/** Timeouts travel as whole milliseconds within what the store accepts; Infinity means the longest. */
function wireTimeout(ms: number): string {
  if (Number.isNaN(ms)) return '0';
  return String(Math.max(0, Math.min(maxTimeoutMs, Math.round(ms))));
}

function keysOf(op: number, args: readonly Buffer[]): string[] {
  const keys =
    op === Op.wait ? args.slice(1) : op === Op.check ? args : op === Op.ping || op >= Op.cancel ? [] : args.slice(0, 1);
  return keys.map((k) => k.toString());
}

function describeKeys(op: number, args: readonly Buffer[]): string {
  const keys = keysOf(op, args);
  return keys.length ? ` ${keys.map((k) => `"${k}"`).join(', ')}` : '';
}
