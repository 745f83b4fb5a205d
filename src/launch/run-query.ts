/**
 * Where `dtrain status` and `dtrain top` get a run's status document: from the live controller through
 * its control socket (found in the run registry), else from `<log_dir>/status.json`, the copy a run keeps
 * fresh in its log folder (a Slurm job seen from the login node; a run that ended).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../util/errors.js';
import { callControl } from './control-server.js';
import { findRun, listRuns } from './run-registry.js';
import type { RunStatusDoc } from './run-status.js';

export interface StatusSource {
  /** where the document comes from, for the reader */
  origin: 'controller' | 'file';
  fetch(): Promise<RunStatusDoc>;
}

/** A run id, a log folder or nothing (the newest running job of this user here); exit 2 when none matches. */
export function locateRun(run: string | undefined): StatusSource {
  const entry = findRun(run);
  if (entry) {
    return {
      origin: 'controller',
      fetch: async () => {
        const reply = await callControl(entry.socket, 'GET', '/api/status', { timeoutMs: 5000 });
        if (reply.status !== 200) throw new UsageError(`run ${entry.run_id} answered ${reply.status}: ${reply.body}`);
        return JSON.parse(reply.body) as RunStatusDoc;
      },
    };
  }
  const file = run === undefined ? undefined : statusFileOf(run);
  if (file) return { origin: 'file', fetch: () => Promise.resolve(readStatusFile(file)) };
  const live = listRuns().map((r) => r.run_id);
  if (run === undefined) throw new UsageError('no running dtrain job of yours on this machine');
  throw new UsageError(
    `no running job "${run}" here and no status.json under it` +
      (live.length ? ` (running: ${live.join(', ')})` : ' (no job of yours is running on this machine)'),
  );
}

/** `<dir>/status.json` when `run` is a log folder (or the file itself). */
function statusFileOf(run: string): string | undefined {
  const path = resolve(run);
  try {
    if (statSync(path).isFile()) return path;
  } catch {
    return undefined;
  }
  const file = join(path, 'status.json');
  return existsSync(file) ? file : undefined;
}

function readStatusFile(file: string): RunStatusDoc {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunStatusDoc;
  } catch (err) {
    throw new UsageError(`${file}: not a dtrain status file (${(err as Error).message})`);
  }
}
