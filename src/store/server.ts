/**
 * The rendezvous store's TCP server (in the controller). Each connection must authenticate within
 * authTimeoutMs using tiny frames, then every frame is an authenticated envelope (auth.ts). Any
 * violation closes that one connection; the server and every other connection go on. Who is let in,
 * and who is evicted for whom, is admission.ts's.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { StartError } from '../util/errors.js';
import { PreAuthQueue, handshakeDeadlineMs, listenBacklog, preAuthBudgetFor } from './admission.js';
import {
  RejectReason,
  ServerHandshake,
  VersionMismatchError,
  checkJobKey,
  envelopeOverhead,
  rejectMessage,
  warmUpCrypto,
  type Session,
} from './auth.js';
import { FrameReader, decodeBody, frame, maxBodyBytes, maxPreAuthBodyBytes, type Message } from './frame.js';
import { openFileLimit } from './open-files.js';
import { StoreState, type Requester } from './state.js';

export interface StoreServerOptions {
  /** address to bind; default 127.0.0.1 (the launcher passes rendezvous.addr for multi-node jobs) */
  host?: string;
  /** 0 (default) picks a free port */
  port?: number;
  jobKey: Buffer;
  /** a connection that has not authenticated by then is closed; default handshakeDeadlineMs */
  authTimeoutMs?: number;
  /** connections still authenticating at once; a new one evicts the oldest; default preAuthBudgetFor(limit) */
  maxUnauthenticated?: number;
  /** largest request body after authentication; default 64 MiB */
  maxBodyBytes?: number;
  /** told about every connection closed for a violation (for logs and tests) */
  onViolation?: (reason: string, remote: string) => void;
}

type ResolvedOptions = Required<Omit<StoreServerOptions, 'host' | 'port' | 'onViolation'>> &
  Pick<StoreServerOptions, 'onViolation'>;

export interface StoreServerStats {
  connections: number;
  authenticated: number;
  unauthenticated: number;
  violations: number;
  keys: number;
  blocked: number;
}

export class StoreServer {
  readonly port: number;
  readonly address: string;
  private readonly connections = new Set<Connection>();
  /** every stream served, including ones being refused or closed after a REJECT, so close() ends them all */
  private readonly streams = new Set<Duplex>();
  private readonly unauthenticated: PreAuthQueue<Connection>;
  private violations = 0;
  private readonly state = new StoreState();
  private closing: Promise<void> | undefined;
  /** One timer for the oldest unauthenticated connection's handshake deadline (none while none waits) */
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** What a connection may touch of its server: its counters, the state, the options. */
  private readonly host: ConnectionHost;

  private constructor(
    private readonly server: net.Server | undefined,
    readonly options: Required<Omit<StoreServerOptions, 'host' | 'port' | 'onViolation'>> &
      Pick<StoreServerOptions, 'onViolation'>,
  ) {
    const addr = server?.address();
    this.port = addr && typeof addr === 'object' ? addr.port : 0;
    this.address = addr && typeof addr === 'object' ? addr.address : '';
    this.unauthenticated = new PreAuthQueue(options.maxUnauthenticated);
    this.host = {
      options,
      state: this.state,
      authenticated: (c) => this.unauthenticated.leave(c),
      forget: (c) => this.connections.delete(c),
      violation: (reason, remote) => this.violation(reason, remote),
    };
  }

  /** The address a client on this machine dials: the bound one, or loopback where it is a wildcard. */
  get localHost(): string {
    if (this.address === '0.0.0.0' || this.address === '') return '127.0.0.1';
    if (this.address === '::') return '::1';
    return this.address;
  }

