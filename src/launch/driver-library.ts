/**
 * Whether dlopen("libcuda.so.1") could find the NVIDIA driver library at all, answered from the file
 * system without loading anything. The GPU probe runs in a child Node process (a broken driver must not
 * take the agent down), and that child is ~70 ms on the critical path of every launch: on a machine
 * with no driver library its answer is known without it.
 *
 * Conservative: "maybe" whenever the name is in the loader cache, in an LD_LIBRARY_PATH folder or in a
 * default folder; only a clear "not there" skips the real probe.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const driverLibrary = 'libcuda.so.1';

// glibc's trusted folders (Debian multiarch, RHEL lib64), WSL's driver folder and the NVIDIA container folders.
export const driverLibraryDirs: readonly string[] = [
  '/lib',
  '/usr/lib',
  '/lib64',
  '/usr/lib64',
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib/wsl/lib',
  '/usr/local/nvidia/lib64',
  '/usr/local/nvidia/lib',
];

export function driverLibraryMayLoad(env: NodeJS.ProcessEnv = process.env, ldCache = '/etc/ld.so.cache'): boolean {
  const dirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...driverLibraryDirs];
  if (dirs.some((d) => existsSync(join(d, driverLibrary)))) return true;
  try {
    return readFileSync(ldCache).includes(driverLibrary);
  } catch {
    return existsSync(ldCache); // unreadable: maybe
  }
}
