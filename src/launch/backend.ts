/**
 * The job's collective backend when the config says `auto` or `nccl`: decided once per job, by the
 * controller, from every node's GPU probe, so all workers of a job agree (a mixed cpu/nccl job would
 * hang in its first collective).
 *
 * Store keys (agent-contract.ts's `ctl/` space; workers never see them):
 *   ctl/probe/<node_rank>  agent → controller: `NodeProbe` JSON, published once per job when the agent
 *                          starts (the probe runs in a child process: a broken driver cannot take the agent down)
 *   ctl/backend            controller → agents: `cpu` or `nccl`; each agent GETs it before its first
 *                          workers start and gives it to them as DTRAIN_BACKEND
 */
import { probeCudaAsync, autoBackend, cudaBuildInfo, type CudaProbe } from '../runtime/device/cuda-part.js';
import type { NodePlan } from '../plan/types.js';
import { StoreClient } from '../store/client.js';
import { StartError } from '../util/errors.js';
import type { AgentSpec } from './agent-contract.js';
import { driverLibraryMayLoad } from './driver-library.js';
import { getForever } from './store-wait.js';

export type JobBackend = 'cpu' | 'nccl';

export const backendKeys = {
  probe: (nodeRank: number) => `ctl/probe/${nodeRank}`,
  decision: 'ctl/backend',
} as const;

/** What one node can run: the auto decision for that node alone, and why. */
export interface NodeProbe {
  node_rank: number;
  host: string;
  backend: JobBackend;
  reason: string;
  gpus: number;
  /** e.g. "2.21.5", when NCCL loaded */
  nccl_version?: string;
}

export interface BackendDecision {
  backend: JobBackend;
  reason: string;
}

/** The backend the config asked for, as the plan gave it to this node's workers. */
function requestedBackend(spec: AgentSpec): string {
  return spec.ranks[0]?.env.DTRAIN_BACKEND ?? 'cpu';
}

export function needsProbe(requested: string): requested is 'auto' | 'nccl' {
  return requested === 'auto' || requested === 'nccl';
}

/** Probes this node as its workers will see it (CUDA_VISIBLE_DEVICES from include slots or the scheduler). */
export async function probeNode(spec: AgentSpec): Promise<NodeProbe> {
  const visible = spec.ranks[0]?.env.CUDA_VISIBLE_DEVICES ?? spec.node.cuda_visible_devices;
  const env = visible === undefined ? process.env : { ...process.env, CUDA_VISIBLE_DEVICES: visible };
  const probe = probeWithoutChild(env) ?? (await probeCudaAsync({ env }));
  let { backend, reason } = autoBackend(probe);
  const nproc = spec.ranks.length;
  // NCCL refuses two ranks of one communicator on the same GPU, and LOCAL_RANK picks the device.
  if (backend === 'nccl' && probe.devices.length < nproc) {
    backend = 'cpu';
    reason = `${nproc} workers but ${probe.devices.length} GPU(s) visible (one GPU per worker)`;
  }
  return {
    node_rank: spec.node.node_rank,
    host: spec.node.host,
    backend,
    reason,
    gpus: probe.devices.length,
    nccl_version: probe.nccl.version,
  };
}

/**
 * What the probe child would answer, where that is known without starting it: the CUDA part is not
 * built, or the driver library is nowhere dlopen looks (the same outcome the child reports).
 */
export function probeWithoutChild(env: NodeJS.ProcessEnv): CudaProbe | undefined {
  const built = cudaBuildInfo();
  if (!built.built)
    return { built, loaded: false, devices: [], nccl: { found: false, reason: 'the CUDA part is not built' } };
  if (driverLibraryMayLoad(env)) return undefined;
  const reason = 'no NVIDIA driver (libcuda.so.1 not found)';
  return { built, loaded: true, devices: [], device_error: reason, nccl: { found: false, reason } };
}

/**
 * The agent's side, as an AgentLink member: starts the probe at once (publishing it to the controller) and
 * returns `jobBackend`, which resolves to the controller's decision. Nothing at all for `backend: cpu`.
 */