  /** Binds and starts serving. A taken or unusable fixed port is a StartError (exit 3), never a hang. */
  static async start(opts: StoreServerOptions): Promise<StoreServer> {
    try {
      checkJobKey(opts.jobKey);
    } catch (err) {
      throw new StartError(`store: ${(err as Error).message}`);
    }
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 0;
    const tcp = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, host, port)));
      tcp.listen({ host, port, exclusive: true, backlog: listenBacklog }, () => resolve());
    });
    // The first MAC and nonce of a process cost milliseconds (OpenSSL's lazy set-up): pay them now, not
    // on the first agent's handshake.
    warmUpCrypto();
    const server = new StoreServer(tcp, {
      jobKey: Buffer.from(opts.jobKey),
      authTimeoutMs: opts.authTimeoutMs ?? handshakeDeadlineMs,
      maxUnauthenticated: opts.maxUnauthenticated ?? preAuthBudgetFor(openFileLimit()),
      maxBodyBytes: opts.maxBodyBytes ?? maxBodyBytes,
      onViolation: opts.onViolation,
    });
    tcp.removeAllListeners('error');
    tcp.on('error', () => {}); // accept errors (EMFILE...) must not crash the controller
    // The peer's address costs a system call: asked for only when a violation names it.
    tcp.on('connection', (socket) => server.serveStream(socket, () => peerOf(socket)));
    return server;
  }

  /**
   * Serves one already-connected stream exactly like an accepted TCP socket. Used by the TCP listener
   * and by tests that drive many connections without the kernel (the fuzzer). `remote` names the peer
   * to onViolation (a function: asked for only then).
   */
  serveStream(stream: Duplex, remote: string | (() => string) = 'stream'): void {
    if (this.closing) {
      stream.destroy();
      return;
    }
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    const conn = new Connection(this.host, stream, remote);
    this.connections.add(conn);
    // A stranger may cost a slot, never an agent its way in: the oldest unauthenticated one goes.
    this.unauthenticated.admit(conn)?.evict(this.options.maxUnauthenticated);
    this.armDeadline();
  }

  /** Arms the handshake deadline timer for the oldest unauthenticated connection, unless armed already. */
  private armDeadline(): void {
    if (this.deadlineTimer || this.closing) return;
    const oldest = this.unauthenticated.oldestAdmittedAt;
    if (oldest === undefined) return;
    const waitMs = Math.max(1, Math.ceil(oldest + this.options.authTimeoutMs - performance.now()));
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      const { authTimeoutMs } = this.options;
      for (const c of this.unauthenticated.admittedBy(performance.now() - authTimeoutMs)) {
        c.fail(`not authenticated within ${authTimeoutMs} ms`);
      }
      this.armDeadline();
    }, waitMs);
    // The listening server keeps the process alive; this timer need not.
    this.deadlineTimer.unref();
  }

  stats(): StoreServerStats {
    return {
      connections: this.connections.size,
      authenticated: this.connections.size - this.unauthenticated.size,
      unauthenticated: this.unauthenticated.size,
      violations: this.violations,
      keys: this.state.keyCount,
      blocked: this.state.blockedCount,
    };
  }

  /** Stops listening, closes every connection and drops blocked requests. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearTimeout(this.deadlineTimer);
      for (const c of this.connections) c.destroy();
      for (const stream of this.streams) stream.destroy();
      this.state.releaseAll();
      if (this.server) this.server.close(() => resolve());
      else resolve();
    });
    return this.closing;
  }

  private violation(reason: string, remote: string): void {
    this.violations++;
    this.options.onViolation?.(reason, remote);
  }
}

interface ConnectionHost {
  options: ResolvedOptions;
  state: StoreState;
  /** `c` authenticated or closed: it leaves the unauthenticated budget */
  authenticated(c: Connection): void;
  forget(c: Connection): void;
  violation(reason: string, remote: string): void;
}

type Phase = 'hello' | 'proof' | 'ready' | 'closed';

class Connection implements Requester {
  private phase: Phase = 'hello';
  private readonly reader = new FrameReader(maxPreAuthBodyBytes);
  private readonly handshake: ServerHandshake;
  private session: Session | undefined;

  constructor(
    private readonly host: ConnectionHost,
    private readonly stream: Duplex,
    private remoteLabel: string | (() => string),
  ) {
    this.handshake = new ServerHandshake(host.options.jobKey);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', () => {}); // resets and the like end in 'close'
    stream.on('end', () => this.hangUp());
    stream.on('close', () => this.hangUp());
  }

  /** Displaced by a newer unauthenticated connection: told "busy" (a dtrain client tries again). */
  evict(budget: number): void {
    this.reject(RejectReason.busy, `evicted: the oldest of ${budget} connections still authenticating`);
  }

  reply(response: Message): void {
    if (this.phase !== 'ready' || !this.session) return;
    this.send(this.session.sealMessage(response.code, response.id, response.args));
  }

