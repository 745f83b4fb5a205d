/**
 * The job secret in join mode: a file every node can read (a shared file system, a Kubernetes secret
 * volume, scp by hand) holding the per-job key as hex, e.g. made with
 * `(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > F)` (what the PBS script does).
 * The file is the key's only home: it never goes into argv or an environment. A file that others could
 * read is refused (exit 2), as ssh refuses a private key with loose permissions.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { UsageError } from '../../util/errors.js';
import { NotRegularFileError, openRegularFileSync } from '../../util/regular-file.js';

/** The store accepts keys of at least 16 bytes; 32 is what dtrain makes. */
const minKeyBytes = 16;
/** More than this is not a key: never read further (a huge file, however it got there). */
const maxKeyFileBytes = 4096;

export function readSecretFile(file: string): Buffer {
  let mode: number;
  let text: string;
  try {
    // a regular file only: a FIFO there would wait for a writer forever, /dev/zero never ends
    const fd = openRegularFileSync(file);
    try {
      mode = fstatSync(fd).mode;
      const buf = Buffer.alloc(maxKeyFileBytes + 1);
      let got = 0;
      for (let n = 1; n > 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, got);
      text = buf.subarray(0, got).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      err instanceof NotRegularFileError
        ? 'not a regular file'
        : code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'is a folder'
              : (err as Error).message;
    throw new UsageError(`secret file ${file}: cannot read it (${why})`);
  }
  if (mode & 0o077) {
    throw new UsageError(
      `secret file ${file} is readable or writable by others (mode ` +
        `${(mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${file}`,
    );
  }
  const hex = text.trim();
  if (!/^([0-9a-fA-F]{2})+$/.test(hex) || hex.length < 2 * minKeyBytes || text.length > maxKeyFileBytes) {
    throw new UsageError(
      `secret file ${file}: expected the job key as at least ${2 * minKeyBytes} hex digits ` +
        `(make one with: head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > ${file})`,
    );
  }
  return Buffer.from(hex, 'hex');
}

/** `host:port`, `[v6addr]:port`: where the controller's store listens. */
export function parseJoinAddress(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(text) ?? /^([^:\s]+):([0-9]+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new UsageError(
      `--join ${JSON.stringify(text)}: expected host:port of the controller's store (e.g. node0:29400)`,
    );
  }
  return { host: m[1], port };
}
