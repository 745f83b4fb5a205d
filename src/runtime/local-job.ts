/**
 * Runs a small job on this machine the way dtrain launch does, for `dtrain bench` and the benchmarks:
 * a StoreServer, one StoreProxy per simulated node (a 0700 folder each), and worker processes with the
 * worker environment contract. Locality comes from DTRAIN_NODE_RANK, so several simulated nodes on one
 * machine exercise the TCP and hierarchical paths over loopback.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreClient, StoreProxy, StoreServer } from '../store/index.js';

export interface LocalJobOptions {
  /** processes per simulated node */
  nodes: number[];
  argv: string[];
  env?: Record<string, string>;
  /** called with each rank's stdout chunks (stderr is inherited) */
  onStdout?: (rank: number, chunk: string) => void;
  /** once every rank has exited, before the store closes: read what the workers left there */
  onFinished?: (store: StoreClient) => Promise<void>;
}

export interface LocalRankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LocalStores {
  /** DTRAIN_STORE for each simulated node's workers: unix:<its proxy's socket> */
  addresses: string[];
  /** node 0's upstream connection, to read what the workers left in the store */
  store: StoreClient;
}

/**
 * Runs `use` with a StoreServer and one StoreProxy per simulated node (a 0700 folder each), all closed and
 * removed after. `proxyKey` is the job key a node's proxy hands its workers (default: the job's).
 */
export async function withLocalStores<T>(
  nodes: number,
  use: (stores: LocalStores) => Promise<T>,
  proxyKey: (node: number, jobKey: Buffer) => Buffer = (_node, jobKey) => jobKey,
): Promise<T> {
  const jobKey = randomBytes(32);
  const server = await StoreServer.start({ jobKey });
  const dirs: string[] = [];
  const proxies: StoreProxy[] = [];
  const upstreams: StoreClient[] = [];
  try {
    for (let n = 0; n < nodes; n++) {
      const dir = mkdtempSync(join(tmpdir(), `dtrain-local-n${n}-`));
      dirs.push(dir);
      const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
      upstreams.push(upstream);
      proxies.push(
        await StoreProxy.start({ upstream, dir: join(dir, 'proxy'), attempt: 0, jobKey: proxyKey(n, jobKey) }),
      );
    }
    return await use({ addresses: proxies.map((p) => `unix:${p.socketPath}`), store: upstreams[0] });
  } finally {
    for (const p of proxies) await p.close();
    for (const u of upstreams) await u.close();
    await server.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

export interface LocalRank {
  rank: number;
  env: Record<string, string>;
}

/** Each rank of a job of `nodes` (processes per simulated node), in rank order, with its contract variables. */
export function localRanks(nodes: readonly number[], addresses: readonly string[]): LocalRank[] {
  const world = nodes.reduce((a, b) => a + b, 0);
  const ranks: LocalRank[] = [];
  for (let n = 0; n < nodes.length; n++) {
    for (let local = 0; local < nodes[n]; local++) {
      const rank = ranks.length;
      ranks.push({
        rank,
        env: {
          RANK: String(rank),
          WORLD_SIZE: String(world),
          LOCAL_RANK: String(local),
          LOCAL_WORLD_SIZE: String(nodes[n]),
          GROUP_RANK: String(n),
          DTRAIN_NODE_RANK: String(n),
          DTRAIN_STORE: addresses[n],
          DTRAIN_BACKEND: 'cpu',
        },
      });
    }
  }
  return ranks;
}

export async function runLocalJob(opts: LocalJobOptions): Promise<LocalRankExit[]> {
  return withLocalStores(opts.nodes.length, async ({ addresses, store }) => {
    const ranks = localRanks(opts.nodes, addresses);
    // The addon sizes its spin from LOCAL_WORLD_SIZE, which counts one simulated node only: with more
    // ranks than cores on this machine, spinning ranks would take the cores the others need.
    const noSpin: Record<string, string> =
      ranks.length > availableParallelism() && process.env.DTRAIN_SPIN === undefined ? { DTRAIN_SPIN: '0' } : {};
    const exits = ranks.map(
      ({ rank, env }) =>
        new Promise<LocalRankExit>((resolve) => {
          const child = spawn(opts.argv[0], opts.argv.slice(1), {
            env: { ...(process.env as Record<string, string>), ...env, ...noSpin, ...(opts.env ?? {}) },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          child.stdout.setEncoding('utf8');
          child.stdout.on('data', (c: string) => opts.onStdout?.(rank, c));
          child.on('close', (code, signal) => resolve({ rank, code, signal }));
        }),
    );
    const done = await Promise.all(exits);
    await opts.onFinished?.(store);
    return done;
  });
}
