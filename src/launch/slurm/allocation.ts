/**
 * Finding the Slurm allocation dtrain runs in (a batch script from `dtrain submit`, or `dtrain launch`
 * typed inside salloc): the job id, its hosts in Slurm's node order and the per-node CPU/GPU limits.
 * Hosts come from `scontrol show hostnames $SLURM_JOB_NODELIST`, Slurm's own expansion; the expansion
 * below is the fallback when scontrol is not on PATH and is what the unit tests pin down.
 */
import { hostname } from 'node:os';
import { execaLazy } from '../../util/execa-lazy.js';
import { StartError } from '../../util/errors.js';

export interface SlurmAllocation {
  jobId: string;
  /** compressed hostlist, e.g. node[01-04] */
  nodelist: string;
  /** SLURM_JOB_NUM_NODES (or the expanded count when absent) */
  numNodes: number;
  /** --cpus-per-task of the allocation, for SRUN_CPUS_PER_TASK when the script did not export it */
  cpusPerTask?: number;
  /** true inside an srun step (SLURM_STEP_ID set): starting more steps from here would nest them */
  inStep: boolean;
}

/** The Slurm name of the node this process runs on: slurmd's own name for it, else the short hostname. */
export function thisSlurmNode(env: NodeJS.ProcessEnv = process.env): string {
  return env.SLURMD_NODENAME || hostname().split('.')[0];
}

/** undefined outside Slurm. Reads only the environment: cheap enough to call on every launch. */
export function detectSlurmAllocation(env: NodeJS.ProcessEnv = process.env): SlurmAllocation | undefined {
  const jobId = env.SLURM_JOB_ID ?? env.SLURM_JOBID;
  const nodelist = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  if (!jobId || !nodelist) return undefined;
  const alloc: SlurmAllocation = {
    jobId,
    nodelist,
    numNodes: Number(env.SLURM_JOB_NUM_NODES ?? env.SLURM_NNODES) || expandHostlist(nodelist).length,
    inStep: env.SLURM_STEP_ID !== undefined,
  };
  const cpt = Number(env.SLURM_CPUS_PER_TASK);
  if (Number.isInteger(cpt) && cpt > 0) alloc.cpusPerTask = cpt;
  return alloc;
}

/** The allocation's hosts, node 0 first, as Slurm orders them (that order is SLURM_NODEID). */
export async function allocationHosts(alloc: SlurmAllocation, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const execa = await execaLazy();
  const r = await execa('scontrol', ['show', 'hostnames', alloc.nodelist], {
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 30_000,
  });
  let hosts: string[];
  if (r.exitCode === 0)
    hosts = String(r.stdout)
      .split('\n')
      .map((h) => h.trim())
      .filter(Boolean);
  // no scontrol, or one that cannot read its configuration here: the hostlist syntax is simple enough
  else hosts = expandHostlist(alloc.nodelist);
  if (hosts.length !== alloc.numNodes) {
    throw new StartError(
      `Slurm job ${alloc.jobId}: ${alloc.nodelist} names ${hosts.length} hosts but the job has ${alloc.numNodes} nodes`,
    );
  }
  return hosts;
}

/**
 * Slurm hostlist syntax: comma-separated entries, each a prefix with bracketed ranges that keep zero
 * padding (`gpu[01-03,07]`, `rack[1-2]-n[1-2]` is a product), e.g. `a[1-2],b` → a1, a2, b.
 */
export function expandHostlist(list: string): string[] {
  const out: string[] = [];
  for (const entry of splitTopLevel(list)) out.push(...expandEntry(entry));
  return out;
}

function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      if (cur) parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw new StartError(`malformed Slurm hostlist: ${list}`);
  if (cur) parts.push(cur);
  return parts;
}

function expandEntry(entry: string): string[] {
  const open = entry.indexOf('[');
  if (open < 0) return [entry];
  const close = entry.indexOf(']', open);
  const head = entry.slice(0, open);
  const tails = expandEntry(entry.slice(close + 1));
  const out: string[] = [];
  for (const range of entry.slice(open + 1, close).split(',')) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(range);
    if (!m) throw new StartError(`malformed Slurm hostlist range: [${range}] in ${entry}`);
    const width = m[1].length;
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    for (let i = lo; i <= hi; i++) for (const t of tails) out.push(head + String(i).padStart(width, '0') + t);
  }
  return out;
}
