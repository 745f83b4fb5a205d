/**
 * The controller's small HTTP server (node:http): on a Unix socket in the run registry's 0700 folder for
 * `dtrain status`/`top` and other local commands, and, with `monitor`, on TCP for a browser or Prometheus.
 * Both listen with the same request handler over the same route table (control-routes.ts); TCP with a
 * token requires it (`Authorization: Bearer <token>` or `?token=`), the socket relies on its folder.
 */
import { timingSafeEqual } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ControlRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Buffer;
}

export interface ControlReply {
  status?: number;
  /** content type; JSON when absent */
  type?: string;
  body: string | Buffer;
}

export type RouteHandler = (req: ControlRequest) => ControlReply | Promise<ControlReply>;
/** `"GET /api/status"` → handler: the one table of what the server answers. */
export type Routes = Record<string, RouteHandler>;

/** Request bodies (commands, not uploads) are small. */
const MAX_BODY = 1 << 20;

export function jsonReply(doc: unknown, status = 200): ControlReply {
  return { status, type: 'application/json', body: JSON.stringify(doc) + '\n' };
}

export function controlHandler(routes: Routes, token?: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (r: ControlReply) => {
      res.writeHead(r.status ?? 200, {
        'content-type': r.type ?? 'application/json',
        'cache-control': 'no-store',
      });
      res.end(r.body);
    };
    if (token !== undefined && !authorized(req, url, token)) return send(jsonReply({ error: 'unauthorized' }, 401));
    const handler = routes[`${req.method ?? 'GET'} ${url.pathname}`];
    if (!handler) {
      const known = Object.keys(routes).some((k) => k.endsWith(` ${url.pathname}`));
      return send(jsonReply({ error: known ? 'method not allowed' : 'not found' }, known ? 405 : 404));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const query = url.searchParams;
      query.delete('token');
      Promise.resolve()
        .then(() => handler({ method: req.method ?? 'GET', path: url.pathname, query, body: Buffer.concat(chunks) }))
        .then(send, (err: Error) => send(jsonReply({ error: err.message }, 500)));
    });
  };
}

function authorized(req: IncomingMessage, url: URL, token: string): boolean {
  const header = req.headers.authorization;
  const given = header?.startsWith('Bearer ') ? header.slice(7) : (url.searchParams.get('token') ?? '');
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    private readonly socketPath?: string,
  ) {}

  /** On a Unix socket (a stale file of a dead run at that path is replaced). */
  static async listenUnix(path: string, routes: Routes): Promise<ControlServer> {
    rmSync(path, { force: true });
    const server = createServer(controlHandler(routes));
    await listen(server, (cb) => server.listen(path, cb));
    return new ControlServer(server, path);
  }

  /** On TCP: port 0 picks a free one. */
  static async listenTcp(host: string, port: number, routes: Routes, token?: string): Promise<ControlServer> {
    const server = createServer(controlHandler(routes, token));
    await listen(server, (cb) => server.listen(port, host, cb));
    return new ControlServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }
}

function listen(server: Server, start: (cb: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    start(() => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A request to a run's control socket: the reply's status and body. */
export function callControl(
  socketPath: string,
  method: string,
  path: string,
  opts: { body?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer from ${socketPath}`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
