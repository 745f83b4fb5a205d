/**
 * The job secret in join mode: a file every node can read (a shared file system, a Kubernetes secret
 * volume, scp by hand) holding the per-job key as hex, e.g. made with
 * `(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > F)` (what the PBS script does).
 * The file is the key's only home: it never goes into argv or an environment. A file that others could
 * read is refused (exit 2), as ssh refuses a private key with loose permissions.
 */
import { UsageError } from '../../util/errors.js';
import { readOwnerOnlyFileSync } from '../../util/regular-file.js';

/** The store accepts keys of at least 16 bytes; 32 is what dtrain makes. */
const minKeyBytes = 16;
/** More than this is not a key: never read further (a huge file, however it got there). */
const maxKeyFileBytes = 4096;

export function readSecretFile(file: string): Buffer {
  const read = readOwnerOnlyFileSync(file, maxKeyFileBytes);
  if (read.unreadable !== undefined) throw new UsageError(`secret file ${file}: cannot read it (${read.unreadable})`);
  if (read.looseMode !== undefined) {
    throw new UsageError(
      `secret file ${file} is readable or writable by others (mode ` +
        `${read.looseMode.toString(8).padStart(4, '0')}): run chmod 600 ${file}`,
    );
  }
  const hex = read.text?.trim() ?? '';
  if (!/^([0-9a-fA-F]{2})+$/.test(hex) || hex.length < 2 * minKeyBytes) {
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
