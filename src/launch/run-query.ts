/**
 * Where `dtrain status` and `dtrain top` get a run's status document: from the live controller through
 * its control socket (found in the run registry), else from `<log_dir>/status.json`, the copy a run keeps
 * fresh in its log folder (a Slurm job seen from the login node; a run that ended).
 */
import { closeSync, existsSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { formatDuration } from '../config/duration.js';
import { UsageError } from '../util/errors.js';
import { NotRegularFileError, openRegularFileSync } from '../util/regular-file.js';
import { callControl } from './control-server.js';
import { findRun, forgetRun, listRuns, type RunEntry } from './run-registry.js';
import {
  FINAL_RUN_STATES,
  STATUS_FILE_INTERVAL_MS,
  STATUS_FILE_STALE_MS,
  statusDocProblem,
  type RunStatusDoc,
} from './run-status.js';

export interface StatusSource {
  /** where the document comes from, for the reader */
  origin: 'controller' | 'file';
  fetch(): Promise<RunStatusDoc>;
}

/**
 * A run id, a log folder or nothing (the newest running job of this user here); exit 2 when none matches.
 * A controller's source has its first document already (asking is how a dead entry is told from a live one).
 */
export async function locateRun(run: string | undefined): Promise<StatusSource> {
  const live = await callRun(run, 'GET', '/api/status', { timeoutMs: 5000 });
  if (live) {
    const { entry } = live;
    let first: Promise<RunStatusDoc> | undefined = Promise.resolve(statusDoc(entry, live.reply));
    return {
      origin: 'controller',
      fetch: () => {
        const doc = first ?? askRun(entry, 'GET', '/api/status', { timeoutMs: 5000 }).then((r) => statusDoc(entry, r));
        first = undefined;
        return doc;
      },
    };
  }
  const file = run === undefined ? undefined : statusFileOf(run);
  if (file) return { origin: 'file', fetch: () => Promise.resolve(markStale(readStatusFile(file), Date.now())) };
  throw await noRunningJob(run, ' and no status.json under it');
}

/** Connecting to a controller's socket fails so only when no process listens there: a dead entry. */
const DEAD_SOCKET = new Set(['ECONNREFUSED', 'ENOENT']);

type Reply = Awaited<ReturnType<typeof callControl>>;

/**
 * Asks the run's controller (`run` as in locateRun): undefined when no live entry matches. An entry whose
 * socket is missing or refuses is a dead controller (its pid reused since): it is removed and the next
 * match asked. A controller that does not answer is exit 2, saying so.
 */
export async function callRun(
  run: string | undefined,
  method: string,
  path: string,
  opts: { timeoutMs: number },
): Promise<{ entry: RunEntry; reply: Reply } | undefined> {
  for (let entry = findRun(run); entry; entry = findRun(run)) {
    try {
      return { entry, reply: await callControl(entry.socket, method, path, opts) };
    } catch (err) {
      if (!DEAD_SOCKET.has((err as NodeJS.ErrnoException).code ?? '')) throw doesNotAnswer(entry, err);
      forgetRun(entry);
    }
  }
  return undefined;
}

/** The error for a run that matches no live entry (exit 2), naming the runs there are. */
export async function noRunningJob(run: string | undefined, orElse = ''): Promise<UsageError> {
  if (run === undefined) return new UsageError('no running dtrain job of yours on this machine');
  const live = (await liveRuns()).map((r) => r.run_id);
  return new UsageError(
    `no running job ${JSON.stringify(run)} here${orElse}` +
      (live.length ? ` (running: ${live.join(', ')})` : ' (no job of yours is running on this machine)'),
  );
}

/** The registry's runs whose socket takes a connection; the others are forgotten, as in callRun. */
async function liveRuns(): Promise<RunEntry[]> {
  const runs = listRuns();
  const answers = await Promise.all(runs.map((r) => connects(r.socket)));
  runs.filter((_, i) => !answers[i]).forEach(forgetRun);
  return runs.filter((_, i) => answers[i]);
}

/** False only when nothing listens there (refused, or no socket); a busy listener counts as one. */
function connects(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', (err: NodeJS.ErrnoException) => resolve(!DEAD_SOCKET.has(err.code ?? '')));
  });
}

