/**
 * The SSH spawner: one ssh2 connection and one `dtrain agent` per remote node, started in parallel within the
 * handshake limits. Either every agent is up (connected, version checked, store reachable) or the launch
 * fails with a StartError listing one line per failed host, after closing every connection it opened: an
 * agent whose stdin closes exits, so nothing is left running anywhere.
 *
 * What the controller does with the result: send its first message (plan, env, job secret) on each agent's
 * stdin, read agent messages from stdout, relay stderr, and watch `exited` and `lost` (the SSH connection
 * itself dying: keepalives unanswered, network cut). `close()` ends stdin (the agent's "controller gone"
 * signal) and then the connection.
 */
import { StartError } from '../../util/errors.js';
import { packageVersion } from '../../util/version.js';
import { startAgentChannel, type AgentChannel } from './agent-channel.js';
import { connect, JumpPool, type SshConnection } from './connect.js';
import { KnownHostsFile } from './known-hosts.js';
import { HandshakeLimits } from './limiter.js';
import type { PreDials } from './pre-dial.js';
import type { RemoteLaunch } from './remote-command.js';
import { loadUserSshConfig } from './ssh-config.js';
import { forwardStore, type StoreEndpoint } from './store-forward.js';
import { resolveTarget, type SshSettings, type SshTarget } from './target.js';

export interface SshNode {
  node_rank: number;
  host: string;
  user?: string;
  port?: number;
}

export interface SshLaunchRequest {
  nodes: SshNode[];
  settings: SshSettings;
  /** the job's working directory on every node */
  workdir: string;
  /** the store's listener on the controller (what forwarded connections are piped to) */
  store: StoreEndpoint;
  /** `rendezvous.addr` when set: agents dial the store directly at this address, no forwarding */
  directStore?: StoreEndpoint;
  /** how long to wait for each agent's hello (covers ssh.prelude) */
  helloTimeoutMs: number;
  /** SSH keepalive period; a connection is lost after `keepaliveCountMax` unanswered ones */
  keepaliveIntervalMs: number;
  keepaliveCountMax?: number;
  /** ~/.ssh/config to read (default: the user's) */
  sshConfigPath?: string;
  /** TCP connections dialled before ssh2 loaded (pre-dial.ts): taken instead of dialling */
  preDialed?: PreDials;
  /** the controller's version (default: this package's) */
  version?: string;
  /**
   * The first message for an agent (its spec), sent right behind the hello (agent-channel.ts `pipelined`)
   * once the store address for that node is known. `targets`: every node's resolved target, by node rank.
   */
  firstMessage?(agent: StartingAgent, targets: ReadonlyMap<number, SshTarget>): string;
}

/** What is known of an agent when its first message is written. */
export interface StartingAgent {
  node: SshNode;
  target: SshTarget;
  storeAddr: StoreEndpoint;
  /** this machine's address on the connection to that node (absent through ProxyJump) */
  localAddress?: string;
}

export interface RemoteAgent extends AgentChannel {
  node: SshNode;
  target: SshTarget;
  /** the store address the agent on that node must dial */
  storeAddr: StoreEndpoint;
  /** this machine's address on the connection to that node (absent through ProxyJump): a route back */
  localAddress?: string;
  /**
   * resolves when the SSH connection drops (before close() was called): a one-line reason, and how long the
   * host had been silent when that was noticed (unanswered keepalives; absent when the connection closed)
   */
  lost: Promise<{ why: string; silentMs?: number }>;
  close(): void;
}

