/**
 * Runs N real worker processes the way dtrain launch will: a StoreServer, one StoreProxy per simulated
 * node (each with its own 0700 folder and upstream connection), and workers spawned with the worker
 * environment contract. Several "nodes" live on this one machine; locality comes from DTRAIN_NODE_RANK,
 * so the TCP and hierarchical paths run over loopback.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localRanks, withLocalStores } from '../../src/runtime/local-job.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', 'collectives', name);

export interface WorkerResult {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the last line of stdout parsed as JSON, when it is JSON */
  report?: any;
}

export interface HarnessOptions {
  /** processes per simulated node, e.g. [2, 2] for two nodes of two */
  nodes: number[];
  script: string;
  args?: string[];
  /** extra environment for every worker, or per rank */
  env?: Record<string, string> | ((rank: number) => Record<string, string>);
  parallelism?: { tensor?: number; pipeline?: number };
  /** whole-run limit; workers still running then are killed (SIGKILL) and reported */
  timeoutMs?: number;
  /** this node's proxy hands its workers a different job key (an impostor for the peer handshake) */
  wrongPeerKeyOnNode?: number;
}

export async function runWorkers(opts: HarnessOptions): Promise<WorkerResult[]> {
  const proxyKey = (node: number, jobKey: Buffer) => (opts.wrongPeerKeyOnNode === node ? randomBytes(32) : jobKey);
  return withLocalStores(
    opts.nodes.length,
    async ({ addresses }) => {
      const ranks = localRanks(opts.nodes, addresses);
      const world = ranks.length;
      const tp = opts.parallelism?.tensor ?? 1,
        pp = opts.parallelism?.pipeline ?? 1,
        dp = world / (tp * pp);
      const runs = ranks.map(({ rank, env: contract }) => {
        const extra = typeof opts.env === 'function' ? opts.env(rank) : (opts.env ?? {});
        const env: Record<string, string> = {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ...contract,
          DTRAIN_RUN_ID: 'test',
          DTRAIN_TENSOR_SIZE: String(tp),
          DTRAIN_PIPELINE_SIZE: String(pp),
          DTRAIN_DATA_SIZE: String(dp),
          DTRAIN_TENSOR_RANK: String(rank % tp),
          DTRAIN_DATA_RANK: String(Math.floor(rank / tp) % dp),
          DTRAIN_PIPELINE_RANK: String(Math.floor(rank / (tp * dp))),
          DTRAIN_RENDEZVOUS_TIMEOUT: '30s',
          // another build of the addon under test (a debug or sanitizer build), when one is named
          ...(process.env.DTRAIN_ADDON ? { DTRAIN_ADDON: process.env.DTRAIN_ADDON } : {}),
          ...extra,
        };
        return runOne(rank, opts.script, opts.args ?? [], env, opts.timeoutMs ?? 60_000);
      });
      return await Promise.all(runs);
    },
    proxyKey,
  );
}

function runOne(
  rank: number,
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<WorkerResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let report: unknown;
      try {
        report = JSON.parse(last);
      } catch {
        report = undefined;
      }
      resolve({ rank, code, signal, stdout, stderr, report });
    });
  });
}
