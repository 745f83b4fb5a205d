/**
 * One authenticated ssh2 connection to a target, through its ProxyJump hops if any. Every way this can fail
 * becomes a StartError (exit 3) whose one line names the host and says what to do.
 */
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { Client, type AnyAuthMethod, type ConnectConfig } from 'ssh2';
import { StartError } from '../../util/errors.js';
import { hostKeyName, type KnownHostsFile } from './known-hosts.js';
import { describeTarget, type SshTarget, type StrictHostKeyChecking } from './target.js';

export interface ConnectOptions {
  strict: StrictHostKeyChecking;
  /** known_hosts files by path, loaded once per launch and shared by every connection */
  knownHosts: (path: string) => Promise<KnownHostsFile>;
  timeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** a TCP connection to host:port dialled ahead (pre-dial.ts), for a target without ProxyJump */
  preDialed?: (hostName: string, port: number) => Duplex | undefined;
}

/** The connection plus the hops it runs through (closed with it). */
export interface SshConnection {
  client: Client;
  target: SshTarget;
  close(): void;
}

const hostKeyAlgorithms = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms with the ones known_hosts already has for the host first (as OpenSSH orders them). */
function preferredHostKeyAlgorithms(known: string[]): string[] {
  const wanted = new Set<string>();
  for (const t of known) {
    if (t === 'ssh-rsa') ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].forEach((a) => wanted.add(a));
    else if (hostKeyAlgorithms.includes(t)) wanted.add(t);
  }
  return [...wanted, ...hostKeyAlgorithms.filter((a) => !wanted.has(a))];
}

function authMethods(target: SshTarget): { methods: AnyAuthMethod[]; tried: string[]; unreadable: string[] } {
  const methods: AnyAuthMethod[] = [];
  const tried: string[] = [];
  const unreadable: string[] = [];
  for (const file of target.identityFiles) {
    let key: Buffer;
    try {
      key = readFileSync(file);
    } catch {
      unreadable.push(file);
      continue;
    }
    methods.push({ type: 'publickey', username: target.user, key });
    tried.push(file);
  }
  if (target.agentSocket) {
    methods.push({ type: 'agent', username: target.user, agent: target.agentSocket });
    tried.push('ssh-agent');
  }
  return { methods, tried, unreadable };
}

function classify(
  err: Error & { code?: string | number; level?: string },
  target: SshTarget,
  timeoutMs: number,
): string {
  const where = `${target.hostName}:${target.port}`;
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `cannot resolve host name ${target.hostName}`;
    case 'ECONNREFUSED':
      return `connection refused by ${where} (is sshd running on port ${target.port}?)`;
    case 'ETIMEDOUT':
      return `connection to ${where} timed out after ${timeoutMs / 1000}s (ssh.connect_timeout)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route to ${where}`;
    case 'ECONNRESET':
      return `connection to ${where} was reset during the SSH handshake (sshd MaxStartups or a firewall?)`;
  }
  if (/Connection lost before handshake/.test(err.message)) {
    return `${where} closed the connection before the SSH handshake (sshd MaxStartups exceeded, or not an SSH server?)`;
  }
  if (err.level === 'client-timeout')
    return `SSH handshake with ${where} timed out after ${timeoutMs / 1000}s (ssh.connect_timeout)`;
  return `SSH connection to ${where} failed: ${err.message}`;
}

