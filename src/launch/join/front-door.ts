/**
 * The port the joining agents dial. The store itself listens privately on loopback (the controller's own
 * connections use that); this listener hands every agent connection to it unchanged
 * (StoreServer.serveStream), whose admission decides who stays. A failed handshake costs the job
 * nothing: anyone can send a HELLO and hang up, so that is no proof of an agent with another secret (the
 * store reports it as a violation, named at the rendezvous timeout; such an agent sees the store's proof
 * fail on its side and exits 3 saying so). This listener also tells the join spawner when an agent's
 * connection closes, so an agent that dies is lost at once rather than after heartbeat.timeout.
 */
import net from 'node:net';
import { listenBacklog } from '../../store/admission.js';
import { StartError } from '../../util/errors.js';

export interface FrontDoor {
  port: number;
  close(): Promise<void>;
}

export interface FrontDoorOptions {
  host: string;
  port: number;
  serve: (socket: net.Socket, remote: string) => void;
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
    // The store's backlog: agents joining together wait in the kernel, not evicted (store/PROTOCOL.md).
    server.listen({ host: opts.host, port: opts.port, exclusive: true, backlog: listenBacklog }, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', () => {}); // accept errors (EMFILE...) must not take the controller down
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
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

  has(name: string): boolean {
    return this.closed.has(name);
  }

  /** `handler` runs once when `name` closes, at once (next tick) if it already has. */
  onClose(name: string, handler: () => void): void {
    this.handlers.set(name, handler);
    if (this.closed.has(name)) queueMicrotask(handler);
  }
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