export function backendLink(store: StoreClient, spec: AgentSpec): { jobBackend?: () => Promise<JobBackend> } {
  if (!needsProbe(requestedBackend(spec))) return {};
  const published = probeNode(spec).then((p) => store.set(backendKeys.probe(spec.node.node_rank), JSON.stringify(p)));
  // The wait for the decision starts as soon as the probe is out, not at the first `start`: the controller
  // publishes it just before it starts the workers, so the answer is here by then (one round trip fewer
  // between the last node's arrival and its workers).
  const decision = published.then(async () => {
    const raw = (await getForever(store, backendKeys.decision)).toString();
    if (raw !== 'cpu' && raw !== 'nccl') throw new Error(`the controller published backend ${JSON.stringify(raw)}`);
    return raw;
  });
  decision.catch(() => {}); // surfaced by jobBackend(); a job that never starts closes the store under it
  return { jobBackend: () => decision };
}

function where(p: NodeProbe): string {
  return `node ${p.node_rank} (${p.host})`;
}

/**
 * The job's backend from every node's probe. `nccl` where some node cannot: a StartError (exit 3)
 * naming each such node and its reason, before any worker starts.
 */
export function decideBackend(requested: 'auto' | 'nccl', probes: readonly NodeProbe[]): BackendDecision {
  const sorted = [...probes].sort((a, b) => a.node_rank - b.node_rank);
  const unable = sorted.filter((p) => p.backend !== 'nccl');
  if (requested === 'nccl') {
    if (unable.length)
      throw new StartError(`backend nccl: ${unable.map((p) => `${where(p)}: ${p.reason}`).join('; ')}`);
    return { backend: 'nccl', reason: 'requested; ' + ncclReason(sorted) };
  }
  if (unable.length) {
    const first = unable[0];
    const more = unable.length > 1 ? ` (and ${unable.length - 1} more node${unable.length > 2 ? 's' : ''})` : '';
    return { backend: 'cpu', reason: `${where(first)}: ${first.reason}${more}` };
  }
  return { backend: 'nccl', reason: ncclReason(sorted) };
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function ncclReason(probes: readonly NodeProbe[]): string {
  const gpus = probes.reduce((n, p) => n + p.gpus, 0);
  // Different NCCL versions across nodes work, but are worth seeing when something misbehaves.
  const versions = [...new Set(probes.map((p) => p.nccl_version ?? '?'))].join(' / ');
  return `every node has GPUs and NCCL (${plural(probes.length, 'node')}, ${plural(gpus, 'GPU')}, NCCL ${versions})`;
}

/** The line the launcher prints: which backend and why. */
export function describeDecision(requested: string, d: BackendDecision): string {
  return `backend ${requested} → ${d.backend}: ${d.reason}`;
}

/**
 * The controller's side: waits for every node's probe (at most `timeoutMs` per node), decides, and
 * publishes the decision for the agents. Throws StartError when a node cannot do a requested nccl or
 * never reports.
 */
export async function resolveJobBackend(opts: {
  store: { host: string; port: number; jobKey: Buffer };
  /** a connection the controller already holds (its StoreControl's); absent: one is opened for this */
  client?: StoreClient;
  nodes: readonly NodePlan[];
  requested: 'auto' | 'nccl';
  timeoutMs: number;
}): Promise<BackendDecision> {
  const own = opts.client === undefined;
  const client = opts.client ?? (await StoreClient.connectTcp({ ...opts.store, label: 'store (controller)' }));
  try {
    const probes = await Promise.all(
      opts.nodes.map(async (n) => {
        try {
          return JSON.parse((await client.get(backendKeys.probe(n.node_rank), opts.timeoutMs)).toString()) as NodeProbe;
        } catch (err) {
          if ((err as Error).name !== 'StoreTimeoutError') throw err;
          throw new StartError(
            `node ${n.node_rank} (${n.host}) did not report its GPU probe within ${Math.round(opts.timeoutMs / 1000)}s`,
          );
        }
      }),
    );
    const decision = decideBackend(opts.requested, probes);
    await client.set(backendKeys.decision, decision.backend);
    return decision;
  } finally {
    if (own) await client.close().catch(() => {});
  }
}