function verifyHostKey(
  target: SshTarget,
  opts: ConnectOptions,
  file: KnownHostsFile,
  key: Buffer,
  refuse: (reason: string) => void,
): boolean | Promise<boolean> {
  if (opts.strict === 'no') return true;
  const primary = hostKeyName(target.hostName, target.port);
  const names = [primary, ...(target.alias !== target.hostName ? [hostKeyName(target.alias, target.port)] : [])];
  const verdict = file.check(names, key);
  switch (verdict.kind) {
    case 'match':
      return true;
    case 'revoked':
      refuse(`host key of ${primary} is marked @revoked in ${file.path}:${verdict.line}; refusing to connect`);
      return false;
    case 'changed':
      refuse(
        `HOST KEY CHANGED for ${primary}: it does not match ${file.path}:${verdict.line} (a reinstalled ` +
          `host, or someone ` +
          `intercepting the connection); check it, then remove that line to accept the new key`,
      );
      return false;
    case 'unknown':
      if (opts.strict === 'accept-new') return file.add(primary, key).then(() => true);
      refuse(
        `host key of ${primary} is not in ${file.path} (strict_host_key_checking: yes)` +
          (verdict.otherTypes.length ? `; only ${verdict.otherTypes.join(', ')} keys are known for it` : '') +
          `; add it (ssh-keyscan ${target.port === 22 ? '' : `-p ${target.port} `}${target.hostName} >> ` +
          `${file.path}, after checking it) ` +
          `or set ssh.strict_host_key_checking: accept-new`,
      );
      return false;
  }
}

async function knownHostsFor(target: SshTarget, opts: ConnectOptions): Promise<KnownHostsFile> {
  // Several files may be configured (known_hosts, known_hosts2): verify against the first that knows the
  // host; an unknown host is recorded in the first file.
  const files = await Promise.all(target.knownHostsFiles.map((p) => opts.knownHosts(p)));
  const names = [hostKeyName(target.hostName, target.port)];
  return files.find((f) => f.keyTypes(names).length > 0) ?? files[0];
}

/**
 * `sock`: the stream to a ProxyJump hop's forward, or 'pre-dialed' for a direct target whose TCP connection
 * the launch may have dialled ahead (taken at the last moment, so a socket that failed meanwhile is never
 * handed over: ssh2 dials afresh and reports that attempt's error); absent: ssh2 dials.
 */
function connectOne(target: SshTarget, opts: ConnectOptions, sock?: Duplex | 'pre-dialed'): Promise<Client> {
  return new Promise((resolve, reject) => {
    void (async () => {
      let file: KnownHostsFile;
      try {
        file = await knownHostsFor(target, opts);
      } catch (err) {
        reject(new StartError(`cannot read known_hosts: ${(err as Error).message}`, target.alias));
        return;
      }
      const client = new Client();
      let refusal: string | undefined;
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.removeAllListeners('ready');
        client.on('error', () => undefined);
        client.destroy();
        reject(new StartError(message, target.alias));
      };
      // ssh2's readyTimeout starts after the TCP connect; a black-holed address would wait for the kernel
      // (minutes), so one timer covers connect + handshake + authentication.
      const timer = setTimeout(
        () =>
          fail(
            `connection to ${target.hostName}:${target.port} timed out after ${opts.timeoutMs / 1000}s ` +
              `(ssh.connect_timeout)`,
          ),
        opts.timeoutMs,
      );
      const { methods, tried, unreadable } = authMethods(target);
      if (methods.length === 0) {
        fail(
          `no SSH identity to offer as ${target.user}` +
            (unreadable.length ? ` (cannot read ${unreadable.join(', ')})` : '') +
            '; set ssh.identity_file or start ssh-agent (SSH_AUTH_SOCK)',
        );
        return;
      }
      const queue = [...methods];
      const config: ConnectConfig = {
        host: target.hostName,
        port: target.port,
        username: target.user,
        readyTimeout: opts.timeoutMs,
        keepaliveInterval: opts.keepaliveIntervalMs,
        keepaliveCountMax: opts.keepaliveCountMax,
        algorithms: {
          serverHostKey: preferredHostKeyAlgorithms(
            file.keyTypes([hostKeyName(target.hostName, target.port)]),
          ) as never,
        },
        authHandler: (_left, _partial, next) => {
          const method = queue.shift();
          next(method ?? (false as never));
        },
        hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
          const result = verifyHostKey(target, opts, file, key, (reason) => (refusal = reason));
          if (typeof result === 'boolean') verify(result);
          else
            result.then(verify, (err: Error) => {
              refusal = `cannot record the host key in ${file.path}: ${err.message}`;
              verify(false);
            });
        },
      };
      const given = sock === 'pre-dialed' ? opts.preDialed?.(target.hostName, target.port) : sock;
      if (given) config.sock = given;
      client.on('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(client);
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (refusal) return fail(refusal);
        if (err.level === 'client-authentication') {
          return fail(
            `authentication as ${target.user} failed (tried ${tried.join(', ')})` +
              (unreadable.length ? `; could not read ${unreadable.join(', ')}` : ''),
          );
        }
        fail(classify(err, target, opts.timeoutMs));
      });
      client.on('close', () =>
        fail(refusal ?? `${target.hostName}:${target.port} closed the connection during the SSH handshake`),
      );
      client.connect(config);
      // The channels carry small request/response frames (store RPCs, agent messages): Nagle plus the
      // peer's delayed ACK would hold some of them back 40 ms each.
      client.setNoDelay(true);
    })();
  });
}

