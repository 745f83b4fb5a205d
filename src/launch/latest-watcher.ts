/**
 * Follows a checkpoint folder's `latest` file: how the controller sees the commits of workers that do not
 * use dtrain's runtime (PyTorch), whose only record of a finished checkpoint is `latest` being replaced.
 *
 * `latest` holds the name of the newest checkpoint, as ShardedAdam (`step_N/gen_K`), DeepSpeed
 * (`global_stepN`) and plain scripts (`N`, `step_N`, `checkpoint-N`) write it; the step is the last number in
 * its first path component. The folder is polled (`pollMs`), because a shared file system does not report
 * another host's writes to fs.watch; a local fs.watch event only makes the next look come sooner.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readRegularFile } from '../util/regular-file.js';
import { join } from 'node:path';

export interface LatestCheckpoint {
  /** what `latest` holds, trimmed */
  name: string;
  /** the step it names; undefined when the name carries no number */
  step: number | undefined;
}

export interface LatestWatcherOptions {
  /** how often the file is read again (default 1000 ms) */
  pollMs?: number;
  /** the file's name in the folder (default `latest`) */
  file?: string;
}

export interface LatestWatcher {
  /** what `latest` held when the watch started or at the last change; undefined: no `latest` yet */
  readonly current: LatestCheckpoint | undefined;
  close(): void;
}

/** The step a `latest` name means: the last number of its first path component (`step_10/gen_2` is 10). */
export function parseLatestStep(name: string): number | undefined {
  const first = name.trim().split('/')[0] ?? '';
  const digits = /(\d+)\D*$/.exec(first)?.[1];
  if (digits === undefined) return undefined;
  const step = Number(digits);
  return Number.isSafeInteger(step) ? step : undefined;
}

async function readName(path: string): Promise<string | undefined> {
  try {
    // the workers' file: a FIFO or a device there must not hold the watcher (regular-file.ts)
    const text = (await readRegularFile(path, 4096)).toString('utf8').trim();
    return text === '' ? undefined : text; // a writer that truncates before writing: not a checkpoint yet
  } catch {
    return undefined; // absent, or replaced between the look and the read: the next look sees it
  }
}

/**
 * Starts watching `dir`'s `latest`; resolves once its present content is known (`current`). `onChange` is
 * called with every later content that differs from the one before (a removed `latest` is not a change).
 */
export async function watchLatest(
  dir: string,
  onChange: (latest: LatestCheckpoint) => void,
  opts: LatestWatcherOptions = {},
): Promise<LatestWatcher> {
  const path = join(dir, opts.file ?? 'latest');
  const read = async (): Promise<LatestCheckpoint | undefined> => {
    const name = await readName(path);
    return name === undefined ? undefined : { name, step: parseLatestStep(name) };
  };
  let current = await read();
  let closed = false;
  let looking = false;
  let again = false;
  const look = async (): Promise<void> => {
    if (looking) {
      again = true;
      return;
    }
    looking = true;
    try {
      do {
        again = false;
        const seen = await read();
        if (closed || !seen || seen.name === current?.name) continue;
        current = seen;
        onChange(seen);
      } while (again && !closed);
    } finally {
      looking = false;
    }
  };
  const timer = setInterval(() => void look(), opts.pollMs ?? 1000);
  timer.unref();
  let fsWatcher: FSWatcher | undefined;
  try {
    fsWatcher = watch(dir, { persistent: false }, () => void look());
    fsWatcher.on('error', () => fsWatcher?.close());
  } catch {
    // the folder may not exist yet: polling finds `latest` once it does
  }
  return {
    get current() {
      return current;
    },
    close() {
      closed = true;
      clearInterval(timer);
      fsWatcher?.close();
    },
  };
}
