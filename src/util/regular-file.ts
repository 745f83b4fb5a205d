/**
 * Reading a file another program controls (a worker's progress, error and stack files, a checkpoint's
 * `latest`, a flight recorder): it may have put a FIFO there (a plain open waits for a writer: the launcher
 * froze), a device (/dev/urandom never ends) or a huge file. Opened without blocking, anything but a regular
 * file is refused, and at most `maxBytes` are read.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

const flags = constants.O_RDONLY | constants.O_NONBLOCK;

export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
  constructor(path: string) {
    super(`${path} is not a regular file`);
  }
}

/** An fd open for reading on a regular file (the caller closes it); throws as openSync does, or NotRegularFileError. */
export function openRegularFileSync(path: string): number {
  const fd = openSync(path, flags);
  try {
    if (!fstatSync(fd).isFile()) throw new NotRegularFileError(path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** Up to `maxBytes` of a regular file, from its start. */
export function readRegularFileSync(path: string, maxBytes: number): Buffer {
  const fd = openRegularFileSync(path);
  try {
    const buf = Buffer.allocUnsafe(maxBytes);
    let got = 0;
    while (got < maxBytes) {
      const n = readSync(fd, buf, got, maxBytes - got, got);
      if (n <= 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** readRegularFileSync off the event loop (a file on a slow shared file system). */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const file = await open(path, flags);
  try {
    if (!(await file.stat()).isFile()) throw new NotRegularFileError(path);
    const buf = Buffer.allocUnsafe(maxBytes);
    let got = 0;
    while (got < maxBytes) {
      const { bytesRead } = await file.read(buf, got, maxBytes - got, got);
      if (bytesRead <= 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await file.close();
  }
}

/**
 * A secret kept in a small file (a job key, a monitor token): its text, or why it cannot be one. Only a
 * regular file is read (a FIFO would block, /dev/zero never end), one that group or others may read or
 * write is refused (as ssh refuses a loose private key), and never more than `maxBytes` + 1 bytes.
 */
export interface OwnerOnlyFile {
  /** the whole text, when it could be read */
  text?: string;
  /** why it could not be opened: 'no such file', 'not a regular file', ... */
  unreadable?: string;
  /** the permission bits of a file group or others may read or write */
  looseMode?: number;
  /** more than maxBytes */
  tooLarge?: true;
}

export function readOwnerOnlyFileSync(path: string, maxBytes: number): OwnerOnlyFile {
  let fd: number;
  try {
    fd = openRegularFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why: Record<string, string> = {
      ENOTREG: 'not a regular file',
      ENOENT: 'no such file',
      EACCES: 'permission denied',
    };
    return { unreadable: why[code ?? ''] ?? (err as Error).message };
  }
  try {
    const { mode } = fstatSync(fd);
    if (mode & 0o077) return { looseMode: mode & 0o777 };
    const buf = Buffer.alloc(maxBytes + 1);
    let got = 0;
    for (let n = 1; n > 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, got);
    return got > maxBytes ? { tooLarge: true } : { text: buf.subarray(0, got).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}