async function askRun(entry: RunEntry, method: string, path: string, opts: { timeoutMs: number }): Promise<Reply> {
  try {
    return await callControl(entry.socket, method, path, opts);
  } catch (err) {
    throw doesNotAnswer(entry, err);
  }
}

function doesNotAnswer(entry: RunEntry, err: unknown): UsageError {
  const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new UsageError(`run ${entry.run_id} does not answer on ${entry.socket} (${why})`);
}

function statusDoc(entry: RunEntry, reply: Reply): RunStatusDoc {
  if (reply.status !== 200) throw new UsageError(`run ${entry.run_id} answered ${reply.status}: ${reply.body.trim()}`);
  return parseStatusDoc(reply.body, (why) => `run ${entry.run_id} answered: ${why}`);
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
  let text: string;
  try {
    // a controller writes a regular file: a FIFO there would wait for a writer forever, a device never end
    const fd = openRegularFileSync(file);
    try {
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const why = err instanceof NotRegularFileError ? 'not a regular file' : (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: cannot read (${why ?? (err as Error).message})`);
  }
  return parseStatusDoc(text, (why, where) => `${file}${where}: ${why}`);
}

/**
 * A status.json of a run that has not ended, with `stale` saying why it may not be the run's present state:
 * its controller ran on this machine and its pid is gone (killed: SIGKILL, the OOM killer, a lost machine),
 * or the file has not been rewritten for STATUS_FILE_STALE_MS (its controller elsewhere, gone or stuck).
 */
export function markStale(doc: RunStatusDoc, nowMs: number): RunStatusDoc {
  if (FINAL_RUN_STATES.includes(doc.state)) return doc;
  const { controller } = doc;
  if (controller && controller.host === hostname() && !processLives(controller.pid)) {
    return {
      ...doc,
      stale: `its controller (pid ${controller.pid}) is gone and wrote no final state: the run was killed`,
    };
  }
  const updated = doc.updated_at === undefined ? NaN : Date.parse(doc.updated_at);
  if (Number.isFinite(updated) && nowMs - updated > STATUS_FILE_STALE_MS) {
    const where = controller ? ` (pid ${controller.pid} on ${controller.host})` : '';
    return {
      ...doc,
      stale:
        `not updated for ${ageText(nowMs - updated)}, though a live controller rewrites it every ` +
        `${formatDuration(STATUS_FILE_INTERVAL_MS)}: its controller${where} is gone or stuck`,
    };
  }
  return doc;
}

/** Whether `pid` is a process that has not exited (a zombie, killed and not yet reaped, has). */
function processLives(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, as another user's
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** An age in the config's duration grammar, rounded to a unit that fits it: 95s, 12m, 30h. */
function ageText(ms: number): string {
  const unit = ms < 120_000 ? 1000 : ms < 7_200_000 ? 60_000 : 3_600_000;
  return formatDuration(Math.floor(ms / unit) * unit);
}

/**
 * The one place a status document is read (a controller's reply, a status.json): JSON, and the shape
 * `status` and `top` read (statusDocProblem), else exit 2 in one line that `say` words from why and
 * where (':line:col', or '').
 */
export function parseStatusDoc(text: string, say: (why: string, where: string) => string): RunStatusDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(say('not valid JSON, so not a dtrain status document', jsonErrorAt(text, err)));
  }
  const problem = statusDocProblem(doc);
  if (problem) throw new UsageError(say(`not a dtrain status document (${problem})`, ''));
  return doc as RunStatusDoc;
}

/**
 * Where JSON.parse stopped, as ':line:col' ('' when V8 does not say). Only the position is taken from its
 * message: the rest quotes the text, which may hold a secret (a token file given by mistake).
 */
function jsonErrorAt(text: string, err: unknown): string {
  const pos = /at position (\d+)/.exec((err as Error).message);
  if (!pos) return '';
  const before = text.slice(0, Number(pos[1]));
  const line = before.split('\n').length;
  return `:${line}:${before.length - before.lastIndexOf('\n')}`;
}
