/**
 * Files a crash must never leave half-written (checkpoint manifests, `latest` pointers): written beside their
 * place, fsynced, renamed over it, then the directory fsynced, so the rename itself is on disk before a later
 * file names this one. Readers see the old file or the whole new one, never part of either.
 */
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Puts a directory's entries (a rename, a new file) on disk. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` with `data` durably and atomically (see above); the file is created 0644. */
export async function writeFileDurably(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDirectory(dirname(path));
}