/**
 * A polite end (SSH disconnect, then FIN), then a hard close: to a host whose network is gone the FIN is
 * never answered, and the half-closed socket would keep the controller alive for minutes.
 */
function endSoon(client: Client): void {
  client.end();
  setTimeout(() => client.destroy(), 1000).unref();
}

/**
 * Connections to ProxyJump hosts, shared by every node behind them (as OpenSSH's ControlMaster would): 100
 * nodes behind one bastion make one connection to it, not 100 handshakes against its MaxStartups.
 * Keyed by the whole path to the hop; closed when the last node using it closes.
 */
export class JumpPool {
  private readonly hops = new Map<string, { client: Promise<Client>; refs: number }>();

  acquire(key: string, open: () => Promise<Client>): Promise<Client> {
    let hop = this.hops.get(key);
    if (!hop) {
      hop = { client: open(), refs: 0 };
      this.hops.set(key, hop);
      // A failed hop is not cached: a later launch may find it up again.
      hop.client.catch(() => this.hops.delete(key));
    }
    hop.refs++;
    return hop.client;
  }

  release(key: string): void {
    const hop = this.hops.get(key);
    if (!hop || --hop.refs > 0) return;
    this.hops.delete(key);
    hop.client.then(endSoon, () => undefined);
  }
}

function forward(client: Client, via: SshTarget, next: SshTarget, alias: string): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) =>
    client.forwardOut('127.0.0.1', 0, next.hostName, next.port, (err, stream) =>
      err
        ? reject(
            new StartError(
              `ProxyJump ${via.alias} could not reach ${next.hostName}:${next.port}: ${err.message}`,
              alias,
            ),
          )
        : resolve(stream),
    ),
  );
}

/** Connects to `target`, hopping through its ProxyJump chain with ssh2 forwarding (no ssh binary needed). */
export async function connect(target: SshTarget, opts: ConnectOptions, pool = new JumpPool()): Promise<SshConnection> {
  const held: string[] = [];
  let client: Client | undefined;
  const closeAll = () => {
    if (client) endSoon(client);
    for (const key of held.reverse()) pool.release(key);
  };
  try {
    let sock: Duplex | undefined;
    let path = '';
    let previous: Client | undefined;
    let previousHop: SshTarget | undefined;
    for (const hop of target.jumps) {
      path += `>${hop.user}@${hop.hostName}:${hop.port}`;
      const via = previous;
      const viaHop = previousHop;
      held.push(path);
      previous = await pool
        .acquire(path, async () =>
          connectOne(hop, opts, via && viaHop ? await forward(via, viaHop, hop, target.alias) : undefined),
        )
        .catch((err: StartError) => {
          if (err.host === target.alias) throw err;
          const inner = err.host ? err.message.slice(err.host.length + 2) : err.message;
          throw new StartError(`via ProxyJump ${describeTarget(hop)}: ${inner}`, target.alias);
        });
      previousHop = hop;
    }
    if (previous && previousHop) sock = await forward(previous, previousHop, target, target.alias);
    // A start that fails before ssh2 owns the socket (no identity, unreadable known_hosts) must close it.
    client = await connectOne(target, opts, sock ?? 'pre-dialed').catch((err: unknown) => {
      sock?.destroy();
      throw err;
    });
    return { client, target, close: closeAll };
  } catch (err) {
    closeAll();
    throw err;
  }
}