  /** The peer's name for onViolation, worked out once. */
  private get remote(): string {
    if (typeof this.remoteLabel === 'function') this.remoteLabel = this.remoteLabel();
    return this.remoteLabel;
  }

  private send(bytes: Buffer): void {
    const ok = this.stream.write(bytes);
    // A client that stops reading must not make us buffer without bound: stop reading its requests.
    if (!ok && !this.stream.isPaused()) {
      this.stream.pause();
      this.stream.once('drain', () => this.phase !== 'closed' && this.stream.resume());
    }
  }

  destroy(): void {
    this.forget();
    this.stream.destroy();
  }

  /** The peer ended the connection; one that hangs up between HELLO and PROOF failed the handshake. */
  private hangUp(): void {
    if (this.phase === 'proof') this.host.violation('closed after its HELLO without proving the job key', this.remote);
    this.destroy();
  }

  /** Stops counting and serving this connection; the stream itself may still be finishing a REJECT. */
  private forget(): void {
    if (this.phase === 'closed') return;
    this.host.authenticated(this);
    this.phase = 'closed';
    this.host.state.release(this);
    this.host.forget(this);
  }

  private onData(chunk: Buffer): void {
    // The answers to one chunk's requests (the welcome and the first answers, say) leave in one write.
    this.stream.cork();
    try {
      this.reader.add(chunk);
      for (let body = this.reader.next(); body !== undefined; body = this.reader.next()) {
        if (this.phase === 'closed') return;
        this.onBody(body);
      }
    } catch (err) {
      this.stream.uncork(); // what was answered before the bad frame still goes out, then the close
      this.fail((err as Error).message);
    } finally {
      this.stream.uncork();
    }
  }

  private onBody(body: Buffer): void {
    switch (this.phase) {
      case 'hello':
        try {
          this.stream.write(frame(this.handshake.answerHello(body)));
        } catch (err) {
          if (err instanceof VersionMismatchError) return this.reject(RejectReason.version, err.message);
          throw err;
        }
        this.phase = 'proof';
        return;
      case 'proof': {
        let session: Session;
        try {
          session = this.handshake.acceptProof(body);
        } catch (err) {
          return this.reject(RejectReason.auth, (err as Error).message);
        }
        this.session = session;
        this.phase = 'ready';
        this.host.authenticated(this);
        this.reader.maxBody = this.host.options.maxBodyBytes + envelopeOverhead;
        // The welcome proves the server derived the same session keys.
        this.reply({ code: 0, id: 0, args: [] });
        return;
      }
      case 'ready': {
        const request = decodeBody(this.session!.open(body));
        this.host.state.handle(this, request);
        return;
      }
    }
  }

  /** Tells the client why (it can print a clear error), then closes. */
  private reject(reason: number, message: string): void {
    if (this.phase === 'closed') return;
    this.host.violation(message, this.remote);
    this.stream.on('error', () => {});
    this.stream.resume(); // read (and drop) until the peer's end, or its close is never seen
    this.stream.end(frame(rejectMessage(reason)));
    this.forget();
    const stream = this.stream;
    setTimeout(() => stream.destroy(), 200).unref();
  }

  /** Closes the connection for a violation (a broken frame, a handshake past its deadline). */
  fail(reason: string): void {
    if (this.phase === 'closed') return;
    this.host.violation(reason, this.remote);
    this.destroy();
  }
}

function peerOf(socket: net.Socket): string {
  // Once the socket is closed its address is gone (a reset before the violation was noticed, say).
  return socket.remoteAddress === undefined ? 'a peer already gone' : `${socket.remoteAddress}:${socket.remotePort}`;
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): StartError {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartError(
        `store: cannot listen on ${where}: the port is already in use (choose another rendezvous.port, or "auto")`,
      );
    case 'EACCES':
      return new StartError(`store: cannot listen on ${where}: permission denied (ports below 1024 need privileges)`);
    case 'EADDRNOTAVAIL':
      return new StartError(
        `store: cannot listen on ${where}: the address is not on this machine (check rendezvous.addr)`,
      );
    default:
      return new StartError(`store: cannot listen on ${where}: ${err.message}`);
  }
}
