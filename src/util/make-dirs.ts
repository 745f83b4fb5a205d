/**
 * `mkdir -p` for every folder dtrain makes (logs, checkpoints, run registry, sockets). Node's own
 * `mkdir(path, { recursive: true })` never returns where a parent exists but cannot hold the child: procfs
 * answers ENOENT for any new name, Node takes that for a missing parent, makes the parent (EEXIST) and tries
 * the child again, forever, at full CPU (sync: the event loop frozen; async: a promise that never settles).
 * `logs.dir: /proc/x` hung a launch that way. Here each missing folder is made once, parent first, and the
 * first failure is thrown with Node's error code (from mkdir, or from stat for a file in the way).
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** The folders to make, outermost first: `dir` and its missing ancestors, up to the first one that exists. */
function missingSync(dir: string): string[] {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    if (statSync(p, { throwIfNoEntry: false })) break;
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  return missing;
}

async function missingAsync(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    const exists = await stat(p).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    if (exists) break;
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  return missing;
}

/** Makes `dir` and its missing parents (each with `mode`, as Node's recursive mkdir does). */
export function makeDirsSync(dir: string, mode?: number): void {
  for (const p of missingSync(dir)) {
    try {
      mkdirSync(p, { mode });
    } catch (err) {
      // made meanwhile by another process, or a name that stat could not follow (a dangling link): the next
      // folder's mkdir says what is wrong
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // An existing file (not a folder) at `dir` is an error, as with Node's.
  if (!statSync(dir).isDirectory()) mkdirSync(dir, { mode });
}

/** makeDirsSync without blocking the event loop. */
export async function makeDirs(dir: string, mode?: number): Promise<void> {
  for (const p of await missingAsync(dir)) {
    try {
      await mkdir(p, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (!(await stat(dir)).isDirectory()) await mkdir(dir, { mode });
}
