/**
 * The per-user registry of running controllers on this machine: how `dtrain status`, `dtrain top` and other
 * commands find a run without being told where it is. One JSON file per running controller in a 0700
 * folder ($XDG_RUNTIME_DIR/dtrain, else ~/.dtrain/runs); the controller's control socket lives beside it.
 * An entry whose controller is gone (a SIGKILLed controller, its pid maybe reused since) is ignored and
 * removed by whoever reads it: its pid is dead or started at another time, or its socket is missing or
 * refuses (run-query.ts tells that when it calls).
 *
 * Each run also keeps `<logs.dir>/<run_id>/status.json` fresh (writeStatusFile), so a job that runs
 * elsewhere (a Slurm allocation) can be looked at from a machine that shares the log folder.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { makeDirsSync } from '../util/make-dirs.js';
import { readRegularFileSync } from '../util/regular-file.js';

export interface RunEntry {
  run_id: string;
  /** the controller's pid */
  pid: number;
  /** when that pid started (/proc/<pid>/stat, clock ticks after boot): a reused pid started later */
  pid_start?: number;
  /** ISO time */
  started_at: string;
  /** absolute: <logs.dir>/<run_id> */
  log_dir: string;
  /** the controller's control socket (control-server.ts), in the registry folder */
  socket: string;
  /** the monitor's address when the run serves one (never carries its token) */
  monitor_url?: string;
}

/** DTRAIN_RUNS_DIR overrides the folder (tests; a shared runtime folder). */
export function registryDir(): string {
  const override = process.env.DTRAIN_RUNS_DIR;
  if (override) return resolve(override);
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime && isAbsolute(runtime)) return join(runtime, 'dtrain');
  return join(homedir(), '.dtrain', 'runs');
}

/** The registry folder, created 0700 (and made 0700 again if someone widened it). */
export function ensureRegistryDir(): string {
  const dir = registryDir();
  makeDirsSync(dir, 0o700);
  if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}

/** Where a run's control socket goes: short, since a Unix socket path is limited to ~107 bytes. */
export function controlSocketPath(runId: string): string {
  return join(ensureRegistryDir(), `${runId}.sock`);
}

/** Adds the entry; the returned function removes it (and the socket file), once. */
export function registerRun(entry: RunEntry): () => void {
  const dir = ensureRegistryDir();
  const file = join(dir, `${entry.run_id}.json`);
  const pidStart = entry.pid_start ?? startTimeOf(entry.pid);
  writeAtomic(file, JSON.stringify(pidStart === undefined ? entry : { ...entry, pid_start: pidStart }) + '\n', 0o600);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    rmSync(file, { force: true });
    if (entry.socket.startsWith(dir)) rmSync(entry.socket, { force: true });
  };
}

/** An entry is a few hundred bytes; a file larger than this is not one. */
const MAX_ENTRY_BYTES = 64 * 1024;

/** Every live run of this user here, newest first; entries of dead controllers are removed. */
export function listRuns(): RunEntry[] {
  const dir = registryDir();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const runs: RunEntry[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const file = join(dir, name);
    let entry: unknown;
    try {
      // a regular file, and no more than an entry holds: a FIFO here would hold every `dtrain status` forever
      entry = JSON.parse(readRegularFileSync(file, MAX_ENTRY_BYTES).toString('utf8'));
    } catch {
      continue; // being written (never: rename is atomic) or not ours
    }
    if (!isRunEntry(entry)) continue; // not ours either: left alone, as it names nothing to forget
    if (!alive(entry)) {
      forgetRun(entry);
      continue;
    }
    runs.push(entry);
  }
  return runs.sort((a, b) => b.started_at.localeCompare(a.started_at));
}

/** Removes a dead controller's entry and its socket file (never a socket outside the registry folder). */
export function forgetRun(entry: RunEntry): void {
  const dir = registryDir();
  rmSync(join(dir, `${entry.run_id}.json`), { force: true });
  if (entry.socket.startsWith(dir + '/')) rmSync(entry.socket, { force: true });
}

/**
 * A run id, a log folder (<logs.dir>/<run_id>, or a path inside it), or nothing: the newest running job.
 * Undefined when no live run matches.
 */
export function findRun(idOrLogDir?: string): RunEntry | undefined {
  const runs = listRuns();
  if (idOrLogDir === undefined || idOrLogDir === '') return runs[0];
  const byId = runs.find((r) => r.run_id === idOrLogDir);
  if (byId) return byId;
  const path = resolve(idOrLogDir);
  return runs.find((r) => path === r.log_dir || path.startsWith(r.log_dir + '/'));
}

/** `<log_dir>/status.json`, replaced whole (tmp + rename) so a reader never sees half of it. */
export function writeStatusFile(logDir: string, doc: unknown): void {
  makeDirsSync(logDir);
  writeAtomic(join(logDir, 'status.json'), JSON.stringify(doc) + '\n', 0o644);
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

/** The fields this file and run-query.ts read; a JSON file that lacks one is no entry. */
function isRunEntry(v: unknown): v is RunEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<keyof RunEntry, unknown>;
  return (
    typeof e.run_id === 'string' &&
    Number.isSafeInteger(e.pid) &&
    (e.pid_start === undefined || typeof e.pid_start === 'number') &&
    typeof e.started_at === 'string' &&
    typeof e.log_dir === 'string' &&
    typeof e.socket === 'string'
  );
}

/** The entry's controller may still run: its pid answers, started when it did, and its socket is there. */
function alive(entry: RunEntry): boolean {
  try {
    process.kill(entry.pid, 0);
  } catch {
    // ESRCH: gone; EPERM: the pid was reused by another user's process, so not our controller either
    return false;
  }
  // kill(0) also answers for a reused pid (or another process's thread id)
  if (entry.pid_start !== undefined && startTimeOf(entry.pid) !== entry.pid_start) return false;
  return existsSync(entry.socket);
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised name, which may hold spaces); undefined off Linux. */
function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isSafeInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}
