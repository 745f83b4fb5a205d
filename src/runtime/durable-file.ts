/**
 * Files a crash must never leave half-written (checkpoint manifests, `latest` pointers): written beside their
 * place, fsynced, renamed over it, then the directory fsynced, so the rename itself is on disk before a later
 * file names this one. Readers see the old file or the whole new one, never part of either.
 */
import { open, rename, rm } from 'node:fs/promises';
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

/**
 * Replaces `path` with `data` durably and atomically (see above). The file is created 0644 (less the umask);
 * `mode` gives it exactly that mode instead (a file holding secrets: 0600).
 */
export async function writeFileDurably(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', mode ?? 0o644);
    try {
      // also a stale tmp of an earlier process with this pid, which keeps its own mode
      if (mode !== undefined) await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // a failed write or rename (a folder in the way, a full disk) leaves no tmp file beside the target
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDirectory(dirname(path));
}
