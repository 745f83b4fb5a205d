/**
 * known_hosts, read the way OpenSSH reads it: plain names and patterns (`*`, `?`, `!negation`), `[host]:port`
 * for non-default ports, hashed `|1|salt|hmac` names, and `@revoked` markers (`@cert-authority` lines are
 * skipped: dtrain does not verify host certificates). Keys are compared as their base64 wire blobs.
 */
import { createHmac } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { makeDirs } from '../../util/make-dirs.js';

export interface KnownHostEntry {
  marker: 'revoked' | 'cert-authority' | null;
  /** comma-separated patterns, or one `|1|salt|hash` */
  hosts: string;
  keyType: string;
  /** base64 of the key's wire blob */
  key: string;
  line: number;
}

export type HostKeyVerdict =
  | { kind: 'match'; line: number }
  | { kind: 'revoked'; line: number }
  | { kind: 'changed'; line: number; keyType: string }
  /** no entry for this host and key type; `otherTypes` lists key types known for the host */
  | { kind: 'unknown'; otherTypes: string[] };

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    if (fields.length < 3) return;
    entries.push({ marker, hosts: fields[0], keyType: fields[1], key: fields[2], line: i + 1 });
  });
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(field: string, name: string): boolean {
  const parts = field.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const digest = createHmac('sha1', salt).update(name).digest('base64');
  return digest === parts[3];
}

/** Whether a host field names `name`; a matching negated pattern excludes the line whatever else matches. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedMatches(field, name);
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else if (globToRegExp(pattern).test(name)) {
      matched = true;
    }
  }
  return matched;
}

/** The key type carried at the start of an SSH public-key wire blob. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return '';
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString('latin1');
}

/**
 * Verdict for the key a server presented, looked up under every name the host is known by (OpenSSH checks
 * the name and, separately, the address; dtrain accepts a match under any of them and refuses a mismatch
 * under any of them).
 */
export function checkHostKey(entries: KnownHostEntry[], names: string[], presented: Buffer): HostKeyVerdict {
  const key = presented.toString('base64');
  const keyType = keyTypeOfBlob(presented);
  const forHost = entries.filter(
    (e) => e.marker !== 'cert-authority' && names.some((n) => hostFieldMatches(e.hosts, n)),
  );
  // A revoked key is refused wherever it is listed, even for other hosts (as OpenSSH does).
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key === key);
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const plain = forHost.filter((e) => e.marker === null);
  const same = plain.find((e) => e.key === key);
  if (same) return { kind: 'match', line: same.line };
  const changed = plain.find((e) => e.keyType === keyType);
  if (changed) return { kind: 'changed', line: changed.line, keyType };
  return { kind: 'unknown', otherTypes: [...new Set(plain.map((e) => e.keyType))] };
}

/** Key types known for a host, so the handshake can ask for one of those first (as OpenSSH orders them). */
export function knownKeyTypes(entries: KnownHostEntry[], names: string[]): string[] {
  return [
    ...new Set(
      entries.filter((e) => e.marker === null && names.some((n) => hostFieldMatches(e.hosts, n))).map((e) => e.keyType),
    ),
  ];
}

/** A known_hosts file loaded once per launch; `accept-new` appends go through one queue so lines never interleave. */
export class KnownHostsFile {
  private writes: Promise<void> = Promise.resolve();
  private constructor(
    readonly path: string,
    private entries: KnownHostEntry[],
  ) {}

  static async load(path: string): Promise<KnownHostsFile> {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new KnownHostsFile(path, parseKnownHosts(text));
  }

  check(names: string[], presented: Buffer): HostKeyVerdict {
    return checkHostKey(this.entries, names, presented);
  }

  keyTypes(names: string[]): string[] {
    return knownKeyTypes(this.entries, names);
  }

  /** Records a newly accepted key under `name` (serialized: concurrent handshakes append one line each). */
  add(name: string, presented: Buffer): Promise<void> {
    const keyType = keyTypeOfBlob(presented);
    const key = presented.toString('base64');
    const line = `${name} ${keyType} ${key}\n`;
    const next = this.writes.then(async () => {
      await makeDirs(dirname(this.path), 0o700);
      let text = '';
      try {
        text = await readFile(this.path, 'utf8');
      } catch {
        /* absent: created below */
      }
      const sep = text && !text.endsWith('\n') ? '\n' : '';
      await appendFile(this.path, sep + line, { mode: 0o600 });
      this.entries.push({ marker: null, hosts: name, keyType, key, line: text.split('\n').length });
    });
    this.writes = next.catch(() => undefined);
    return next;
  }
}
