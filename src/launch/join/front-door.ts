/**
 * The port the joining agents dial. The store itself listens privately on loopback (the controller's own
 * connections use that); this listener hands every agent connection to it unchanged
 * (StoreServer.serveStream) and watches one thing the store does not report: a client that sends its
 * HELLO and then hangs up without a PROOF. A dtrain client does exactly that when the store's proof does
 * not match its key (store/PROTOCOL.md: it closes so a fake store never gets a client proof), so during
 * the join such a connection is an agent with another secret file, and the controller can fail at once
 * instead of at its rendezvous timeout. It also tells the join spawner when an agent's connection closes,
 * so an agent that dies is lost at once rather than after heartbeat.timeout.
 */
import net from 'node:net';
import { protocolVersion } from '../../store/auth.js';
import { StartError } from '../../util/errors.js';

/** A HELLO frame: len:u32be = 37, "DTS", kind 1, version, nonce[32]. */
const helloFrameBytes = 4 + 37;

export interface FrontDoor {
  port: number;
  close(): Promise<void>;
}

export interface FrontDoorOptions {
  host: string;
  port: number;
  serve: (socket: net.Socket, remote: string) => void;
  /** a client sent HELLO and closed before proving the key: it holds another one */
  onOtherKey: (remoteAddress: string) => void;
  /** any connection closed, named `address:port` as connectionName() names it */
  onClose?: (connection: string) => void;
}

/** `address:port` of one end of a connection, IPv4 peers of dual-stack sockets without `::ffff:`. */
export function connectionName(address: string, port: number): string {
  return `${plain(address)}:${port}`;
}

export async function openFrontDoor(opts: FrontDoorOptions): Promise<FrontDoor> {
  const server = net.createServer({ noDelay: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, opts.host, opts.port)));
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', () => {}); // accept errors (EMFILE...) must not take the controller down
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    const head: Buffer[] = [];
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      if (received < helloFrameBytes + 1) head.push(chunk);
      received += chunk.length;
    });
    socket.once('close', () => {
      sockets.delete(socket);
      if (received === helloFrameBytes && isHello(Buffer.concat(head)))
        opts.onOtherKey(plain(socket.remoteAddress ?? '?'));
      opts.onClose?.(connectionName(socket.remoteAddress ?? '?', socket.remotePort ?? 0));
    });
    opts.serve(socket, `${socket.remoteAddress}:${socket.remotePort}`);
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Which agent connections have closed, for handlers registered before or after the close. */
export class ClosedConnections {
  private readonly closed = new Set<string>();
  private readonly handlers = new Map<string, () => void>();

  closedNow(name: string): void {
    this.closed.add(name);
    this.handlers.get(name)?.();
  }

  /** `handler` runs once when `name` closes, at once (next tick) if it already has. */
  onClose(name: string, handler: () => void): void {
    this.handlers.set(name, handler);
    if (this.closed.has(name)) queueMicrotask(handler);
  }
}

function isHello(b: Buffer): boolean {
  return (
    b.length === helloFrameBytes &&
    b.readUInt32BE(0) === 37 &&
    b.toString('latin1', 4, 7) === 'DTS' &&
    b[7] === 1 &&
    b[8] === protocolVersion
  );
}

function plain(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): StartError {
  const where = `${host}:${port}`;
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is already in use'
      : err.code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges)'
        : err.code === 'EADDRNOTAVAIL'
          ? 'the address is not on this machine (check rendezvous.addr)'
          : err.message;
  return new StartError(
    `cannot listen for joining agents on ${where}: ${why}; join mode needs the port the agents were given ` +
      `(rendezvous.port)`,
  );
}
