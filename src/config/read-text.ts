/**
 * Reading a config, hostfile or env_file: bounded in size and time whatever the path names. At most
 * MAX_TEXT_BYTES + 1 bytes are read (more is refused, never buffered); directories and devices are
 * refused before any read (/dev/zero would never end); pipes work (`dtrain launch <(generate)`, a named
 * FIFO): read until the writer closes, however long it takes, but a FIFO that no process opens for
 * writing within FIFO_WRITER_WAIT_MS is refused instead of waiting forever.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** The largest config, hostfile or env_file dtrain reads (README.md "Limits"). */
export const MAX_TEXT_BYTES = 4 * 1024 * 1024;

/** How long a FIFO may wait for its first writer. */
export const FIFO_WRITER_WAIT_MS = 5000;

/** Why a text could not be read, as the rest of a "cannot read <file>: ..." line. */
export class TextReadError extends Error {}

export function readBoundedText(path: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO without a writer must not block (the wait below is bounded)
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TextReadError('no such file');
    if (code === 'EACCES') throw new TextReadError('permission denied');
    if (code === 'EISDIR') throw new TextReadError('it is a directory');
    throw new TextReadError((err as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new TextReadError('it is a directory');
    if (!st.isFile() && !st.isFIFO() && !st.isSocket()) throw new TextReadError('it is a device, not a file or a pipe');
    return utf8Text(readAll(fd, st.isFile()));
  } finally {
    closeSync(fd);
  }
}

function readAll(fd: number, regular: boolean): Buffer {
  const buf = Buffer.allocUnsafe(MAX_TEXT_BYTES + 1);
  let got = 0;
  const waitUntil = Date.now() + FIFO_WRITER_WAIT_MS;
  let sawWriter = regular;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, got, buf.length - got, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw new TextReadError((err as Error).message);
      sawWriter = true; // a writer holds the pipe open and has not written yet: it is working
      sleep(10);
      continue;
    }
    if (n > 0) {
      sawWriter = true;
      got += n;
      if (got > MAX_TEXT_BYTES)
        throw new TextReadError(`it is larger than ${MAX_TEXT_BYTES / 1024 / 1024} MiB, the most dtrain reads`);
      continue;
    }
    // 0 bytes: the end, or (a FIFO nobody opened for writing yet) no writer so far
    if (sawWriter) return buf.subarray(0, got);
    if (Date.now() >= waitUntil)
      throw new TextReadError(`no process opened the pipe for writing within ${FIFO_WRITER_WAIT_MS / 1000} s`);
    sleep(10);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The text, or where it stops being UTF-8 (a Latin-1 file, a binary): decoded blindly it became odd keys. */
function utf8Text(buf: Buffer): string {
  try {
    return strictUtf8.decode(buf);
  } catch {
    // Valid UTF-8 (U+FFFD included) encodes back to the same bytes: the first byte that differs is the bad one.
    const again = Buffer.from(buf.toString('utf8'));
    let at = 0;
    while (at < buf.length && buf[at] === again[at]) at++;
    const lineStart = buf.lastIndexOf(0x0a, at - 1) + 1;
    const line = buf.subarray(0, lineStart).filter((b) => b === 0x0a).length + 1;
    const col = buf.subarray(lineStart, at).toString('utf8').length + 1;
    throw new TextReadError(`it is not UTF-8 text (line ${line}, column ${col}): save it as UTF-8`);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleep(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
