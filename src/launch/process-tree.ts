/**
 * Finding and ending this process's descendants by pid (never by name): the agent's last line of
 * defence when a worker's shepherd was itself killed and its orphans were reparented here (the agent
 * is a child subreaper when the addon is available).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadAddon } from '../runtime/addon.js';

/** The fields of /proc/<pid>/stat after comm (state first), or null once the process is gone. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm may hold spaces and parentheses: the fields resume after the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The parent's pid, or -1 once the process is gone. */
export function parentOf(pid: number): number {
  const fields = statFields(pid);
  return fields ? Number(fields[1]) : -1;
}

/** Whether the process is stopped by a signal (state T; not a tracer's stop, t). */
export function isStopped(pid: number): boolean {
  return statFields(pid)?.[0] === 'T';
}

function processTable(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (pid > 0) parents.set(pid, parentOf(pid));
  }
  return parents;
}

function descendantsIn(parents: Map<number, number>, root: number): Set<number> {
  const mine = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(root);
  return mine;
}

export function descendantsOf(root: number): number[] {
  return [...descendantsIn(processTable(), root)];
}

/** The descendants of each root, from one scan of /proc. */
export function descendantsOfEach(roots: Iterable<number>): Map<number, number[]> {
  const parents = processTable();
  return new Map([...roots].map((r) => [r, [...descendantsIn(parents, r)]]));
}

/**
 * Children this process started on purpose and still supervises (shepherds, child agents): a sweep
 * spares them and their descendants. Whoever spawns one adds it, and deletes it once it has exited.
 */
export const supervisedPids = new Set<number>();

/** SIGKILLs every descendant of this process except supervised children and their own descendants. */
export function sweepDescendants(keep: Iterable<number> = supervisedPids): number[] {
  const parents = processTable();
  const spared = new Set<number>();
  for (const k of keep) {
    spared.add(k);
    for (const d of descendantsIn(parents, k)) spared.add(d);
  }
  const killed: number[] = [];
  for (const pid of descendantsIn(parents, process.pid)) {
    if (spared.has(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  return killed;
}

interface ProcessAddon {
  process?: { setChildSubreaper(): boolean; setParentDeathSignal(sig: number): number };
}

let addon: ProcessAddon | null | undefined;

/** The addon's process helpers, or null when the addon is not built (the shepherds still guard workers). */
export function processAddon(): ProcessAddon['process'] | null {
  if (addon === undefined) {
    try {
      addon = loadAddon();
    } catch {
      addon = null;
    }
  }
  return addon?.process ?? null;
}