/** Opens everything or nothing. */
export async function startSshAgents(req: SshLaunchRequest): Promise<RemoteAgent[]> {
  const blocks = loadUserSshConfig(req.sshConfigPath);
  const version = req.version ?? packageVersion();
  const knownHostsFiles = new Map<string, Promise<KnownHostsFile>>();
  const loadKnownHosts = (path: string) => {
    let file = knownHostsFiles.get(path);
    if (!file) knownHostsFiles.set(path, (file = KnownHostsFile.load(path)));
    return file;
  };
  const limits = new HandshakeLimits(req.settings.concurrency);
  const launch: RemoteLaunch = {
    prelude: req.settings.prelude ?? '',
    workdir: req.workdir,
    dtrain: req.settings.remote_dtrain ?? '',
  };
  const opened: SshConnection[] = [];
  const jumps = new JumpPool();
  // Resolved up front, for firstMessage (MASTER_ADDR names node 0 as SSH dials it); a node whose target
  // does not resolve is resolved again in startOne, which fails with its own line.
  const targets = new Map<number, SshTarget>();
  for (const node of req.nodes) {
    try {
      targets.set(node.node_rank, resolveTarget(node, req.settings, blocks));
    } catch {
      // reported by startOne
    }
  }

  const startOne = async (node: SshNode): Promise<RemoteAgent> => {
    const target = targets.get(node.node_rank) ?? resolveTarget(node, req.settings, blocks);
    const keepaliveCountMax = req.keepaliveCountMax ?? 3;
    const conn = await limits.run(`${target.hostName}:${target.port}`, () =>
      connect(
        target,
        {
          strict: req.settings.strict_host_key_checking,
          knownHosts: loadKnownHosts,
          timeoutMs: req.settings.connect_timeout_ms,
          keepaliveIntervalMs: req.keepaliveIntervalMs,
          keepaliveCountMax,
          ...(req.preDialed ? { preDialed: (host: string, port: number) => req.preDialed!.take(host, port) } : {}),
        },
        jumps,
      ),
    );
    opened.push(conn);
    let closing = false;
    const lost = new Promise<{ why: string; silentMs?: number }>((resolve) => {
      conn.client.on('error', (err: Error & { level?: string }) => {
        if (closing) return;
        if (err.level === 'client-timeout')
          resolve({
            why: 'SSH keepalives unanswered',
            silentMs: req.keepaliveIntervalMs * (req.keepaliveCountMax ?? 3),
          });
        else resolve({ why: `SSH connection error: ${err.message}` });
      });
      conn.client.on('close', () => {
        if (!closing) resolve({ why: 'SSH connection closed' });
      });
    });
    const sock = (conn.client as unknown as { _sock?: { localAddress?: string } })._sock;
    const localAddress = sock?.localAddress;
    // The forward and the agent's start are independent round trips: overlap them.
    const forwarded = req.directStore ? Promise.resolve(req.directStore) : forwardStore(conn, req.store);
    const first = req.firstMessage
      ? forwarded.then((storeAddr) =>
          req.firstMessage!({ node, target, storeAddr, ...(localAddress ? { localAddress } : {}) }, targets),
        )
      : undefined;
    // `first` too: a spec that cannot be built fails this node's start instead of leaving its agent waiting
    const [storeAddr, channel] = await Promise.all([
      forwarded,
      startAgentChannel(conn, launch, version, req.helloTimeoutMs, first),
      first,
    ]);
    return {
      ...channel,
      node,
      target,
      storeAddr,
      ...(localAddress ? { localAddress } : {}),
      lost,
      close() {
        closing = true;
        channel.stdin.end();
        conn.close();
      },
    };
  };

  const results = await Promise.allSettled(req.nodes.map(startOne));
  // Every node has been dialled, or has failed before it could be: nothing ahead is left to take.
  req.preDialed?.close();
  const failures = results.flatMap((r, i) =>
    r.status === 'rejected' ? [{ node: req.nodes[i], err: r.reason as unknown }] : [],
  );
  if (failures.length === 0) return results.map((r) => (r as PromiseFulfilledResult<RemoteAgent>).value);

  for (const r of results) if (r.status === 'fulfilled') r.value.close();
  for (const c of opened) c.close();
  const lines = failures.map(({ node, err }) =>
    err instanceof StartError ? err.message : `${node.host}: ${err instanceof Error ? err.message : String(err)}`,
  );
  if (lines.length === 1) throw new StartError(lines[0]);
  throw new StartError(`could not start on ${lines.length} of ${req.nodes.length} nodes:\n  ${lines.join('\n  ')}`);
}
