/**
 * The store holds one connection, one file descriptor, per agent. Node raises its soft limit on open files
 * to the hard limit as it starts (so `ulimit -Sn` cannot lower it for a Node process, and no setrlimit call
 * is needed here); the hard limit is the one that counts, and `ulimit -Hn` (or systemd's LimitNOFILE) sets it.
 */
import { readFileSync } from 'node:fs';

/** This process's limit on open files now (Linux: /proc/self/limits); undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const row = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!row) return undefined;
    return row[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(row[1]);
  } catch {
    return undefined;
  }
}
